"""Unit tests of the one events handler type every broker link has
(edgeguard/uplink/link_events.py): each link's events reach its own lane of a real outbox."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from uplink_fakes import FakeLink, stored_rows

from edgeguard.uplink.link_events import LinkEvents
from edgeguard.uplink.outbox import Outbox


class AckService:
    """Stands in for AlarmService: only the police acks matter here."""

    def __init__(self) -> None:
        self.acks: list[bytes] = []

    async def handle_police_ack(self, payload: bytes) -> None:
        self.acks.append(payload)


async def _nothing(_ids: list[int]) -> None:
    return None


def test_each_link_s_events_go_to_its_own_lane(tmp_path: Path) -> None:
    rows = stored_rows(tmp_path / "store.db", 2)

    async def scenario() -> tuple[Outbox, FakeLink, FakeLink]:
        outbox = Outbox(10, _nothing)
        outbox.enable_failover(60.0, 10, None)
        assert outbox.secondary is not None
        service, spawned = AckService(), []
        primary = LinkEvents("primary", outbox, outbox.primary, service, spawn=spawned.append)
        secondary = LinkEvents("secondary", outbox, outbox.secondary, service, spawn=spawned.append)
        first, second = FakeLink(), FakeLink(first_mid=100)  # packet ids apart
        outbox.load(rows)  # as the daemon starts: the rows first, then the links
        outbox.attach(first)
        outbox.attach_secondary(second)
        primary.on_connected("primary:8883")  # both rows out on the primary
        secondary.on_connected("secondary:8883")
        first.connected = False
        primary.on_disconnected("gone", "primary:8883")  # the failover hands both to the secondary
        secondary.on_puback(second.mid_of(2), True, "Success")
        primary.on_puback(first.mid_of(2), True, "Success")  # the same row again: no effect
        outbox.close()
        return outbox, first, second

    outbox, first, second = asyncio.run(scenario())
    assert first.row_ids() == [1, 2]
    assert second.row_ids() == [1, 2]
    assert list(outbox.pending) == [1]  # 2 delivered once, by the first PUBACK
    assert outbox.secondary is not None
    assert (outbox.primary.acked, outbox.secondary.acked) == (1, 1)
    assert outbox.stats()["handed_over"] == 2


def test_a_police_ack_is_handled_as_a_task_of_the_link_s_owner() -> None:
    service, outbox = AckService(), Outbox(1, _nothing)
    spawned: list[Coroutine[Any, Any, None]] = []
    events = LinkEvents("primary", outbox, outbox.primary, service, spawn=spawned.append)
    events.on_ack_message(b"ack")
    assert len(spawned) == 1
    asyncio.run(spawned[0])
    assert service.acks == [b"ack"]
