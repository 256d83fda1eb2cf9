"""Reading a lead export: the encoding (BOM, or UTF-16's zero bytes), the delimiter
(sniffed from the header) and the rows with their spreadsheet row numbers. Standard library
only: nothing here touches the database."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

# An export of a few hundred thousand leads is tens of megabytes; anything far larger is
# not one, and reading it would only exhaust memory.
MAX_BYTES = 200 * 1024 * 1024
REQUIRED_COLUMNS = ("id", "created_time")
DELIMITERS = ("\t", ",", ";")


class NotALeadExport(Exception):
    """The file is not a lead export; nothing was imported."""


def decode(data: bytes) -> tuple[str, str]:
    """The text of an export and the encoding found: the BOM decides (UTF-16 LE/BE,
    UTF-8), else a BOM-less UTF-16 is recognised by its zero bytes, else UTF-8."""
    if not data.strip(b" \t\r\n\x00\xef\xbb\xbf\xff\xfe"):
        raise NotALeadExport("The file is empty.")
    if len(data) > MAX_BYTES:
        raise NotALeadExport(f"The file is larger than {MAX_BYTES // (1024 * 1024)} MB.")
    if data.startswith(b"\xff\xfe"):
        encoding, body = "utf-16-le", data[2:]
    elif data.startswith(b"\xfe\xff"):
        encoding, body = "utf-16-be", data[2:]
    elif data.startswith(b"\xef\xbb\xbf"):
        encoding, body = "utf-8-sig", data[3:]
    else:
        sample = data[:400]
        odd_zeros, even_zeros = sample[1::2].count(0), sample[0::2].count(0)
        if odd_zeros > len(sample) // 4 and not even_zeros:
            encoding, body = "utf-16-le", data
        elif even_zeros > len(sample) // 4 and not odd_zeros:
            encoding, body = "utf-16-be", data
        else:
            encoding, body = "utf-8", data
    try:
        text = body.decode(encoding.removesuffix("-sig"))
    except UnicodeDecodeError:
        raise NotALeadExport(
            "The file is not text (UTF-8 or UTF-16): is it a spreadsheet (.xlsx) or another "
            "binary file? Download the leads as CSV."
        ) from None
    if "\x00" in text:
        raise NotALeadExport("The file contains binary data, not CSV text.")
    return text, encoding


def sniff_delimiter(header_line: str) -> str:
    """Tab, comma or semicolon: whichever splits the header into the most columns."""
    counts = {d: header_line.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def _header_key(name: str) -> str:
    return name.strip().strip("\ufeff").strip()


def read_rows(text: str) -> tuple[list[str], str, Iterator[tuple[int, list[str]]]]:
    """Header, delimiter, and the data rows with their spreadsheet row numbers."""
    first_line = text.split("\n", 1)[0]
    delimiter = sniff_delimiter(first_line)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = [_header_key(name) for name in next(reader)]
    except StopIteration:
        raise NotALeadExport("The file is empty.") from None
    except csv.Error as exc:
        raise NotALeadExport(f"The header cannot be read as CSV: {exc}") from None
    lowered = [name.lower() for name in header]
    missing = [name for name in REQUIRED_COLUMNS if name not in lowered]
    if missing:
        shown = ", ".join(header[:8]) + (", ..." if len(header) > 8 else "")
        raise NotALeadExport(
            f"Not a lead export: no {' or '.join(missing)} column in the header "
            f"(found: {shown or 'nothing'})."
        )

    def rows() -> Iterator[tuple[int, list[str]]]:
        number = 1
        try:
            for values in reader:
                number += 1
                yield number, values
        except csv.Error as exc:
            raise NotALeadExport(f"Row {number + 1} cannot be read as CSV: {exc}") from None

    return header, delimiter, rows()
