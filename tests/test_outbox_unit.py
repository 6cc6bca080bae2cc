"""Unit checks of the outbox's ordering and of recording an alarm late (both found in review)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgeguard.alarm_model import Action, AlarmKind, InputSignal
from edgeguard.alarms import AlarmBook
from edgeguard.config import EdgeguardConfig
from edgeguard.ids import utc_now
from edgeguard.signing import Signer
from edgeguard.store import Store
from edgeguard.store_outbox import OutboxRow
from edgeguard.uplink.outbox import Outbox


async def _nothing(_ids: list[int]) -> None:
    return None


def test_memory_messages_go_first_and_in_the_order_they_were_made() -> None:
    async def scenario() -> list[int]:
        outbox = Outbox(10, _nothing)  # no uplink: nothing is sent, the line is kept
        outbox.add([OutboxRow(7, "t", b"", 1, False, None, "new")])
        outbox.add_volatile("t", b"new", "e1")
        outbox.add_volatile("t", b"restored", "e1")
        outbox.add([OutboxRow(8, "t", b"", 1, False, None, "new")])
        return list(outbox._unsent)

    assert asyncio.run(scenario()) == [-1, -2, 7, 8]


def test_recording_an_alarm_late_twice_is_harmless(tmp_path: Path) -> None:
    config = EdgeguardConfig.model_validate({
        "site": {"id": "s", "name": "n"}, "signing": {"private_key": "/k"},
        "locations": {"er": {"label": "急诊"}}})
    book = AlarmBook(config, Signer(Ed25519PrivateKey.generate()))
    book.seq.load(0)
    signal = InputSignal(source="b", action=Action.ACTIVE, kind=AlarmKind.PANIC, priority=1,
                         location="er", occurred_at=utc_now())
    record, _, _ = book.unrecorded(signal, None)
    store = Store(tmp_path / "db")
    try:
        with store.transaction():
            book.adopt(store, record)
        with store.transaction():  # a second signal, or the periodic retry, brings it again
            change = book.apply_signal(store, signal, adopt=record)
        assert change.what == "update"
        assert [a.event_id for a in store.open_alarms()] == [record.event_id]
    finally:
        store.close()


def test_every_police_action_is_an_alarm_change() -> None:
    """An ack's state becomes the listeners' AlarmChange: a police action without one would
    raise in the writer thread, not at review."""
    from edgeguard.alarm_model import PoliceAction
    from edgeguard.alarms import AlarmChange

    assert {AlarmChange(action.value) for action in PoliceAction} <= set(AlarmChange)
