"""`make bench`: run every benchmark under bench/ and print one table of SPEC.md's targets
beside the figures measured in this run. Each bench script prints its own details and one
or more `BENCH {json}` lines, which this collects. Exit status 1 if a target was missed.

    make bench                       # everything (several minutes)
    make bench BENCH_ARGS="--quick"  # smaller runs, for a smoke test
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ORDER = ["webhook", "backfill", "capi", "ui"]
QUICK = {
    "webhook": ["--duration", "3", "--repetitions", "1", "--bodies", "20000"],
    "backfill": ["--leads", "10000"],
    "capi": ["--leads", "250"],
    "ui": ["--leads", "10000", "--requests", "5"],
}


def run(name: str, quick: bool) -> list[dict]:
    script = ROOT / "bench" / name
    if not (script.exists() and os.access(script, os.X_OK)):
        print(f"bench/{name}: missing")
        return []
    print(f"\n=== bench/{name} ===", flush=True)
    args = QUICK[name] if quick else []
    process = subprocess.run(
        [sys.executable, str(script), *args], cwd=ROOT, capture_output=True, text=True
    )
    sys.stdout.write(process.stdout)
    sys.stderr.write(process.stderr[-3000:])
    return [
        json.loads(line[len("BENCH ") :])
        for line in process.stdout.splitlines()
        if line.startswith("BENCH ")
    ]


def rows(results: list[dict]) -> list[tuple[str, str, str, bool]]:
    table: list[tuple[str, str, str, bool]] = []
    for r in results:
        if r["bench"] == "webhook":
            db = r["database"]
            table.append(
                (f"webhook p99, {db}, c={r['concurrency']}", "< 100 ms",
                 f"{r['webhook_p99_ms']} ms", r["webhook_p99_ms"] < 100)
            )  # fmt: skip
            table.append(
                (f"webhook vs /healthz throughput, {db}", ">= 0.5",
                 f"{r['ratio']} ({r['ratio_min']}-{r['ratio_max']}; "
                 f"{r['webhook_rps']}/s vs {r['healthz_rps']}/s)",
                 r["ratio"] >= 0.5)
            )  # fmt: skip
        elif r["bench"] == "backfill":
            table += [
                (f"bulk read, {r['leads']:,} leads, SQLite", ">= 2000 leads/s",
                 f"{r['leads_per_s']} leads/s", r["leads_per_s"] >= 2000),
                ("bulk read peak memory", "< 300 MB", f"{r['peak_mb']} MB", r["peak_mb"] < 300),
                ("bulk read vs fetch alone", ">= 0.5",
                 f"{r['ratio']} (fetch {r['fetch_leads_per_s']} leads/s)", r["ratio"] >= 0.5),
            ]  # fmt: skip
        elif r["bench"] == "capi":
            table.append(
                (f"conversions: POSTs for {r.get('events', '?')} stage changes",
                 f"<= {r.get('target_posts', 10)}", str(r.get("posts")), bool(r.get("met")))
            )  # fmt: skip
        elif r["bench"] == "ui":
            for key, median in r["median_ms"].items():
                table.append(
                    (f"{key.replace(':', ', ')} ({r['leads']:,} leads)", "< 150 ms median",
                     f"{median} ms", median < 150)
                )  # fmt: skip
    return table


def main() -> int:
    quick = "--quick" in sys.argv[1:]
    results: list[dict] = []
    for name in ORDER:
        results += run(name, quick)
    table = rows(results)
    print(f"\n=== Targets (SPEC.md) and figures, one run on {platform.node()}: "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()} ===")  # fmt: skip
    width = max((len(row[0]) for row in table), default=10)
    print(f"{'measure':<{width}}  {'target':<18} {'measured':<40} ok")
    for measure, target, measured, ok in table:
        print(f"{measure:<{width}}  {target:<18} {measured:<40} {'yes' if ok else 'NO'}")
    return 0 if table and all(row[3] for row in table) else 1


if __name__ == "__main__":
    sys.exit(main())
