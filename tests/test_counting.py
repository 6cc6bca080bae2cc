"""People per zone: one frame's counts, and the smoothed counts and dwell times of ZoneCounter
(synthetic detections; the real clip is in test_detector.py)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeguard.analytics.counting import Zone, ZoneCounter, count_in_zones
from edgeguard.analytics.detector import Detection
from edgeguard.analytics.geometry import Box

LEFT = Zone("left", ((0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0)))
RIGHT = Zone("right", ((0.5, 0.0), (1.0, 0.0), (1.0, 1.0), (0.5, 1.0)))
DOOR = Zone("door", ((0.3, 0.6), (0.45, 0.6), (0.45, 0.8), (0.3, 0.8)))
ZONES = [LEFT, RIGHT, DOOR]


def person(x: float, y: float, w: float = 0.1, h: float = 0.3, score: float = 0.9) -> Detection:
    return Detection(Box(x, y, w, h), score)


A = person(0.2, 0.3)  # feet (0.25, 0.6): left
B = person(0.7, 0.3)  # feet (0.75, 0.6): right
AT_DOOR = person(0.33, 0.4)  # feet (0.38, 0.7): left and door


# --- one frame ----------------------------------------------------------------------------------
def test_counts_by_feet() -> None:
    assert count_in_zones([A, B, AT_DOOR], ZONES) == {"left": 2, "right": 1, "door": 1}
    assert count_in_zones([], ZONES) == {"left": 0, "right": 0, "door": 0}
    assert count_in_zones([A], []) == {}


def test_a_box_over_a_zone_with_feet_outside_is_not_counted() -> None:
    tall = person(0.3, 0.1, 0.15, 0.85)  # body across the door zone, feet (0.375, 0.95) below it
    assert count_in_zones([tall], [DOOR]) == {"door": 0}


def test_zone_names_must_be_unique() -> None:
    with pytest.raises(ValueError, match="unique"):
        ZoneCounter([LEFT, LEFT])
    with pytest.raises(ValueError, match="hold_s"):
        ZoneCounter([LEFT], hold_s=-1)


# --- smoothing ----------------------------------------------------------------------------------
def feed(counter: ZoneCounter, frames: list[list[Detection]], start: float = 0.0, dt: float = 0.5):
    return [counter.update(dets, start + i * dt) for i, dets in enumerate(frames)]


def test_one_false_detection_is_not_counted() -> None:
    counter = ZoneCounter(ZONES)
    counts = feed(counter, [[], [A], [], [], []])
    assert all(c["left"] == 0 for c in counts)
    assert counter.tracks == []  # and it is forgotten


def test_confirmed_on_the_second_of_three() -> None:
    counter = ZoneCounter(ZONES)
    assert [c["left"] for c in feed(counter, [[A], [A], [A]])] == [0, 1, 1]
    counter = ZoneCounter(ZONES)
    assert [c["left"] for c in feed(counter, [[A], [], [A], [A]])] == [0, 0, 1, 1]


def test_hidden_for_a_moment_is_kept_then_dropped() -> None:
    counter = ZoneCounter(ZONES, hold_s=2.0)
    feed(counter, [[A], [A]])  # confirmed at t=0.5
    hidden = [counter.update([], t)["left"] for t in (1.0, 1.5, 2.0, 2.5)]
    assert hidden == [1, 1, 1, 1]  # last seen 0.5: kept for 2 s
    assert counter.update([], 3.0)["left"] == 0
    assert counter.tracks == []


def test_slow_detector_runs_keep_a_person_missed_once() -> None:
    counter = ZoneCounter(ZONES, hold_s=2.0, min_misses=2)
    feed(counter, [[A], [A]], dt=10.0)  # the idle interval: one run per 10 s
    assert counter.update([], 20.0)["left"] == 1  # one miss is not enough to drop it
    assert counter.update([A], 30.0)["left"] == 1
    assert len(counter.tracks) == 1


def test_walking_out_through_the_side_goes_at_once() -> None:
    counter = ZoneCounter(ZONES, hold_s=5.0)
    at_edge = person(0.88, 0.3)  # x2 = 0.98: at the right side
    feed(counter, [[B], [B], [at_edge]])
    assert counter.update([], 1.5)["right"] == 0


def test_two_people_and_a_walker() -> None:
    counter = ZoneCounter(ZONES)
    frames = [[A, person(0.55 + 0.03 * i, 0.3)] for i in range(8)]  # B walks right
    counts = feed(counter, frames)
    assert counts[-1] == {"left": 1, "right": 1, "door": 0}
    assert len(counter.tracks) == 2  # the walker kept one track


def test_a_quick_walker_is_not_counted_twice() -> None:
    counter = ZoneCounter(ZONES)
    frames = [[person(0.1 + 0.08 * i, 0.3)] for i in range(8)]  # no overlap between runs
    counts = feed(counter, frames, dt=1.0)
    assert all(sum(c[z] for z in ("left", "right")) <= 1 for c in counts)


# --- dwell --------------------------------------------------------------------------------------
def test_dwell_is_the_longest_stay() -> None:
    counter = ZoneCounter(ZONES)
    feed(counter, [[A]] * 4, start=10.0, dt=1.0)  # A from t=10
    feed(counter, [[A, B]] * 4, start=14.0, dt=1.0)  # B from t=14
    dwell = counter.dwell(20.0)
    assert dwell == {"left": pytest.approx(10.0), "right": pytest.approx(6.0), "door": 0.0}


def test_dwell_restarts_when_the_person_leaves_the_zone() -> None:
    counter = ZoneCounter([DOOR])
    feed(counter, [[AT_DOOR]] * 6, dt=1.0)
    assert counter.dwell(5.0)["door"] == pytest.approx(5.0)
    feed(counter, [[person(0.36, 0.45)]] * 2, start=6.0, dt=1.0)  # steps out: feet y 0.75 -> in
    feed(counter, [[person(0.36, 0.6)]] * 2, start=8.0, dt=1.0)  # feet y 0.9: out
    assert counter.dwell(9.0)["door"] == 0.0
    feed(counter, [[AT_DOOR]] * 3, start=10.0, dt=1.0)
    assert counter.dwell(12.0)["door"] == pytest.approx(2.0)


def test_dwell_of_an_empty_zone_is_zero() -> None:
    counter = ZoneCounter(ZONES)
    assert counter.dwell(100.0) == {"left": 0.0, "right": 0.0, "door": 0.0}
    assert counter.counts() == {"left": 0, "right": 0, "door": 0}


# --- properties ---------------------------------------------------------------------------------
coords = st.floats(0.0, 1.0, allow_nan=False)
boxes = st.tuples(coords, coords, coords, coords).map(lambda v: Box.from_corners(*v))
detections = st.lists(st.builds(Detection, boxes, st.floats(0.0, 1.0)), max_size=12)
times = st.one_of(st.floats(-1e6, 1e6), st.sampled_from([math.nan, math.inf, -math.inf]))


@settings(max_examples=60, deadline=None)
@given(st.lists(detections, max_size=6))
def test_count_in_zones_counts_each_person_at_most_once_per_zone(frames) -> None:
    for dets in frames:
        counts = count_in_zones(dets, ZONES)
        assert set(counts) == {"left", "right", "door"}
        assert all(0 <= n <= len(dets) for n in counts.values())
        assert counts["left"] + counts["right"] >= len(dets)  # the halves cover the frame


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(detections, times), max_size=40), st.integers(1, 20))
def test_counter_never_raises_and_stays_bounded(runs, max_tracks) -> None:
    counter = ZoneCounter(ZONES, max_tracks=max_tracks)
    for dets, t in runs:
        counts = counter.update(dets, t)
        assert len(counter.tracks) <= max_tracks
        confirmed = sum(1 for track in counter.tracks if track.confirmed)
        assert all(0 <= n <= confirmed for n in counts.values())
        dwell = counter.dwell(t)
        assert all(v >= 0 for v in dwell.values())


@settings(max_examples=40, deadline=None)
@given(st.lists(detections, min_size=1, max_size=30))
def test_old_tracks_are_dropped(frames) -> None:
    counter = ZoneCounter(ZONES, hold_s=2.0)
    for i, dets in enumerate(frames):
        counter.update(dets, i * 0.5)
    end = len(frames) * 0.5
    for k in range(3):
        counter.update([], end + 3.0 * (k + 1))
    assert counter.tracks == []
    assert counter.counts() == {"left": 0, "right": 0, "door": 0}
