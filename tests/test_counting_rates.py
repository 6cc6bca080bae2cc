"""Counting and crowd timing do not depend on how often the detector runs: one synthetic scene
(5 people arriving one by one, walking, two of them crossing, detections missed now and then,
a second box on a person now and then) sampled at 1, 2, 5 and 10 detector runs per second."""

from __future__ import annotations

import math
import random

import pytest

from edgeguard.analytics.counting import Zone, ZoneCounter
from edgeguard.analytics.detector import Detection
from edgeguard.analytics.geometry import Box
from edgeguard.analytics.rules import CrowdRule, CrowdSettings

ROOM = Zone("room", ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)))
W, H = 0.06, 0.2
ARRIVALS = (0.05, 1.05, 2.05, 3.05, 4.05)  # off the detection grid of every rate
LANES = (0.15, 0.45, 0.48, 0.7, 0.3)  # people 1 and 2 walk the same lane in opposite ways
SPEEDS = (0.04, 0.05, -0.05, 0.03, -0.02)  # frame widths per second
STARTS = (0.2, 0.2, 0.8, 0.5, 0.6)
END = 20.0
RATES = (1, 2, 5, 10)


def position(i: int, t: float) -> float:
    """x of person i at time t: walks at its speed, turning at x 0.1 and 0.85."""
    span = 0.75
    travelled = (STARTS[i] - 0.1 + SPEEDS[i] * (t - ARRIVALS[i])) % (2 * span)
    return 0.1 + (travelled if travelled <= span else 2 * span - travelled)


Episodes = list[tuple[int, float, float]]  # (person, from, to) in seconds


def episodes(seed: int, first: float, length: float) -> Episodes:
    """Stretches of ``length`` seconds, one every 1.5 s from ``first``, each on one person
    (drawn at random): the same in seconds at every rate."""
    rng = random.Random(seed)
    spans = []
    start = first
    while start + length < END:
        a = start + rng.uniform(0.0, 0.5)
        spans.append((rng.randrange(len(ARRIVALS)), a, a + length))
        start += 1.5
    return spans


def during(spans: Episodes, i: int, t: float) -> bool:
    return any(p == i and a <= t < b for p, a, b in spans)


def frame(t: float, missed: Episodes, doubled: Episodes) -> list[Detection]:
    """The detector's boxes at time t: each person present unless in a `missed` stretch (a
    moment hidden: 0.4 s), with a second, upper-body box on it in a `doubled` stretch (0.3 s,
    what the real detector does now and then); a little jitter."""
    boxes = []
    for i, arrived in enumerate(ARRIVALS):
        if t < arrived or during(missed, i, t):
            continue
        jitter = 0.003 * math.sin(7.3 * t + i)
        x, y = position(i, t) + jitter, LANES[i] - jitter
        boxes.append(Detection(Box(x, y, W, H), 0.8))
        if during(doubled, i, t):
            boxes.append(Detection(Box(x + 0.005, y, W, H * 0.55), 0.3))
    return boxes


def truth(t: float) -> int:
    return sum(1 for arrived in ARRIVALS if t >= arrived)


def run(rate: int, seed: int) -> tuple[dict[float, int], list[tuple[float, float]]]:
    """Counts at each whole second, and the crowd alarms (at, since) for 5 people for 3 s."""
    missed, doubled = episodes(seed, 5.2, 0.4), episodes(seed + 100, 5.9, 0.3)
    counter = ZoneCounter([ROOM])
    rule = CrowdRule("room", CrowdSettings(min_people=5, for_s=3.0))
    per_second: dict[float, int] = {}
    alarms = []
    for k in range(int(END * rate)):
        t = k / rate
        count = counter.update(frame(t, missed, doubled), t)["room"]
        event = rule.update(count, t, reached_at=counter.reached("room", 5))
        if event is not None and event.active:
            alarms.append((event.at, event.started_at))
        if math.isclose(t, round(t)):
            per_second[round(t)] = count
    return per_second, alarms


SEEDS = range(1, 13)


@pytest.mark.parametrize("rate", RATES)
def test_counts_do_not_grow_with_the_rate(rate: int) -> None:
    """From 6 s (all 5 in and confirmed) every whole second's count is the truth, at every
    rate. Tolerance: up to 2 seconds off by one per scene at 1 and 2 runs per second, none at
    5 and 10: a second box on one person in 2 of 3 runs is confirmed at those rates (the 2-of-3
    rule: at 1 run per second no quicker confirmation is possible) and then held. Before, the
    held tracks and quick confirmations gave 6 or 7 people at 5 and 10 runs per second."""
    allowed = 2 if rate <= 2 else 0
    for seed in SEEDS:
        per_second, _ = run(rate, seed)
        errors = [abs(per_second[s] - truth(s)) for s in per_second if s >= 6]
        assert sum(errors) <= allowed, (seed, per_second)
        assert max(per_second.values()) <= 5 + (allowed > 0), (seed, per_second)


@pytest.mark.parametrize("rate", RATES)
def test_crowd_onset_within_one_interval_at_every_rate(rate: int) -> None:
    """5 people for 3 s: the 5th arrives at 4.05 s; the alarm's onset is the first run that
    saw them (not the run that confirmed them), and it is raised 3 s after that."""
    interval = 1.0 / rate
    for seed in SEEDS:
        _, alarms = run(rate, seed)
        assert len(alarms) == 1, (seed, alarms)
        at, since = alarms[0]
        assert ARRIVALS[4] <= since < ARRIVALS[4] + interval
        assert ARRIVALS[4] + 3.0 <= at < ARRIVALS[4] + 3.0 + interval
