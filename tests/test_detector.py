"""The person detector and the model lookup; then the whole chain (detector → ZoneCounter →
crowd / dwell rules) on real footage against hand labels (tests/data/one-by-one-labels.csv).

The clip is decoded once per session and only every 5th frame (2 analysed frames per second)
is converted and run through the detector. Figures are printed (pytest -s) and asserted with a
margin below what docs/analytics-people.md states."""

from __future__ import annotations

import csv
import functools
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeguard.analytics import model_files
from edgeguard.analytics.counting import Zone, ZoneCounter, count_in_zones
from edgeguard.analytics.detector import Detection, PersonDetector, nms
from edgeguard.analytics.geometry import Box
from edgeguard.analytics.model_files import (
    PERSON_MODEL_NAME,
    PERSON_MODEL_SHA256,
    ModelError,
    find_person_model,
    model_search_dirs,
)
from edgeguard.analytics.rules import CrowdRule, CrowdSettings, DwellRule, DwellSettings
from edgeguard.lab.footage import FootageError, locate

LABELS = Path(__file__).parent / "data" / "one-by-one-labels.csv"
FPS = 10.0
STEP = 5  # analyse every 5th frame: 2 per second
WHOLE = Zone("room", ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)))
TABLE = Zone("table", ((0.45, 0.72), (0.72, 0.72), (0.72, 0.98), (0.45, 0.98)))
PERSON_FRAME = 810  # person 4 standing at the table (score 0.99)
EMPTY_FRAME = 20


# --- fixtures ----------------------------------------------------------------------------------
@functools.cache
def _model_path() -> Path | None:
    try:
        return find_person_model()
    except ModelError:
        return None


@pytest.fixture(scope="session")
def model() -> Path:
    path = _model_path()
    if path is None:
        pytest.skip(f"{PERSON_MODEL_NAME} not found (scripts/make_person_model.sh makes it)")
    return path


@pytest.fixture(scope="session")
def detector(model: Path) -> PersonDetector:
    return PersonDetector(model, threads=1)


@pytest.fixture(scope="session")
def clip() -> Path:
    try:
        return locate(download=False)
    except FootageError as exc:
        pytest.skip(f"footage not available: {exc}")


@dataclass(frozen=True)
class Labels:
    people: np.ndarray  # per frame
    phase: np.ndarray  # per frame: empty, partial, walking, at_table

    def stretches(self) -> list[tuple[float, float]]:
        """(start, end) seconds of each run of frames with someone in view."""
        runs: list[tuple[float, float]] = []
        start = None
        for i, n in enumerate([*self.people.tolist(), 0]):
            if n and start is None:
                start = i
            elif not n and start is not None:
                runs.append((start / FPS, (i - 1) / FPS))
                start = None
        return runs


def read_labels() -> Labels:
    with LABELS.open(newline="") as f:
        rows = list(csv.DictReader(f))
    total = int(rows[-1]["end_frame"]) + 1
    people = np.full(total, -1, int)
    phase = np.full(total, "", object)
    for row in rows:
        a, b = int(row["start_frame"]), int(row["end_frame"])
        people[a : b + 1] = int(row["people"])
        phase[a : b + 1] = row["phase"]
    return Labels(people, phase)


def sampled_frames(path: Path, step: int) -> Iterator[tuple[int, np.ndarray]]:
    """(index, BGR frame) of every ``step``-th frame; the others are decoded, not converted."""
    cap = cv2.VideoCapture(str(path))
    try:
        index = 0
        while cap.grab():
            if index % step == 0:
                ok, frame = cap.retrieve()
                if ok:
                    yield index, frame
            index += 1
    finally:
        cap.release()


@dataclass(frozen=True)
class ClipRun:
    frames: list[int]
    detections: list[list[Detection]]
    ms: list[float]


@pytest.fixture(scope="session")
def clip_run(detector: PersonDetector, clip: Path) -> ClipRun:
    frames, detections, ms = [], [], []
    for index, frame in sampled_frames(clip, STEP):
        start = time.perf_counter()
        found = detector.detect(frame)
        ms.append((time.perf_counter() - start) * 1000)
        frames.append(index)
        detections.append(found)
    return ClipRun(frames, detections, ms)


