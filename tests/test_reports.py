"""The monthly report's figures against an independent computation: the generator's own ground
truth (what it did, at what time) and plain SQL on the alarms table, over the same month."""

from __future__ import annotations

import math
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from edgeguard.lab.month_gen import GeneratedMonth, TrueAlarm, generate_month
from edgeguard.reports.build import build_report
from edgeguard.reports.figures import SECURITY_KINDS, SiteFigures
from edgeguard.reports.month import MonthError, report_month, time_zone
from edgeguard.reports.timeline import down_intervals

ZONE = "Asia/Shanghai"
MONTH = "2026-11"
TOLERANCE_S = 0.002  # the store keeps milliseconds


@pytest.fixture(scope="module")
def month(tmp_path_factory: pytest.TempPathFactory) -> tuple[GeneratedMonth, SiteFigures]:
    window = report_month(MONTH, time_zone(ZONE))
    generated = generate_month(
        tmp_path_factory.mktemp("month"), window.start, window.end, seed=11, busy=5.0
    )
    return generated, build_report(generated.config, MONTH, ZONE)


def _security(generated: GeneratedMonth, start: datetime, end: datetime) -> list[TrueAlarm]:
    return [a for a in generated.alarms if start <= a.pressed < end and a.kind in SECURITY_KINDS]


def _nearest_rank(values: list[float], share: float) -> float:
    return float(np.percentile(values, share * 100, method="inverted_cdf"))


def test_alarm_counts_match_the_alarms_table(month: tuple[GeneratedMonth, SiteFigures]) -> None:
    generated, figures = month
    window = figures.month
    with sqlite3.connect(generated.store_path) as conn:
        rows = conn.execute(
            "SELECT kind, COUNT(*) FROM alarms WHERE occurred_at >= ? AND occurred_at < ? "
            "GROUP BY kind",
            (_iso(window.start), _iso(window.until)),
        ).fetchall()
    table = dict(rows)
    tests = table.pop("test", 0)
    assert figures.by_kind == table
    assert figures.excluded == tests > 0
    assert "test" not in figures.by_kind
    truth = _security(generated, window.start, window.end)
    assert len(figures.security) == len(truth) > 50


def test_by_location_and_heatmap(month: tuple[GeneratedMonth, SiteFigures]) -> None:
    generated, figures = month
    truth = _security(generated, figures.month.start, figures.month.end)
    expected: dict[str, int] = {}
    for alarm in truth:
        expected[alarm.location] = expected.get(alarm.location, 0) + 1
    assert figures.by_location == expected
    grid = np.zeros((7, 24), dtype=int)
    for alarm in truth:
        local = alarm.pressed.astimezone(time_zone(ZONE))
        grid[local.weekday(), local.hour] += 1
    assert figures.heatmap == grid.tolist()


@pytest.mark.parametrize("stage", ["delivered", "received", "acknowledged", "dispatched", "reset"])
def test_response_time_distributions(month: tuple[GeneratedMonth, SiteFigures], stage: str) -> None:
    generated, figures = month
    truth = _security(generated, figures.month.start, figures.month.end)
    values = [
        (getattr(a, stage) - a.pressed).total_seconds()
        for a in truth
        if getattr(a, stage) is not None
    ]
    found = figures.stages[stage]
    assert found.count == len(values) > 0
    for share, value in ((0.5, found.p50), (0.9, found.p90), (1.0, found.max)):
        assert value is not None
        assert math.isclose(value, _nearest_rank(values, share), abs_tol=TOLERANCE_S)


def test_unanswered_open_and_slowest(month: tuple[GeneratedMonth, SiteFigures]) -> None:
    generated, figures = month
    truth = _security(generated, figures.month.start, figures.month.end)
    assert {a.event_id for a in figures.unanswered} == {
        a.event_id for a in truth if a.acknowledged is None
    }
    assert figures.unanswered, "seed 11 leaves some alarms unacknowledged"
    first = figures.slowest[: len(figures.unanswered)]
    assert {a.event_id for a in first} == {a.event_id for a in figures.unanswered}
    answered = [a for a in figures.slowest if "acknowledged" in a.stages]
    delays = [(a.stages["acknowledged"] - a.pressed).total_seconds() for a in answered]
    assert delays == sorted(delays, reverse=True)
    slowest_truth = max(
        (a.acknowledged - a.pressed).total_seconds() for a in truth if a.acknowledged
    )
    assert math.isclose(delays[0], slowest_truth, abs_tol=TOLERANCE_S)
    end = figures.month.until
    assert {a.event_id for a in figures.open_alarms} >= {
        a.event_id for a in truth if a.reset is None or a.reset >= end
    }


