"""Unit tests of when an undelivered row goes on to the next transmission path
(edgeguard/uplink/failover.py): to the secondary broker when the primary is down or late, then
overdue (the SMS path) when neither broker took it in time; and the same through a real outbox
whose rows come from a SQLite store."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from uplink_fakes import FakeLink, stored_rows

from edgeguard.store import Store
from edgeguard.store_outbox import OutboxRow
from edgeguard.uplink.failover import OVERDUE, PRIMARY, SECONDARY, Failover
from edgeguard.uplink.outbox import Outbox

AFTER_S = 30.0  # long: the tests move time on by calling advance(now)


class Paths:
    """The links' state as the failover sees it, and what it hands on."""

    def __init__(self, *, primary: bool = True, secondary: bool | None = True) -> None:
        self.primary = primary
        self.secondary = secondary  # None: no secondary broker configured
        self.handed: list[list[int]] = []
        self.overdue: list[list[int]] = []

    def failover(self, after_s: float = AFTER_S) -> Failover:
        secondary_ok = None if self.secondary is None else (lambda: bool(self.secondary))
        return Failover(
            after_s,
            primary_ok=lambda: self.primary,
            secondary_ok=secondary_ok,
            to_secondary=self.handed.append,
            overdue=self.overdue.append,
        )


def _run(scenario: Callable[[], None]) -> None:
    """Failover arms its timer on the running loop."""

    async def main() -> None:
        scenario()

    asyncio.run(main())


def test_a_row_the_primary_takes_in_time_goes_nowhere_else() -> None:
    paths = Paths()

    def scenario() -> None:
        failover = paths.failover()
        start = time.monotonic()
        failover.track([1, 2])
        failover.advance(start + AFTER_S - 1)
        failover.forget(1)  # PUBACKed
        failover.advance(time.monotonic() + AFTER_S)
        assert failover.stage(1) is None
        assert failover.stage(2) == SECONDARY
        failover.close()

    _run(scenario)
    assert paths.handed == [[2]]
    assert paths.overdue == []


def test_a_row_the_primary_does_not_puback_in_time_goes_to_the_secondary_then_overdue() -> None:
    paths = Paths()

    def scenario() -> None:
        failover = paths.failover()
        start = time.monotonic()
        failover.track([1, 2, 3])
        assert failover.stage(1) == PRIMARY
        failover.advance(start + AFTER_S - 1)
        assert paths.handed == []

        handed_at = time.monotonic() + AFTER_S
        failover.advance(handed_at)
        assert paths.handed == [[1, 2, 3]]  # in the order they were tracked
        failover.advance(handed_at + AFTER_S - 1)
        assert paths.overdue == []

        failover.advance(handed_at + AFTER_S)
        assert paths.overdue == [[1, 2, 3]]
        assert failover.stage(1) == OVERDUE
        failover.advance(handed_at + 10 * AFTER_S)  # declared overdue once
        assert (failover.handed_over, failover.overdue_rows) == (3, 3)
        failover.close()

    _run(scenario)


def test_rows_added_while_the_primary_is_down_go_to_the_secondary_at_once() -> None:
    paths = Paths(primary=False)

    def scenario() -> None:
        failover = paths.failover()
        failover.track([7])
        assert paths.handed == [[7]]
        assert paths.overdue == []
        failover.close()

    _run(scenario)


def test_rows_waiting_on_the_primary_move_on_when_it_goes_down() -> None:
    paths = Paths()

    def scenario() -> None:
        failover = paths.failover()
        failover.track([1, 2])
        paths.primary = False
        failover.advance()  # the outbox calls it on every link-down
        assert paths.handed == [[1, 2]]
        assert paths.overdue == []
        failover.close()

    _run(scenario)


def test_with_both_links_down_a_row_is_overdue_at_once() -> None:
    paths = Paths(primary=False, secondary=False)

    def scenario() -> None:
        failover = paths.failover()
        failover.track([4])
        assert paths.handed == [[4]]
        assert paths.overdue == [[4]]
        failover.close()

    _run(scenario)