@pytest.fixture(scope="session")
def labels() -> Labels:
    return read_labels()


@functools.cache
def _frame(path: Path, wanted: int) -> np.ndarray:
    for index, frame in sampled_frames(path, 1):
        if index == wanted:
            return frame
    raise AssertionError(f"no frame {wanted}")


# --- the labels themselves ---------------------------------------------------------------------
def test_labels_cover_the_clip_without_gaps(labels: Labels) -> None:
    assert len(labels.people) == 1394
    assert (labels.people >= 0).all(), "every frame is labelled"
    assert set(labels.phase) == {"empty", "partial", "walking", "at_table"}
    assert labels.people.max() == 1, "the clip never shows two people at once"
    assert len(labels.stretches()) == 6


# --- model lookup ------------------------------------------------------------------------------
def test_search_dirs_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EDGEGUARD_MODELS", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    dirs = model_search_dirs()
    assert dirs[0] == tmp_path
    assert dirs[1] == Path("/var/lib/edgeguard/models")
    assert dirs[2] == tmp_path / "cache" / "edgeguard" / "models"
    assert dirs[-1] == Path("/work/shared/models")
    assert model_files.REPO_ROOT.parent / "shared" / "models" in dirs


def test_missing_model_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(model_files, "model_search_dirs", lambda: [tmp_path])
    with pytest.raises(ModelError, match=r"make_person_model\.sh"):
        find_person_model()
    with pytest.raises(ModelError, match="does not exist"):
        find_person_model(tmp_path / "nope.onnx")


def test_wrong_bytes_are_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / PERSON_MODEL_NAME
    fake.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="sha256"):
        find_person_model(fake)
    monkeypatch.setattr(model_files, "model_search_dirs", lambda: [tmp_path])
    with pytest.raises(ModelError, match="not found"):
        find_person_model()


def test_found_model_is_the_measured_one(model: Path, tmp_path: Path) -> None:
    assert model_files.sha256_of(model) == PERSON_MODEL_SHA256
    assert find_person_model(model) == model
    with pytest.raises(ModelError, match="cannot load"):
        PersonDetector(tmp_path / "missing.onnx")


# --- detector: what it finds ---------------------------------------------------------------------
def test_person_class_and_boxes(detector: PersonDetector, clip: Path) -> None:
    person = detector.detect(_frame(clip, PERSON_FRAME))
    assert len(person) == 1
    box = person[0].box
    feet = box.feet()
    assert 0.5 < feet[0] < 0.66
    assert 0.8 < feet[1] < 0.97
    assert 0.5 < box.h < 0.95
    assert box.w < box.h
    assert detector.detect(_frame(clip, EMPTY_FRAME)) == []


def test_region_maps_back_to_the_frame(detector: PersonDetector, clip: Path) -> None:
    frame = _frame(clip, PERSON_FRAME)
    [whole] = detector.detect(frame)
    region = whole.box.expanded(0.1)
    [inside] = detector.detect(frame, region)
    assert inside.box.iou(whole.box) > 0.7
    assert detector.detect(frame, Box(0.0, 0.0, 0.3, 0.6)) == []  # the window, nobody there


def test_nms_keeps_the_best_of_overlapping_boxes() -> None:
    boxes = np.array(
        [[0.1, 0.1, 0.5, 0.3], [0.12, 0.1, 0.52, 0.3], [0.6, 0.6, 0.9, 0.8]], np.float32
    )
    order = np.array([1, 0, 2], np.intp)
    assert nms(boxes, order, 0.5, 10) == [1, 2]
    assert nms(boxes, order, 0.5, 1) == [1]
    assert nms(boxes, np.array([], np.intp), 0.5, 10) == []


