"""Unit tests of one broker's lane of outbox rows (edgeguard/uplink/lane.py): the in-flight
window, the order after a reconnect or a new uplink, refusals with back-off, the stale resend.
Rows come from a real SQLite store; the broker link is a recording stand-in."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from uplink_fakes import FakeLink, stored_rows

from edgeguard.store_outbox import OutboxRow
from edgeguard.uplink import lane as lane_module
from edgeguard.uplink.lane import STALE_INFLIGHT_S, Lane, in_order


def _lane(tmp_path: Path, rows: int, window: int, link: FakeLink | None = None) -> Lane:
    pending = {row.id: row for row in stored_rows(tmp_path / "store.db", rows)}
    lane = Lane("primary", window, pending)
    if link is not None:
        lane.attach(link)
    return lane


def _deliver(lane: Lane, link: FakeLink, row_id: int) -> int | None:
    """What the outbox does with a positive PUBACK: forget the row, send what waits."""
    delivered = lane.on_puback(link.mid_of(row_id), True, "Success")
    if delivered is not None:
        del lane.pending[delivered]
    lane.pump()
    return delivered


def test_only_the_window_goes_out_ahead_of_its_pubacks(tmp_path: Path) -> None:
    link = FakeLink()
    lane = _lane(tmp_path, rows=5, window=2, link=link)
    lane.append([1, 2, 3, 4, 5])
    assert link.row_ids() == [1, 2]
    assert list(lane.unsent) == [3, 4, 5]

    assert _deliver(lane, link, 1) == 1
    assert link.row_ids() == [1, 2, 3]
    assert lane.stats() == {"inflight": 2, "published": 3, "acked": 1}


def test_a_lane_without_a_link_keeps_its_line(tmp_path: Path) -> None:
    link = FakeLink(connected=False)
    lane = _lane(tmp_path, rows=3, window=10, link=link)
    lane.append([1, 2, 3])
    assert link.sent == []
    assert list(lane.unsent) == [1, 2, 3]

    link.connected = True
    lane.on_connected()
    assert link.row_ids() == [1, 2, 3]


def test_after_a_reconnect_what_was_in_flight_goes_first_in_outbox_order(
    tmp_path: Path,
) -> None:
    link = FakeLink()
    lane = _lane(tmp_path, rows=5, window=3, link=link)
    lane.append([3, 1, 2])  # in flight in the order they were sent, not by id
    link.connected = False  # the link drops: no PUBACK for 3, 1, 2
    lane.append([4, 5])
    assert link.row_ids() == [3, 1, 2]

    link.connected = True
    lane.on_connected()
    assert link.row_ids()[3:] == [1, 2, 3]  # resent, by id, before anything newer
    for row_id in (1, 2, 3):
        _deliver(lane, link, row_id)
    assert link.row_ids()[6:] == [4, 5]


def test_a_puback_for_a_packet_id_from_before_the_reconnect_is_ignored(tmp_path: Path) -> None:
    link = FakeLink()
    lane = _lane(tmp_path, rows=1, window=1, link=link)
    lane.append([1])
    old_mid = link.mid_of(1)
    lane.on_connected()  # the link came back: 1 is sent again, under a new packet id
    assert lane.on_puback(old_mid, True, "Success") is None  # that packet id is gone
    assert _deliver(lane, link, 1) == 1


def test_a_new_uplink_resends_what_the_old_one_had_in_flight(tmp_path: Path) -> None:
    old, new = FakeLink(), FakeLink()
    lane = _lane(tmp_path, rows=3, window=2, link=old)
    lane.append([1, 2, 3])
    lane.attach(new)
    assert new.row_ids() == [1, 2]
    assert list(lane.unsent) == [3]


def test_a_row_another_lane_delivered_is_skipped_and_its_late_puback_ignored(
    tmp_path: Path,
) -> None:
    link = FakeLink()
    lane = _lane(tmp_path, rows=3, window=1, link=link)
    lane.append([1, 2, 3])
    del lane.pending[1]  # delivered meanwhile by the other broker
    del lane.pending[2]
    assert lane.on_puback(link.mid_of(1), True, "Success") is None
    lane.pump()
    assert link.row_ids() == [1, 3]  # 2 never went out on this lane
    assert lane.acked == 1


def test_a_publish_paho_refuses_stays_first_in_line(tmp_path: Path) -> None:
    link = FakeLink()
    lane = _lane(tmp_path, rows=2, window=5, link=link)
    link.refuse = True
    lane.append([1, 2])
    assert link.sent == []
    assert list(lane.unsent) == [1, 2]
    assert lane.inflight == {}

    link.refuse = False
    lane.pump()
    assert link.row_ids() == [1, 2]


def test_a_refused_row_waits_with_its_own_back_off_and_does_not_block_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> tuple[list[float], list[int]]:
        loop = asyncio.get_running_loop()
        delays: list[float] = []

        def call_later(delay: float, callback: Callable[..., Any], *args: Any) -> Any:
            delays.append(delay)
            return loop.call_soon(callback, *args)  # the retry at once, to see it happen

        monkeypatch.setattr(loop, "call_later", call_later)
        link = FakeLink()
        lane = _lane(tmp_path, rows=3, window=1, link=link)
        lane.append([1, 2, 3])
        for _ in range(3):  # refused three times in a row
            assert lane.on_puback(link.mid_of(1), False, "Not authorized") is None
            lane.pump()
            assert 1 not in lane.unsent  # not again at once: it waits for its timer
            await asyncio.sleep(0)
            _deliver(lane, link, link.row_ids()[-1])
        return delays, link.row_ids()

    delays, sent = asyncio.run(scenario())
    assert delays == [1.0, 2.0, 4.0]
    assert sent[:3] == [1, 2, 1]  # 2 went out while 1 waited


def test_the_refusal_back_off_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    lane = Lane("primary", 1, {5: OutboxRow(5, "t", b"5", 1, False, None, "new")})

    async def scenario() -> list[float]:
        loop = asyncio.get_running_loop()
        delays: list[float] = []

        def call_later(delay: float, callback: Callable[..., Any], *args: Any) -> Any:
            delays.append(delay)
            return loop.call_soon(lambda: None)  # the retry never happens

        monkeypatch.setattr(loop, "call_later", call_later)
        for mid in range(10):
            lane.inflight[mid] = (5, time.monotonic())
            lane.on_puback(mid, False, "Quota exceeded")
        return delays

    assert asyncio.run(scenario())[-4:] == [lane_module.RETRY_MAX_S] * 4


def test_a_message_without_puback_for_long_is_sent_again(tmp_path: Path) -> None:
    link = FakeLink()
    lane = _lane(tmp_path, rows=2, window=5, link=link)
    lane.append([1, 2])
    mid = link.mid_of(1)
    row_id, _ = lane.inflight[mid]
    lane.inflight[mid] = (row_id, time.monotonic() - STALE_INFLIGHT_S - 1)
    lane.check_stale()
    assert link.row_ids() == [1, 2, 1]
    assert len(lane.inflight) == 2


def test_nothing_is_stale_while_the_link_is_down(tmp_path: Path) -> None:
    link = FakeLink()
    lane = _lane(tmp_path, rows=1, window=5, link=link)
    lane.append([1])
    mid = link.mid_of(1)
    lane.inflight[mid] = (1, time.monotonic() - STALE_INFLIGHT_S - 1)
    link.connected = False
    lane.check_stale()
    assert mid in lane.inflight  # the reconnect resends it, in order


def test_a_link_that_never_came_up_is_given_up_on_after_the_grace_time() -> None:
    link = FakeLink(connected=False)
    lane = Lane("secondary", 1, {})
    lane.attach(link)
    assert lane.ok(grace=60.0)
    assert not lane.ok(grace=0.0)


def test_a_link_that_was_up_and_dropped_has_failed_at_once() -> None:
    link = FakeLink()
    lane = Lane("primary", 1, {})
    lane.attach(link)
    lane.on_connected()
    assert lane.ok(grace=60.0)
    link.connected = False
    assert not lane.ok(grace=60.0)


def test_memory_rows_go_first_then_stored_rows_by_id() -> None:
    assert in_order({5, -2, 3, -1, 4}) == [-1, -2, 3, 4, 5]
