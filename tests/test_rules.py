"""Crowd and dwell rules on synthetic sequences (the real clip: test_detector.py)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeguard.analytics.rules import (
    CrowdRule,
    CrowdSettings,
    DwellRule,
    DwellSettings,
    RuleEvent,
)


def run(rule: CrowdRule | DwellRule, values: list[float], dt: float = 1.0) -> list[RuleEvent]:
    events = []
    for i, value in enumerate(values):
        event = rule.update(value, i * dt)  # type: ignore[arg-type]
        if event is not None:
            events.append(event)
    return events


# --- crowd ----------------------------------------------------------------------------------------
def test_crowd_needs_the_count_for_for_s() -> None:
    rule = CrowdRule("hall", CrowdSettings(min_people=3, for_s=5.0))
    events = run(rule, [0, 3, 3, 3, 3, 3, 4, 4])  # 3 from t=1; 5 s later is t=6
    assert len(events) == 1
    [event] = events
    assert (event.kind, event.zone, event.active, event.at) == ("crowd", "hall", True, 6.0)
    assert event.started_at == 1.0
    assert event.count == 4
    assert event.detail == {"min_people": 3, "for_s": 5.0}


def test_below_threshold_never_fires() -> None:
    rule = CrowdRule("hall", CrowdSettings(min_people=3, for_s=0.0))
    assert run(rule, [2] * 100) == []


def test_a_dip_restarts_the_wait() -> None:
    rule = CrowdRule("hall", CrowdSettings(min_people=2, for_s=3.0))
    assert run(rule, [2, 2, 2, 1, 2, 2, 2]) == []  # never 3 s without a break
    assert rule.update(2, 7.0) is not None  # 2 since t=4: 3 s at t=7


def test_for_s_zero_fires_at_once() -> None:
    rule = CrowdRule("hall", CrowdSettings(min_people=1, for_s=0.0))
    event = rule.update(1, 5.0)
    assert event is not None
    assert event.active
    assert event.started_at == 5.0


def test_flicker_does_not_clear_or_toggle() -> None:
    rule = CrowdRule("hall", CrowdSettings(min_people=2, for_s=2.0, clear_after_s=5.0))
    counts = [2, 2, 2] + [1, 2, 0, 2, 1, 1, 2, 0, 3] * 3  # never 5 s below 2 in a row
    events = run(rule, counts)
    assert [e.active for e in events] == [True]


def test_clears_after_clear_after_s_below_and_reports_the_peak() -> None:
    rule = CrowdRule("hall", CrowdSettings(min_people=2, for_s=1.0, clear_after_s=3.0))
    events = run(rule, [2, 2, 5, 3, 1, 1, 1, 1, 1])
    assert [(e.active, e.at) for e in events] == [(True, 1.0), (False, 7.0)]
    cleared = events[1]
    assert cleared.started_at == 0.0
    assert cleared.count == 1
    assert cleared.detail == {"peak": 5, "duration_s": 6.0}


def test_hysteresis_with_clear_below() -> None:
    settings_ = CrowdSettings(min_people=5, for_s=0.0, clear_below=3, clear_after_s=2.0)
    rule = CrowdRule("hall", settings_)
    events = run(rule, [5, 4, 3, 4, 3, 3, 3, 2, 2, 2])
    assert [(e.active, e.at) for e in events] == [(True, 0.0), (False, 9.0)]  # below 3 from 7


def test_restore_then_a_new_alarm_needs_for_s_again() -> None:
    rule = CrowdRule("hall", CrowdSettings(min_people=1, for_s=2.0, clear_after_s=1.0))
    events = run(rule, [1, 1, 1, 0, 0, 1, 1, 1, 1])
    assert [(e.active, e.at) for e in events] == [(True, 2.0), (False, 4.0), (True, 7.0)]
    assert events[2].started_at == 5.0


def test_crowd_settings_are_checked() -> None:
    assert CrowdSettings(min_people=4, for_s=1).clear_threshold == 4
    assert CrowdSettings(min_people=4, for_s=1, clear_below=2).clear_threshold == 2
    for bad in (
        {"min_people": 0, "for_s": 1.0},
        {"min_people": 2, "for_s": -1.0},
        {"min_people": 2, "for_s": math.nan},
        {"min_people": 2, "for_s": 1.0, "clear_below": 3},
        {"min_people": 2, "for_s": 1.0, "clear_below": 0},
        {"min_people": 2, "for_s": 1.0, "clear_after_s": math.inf},
    ):
        with pytest.raises(ValueError):
            CrowdSettings(**bad)  # type: ignore[arg-type]


def test_time_going_backwards_or_nan_is_harmless() -> None:
    rule = CrowdRule("hall", CrowdSettings(min_people=1, for_s=2.0))
    assert rule.update(1, 10.0) is None
    assert rule.update(1, 5.0) is None  # taken as 10.0
    assert rule.update(1, math.nan) is None
    event = rule.update(1, 12.0)
    assert event is not None
    assert event.started_at == 10.0


# --- dwell ----------------------------------------------------------------------------------------
def test_dwell_fires_once_over_max_s_and_clears_after_quiet() -> None:
    rule = DwellRule("stairs", DwellSettings(max_s=60.0, clear_after_s=5.0))
    dwell = [0, 0, *range(0, 80, 10), 0, 0, 0, 0, 0, 0, 0]  # the person leaves after 70 s
    events = run(rule, dwell)
    assert [(e.kind, e.active, e.at) for e in events] == [
        ("dwell", True, 8.0),
        ("dwell", False, 15.0),
    ]
    start, end = events
    assert start.started_at == pytest.approx(8.0 - 60.0)
    assert start.count == 1
    assert start.detail == {"dwell_s": 60.0, "max_s": 60.0}
    assert end.started_at == start.started_at
    assert end.count == 0
    assert end.detail == {"longest_s": 70.0, "max_s": 60.0}


def test_dwell_short_gap_does_not_clear() -> None:
    rule = DwellRule("stairs", DwellSettings(max_s=10.0, clear_after_s=3.0))
    events = run(rule, [10, 11, 0, 0, 14, 15, 0, 16])
    assert [e.active for e in events] == [True]


def test_dwell_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="max_s"):
        DwellSettings(max_s=-1.0)
    with pytest.raises(ValueError, match="clear_after_s"):
        DwellSettings(max_s=1.0, clear_after_s=math.nan)


def test_dwell_ignores_nonsense() -> None:
    rule = DwellRule("stairs", DwellSettings(max_s=1.0))
    assert rule.update(math.nan, 1.0) is None
    assert rule.update(math.inf, 1.0) is None
    assert rule.update(-5.0, 2.0) is None


# --- properties -----------------------------------------------------------------------------------
counts = st.lists(st.tuples(st.integers(-3, 12), st.floats(0.01, 5.0)), max_size=120)


@settings(max_examples=150, deadline=None)
@given(
    counts,
    st.integers(1, 6),
    st.floats(0.0, 10.0),
    st.floats(0.0, 10.0),
    st.one_of(st.none(), st.integers(1, 6)),
)
def test_crowd_events_alternate_and_respect_the_settings(
    steps, min_people, for_s, clear_after_s, clear_below
) -> None:
    if clear_below is not None:
        clear_below = min(clear_below, min_people)
    s = CrowdSettings(min_people, for_s, clear_below, clear_after_s)
    rule = CrowdRule("z", s)
    t, history, expected_active = 0.0, [], False
    for count, dt in steps:
        t += dt
        history.append((t, count))
        event = rule.update(count, t)
        if event is None:
            assert rule.active == expected_active
            continue
        assert event.active != expected_active, "events alternate: on, off, on, ..."
        expected_active = event.active
        if event.active:  # the count held >= min_people from started_at until now
            assert count >= min_people
            assert event.at - event.started_at >= for_s
            held = [c for (when, c) in history if event.started_at <= when <= event.at]
            assert min(held) >= min_people
        else:  # below the clear threshold for clear_after_s
            recent = [c for (when, c) in history if when >= event.at - clear_after_s]
            assert max(recent) < s.clear_threshold
    assert rule.active == expected_active


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(allow_nan=True), st.floats(allow_nan=True)), max_size=60))
def test_rules_never_raise(pairs) -> None:
    crowd = CrowdRule("z", CrowdSettings(2, 1.0))
    dwell = DwellRule("z", DwellSettings(5.0))
    for value, t in pairs:
        crowd.update(int(value) if math.isfinite(value) and abs(value) < 1e9 else 0, t)
        dwell.update(value, t)