# --- detector: robust input ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "shape",
    [(1, 1, 3), (2, 2, 3), (3, 5), (7, 1, 1), (1, 4000, 3), (4000, 1), (2160, 3840, 3),
     (480, 640, 4), (300, 300), (33, 2000, 3)],
)  # fmt: skip
def test_any_uint8_image_is_fine(detector: PersonDetector, shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(sum(shape))
    frame = rng.integers(0, 256, shape, dtype=np.uint8)
    for found in (detector.detect(frame), detector.detect(frame, Box(0.2, 0.2, 0.5, 0.5))):
        for d in found:
            assert 0 <= d.box.x <= d.box.x2 <= 1
            assert 0 <= d.box.y <= d.box.y2 <= 1
            assert detector.min_score <= d.score <= 1


def test_views_and_odd_regions(detector: PersonDetector, clip: Path) -> None:
    frame = _frame(clip, PERSON_FRAME)
    assert len(detector.detect(frame[:, ::-1])) == 1  # a mirrored, non-contiguous view
    assert len(detector.detect(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))) == 1
    assert detector.detect(frame, Box(1.0, 1.0, 0.0, 0.0)) == []  # an empty region
    assert detector.detect(frame, Box(0.5, 0.5, 2.0, 2.0)) is not None  # reaching outside


def test_what_is_not_an_image_is_refused(detector: PersonDetector) -> None:
    with pytest.raises(TypeError):
        detector.detect(np.zeros((10, 10, 3), np.float32))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty"):
        detector.detect(np.zeros((0, 10, 3), np.uint8))
    with pytest.raises(ValueError, match="HxW"):
        detector.detect(np.zeros((10, 10, 2), np.uint8))
    with pytest.raises(ValueError, match="min_score"):
        PersonDetector(Path("x.onnx"), min_score=0)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    height=st.integers(1, 120),
    width=st.integers(1, 120),
    channels=st.sampled_from([0, 1, 3, 4]),
    seed=st.integers(0, 2**16),
    region=st.one_of(
        st.none(),
        st.tuples(*[st.floats(0, 1)] * 4).map(lambda v: Box.from_corners(*v)),
    ),
)
def test_random_images_never_raise(
    detector: PersonDetector,
    height: int,
    width: int,
    channels: int,
    seed: int,
    region: Box | None,
) -> None:
    shape = (height, width) if channels == 0 else (height, width, channels)
    frame = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    found = detector.detect(frame, region)
    assert all(0 <= d.box.x <= d.box.x2 <= 1 for d in found)


# --- the clip: accuracy and speed ---------------------------------------------------------------
def _errors(predicted: list[int], truth: np.ndarray) -> tuple[float, float]:
    diff = np.abs(np.array(predicted) - truth)
    return float(diff.mean()), float((diff == 0).mean())


def test_raw_counts_on_the_clip(clip_run: ClipRun, labels: Labels) -> None:
    truth = labels.people[clip_run.frames]
    raw = [len(d) for d in clip_run.detections]
    mae, exact = _errors(raw, truth)
    print(f"\nraw detections, every {STEP}th frame: MAE {mae:.3f}, exact {exact:.1%}")
    assert max(raw) == 1, "never two people (no duplicate boxes)"
    assert mae <= 0.05
    assert exact >= 0.95
    empty = labels.phase[clip_run.frames] == "empty"
    assert not any(n for n, e in zip(raw, empty, strict=True) if e), "no false detections"


def test_smoothed_counts_on_the_clip(clip_run: ClipRun, labels: Labels) -> None:
    counter = ZoneCounter([WHOLE, TABLE])
    room, table, raw_table = [], [], []
    for index, found in zip(clip_run.frames, clip_run.detections, strict=True):
        counts = counter.update(found, index / FPS)
        room.append(counts["room"])
        table.append(counts["table"])
        raw_table.append(count_in_zones(found, [TABLE])["table"])
    frames = np.array(clip_run.frames)
    phase = labels.phase[frames]
    room_mae, room_exact = _errors(room, labels.people[frames])
    scored = phase != "walking"  # whether feet are in the table zone while walking: unlabelled
    table_truth = (phase == "at_table").astype(int)[scored]
    table_mae, table_exact = _errors(np.array(table)[scored].tolist(), table_truth)
    raw_mae, raw_exact = _errors(np.array(raw_table)[scored].tolist(), table_truth)
    print(
        f"\nsmoothed, room: MAE {room_mae:.3f}, exact {room_exact:.1%}; table zone: raw MAE "
        f"{raw_mae:.3f} exact {raw_exact:.1%}, smoothed MAE {table_mae:.3f} exact {table_exact:.1%}"
    )
    assert room_mae <= 0.06
    assert room_exact >= 0.94
    assert table_mae <= 0.02
    assert table_exact >= 0.98
    assert len(counter.tracks) == 0, "everybody has left at the end"


