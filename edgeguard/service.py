"""The alarm path on the event loop: signal → durable write → outbox, plus resets, police
acks and deliveries, and notification of listeners (control socket, consoles)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any

from edgeguard.alarm_model import Action, AlarmState, DeviceStatus, InputSignal
from edgeguard.alarms import AlarmBook, AlarmChange, Change
from edgeguard.payloads import AckError, parse_police_ack
from edgeguard.receipts import ReceiptError, parse_receipt
from edgeguard.safe_text import preview
from edgeguard.store import AlarmRecord
from edgeguard.uplink.outbox import Outbox
from edgeguard.writer import StoreWriter

logger = logging.getLogger(__name__)

Listener = Callable[[AlarmChange, AlarmRecord | None], None]


class AlarmService:
    def __init__(self, writer: StoreWriter, book: AlarmBook, outbox: Outbox) -> None:
        self.writer = writer
        self.book = book
        self.outbox = outbox
        self.listeners: list[Listener] = []
        self.failed_writes = 0
        self.unrecorded: dict[str, AlarmRecord] = {}  # alarms sent while the store failed
        self.receipts_refused = 0

    def _notify(self, what: AlarmChange, record: AlarmRecord | None) -> None:
        for listener in list(self.listeners):
            try:
                listener(what, record)
            except Exception:
                logger.exception("alarm listener failed")

    def _apply(self, change: Change) -> Change:
        self.outbox.add(change.outbox)
        if change.alarm is not None:
            self._notify(change.what, change.alarm)
        return change

    async def handle_signal(self, signal: InputSignal) -> None:
        unrecorded = self.unrecorded.get(signal.source)
        try:
            change = await self.writer.run(
                partial(self.book.apply_signal, signal=signal, adopt=unrecorded)
            )
        except Exception as exc:  # noqa: BLE001 - a failed write must reach the driver
            self.failed_writes += 1
            logger.critical(
                "could not record %s %s from %s: %s", signal.kind, signal.action, signal.source, exc
            )
            self._send_unrecorded(signal)
            if signal.on_failed is not None:
                signal.on_failed(exc)
            return
        if unrecorded is not None:
            self._recorded_late(signal.source)
        self._apply(change)
        if signal.on_recorded is not None:
            try:
                signal.on_recorded()
            except Exception:
                logger.exception("on_recorded callback of %s failed", signal.source)

    async def record_unrecorded(self) -> None:
        """Retried periodically and before a reset: record the alarms that were sent from
        memory, so that they go on (restore, reset, restart) like any other."""
        for source, record in list(self.unrecorded.items()):
            try:
                await self.writer.run(partial(self.book.adopt, record=record))
            except Exception:  # noqa: BLE001 - the store still fails: try again later
                return
            self._recorded_late(source)

    def _recorded_late(self, source: str) -> None:
        record = self.unrecorded.pop(source, None)
        if record is not None:
            logger.warning(
                "alarm %s, sent while the store failed, is now recorded", record.event_id
            )

    def _send_unrecorded(self, signal: InputSignal) -> None:
        """The store failed: still tell the police, from memory. A serial box is not ACKed (it
        repeats); its repeats of a press already sent are not sent again."""
        known = self.unrecorded.get(signal.source)
        if known is not None and known.state == AlarmState.RESET:
            known = None  # a cleared technical alarm: a new activation is a new alarm
        if known is not None and known.input_active == (signal.action is Action.ACTIVE):
            return
        if known is None and signal.action is not Action.ACTIVE:
            return
        record, topic, payload = self.book.unrecorded(signal, known)
        self.unrecorded[signal.source] = record
        self.outbox.add_volatile(topic, payload, record.event_id)
        logger.critical(
            "alarm %s from %s sent WITHOUT a durable record (store failing)",
            record.event_id,
            signal.source,
        )
        self._notify(AlarmChange.UNRECORDED, record)

    async def handle_status(self, status: DeviceStatus) -> None:
        try:
            change = await self.writer.run(partial(self.book.device_status, status=status))
        except Exception:
            logger.exception("could not record status of %s", status.device)
            return
        self._apply(change)

    async def add_evidence(
        self, event_id: str, items: list[tuple[dict[str, Any], bytes | None]]
    ) -> None:
        """Snapshots (already on disk) for a recorded alarm: recorded, then published after it."""
        change = await self.writer.run(
            partial(self.book.add_evidence, event_id=event_id, items=items)
        )
        self._apply(change)

    async def reset(self, event_id: str, by: str) -> AlarmRecord:
        if any(r.event_id == event_id for r in self.unrecorded.values()):
            await self.record_unrecorded()
        change = await self.writer.run(partial(self.book.reset, event_id=event_id, by=by))
        self._apply(change)
        assert change.alarm is not None
        return change.alarm

    async def mark_delivered(self, ids: list[int]) -> None:
        changed = await self.writer.run(partial(self.book.delivered, ids=ids))
        for record in changed:
            self._notify(AlarmChange.DELIVERED, record)

    async def handle_receipt(self, payload: bytes) -> None:
        """A receipt from the police platform: verified, then its message waits no more and
        the alarm becomes ``received`` (its first message's receipt)."""
        waiting = self.outbox.receipts
        if waiting is None:
            return  # receipts off: a receipt changes nothing
        try:
            receipt = parse_receipt(payload, waiting.keys, self.book.site)
        except ReceiptError as exc:
            self.receipts_refused += 1
            logger.warning("receipt refused: %s", _short(exc))
            return
        waiting.received((receipt.event_id, receipt.seq))
        try:
            record = await self.writer.run(
                partial(self.book.received, event_id=receipt.event_id, seq=receipt.seq)
            )
        except Exception:  # the message may be published again: its next receipt records it
            logger.exception(
                "could not record the receipt of %s seq %s", receipt.event_id, receipt.seq
            )
            return
        if record is not None:
            logger.info(
                "alarm %s stored by the police platform (%s)", record.event_id, receipt.receiver
            )
            self._notify(AlarmChange.RECEIVED, record)

    async def handle_police_ack(self, payload: bytes) -> None:
        try:
            ack = parse_police_ack(payload)
        except AckError as exc:
            logger.warning("police ack rejected: %s", _short(exc))
            return
        if any(r.event_id == ack.event_id for r in self.unrecorded.values()):
            await self.record_unrecorded()  # an ack for an alarm sent while the store failed
        try:
            change = await self.writer.run(partial(self.book.police_ack, ack=ack))
        except Exception:  # the ack is lost, not the alarm: the police see no change and resend
            logger.exception("could not record the police %s of %s", ack.state.value, ack.event_id)
            return
        if change.what == AlarmChange.UNKNOWN:
            logger.warning(
                "police ack rejected: %s for unknown alarm %s", ack.state.value, ack.event_id
            )
        self._apply(change)

    async def snapshot(self) -> dict[str, Any]:
        def read(store: Any) -> dict[str, Any]:
            head = store.head()
            return {
                "open_alarms": [a.__dict__ for a in store.open_alarms()],
                "devices": store.devices(),
                "log_head": {"id": head[0], "hash": head[1]},
            }

        return await self.writer.run(read)


def _short(exc: Exception) -> str:
    return preview(str(exc).replace("\n", "; "), 300)