def test_without_a_secondary_a_row_the_primary_cannot_send_is_overdue_at_once() -> None:
    paths = Paths(primary=False, secondary=None)

    def scenario() -> None:
        failover = paths.failover()
        failover.track([4])
        assert paths.handed == []  # nothing to hand over to
        assert paths.overdue == [[4]]
        assert failover.handed_over == 0
        failover.close()

    _run(scenario)


def test_a_handed_over_row_is_not_overdue_early_while_the_primary_works() -> None:
    """The secondary down but the primary up: the row may still be PUBACKed by the primary."""
    paths = Paths(primary=True, secondary=False)

    def scenario() -> None:
        failover = paths.failover()
        failover.track([1])
        handed_at = time.monotonic() + AFTER_S
        failover.advance(handed_at)
        assert paths.handed == [[1]]
        assert paths.overdue == []
        paths.primary = False
        failover.advance(handed_at + 1)
        assert paths.overdue == [[1]]
        failover.close()

    _run(scenario)


def test_the_timer_moves_rows_on_by_itself() -> None:
    async def scenario() -> list[list[int]]:
        overdue = asyncio.Event()
        handed: list[list[int]] = []
        failover = Failover(
            0.05,
            primary_ok=lambda: True,
            secondary_ok=lambda: True,
            to_secondary=handed.append,
            overdue=lambda _rows: overdue.set(),
        )
        failover.track([1])
        await asyncio.wait_for(overdue.wait(), 5)
        failover.close()
        return handed

    assert asyncio.run(scenario()) == [[1]]


# --- through the outbox ---------------------------------------------------------------------


def test_a_row_the_primary_cannot_send_is_delivered_by_the_secondary(tmp_path: Path) -> None:
    """Primary down: the rows go out on the secondary broker's lane, in order; its PUBACKs
    deliver them (recorded in the store) and nothing is declared overdue."""
    rows = stored_rows(tmp_path / "store.db", 3)
    overdue: list[list[OutboxRow]] = []

    async def scenario() -> tuple[FakeLink, Outbox]:
        store = Store(tmp_path / "store.db")

        async def mark_delivered(ids: list[int]) -> None:
            with store.transaction():
                store.mark_delivered(ids, "2026-01-01T00:00:00.000Z")

        outbox = Outbox(10, mark_delivered)
        outbox.enable_failover(0.05, 10, overdue.append)
        outbox.load(rows)
        primary, secondary = FakeLink(), FakeLink()
        outbox.attach(primary)
        outbox.attach_secondary(secondary)
        outbox.primary.on_connected()  # rows 1-3 go out on the primary, no PUBACK comes
        primary.connected = False
        outbox.on_disconnected()  # the link drops
        for row_id in secondary.row_ids():
            outbox.delivered_by(outbox.secondary, secondary.mid_of(row_id), True, "Success")
        assert await outbox.drain(5.0)
        await asyncio.sleep(0.2)  # past the failover time: nothing left to be overdue
        outbox.close()
        store.close()
        return secondary, outbox

    secondary, outbox = asyncio.run(scenario())
    assert secondary.row_ids() == [1, 2, 3]
    assert outbox.pending == {}
    assert outbox.stats()["handed_over"] == 3
    assert outbox.stats()["overdue"] == 0  # delivered rows leave the failover's bookkeeping
    assert overdue == []
    store = Store(tmp_path / "store.db")
    try:
        assert store.undelivered() == []
    finally:
        store.close()


def test_a_row_no_broker_takes_in_time_is_handed_to_the_overdue_handler(tmp_path: Path) -> None:
    rows = stored_rows(tmp_path / "store.db", 2)
    overdue: list[list[int]] = []

    async def nothing(_ids: list[int]) -> None:
        return None

    async def scenario() -> None:
        late = asyncio.Event()

        def on_overdue(rows: list[OutboxRow]) -> None:
            overdue.append([row.id for row in rows])
            late.set()

        outbox = Outbox(10, nothing)
        outbox.enable_failover(0.05, None, on_overdue)
        link = FakeLink()
        outbox.attach(link)
        outbox.load(rows)
        outbox.delivered_by(outbox.primary, link.mid_of(1), True, "Success")
        await asyncio.wait_for(late.wait(), 5)
        outbox.close()

    asyncio.run(scenario())
    assert overdue == [[2]]  # 1 was PUBACKed in time
