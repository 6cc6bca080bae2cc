"""Alarm semantics: latching, restore, reset by a person, police acknowledgements, delivery.

``AlarmBook`` holds the rules and runs in the store's writer thread (so every decision sees
the store exactly as the previous signal left it); each method records the ledger rows, the
alarm's new state and the outbox messages in one savepoint and returns what changed.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from edgeguard.alarm_model import (
    DEFAULT_PRIORITY,
    LATCHING_KINDS,
    Action,
    AlarmKind,
    AlarmState,
    DeviceState,
    DeviceStatus,
    InputSignal,
    MessageType,
)
from edgeguard.config import (
    DEFAULT_PATHS_LOCATION,
    FAULT_SUFFIX,
    PATH_DEVICES,
    EdgeguardConfig,
    input_points,
)
from edgeguard.ids import iso_ms, utc_now, uuid7
from edgeguard.payloads import (
    PoliceAck,
    alarm_payload,
    alarm_topic,
    device_payload,
    device_topic,
    snapshot_topic,
)
from edgeguard.payloads import location_payload as make_location
from edgeguard.signing import Signer
from edgeguard.store import AlarmRecord, Store
from edgeguard.store_outbox import OutboxRow

logger = logging.getLogger(__name__)


class AlarmError(Exception):
    """A request about an alarm that cannot be honoured (unknown id, already reset, ...)."""


class AlarmChange(StrEnum):
    """What happened to an alarm: a Change's ``what``, and what the alarm service's listeners
    are told (the control room's live page sends it on as text)."""

    NEW = "new"
    UPDATE = "update"
    RESTORED = "restored"
    EVIDENCE = "evidence"
    RESET = "reset"
    ACKNOWLEDGED = "acknowledged"  # the police actions (PoliceAction)
    DISPATCHED = "dispatched"
    RESOLVED = "resolved"
    DEVICE = "device"
    IGNORED = "ignored"
    UNKNOWN = "unknown"  # an ack for an alarm this site does not have
    DUPLICATE = "duplicate"
    UNCHANGED = "unchanged"
    UNRECORDED = "unrecorded"  # sent while the store failed (service only)
    DELIVERED = "delivered"  # the broker's PUBACK (service only)
    RECEIVED = "received"  # the police platform's receipt (service only)


@dataclass
class Change:
    """What one call recorded: the alarm as it now stands and the messages to send."""

    what: AlarmChange
    alarm: AlarmRecord | None = None
    outbox: list[OutboxRow] = field(default_factory=list)


class SeqCounter:
    """The per-site message counter, kept in memory so that a message can be numbered even when
    the disk fails, and saved in each transaction. A rolled-back transaction leaves a gap in the
    numbers, never a repeat."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value: int | None = None

    def load(self, value: int) -> None:
        with self._lock:
            self._value = max(value, self._value or 0)

    def take(self) -> int:
        with self._lock:
            if self._value is None:
                raise RuntimeError("the message counter was not loaded from the store")
            self._value += 1
            return self._value


def is_alarm_message(row: OutboxRow) -> bool:
    """An alarm message (new, update, restored, reset, evidence): what receipts are for."""
    return row.event_id is not None and "/alarm/" in row.topic and row.message is not None


class AlarmBook:
    def __init__(self, config: EdgeguardConfig, signer: Signer) -> None:
        self.config = config
        self.signer = signer
        self.seq = SeqCounter()

    # --- helpers ----------------------------------------------------------------------------
    @property
    def site(self) -> str:
        return self.config.site.id

    def _publish(self, store: Store, record: AlarmRecord, message: MessageType) -> OutboxRow:
        seq = self.seq.take()
        store.save_seq(seq)
        if record.first_seq is None:
            record.first_seq = seq
        payload = alarm_payload(record, message, seq, self.site, self.config.site.name)
        return store.enqueue(
            alarm_topic(self.site, record.source),
            self.signer.encode(payload),
            qos=1,
            event_id=record.event_id,
            message=message.value,
            seq=seq,
        )

    def unrecorded(
        self, signal: InputSignal, record: AlarmRecord | None
    ) -> tuple[AlarmRecord, str, bytes]:
        """The message for a signal the store could not record (disk full, I/O error): sent
        from memory so the police still get it. Runs on the loop; touches no store."""
        if record is None:
            record = self._new_record(signal)
            record.detail["unrecorded"] = True
            message = MessageType.NEW
        else:
            record.input_active = signal.action is Action.ACTIVE
            if record.input_active:
                record.trigger_count += 1
                message = MessageType.UPDATE
            else:
                record.restored_at = iso_ms(signal.occurred_at)
                message = MessageType.RESTORED
                if AlarmKind(record.kind) not in LATCHING_KINDS:
                    self._close(record, by="system")
                    message = MessageType.RESET
        seq = self.seq.take()
        if record.first_seq is None:
            record.first_seq = seq
        payload = alarm_payload(record, message, seq, self.site, self.config.site.name)
        return record, alarm_topic(self.site, record.source), self.signer.encode(payload)

    def _ledger(self, store: Store, event_type: str, record: AlarmRecord, **data: Any) -> None:
        store.append_event(
            event_type,
            event_id=record.event_id,
            source=record.source,
            kind=record.kind,
            state=record.state,
            priority=record.priority,
            location=record.location_key,
            occurred_at=record.occurred_at,
            data=data,
        )

    def _new_record(self, signal: InputSignal) -> AlarmRecord:
        location = self.config.locations.get(signal.location)
        return AlarmRecord(
            event_id=uuid7(),
            kind=signal.kind.value,
            priority=signal.priority,
            source=signal.source,
            location_key=signal.location,
            location=make_location(signal.location, location),
            occurred_at=iso_ms(signal.occurred_at),
            recorded_at=iso_ms(utc_now()),
            state=AlarmState.ACTIVE.value,
            detail=dict(signal.detail),
            cameras=self.config.cameras_for(signal.location),
        )

    # --- inputs -----------------------------------------------------------------------------
    def apply_signal(
        self, store: Store, signal: InputSignal, adopt: AlarmRecord | None = None
    ) -> Change:
        """Decide what a signal means and record it. ``adopt``: an alarm of the same source
        sent from memory while the store failed, recorded first in the same transaction."""
        if adopt is not None:
            self.adopt(store, adopt)
        current = store.open_alarm_for_source(signal.source)
        if signal.action is Action.ACTIVE:
            if current is None:
                return self._raise_new(store, signal)
            return self._retrigger(store, current, signal)
        if current is None or not current.input_active:
            store.append_event(
                "input.normal",
                source=signal.source,
                kind=signal.kind.value,
                location=signal.location,
                occurred_at=signal.occurred_at,
                data=signal.detail,
            )
            return Change(AlarmChange.IGNORED)
        return self._restore(store, current, signal)

    def _raise_new(self, store: Store, signal: InputSignal) -> Change:
        record = self._new_record(signal)
        row = self._publish(store, record, MessageType.NEW)
        store.insert_alarm(record)
        self._ledger(store, "alarm.new", record, detail=record.detail, seq=record.first_seq)
        logger.warning(
            "ALARM %s %s at %s (priority %d) event %s",
            record.kind,
            record.source,
            record.location.get("label"),
            record.priority,
            record.event_id,
        )
        return Change(AlarmChange.NEW, record, [row])

    def _retrigger(self, store: Store, record: AlarmRecord, signal: InputSignal) -> Change:
        record.input_active = True
        record.trigger_count += 1
        record.detail = {**record.detail, **signal.detail}
        row = self._publish(store, record, MessageType.UPDATE)
        store.save_alarm(record)
        self._ledger(
            store,
            "alarm.update",
            record,
            trigger_count=record.trigger_count,
            at=iso_ms(signal.occurred_at),
        )
        logger.warning("alarm %s triggered again (%d)", record.event_id, record.trigger_count)
        return Change(AlarmChange.UPDATE, record, [row])

    def _restore(self, store: Store, record: AlarmRecord, signal: InputSignal) -> Change:
        record.input_active = False
        record.restored_at = iso_ms(signal.occurred_at)
        record.detail = {**record.detail, **signal.detail}
        rows = []
        latching = AlarmKind(record.kind) in LATCHING_KINDS
        if not latching:
            self._close(record, by="system")
        rows.append(
            self._publish(store, record, MessageType.RESTORED if latching else MessageType.RESET)
        )
        store.save_alarm(record)
        self._ledger(store, "alarm.restored", record, restored_at=record.restored_at)
        if not latching:
            self._ledger(store, "alarm.reset", record, by="system")
        logger.info(
            "alarm %s restored (%s)",
            record.event_id,
            "latched until reset" if latching else "cleared",
        )
        return Change(AlarmChange.RESTORED, record, rows)

    @staticmethod
    def _close(record: AlarmRecord, by: str) -> None:
        record.state = AlarmState.RESET.value
        record.reset_at = iso_ms(utc_now())
        record.reset_by = by

    def adopt(self, store: Store, record: AlarmRecord) -> None:
        """Record an alarm that was sent from memory while the store failed (a copy: if this
        transaction fails too, the in-memory record stays as it was). Idempotent: two signals
        or a signal and the periodic retry may both bring the same record."""
        if store.alarm(record.event_id) is not None:
            return
        record = dataclasses.replace(
            record, detail={**record.detail, "unrecorded": False, "recorded_late": True}
        )
        store.insert_alarm(record)
        self._ledger(
            store,
            "alarm.new",
            record,
            detail=record.detail,
            seq=record.first_seq,
            recorded_late=True,
        )

    # --- evidence ---------------------------------------------------------------------------
    def add_evidence(
        self, store: Store, event_id: str, items: list[tuple[dict[str, Any], bytes | None]]
    ) -> Change:
        """Record snapshots taken for an alarm (their files are already on disk) and queue
        them, then one signed `evidence` alarm message listing them with their sha256. They
        queue behind the alarm's own messages, so the police get the alarm first."""
        record = store.alarm(event_id)
        if record is None:
            raise AlarmError(f"no alarm {event_id}")
        rows: list[OutboxRow] = []
        for item, jpeg in items:
            listed = {k: v for k, v in item.items() if k != "path"}
            if "sha256" in item:  # a file kept with the alarm (a snapshot, a clip)
                store.add_evidence(event_id, _evidence_row(item))
            if jpeg is not None:  # snapshots go to the police too; clips stay here
                topic = snapshot_topic(self.site, event_id, item["camera"])
                listed["topic"] = topic
                rows.append(
                    store.enqueue(topic, jpeg, qos=1, event_id=event_id, message="snapshot")
                )
            self._ledger(store, f"evidence.{item['kind']}", record, **listed)
            record.evidence.append(listed)
        rows.append(self._publish(store, record, MessageType.EVIDENCE))
        store.save_alarm(record)
        return Change(AlarmChange.EVIDENCE, record, rows)

    # --- people -----------------------------------------------------------------------------
    def reset(self, store: Store, event_id: str, by: str) -> Change:
        record = store.alarm(event_id)
        if record is None:
            raise AlarmError(f"no alarm {event_id}")
        if record.state == AlarmState.RESET:
            raise AlarmError(
                f"alarm {event_id} was already reset by {record.reset_by} at {record.reset_at}"
            )
        if record.input_active:
            raise AlarmError(
                f"alarm {event_id}: input {record.source} is still in alarm; "
                "restore the button first (or fix the stuck contact)"
            )
        self._close(record, by=by)
        row = self._publish(store, record, MessageType.RESET)
        store.save_alarm(record)
        self._ledger(store, "alarm.reset", record, by=by)
        logger.info("alarm %s reset by %s", event_id, by)
        return Change(AlarmChange.RESET, record, [row])

    def police_ack(self, store: Store, ack: PoliceAck) -> Change:
        record = store.alarm(ack.event_id)
        if record is None:  # kept in the ledger (no exception: that would roll it back)
            store.append_event(
                "police.unknown_ack",
                event_id=ack.event_id,
                data={"state": ack.state.value, "by": ack.by},
            )
            return Change(AlarmChange.UNKNOWN)
        at_field, by_field = f"{ack.state.value}_at", f"{ack.state.value}_by"
        if getattr(record, at_field) is not None:
            return Change(AlarmChange.DUPLICATE, record)
        setattr(record, at_field, iso_ms(ack.at))
        setattr(record, by_field, ack.by)
        new_state = AlarmState(ack.state.value)
        if (
            AlarmState(record.state) != AlarmState.RESET
            and new_state.rank > AlarmState(record.state).rank
        ):
            record.state = new_state.value
        store.save_alarm(record)
        self._ledger(store, f"alarm.{ack.state.value}", record, by=ack.by, at=iso_ms(ack.at))
        logger.info("police %s alarm %s (%s)", ack.state.value, ack.event_id, ack.by)
        return Change(AlarmChange(ack.state.value), record)

    # --- delivery ---------------------------------------------------------------------------
    def delivered(self, store: Store, ids: list[int]) -> list[AlarmRecord]:
        """Mark outbox rows delivered (PUBACK); alarms whose first message went through
        become ``delivered``. With receipts on, the alarm messages among them now wait for the
        police platform's."""
        now = iso_ms(utc_now())
        changed: list[AlarmRecord] = []
        rows = store.mark_delivered(ids, now)
        if self.config.receipts is not None:
            store.await_receipts([row.id for row in rows if is_alarm_message(row)])
        for row in rows:
            if row.message != MessageType.NEW.value or row.event_id is None:
                continue
            record = store.alarm(row.event_id)
            if record is None or record.delivered_at is not None:
                continue
            record.delivered_at = now
            if AlarmState(record.state).rank < AlarmState.DELIVERED.rank:
                record.state = AlarmState.DELIVERED.value
            store.save_alarm(record)
            self._ledger(store, "alarm.delivered", record, at=now)
            changed.append(record)
        return changed

    def received(self, store: Store, event_id: str, seq: int) -> AlarmRecord | None:
        """The police platform's receipt for one alarm message: recorded; the alarm, when its
        first message is the one received, becomes ``received`` (returned)."""
        now = iso_ms(utc_now())
        message = store.mark_received(event_id, seq, now)
        if message != MessageType.NEW.value:
            return None
        record = store.alarm(event_id)
        if record is None or record.received_at is not None:
            return None
        record.received_at = now
        if AlarmState(record.state).rank < AlarmState.RECEIVED.rank:
            record.state = AlarmState.RECEIVED.value
        store.save_alarm(record)
        self._ledger(store, "alarm.received", record, at=now)
        return record

    # --- devices ----------------------------------------------------------------------------
    def device_status(self, store: Store, status: DeviceStatus) -> Change:
        previous = store.device(status.device)
        if previous is not None and previous["state"] == status.state.value:
            return Change(AlarmChange.UNCHANGED)
        store.save_device(status.device, status.state.value, status.detail)
        store.append_event(
            "device.status", source=status.device, state=status.state.value, data=status.detail
        )
        payload = device_payload(self.site, status.device, status.state.value, status.detail)
        rows = [
            store.enqueue(
                device_topic(self.site, status.device),
                self.signer.encode(payload),
                qos=1,
                retain=True,
                message="device",
            )
        ]
        first_report_online = previous is None and status.state is DeviceState.ONLINE
        fault = None if first_report_online else self._device_fault_signal(status)
        if fault is not None:
            change = self.apply_signal(store, fault)
            rows.extend(change.outbox)
            return Change(AlarmChange.DEVICE, change.alarm, rows)
        return Change(AlarmChange.DEVICE, None, rows)

    def _device_fault_signal(self, status: DeviceStatus) -> InputSignal | None:
        location = self._device_location(status.device)
        if location is None:
            return None  # not an input device: no fault alarm from here
        action = Action.NORMAL if status.state is DeviceState.ONLINE else Action.ACTIVE
        return InputSignal(
            source=f"{status.device}{FAULT_SUFFIX}",
            action=action,
            kind=AlarmKind.DEVICE_FAULT,
            priority=DEFAULT_PRIORITY[AlarmKind.DEVICE_FAULT],
            location=location,
            occurred_at=utc_now(),
            detail={"device": status.device, "state": status.state.value, **status.detail},
        )

    def _device_location(self, device: str) -> str | None:
        if device in PATH_DEVICES.values():
            return self.config.mqtt.paths_location or DEFAULT_PATHS_LOCATION
        for item in self.config.inputs:
            if item.name != device:
                continue
            own = getattr(item, "location", None)
            if isinstance(own, str):
                return own
            points = input_points(item)
            return next(iter(points.values())).location if points else None
        return None


EVIDENCE_COLUMNS = ("camera", "kind", "path", "sha256", "bytes", "taken_at", "via")


def _evidence_row(item: dict[str, Any]) -> dict[str, Any]:
    return {key: item.get(key) for key in EVIDENCE_COLUMNS}
