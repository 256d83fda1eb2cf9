"""django-q2 task entry points for the Conversions API. No arguments: a run sends whatever
is due, so duplicate or lost tasks are harmless (one run at a time is the sender, the others
end at once; claims make repeats no-ops; and the minute schedule picks up what a lost task
would have sent)."""

from __future__ import annotations

from typing import Any

from capi import lease, sending


def send_pending() -> dict[str, Any]:
    summary = sending.send_coalesced(time_budget=sending.TASK_TIME_BUDGET)
    if summary.more:
        # The run stopped for its time budget with events still due: carry on in a new
        # task instead of waiting for the schedule.
        lease.request_send()
    return summary.as_dict()
