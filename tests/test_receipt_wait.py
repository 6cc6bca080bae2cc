"""The site's wait for receipts (edgeguard/uplink/receipt_wait.py): published again without
one, each wait twice the last up to resend_max_s; a receipt ends it, early or late."""

from __future__ import annotations

from edgeguard.store_outbox import OutboxRow
from edgeguard.uplink.receipt_wait import ReceiptWait


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _row() -> OutboxRow:
    return OutboxRow(7, "edgeguard/hosp-01/alarm/b1", b"{}", 1, False, "e1", "new", 1)


def _resend_times(wait: ReceiptWait, clock: Clock, until: float) -> list[float]:
    """When the message is due again, as the outbox sees it (every second), PUBACKed at once."""
    times = []
    while clock.now < until:
        clock.now += 1.0
        for row in wait.due():
            times.append(clock.now)
            wait.delivered(row)  # published again and PUBACKed
    return times


def test_the_waits_double_up_to_the_longest() -> None:
    clock = Clock()
    wait = ReceiptWait([], 10.0, resend=True, resend_max_s=60.0, clock=clock)
    wait.delivered(_row())
    assert _resend_times(wait, clock, 300) == [10, 30, 70, 130, 190, 250]
    assert wait.stats()["resent_for_receipt"] == 6


def test_a_receipt_ends_the_wait_and_the_back_off() -> None:
    clock = Clock()
    wait = ReceiptWait([], 10.0, resend=True, resend_max_s=60.0, clock=clock)
    wait.delivered(_row())
    assert _resend_times(wait, clock, 35) == [10, 30]
    wait.received(("e1", 1))
    assert _resend_times(wait, clock, 200) == []
    wait.delivered(_row())  # the same message again (a restart): waits from the start
    assert _resend_times(wait, clock, 215) == [210]


def test_without_a_longest_wait_every_wait_is_the_first() -> None:
    clock = Clock()
    wait = ReceiptWait([], 10.0, resend=True, clock=clock)
    wait.delivered(_row())
    assert _resend_times(wait, clock, 45) == [10, 20, 30, 40]
