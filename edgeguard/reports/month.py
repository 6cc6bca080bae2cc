"""The report's month: a calendar month in the site's time zone, as a UTC window."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MONTH_PATTERN = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


class MonthError(ValueError):
    """A month or time zone that cannot be reported on."""


@dataclass(frozen=True, slots=True)
class ReportMonth:
    """``start`` (inclusive) and ``end`` (exclusive) in UTC; ``until`` is ``end`` or, for the
    month still running, the moment the report was made (time after it is not yet known)."""

    label: str
    zone: tzinfo
    start: datetime
    end: datetime
    until: datetime

    @property
    def seconds(self) -> float:
        return max(0.0, (self.until - self.start).total_seconds())

    def local(self, moment: datetime) -> datetime:
        return moment.astimezone(self.zone)

    def previous(self) -> str:
        first = self.start.astimezone(self.zone) - timedelta(days=1)
        return f"{first.year:04d}-{first.month:02d}"


def time_zone(name: str | None) -> tzinfo:
    """An IANA zone by name; None: the machine's own zone."""
    if name is None:
        local = datetime.now().astimezone().tzinfo
        return local if local is not None else UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise MonthError(f"unknown time zone {name!r} (an IANA name, e.g. Asia/Shanghai)") from exc


def report_month(text: str, zone: tzinfo, *, now: datetime | None = None) -> ReportMonth:
    """``YYYY-MM`` in ``zone``; a month that has not begun is an error."""
    match = MONTH_PATTERN.match(text)
    if match is None:
        raise MonthError(f"month {text!r} is not YYYY-MM, e.g. 2026-11")
    year, month = int(match.group(1)), int(match.group(2))
    start = datetime(year, month, 1, tzinfo=zone)
    following = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=zone)
    moment = now if now is not None else datetime.now(UTC)
    start_utc, end_utc = start.astimezone(UTC), following.astimezone(UTC)
    if moment <= start_utc:
        raise MonthError(f"month {text} has not begun yet")
    return ReportMonth(text, zone, start_utc, end_utc, min(end_utc, moment))
