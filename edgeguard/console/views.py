"""How the console shows the store's alarms: one dict per alarm (what the page renders and the
live stream sends), history filters, and the local acknowledgements read from the ledger."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from edgeguard.store import AlarmRecord, Store

LOCAL_ACK_TYPE = "alarm.local_ack"
MAX_HISTORY = 1000
_STATES = (
    "active", "delivered", "received", "acknowledged", "dispatched", "resolved", "reset",
)  # fmt: skip
_TEXT = re.compile(r"^[^\x00-\x1f\x7f]{1,100}$")


class FilterError(ValueError):
    """A history filter that does not parse; the message says which."""


def alarm_view(record: AlarmRecord, local_ack: dict[str, Any] | None = None) -> dict[str, Any]:
    view = dict(record.__dict__)
    view["restored"] = record.restored_at is not None and record.state != "reset"
    view["local_ack"] = local_ack
    view["snapshots"] = [_snapshot(record.event_id, item) for item in record.evidence
                         if item.get("kind") == "snapshot"]  # fmt: skip
    view["clips"] = [
        {"camera": item.get("camera"), "url": evidence_url(record.event_id, item)}
        for item in record.evidence
        if item.get("kind") == "clip" and "sha256" in item
    ]
    return view


def _snapshot(event_id: str, item: dict[str, Any]) -> dict[str, Any]:
    if "sha256" not in item:  # the camera gave none: say why
        return {"camera": item.get("camera"), "url": None, "reason": item.get("reason")}
    return {"camera": item.get("camera"), "url": evidence_url(event_id, item)}


def evidence_url(event_id: str, item: dict[str, Any]) -> str:
    return f"/api/evidence/{event_id}/{item.get('camera')}/{item.get('kind')}"


def local_acks_by_event(store: Store, event_ids: list[str]) -> dict[str, dict[str, Any]]:
    acks: dict[str, dict[str, Any]] = {}
    for event_id in event_ids:
        for row in store.query_events(event_id=event_id, types=[LOCAL_ACK_TYPE]):
            acks[event_id] = {"by": json.loads(row["data"]).get("by"), "at": row["recorded_at"]}
    return acks


@dataclass(frozen=True)
class HistoryFilter:
    since: str | None = None
    until: str | None = None
    kind: str | None = None
    location: str | None = None
    state: str | None = None
    limit: int = 200
    offset: int = 0

    @classmethod
    def parse(cls, query: dict[str, str]) -> HistoryFilter:
        def text(name: str) -> str | None:
            value = query.get(name) or None
            if value is not None and not _TEXT.match(value):
                raise FilterError(f"{name}: at most 100 characters, no control characters")
            return value

        since, until = text("since"), text("until")
        for name, value in (("since", since), ("until", until)):
            if value is not None:
                _check_time(name, value)
        state = text("state")
        if state is not None and state not in _STATES:
            raise FilterError(f"state is one of {', '.join(_STATES)}")
        return cls(
            since=since, until=until, kind=text("kind"), location=text("location"), state=state,
            limit=_int(query, "limit", 200, 1, MAX_HISTORY),
            offset=_int(query, "offset", 0, 0, 10**9),
        )  # fmt: skip

    def records(self, store: Store) -> Iterator[AlarmRecord]:
        return store.query_alarms(
            since=self.since, until=self.until, kind=self.kind, location=self.location,
            state=self.state, limit=self.limit, offset=self.offset,
        )  # fmt: skip


def _check_time(name: str, value: str) -> None:
    try:
        datetime.fromisoformat(value)
    except ValueError as exc:
        raise FilterError(f"{name}: not a date or time ({value!r}); use 2026-11-23T08:00") from exc


def _int(query: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise FilterError(f"{name} must be a whole number") from exc
    if not low <= value <= high:
        raise FilterError(f"{name} must be {low} to {high}")
    return value
