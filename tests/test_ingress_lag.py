"""The supervisor's estimate of a congested broker (edgeguard/police/ingress_lag.py): robust to
sites whose clocks are off, moved only when most sites' heartbeats come late."""

from __future__ import annotations

from edgeguard.police.ingress_lag import WINDOW_S, IngressLag


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _round(lag: IngressLag, clock: Clock, delays: dict[str, float]) -> None:
    """Every site's heartbeat once, 5 s after the last round."""
    clock.now += 5.0
    for site, delay in delays.items():
        lag.heartbeat(site, delay)


def test_clocks_off_by_seconds_are_not_lateness() -> None:
    clock = Clock()
    lag = IngressLag(clock)
    skews = {f"s{i}": (i % 7 - 3) * 4.0 for i in range(100)}  # -12 s .. +12 s
    for _ in range(5):
        _round(lag, clock, skews)
    assert abs(lag.excess_s()) < 0.1


def test_every_site_late_is_congestion() -> None:
    clock = Clock()
    lag = IngressLag(clock)
    skews = {f"s{i}": (i % 5) * 2.0 for i in range(100)}
    _round(lag, clock, skews)
    _round(lag, clock, {site: d + 6.0 for site, d in skews.items()})
    assert lag.excess_s() > 5.0


def test_a_few_late_sites_do_not_move_it() -> None:
    clock = Clock()
    lag = IngressLag(clock)
    delays = {f"s{i}": 0.05 for i in range(100)}
    _round(lag, clock, delays)
    _round(lag, clock, {s: (30.0 if i < 10 else 0.05) for i, s in enumerate(delays)})
    assert lag.excess_s() < 0.1


def test_old_heartbeats_age_out() -> None:
    clock = Clock()
    lag = IngressLag(clock)
    lag.heartbeat("s1", 0.1)
    clock.now += 1
    lag.heartbeat("s1", 10.0)
    lag.heartbeat("s1", 10.0)
    assert lag.excess_s() > 9
    clock.now += WINDOW_S + 1
    assert lag.excess_s() == 0.0