def test_speed_on_the_clip(clip_run: ClipRun) -> None:
    median = statistics.median(clip_run.ms)
    print(f"\n{median:.1f} ms per detection (768x432, 1 thread, median of {len(clip_run.ms)})")
    assert median < 250  # a generous bound for slow CI machines; figures in the docs


# --- the clip: crowd and dwell alarms ------------------------------------------------------------
def _intervals(events: list[tuple[bool, float]], end: float) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    start = None
    for active, at in events:
        if active:
            start = at
        elif start is not None:
            out.append((start, at))
            start = None
    if start is not None:
        out.append((start, end))
    return out


def _overlaps(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def _room_counts(clip_run: ClipRun) -> list[tuple[float, int]]:
    counter = ZoneCounter([WHOLE])
    return [
        (index / FPS, counter.update(found, index / FPS)["room"])
        for index, found in zip(clip_run.frames, clip_run.detections, strict=True)
    ]


def test_crowd_of_one_matches_the_labelled_visits(clip_run: ClipRun, labels: Labels) -> None:
    rule = CrowdRule("room", CrowdSettings(min_people=1, for_s=3.0, clear_after_s=2.0))
    events = []
    for t, count in _room_counts(clip_run):
        event = rule.update(count, t)
        if event is not None:
            events.append((event.active, event.at))
    alarms = _intervals(events, len(labels.people) / FPS)
    visits = labels.stretches()
    hit_alarms = [a for a in alarms if any(_overlaps(a, v) for v in visits)]
    hit_visits = [v for v in visits if any(_overlaps(a, v) for a in alarms)]
    precision, recall = len(hit_alarms) / max(1, len(alarms)), len(hit_visits) / len(visits)
    print(f"\ncrowd >= 1 for 3 s: {len(alarms)} alarms, {len(visits)} visits, precision "
          f"{precision:.0%}, recall {recall:.0%}; alarms {alarms}; visits {visits}")  # fmt: skip
    assert len(alarms) == len(visits) == 6
    assert precision == recall == 1.0
    for (on, off), (start, end) in zip(alarms, visits, strict=True):
        assert start + 3.0 <= on <= start + 3.0 + 2.5  # for_s after the person came in
        assert end <= off <= end + 2.0 + 2.5  # clear_after_s after the person left


def test_crowd_of_two_never_fires(clip_run: ClipRun) -> None:
    rule = CrowdRule("room", CrowdSettings(min_people=2, for_s=0.0))
    assert all(rule.update(count, t) is None for t, count in _room_counts(clip_run))


def test_loitering_at_the_table(clip_run: ClipRun, labels: Labels) -> None:
    counter = ZoneCounter([TABLE])
    rule = DwellRule("table", DwellSettings(max_s=6.0, clear_after_s=1.0))
    events = []
    for index, found in zip(clip_run.frames, clip_run.detections, strict=True):
        t = index / FPS
        counter.update(found, t)
        event = rule.update(counter.dwell(t)["table"], t)
        if event is not None:
            events.append(event)
    starts = [e for e in events if e.active]
    print(f"\ndwell > 6 s at the table: {[(round(e.started_at, 1), e.at) for e in starts]}")
    assert len(starts) == 6  # everybody stands at the table for 8.6 s or more
    assert [e.active for e in events] == [True, False] * 6
