"""The ledger (events table) as CSV: the same columns for `edgeguard events --csv` and the
console's export. UTF-8 with a byte-order mark, so that Excel shows Chinese text correctly."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

EVENT_COLUMNS = [
    "id",
    "recorded_at",
    "occurred_at",
    "type",
    "event_id",
    "kind",
    "priority",
    "state",
    "source",
    "location",
    "data",
    "hash",
]
BOM = "\ufeff"
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> Any:
    """Text a spreadsheet would run as a formula (CSV injection: a location label, a name or a
    forged message starting with `=`, `+`, `-`, `@`) gets a leading `'`; everything else as is."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def _safe(row: dict[str, Any]) -> dict[str, Any]:
    return {key: spreadsheet_safe(value) for key, value in row.items()}


def write_events_csv(rows: Iterable[dict[str, Any]], handle: TextIO) -> None:
    """Header and rows to ``handle`` (opened with encoding utf-8-sig and newline='')."""
    writer = csv.DictWriter(handle, fieldnames=EVENT_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(_safe(row) for row in rows)


def csv_chunks(
    rows: Iterable[dict[str, Any]], columns: list[str], *, every: int = 500, header: bool = True
) -> Iterator[str]:
    """The CSV text in pieces of ``every`` rows, BOM and header first unless ``header`` is
    False (the next page of a long export)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    if header:
        buffer.write(BOM)
        writer.writeheader()
    for count, row in enumerate(rows, 1):
        writer.writerow(_safe(row))
        if count % every == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
