"""What the control-room console needs from the daemon, and nothing more: the alarms as the
event store has them (read on a read-only connection in a worker thread, so the console never
holds up the alarm path's writer), live changes from the alarm service, reset, a local
acknowledgement, and the daemon's status."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from edgeguard.alarms import AlarmChange, AlarmError
from edgeguard.config import EdgeguardConfig
from edgeguard.console.views import HistoryFilter, alarm_view, local_acks_by_event
from edgeguard.service import AlarmService
from edgeguard.store import AlarmRecord, Store
from edgeguard.web.sse import Hub
from edgeguard.writer import StoreWriter

logger = logging.getLogger(__name__)

LOCAL_ACK = "alarm.local_ack"
LEDGER_PAGE = 2000  # rows read at a time for the CSV export


def _ledger_page(
    store: Store, *, since: str | None, until: str | None, after: int, page: int
) -> list[dict[str, Any]]:
    return list(store.query_events(since=since, until=until, after_id=after, limit=page))


class DaemonView(Protocol):
    config: EdgeguardConfig
    service: AlarmService
    writer: StoreWriter

    async def status(self) -> dict[str, Any]: ...


class ConsoleError(Exception):
    """An action the console cannot carry out; the message is shown to the operator."""


class ConsoleBackend:
    def __init__(self, daemon: DaemonView) -> None:
        self.daemon = daemon
        self.hub = Hub()
        self._listener = self._on_change
        daemon.service.listeners.append(self._listener)

    def close(self) -> None:
        listeners = self.daemon.service.listeners
        if self._listener in listeners:
            listeners.remove(self._listener)

    @property
    def store_path(self) -> Path:
        return self.daemon.config.store.path

    def _on_change(self, what: AlarmChange, record: AlarmRecord | None) -> None:
        """Runs on the loop right after the change is durably recorded."""
        if record is None or not self.hub.subscribers:
            return  # no page open: nothing to build on the alarm path
        self.hub.publish({"type": "alarm", "what": what, "data": alarm_view(record)})

    async def _read(self, fn: Callable[[Store], Any]) -> Any:
        def run() -> Any:
            store = Store(self.store_path, readonly=True)
            try:
                return fn(store)
            finally:
                store.close()

        return await asyncio.to_thread(run)

    async def open_alarms(self) -> list[dict[str, Any]]:
        def read(store: Store) -> list[dict[str, Any]]:
            records = store.open_alarms()
            acks = local_acks_by_event(store, [r.event_id for r in records])
            return [alarm_view(r, acks.get(r.event_id)) for r in records]

        result: list[dict[str, Any]] = await self._read(read)
        return result

    async def history(self, query: HistoryFilter) -> list[dict[str, Any]]:
        def read(store: Store) -> list[dict[str, Any]]:
            return [alarm_view(record) for record in query.records(store)]

        result: list[dict[str, Any]] = await self._read(read)
        return result

    async def alarm(self, event_id: str) -> dict[str, Any] | None:
        def read(store: Store) -> dict[str, Any] | None:
            record = store.alarm(event_id)
            if record is None:
                return None
            acks = local_acks_by_event(store, [event_id])
            view = alarm_view(record, acks.get(event_id))
            view["timeline"] = list(store.query_events(event_id=event_id))
            view["evidence_files"] = store.evidence_for(event_id)
            found: dict[str, Any] = view
            return found

        result: dict[str, Any] | None = await self._read(read)
        return result

    async def evidence_file(self, event_id: str, camera: str, kind: str) -> dict[str, Any] | None:
        """The latest evidence row of ``camera`` and ``kind`` for the alarm."""
        rows: list[dict[str, Any]] = await self._read(lambda s: s.evidence_for(event_id))
        matching = [r for r in rows if r.get("camera") == camera and r.get("kind") == kind]
        return matching[-1] if matching else None

    async def ledger_pages(
        self, since: str | None, until: str | None, page: int = LEDGER_PAGE
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """The ledger in pages of ``page`` rows, each read in a worker thread: a year of
        events is exported without holding it in memory."""
        after = 0
        while True:
            rows: list[dict[str, Any]] = await self._read(
                partial(_ledger_page, since=since, until=until, after=after, page=page)
            )
            if not rows:
                return
            yield rows
            after = int(rows[-1]["id"])

    async def reset(self, event_id: str, by: str) -> dict[str, Any]:
        try:
            record = await self.daemon.service.reset(event_id, by)
        except AlarmError as exc:
            raise ConsoleError(str(exc)) from exc
        view: dict[str, Any] = alarm_view(record)
        return view

    async def local_ack(self, event_id: str, by: str) -> dict[str, Any]:
        """The operator has seen the alarm: the console's sound stops. Recorded in the ledger;
        the alarm itself goes on (only a reset ends a latched alarm)."""

        def write(store: Store) -> AlarmRecord:
            record = store.alarm(event_id)
            if record is None:
                raise ConsoleError(f"no alarm {event_id}")
            store.append_event(
                LOCAL_ACK, event_id=event_id, source=record.source, kind=record.kind,
                state=record.state, priority=record.priority, location=record.location_key,
                data={"by": by},
            )  # fmt: skip
            return record

        record = await self.daemon.writer.run(write)
        logger.info("console: alarm %s acknowledged locally by %s", event_id, by)
        view: dict[str, Any] = alarm_view(record, {"by": by})
        self.hub.publish({"type": "alarm", "what": "local_ack", "data": view})
        return view

    async def health(self) -> dict[str, Any]:
        status = await self.daemon.status()
        health: dict[str, Any] = {
            "site": status.get("site"),
            "version": status.get("version"),
            "link": status.get("link"),
            "heartbeat": status.get("heartbeat"),
            "devices": status.get("devices", []),
            "cameras": status.get("cameras", {}),
            "coverage": status.get("coverage", []),
            "outbox": status.get("outbox"),
            "store": status.get("store"),
        }
        return health