def _down_mask(
    intervals: list[tuple[datetime, datetime]], start: datetime, seconds: int
) -> np.ndarray:
    """One flag a second of the month: down during any of the intervals."""
    mask = np.zeros(seconds, dtype=bool)
    for a, b in intervals:
        first = max(0, math.floor((a - start).total_seconds()))
        last = min(seconds, math.ceil((b - start).total_seconds()))
        if last > first:
            mask[first:last] = True
    return mask


def test_camera_availability_and_key_area_coverage(
    month: tuple[GeneratedMonth, SiteFigures],
) -> None:
    generated, figures = month
    window = figures.month
    seconds = int(window.seconds)
    appliance = _down_mask(generated.appliance_down, window.start, seconds)
    available = {a.device: a for a in figures.availability}
    masks = {}
    for camera in (c.name for c in generated.config.cameras):
        masks[camera] = _down_mask(generated.outages.get(camera, []), window.start, seconds)
        online = seconds - int((masks[camera] | appliance).sum())
        found = available[camera].time.seconds.get("online", 0.0)
        edges = 2 * (len(generated.outages.get(camera, [])) + len(generated.appliance_down))
        assert abs(found - online) <= edges, camera
    coverage = {c.area: c for c in figures.coverage}
    er = coverage["ER"]
    assert sorted(er.cameras) == ["cam-er-1", "cam-er-2"]
    uncovered = appliance | (masks["cam-er-1"] & masks["cam-er-2"])
    assert abs(er.time.seconds.get("online", 0.0) - (seconds - int(uncovered.sum()))) <= 60
    assert 0.9 < er.time.share("online", window.seconds) < 1.0


def test_police_link_outages_and_appliance_down_time(
    month: tuple[GeneratedMonth, SiteFigures],
) -> None:
    generated, figures = month
    link = next(a for a in figures.availability if a.role == "police_link")
    assert link.device == "uplink-primary"
    assert link.time.outages == len(generated.outages["uplink-primary"])
    expected = sum(
        (b - a).total_seconds()
        for a, b in down_intervals(
            sorted(
                [("stop", a) for a, _ in generated.appliance_down]
                + [("start", b) for _, b in generated.appliance_down],
                key=lambda item: item[1],
            ),
            figures.month.start,
            figures.month.until,
        )
    )
    assert math.isclose(figures.appliance_down_s, expected, abs_tol=TOLERANCE_S)
    assert ("todo.down", {"duration": figures.appliance_down_s}) in figures.todo


def test_evidence_kept(month: tuple[GeneratedMonth, SiteFigures]) -> None:
    generated, figures = month
    truth = [a for a in generated.alarms if figures.month.start <= a.pressed < figures.month.end]
    assert figures.evidence == {"snapshot": sum(a.snapshots for a in truth)}
    with sqlite3.connect(generated.store_path) as conn:
        (size,) = conn.execute(
            "SELECT SUM(bytes) FROM evidence JOIN alarms USING (event_id) WHERE "
            "alarms.occurred_at >= ? AND alarms.occurred_at < ?",
            (_iso(figures.month.start), _iso(figures.month.until)),
        ).fetchone()
    assert figures.evidence_bytes == size


def test_an_empty_month_has_figures_and_no_errors(tmp_path: Path) -> None:
    window = report_month("2026-10", time_zone(ZONE))
    generated = generate_month(tmp_path, window.start - timedelta(days=40), window.start)
    figures = build_report(generated.config, "2026-10", ZONE)
    assert figures.alarms == []
    assert figures.stages["acknowledged"].count == 0
    assert figures.stages["acknowledged"].p50 is None
    camera = next(a for a in figures.availability if a.role == "camera")
    assert camera.time.share("online", window.seconds) == 1.0


def test_the_month_is_checked() -> None:
    zone = time_zone(ZONE)
    with pytest.raises(MonthError, match="not YYYY-MM"):
        report_month("2026-13", zone)
    with pytest.raises(MonthError, match="not YYYY-MM"):
        report_month("11/2026", zone)
    with pytest.raises(MonthError, match="has not begun"):
        report_month("2026-12", zone, now=datetime(2026, 11, 30, 15, 59, tzinfo=UTC))
    with pytest.raises(MonthError, match="unknown time zone"):
        time_zone("Mars/Olympus")
    running = report_month("2026-12", zone, now=datetime(2026, 12, 5, tzinfo=UTC))
    assert running.start == datetime(2026, 11, 30, 16, tzinfo=UTC)
    assert running.until == datetime(2026, 12, 5, tzinfo=UTC) < running.end


def _iso(moment: datetime) -> str:
    from edgeguard.ids import iso_ms

    return iso_ms(moment)
