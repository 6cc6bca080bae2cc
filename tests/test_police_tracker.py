"""Site supervision (docs/mqtt-api.md section 8) on a fake clock."""

from __future__ import annotations

import pytest

from edgeguard.police.tracker import SiteUpdate, Tracker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def tracker(clock: Clock) -> Tracker:
    timeouts = {"slow": 9.0}
    tracker = Tracker(lambda site: timeouts.get(site, 15.0), clock=clock)
    tracker.connected()
    return tracker


def _run(tracker: Tracker, clock: Clock, seconds: int) -> list[tuple[float, SiteUpdate]]:
    """Tick every second for ``seconds``; the updates with the time they came."""
    out = []
    for _ in range(seconds):
        clock.advance(1.0)
        out += [(clock.now, u) for u in tracker.tick()]
    return out


def test_lost_by_silence_within_17_s(tracker: Tracker, clock: Clock) -> None:
    update = tracker.on_heartbeat("hosp-01", 0)
    assert update == SiteUpdate("hosp-01", "online", None, None)
    start = clock.now
    (when, lost), *_ = _run(tracker, clock, 20)
    assert lost.state == "lost"
    assert lost.reason == "no heartbeat for 15 s"
    assert 15 < when - start <= 17
    assert tracker.state("hosp-01") == "lost"
    assert tracker.tick() == []  # said once
    assert tracker.on_heartbeat("hosp-01", 0) == SiteUpdate("hosp-01", "online", None, None)


def test_heartbeats_keep_a_site_online(tracker: Tracker, clock: Clock) -> None:
    for _ in range(10):
        tracker.on_heartbeat("hosp-01", 0)
        assert _run(tracker, clock, 5) == []
    assert tracker.heartbeat_age("hosp-01") == 5.0


def test_per_site_timeout(tracker: Tracker, clock: Clock) -> None:
    tracker.on_heartbeat("slow", 0)
    tracker.on_heartbeat("hosp-01", 0)
    updates = _run(tracker, clock, 10)
    assert [(u.site, u.state) for _, u in updates] == [("slow", "lost")]


def test_lost_by_will_at_once(tracker: Tracker) -> None:
    tracker.on_status("hosp-01", "online")
    update = tracker.on_status("hosp-01", "offline")
    assert update is not None
    assert update.state == "lost"
    assert "Will" in (update.reason or "")
    assert tracker.on_status("hosp-01", "online") == SiteUpdate("hosp-01", "online", None, None)


def test_retained_online_is_not_proof_of_life(tracker: Tracker, clock: Clock) -> None:
    assert tracker.on_status("hosp-01", "online", retained=True) is None
    assert tracker.state("hosp-01") == "unknown"
    (_, update), *_ = _run(tracker, clock, 17)
    assert update.state == "lost"  # but it starts the timer


def test_broker_link_down_suppresses_then_grace(tracker: Tracker, clock: Clock) -> None:
    tracker.on_heartbeat("hosp-01", 0)
    clock.advance(5)
    tracker.disconnected()
    assert _run(tracker, clock, 60) == []  # "broker link down", not "site lost"
    assert tracker.state("hosp-01") == "online"
    tracker.connected()
    start = clock.now
    updates = _run(tracker, clock, 14)
    assert updates == []  # one full timeout after reconnecting
    tracker.on_heartbeat("hosp-01", 0)
    assert _run(tracker, clock, 14) == []
    (when, lost), *_ = _run(tracker, clock, 5)
    assert lost.state == "lost"
    assert when - start > 15


def test_seeded_site_gets_a_timeout_after_connect(clock: Clock) -> None:
    tracker = Tracker(lambda _site: 15.0, clock=clock)
    tracker.seed("hosp-01", "online")
    assert _run(tracker, clock, 30) == []  # not connected yet: nothing known
    tracker.connected()
    assert _run(tracker, clock, 15) == []
    (_, lost), *_ = _run(tracker, clock, 2)
    assert lost.state == "lost"


def test_outbox_pending_alert_after_a_minute(tracker: Tracker, clock: Clock) -> None:
    alerts: list[SiteUpdate] = []
    for _ in range(13):  # 65 s of heartbeats reporting a stuck outbox
        update = tracker.on_heartbeat("hosp-01", 2)
        if update is not None and update.alert:
            alerts.append(update)
        alerts += [u for _, u in _run(tracker, clock, 5) if u.alert]
    (alert,) = alerts
    assert alert.state == "online"
    assert "outbox_pending" in (alert.alert or "")
    cleared = tracker.on_heartbeat("hosp-01", 0)
    assert cleared == SiteUpdate("hosp-01", "online", None, None)


def test_outbox_pending_briefly_is_normal(tracker: Tracker, clock: Clock) -> None:
    for pending in (3, 1, 0, 2, 0):
        tracker.on_heartbeat("hosp-01", pending)
        assert _run(tracker, clock, 5) == []


def test_two_paths_a_will_on_one_is_an_alert_not_a_loss(tracker: Tracker) -> None:
    """A site on two brokers (dual path): its Will on one broker means that path is gone; the
    site is lost only when every broker it was seen on says offline."""
    tracker.on_heartbeat("hosp-01", 0, link="primary")
    tracker.on_heartbeat("hosp-01", 0, link="secondary")
    update = tracker.on_status("hosp-01", "offline", link="secondary")
    assert update is not None
    assert update.state == "online"
    assert update.alert == "transmission path lost: offline on the secondary broker (Will)"
    back = tracker.on_heartbeat("hosp-01", 0, link="secondary")  # the path works again
    assert back == SiteUpdate("hosp-01", "online", None, None)
    tracker.on_status("hosp-01", "offline", link="secondary")
    lost = tracker.on_status("hosp-01", "offline", link="primary")  # killed: both Wills
    assert lost is not None
    assert (lost.state, lost.reason, lost.alert) == (
        "lost", "site went offline (Will or clean stop)", None
    )


def test_a_single_path_site_is_lost_at_its_will_on_a_two_broker_receiver(
    tracker: Tracker,
) -> None:
    """A site that only uses the primary broker: the receiver's second link never hears it,
    so its Will on the primary is the whole story."""
    tracker.on_heartbeat("hosp-02", 0, link="primary")
    lost = tracker.on_status("hosp-02", "offline", link="primary")
    assert lost is not None
    assert lost.state == "lost"
