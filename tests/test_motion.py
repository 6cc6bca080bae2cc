"""Motion stage and geometry, on the real footage (docs/analytics-motion-tamper.md).

Labels (clip frame numbers of one-by-one-person-detection.mp4, 10 fps, inclusive), set by
viewing frames (every 50th, and each stretch's first and last frame): EMPTY stretches show the
room with nobody in it; PEOPLE stretches have one person in view (walking in, standing at the
table, walking out). Exposure shifts: windows inside empty stretches where the mean grey level
steps by several levels with nobody moving (the camera's exposure settling after a person left).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import astuple, dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeguard.analytics.geometry import (
    Box,
    box_overlaps_polygon,
    merge_boxes,
    point_in_polygon,
    polygon_mask,
)
from edgeguard.analytics.motion import (
    MotionDetector,
    MotionResult,
    MotionSettings,
    processing_size,
    sampled_grey,
)
from edgeguard.lab.footage import FootageError, locate, search_dirs

FPS = 5.0
STEP = 2  # the clip is 10 fps; analysed at 5
EMPTY = ((0, 56), (206, 226), (456, 500), (706, 744), (876, 918), (1208, 1232), (1368, 1393))
PEOPLE = ((60, 204), (228, 452), (502, 704), (746, 872), (920, 1204), (1234, 1364))
EXPOSURE_SHIFTS = ((456, 462), (1208, 1216), (1368, 1378))
# frames viewed, and a point on the person in each (normalised x, y)
PERSON_AT = {66: (0.48, 0.7), 232: (0.45, 0.65), 440: (0.82, 0.5), 750: (0.38, 0.75),
             1354: (0.9, 0.5)}  # fmt: skip
# tree.avi: the foliage (the whole view but the window frame on the left and the sky at the
# top right); the hand comes in over the sky from frame 53 on
TREE = ((0.1, 0.0), (0.75, 0.0), (0.75, 0.45), (1.0, 0.55), (1.0, 1.0), (0.1, 1.0))
HAND_FROM = 53


def person_clip() -> Path:
    try:
        return locate(download=False)
    except FootageError:
        pytest.skip("one-by-one-person-detection.mp4 not available")


def tree_clip() -> Path:
    for folder in search_dirs():
        if (folder / "tree.avi").is_file():
            return folder / "tree.avi"
    pytest.skip("tree.avi not available")


def frames(path: Path, step: int = 1) -> Iterator[tuple[int, np.ndarray]]:
    cap = cv2.VideoCapture(str(path))
    index = 0
    try:
        while cap.grab():
            if index % step == 0:
                ok, frame = cap.retrieve()
                assert ok
                yield index, frame
            index += 1
    finally:
        cap.release()


def wobble(t: float) -> float:
    """A camera gain drifting ±20 % with a 30 s period."""
    return 1.0 + 0.2 * math.sin(2 * math.pi * t / 30.0)


@dataclass
class ClipRun:
    results: dict[int, MotionResult]
    wobbled: dict[int, MotionResult]
    mean: dict[int, float]
    empty_frames: list[np.ndarray]


@pytest.fixture(scope="module")
def clip() -> ClipRun:
    """The whole clip at 5 fps through a detector, and through a second one with the gain
    wobbling ±20 %; decoded once."""
    plain, wobbly = MotionDetector(MotionSettings()), MotionDetector(MotionSettings())
    run = ClipRun({}, {}, {}, [])
    for index, frame in frames(person_clip(), STEP):
        t = index / 10
        run.results[index] = plain.update(frame, t)
        run.wobbled[index] = wobbly.update(cv2.convertScaleAbs(frame, alpha=wobble(t)), t)
        run.mean[index] = float(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY).mean())
        if index <= EMPTY[0][1]:
            run.empty_frames.append(cv2.resize(frame, (640, 360), interpolation=cv2.INTER_AREA))
    return run


def in_ranges(index: int, ranges: tuple[tuple[int, int], ...]) -> bool:
    return any(a <= index <= b for a, b in ranges)


# ---- the real clip


def test_empty_stretches_have_no_motion(clip: ClipRun) -> None:
    empty = [i for i in clip.results if in_ranges(i, EMPTY)]
    assert len(empty) > 120
    assert [i for i in empty if clip.results[i].motion] == []


def test_people_make_motion_where_they_are(clip: ClipRun) -> None:
    people = [i for i in clip.results if in_ranges(i, PEOPLE)]
    moving = [i for i in people if clip.results[i].motion]
    assert len(moving) >= 0.8 * len(people)  # the rest: people standing still at the table
    for index, point in PERSON_AT.items():
        boxes = clip.results[index].boxes
        assert any(b.contains(point) for b in boxes), (index, boxes)
    for index in people:
        for box in clip.results[index].boxes:
            assert 0 <= box.x <= box.x2 <= 1
            assert 0 <= box.y <= box.y2 <= 1


def test_every_arrival_is_seen_within_a_second(clip: ClipRun) -> None:
    for start, _ in PEOPLE:
        first = min(i for i in clip.results if i >= start and clip.results[i].motion)
        assert first - start <= 10, start


def test_exposure_shifts_in_the_clip_are_not_motion(clip: ClipRun) -> None:
    for a, b in EXPOSURE_SHIFTS:
        window = [i for i in clip.results if a <= i <= b]
        means = [clip.mean[i] for i in window]
        assert max(means) - min(means) >= 2.5, (a, b, means)  # the label is a real shift
        assert not any(clip.results[i].motion for i in window), (a, b)


def test_a_gain_wobbling_20_percent_adds_no_motion(clip: ClipRun) -> None:
    empty = [i for i in clip.wobbled if in_ranges(i, EMPTY)]
    assert [i for i in empty if clip.wobbled[i].motion] == []
    people = [i for i in clip.wobbled if in_ranges(i, PEOPLE)]
    assert sum(clip.wobbled[i].motion for i in people) >= 0.8 * len(people)


def static_loop(empty: list[np.ndarray], n: int) -> list[np.ndarray]:
    loop = empty + empty[-2:0:-1]
    return [loop[i % len(loop)] for i in range(n)]


def test_synthetic_gain_ramps_and_steps_are_not_motion(clip: ClipRun) -> None:
    base = static_loop(clip.empty_frames, 150)
    ramp = [1.0 + 0.2 * min(i, 50) / 50 - 0.4 * max(0, i - 75) / 75 for i in range(150)]
    steps = [(1.0, 1.2, 0.8, 1.0, 0.8)[i // 30] for i in range(150)]
    for gains in (ramp, steps):
        detector = MotionDetector(MotionSettings())
        results = [
            detector.update(cv2.convertScaleAbs(f, alpha=g), i / FPS)
            for i, (f, g) in enumerate(zip(base, gains, strict=True))
        ]
        assert [i for i, r in enumerate(results) if r.motion] == []
    for i in (30, 60, 90, 120):  # each step is followed, as a recalibration
        assert results[i].recalibrated
        assert abs(results[i].gain - steps[i] / steps[i - 1]) < 0.03


def test_a_person_walking_in_during_a_gain_step_is_still_seen(clip: ClipRun) -> None:
    base = static_loop(clip.empty_frames, 40)
    detector = MotionDetector(MotionSettings())
    for i, frame in enumerate(base[:30]):
        detector.update(frame, i / FPS)
    person = base[30].copy()
    cv2.rectangle(person, (300, 100), (360, 330), (40, 30, 30), -1)
    result = detector.update(cv2.convertScaleAbs(person, alpha=1.2), 30 / FPS)
    assert result.motion
    assert any(b.contains((330 / 640, 200 / 360)) for b in result.boxes)
    assert abs(result.gain - 1.2) < 0.03


# ---- tree.avi: masks


def run_tree(masks: tuple[tuple[tuple[float, float], ...], ...]) -> list[MotionResult]:
    detector = MotionDetector(MotionSettings(masks=masks))
    return [detector.update(f, i / 15) for i, f in frames(tree_clip())]


def test_a_masked_tree_makes_no_motion() -> None:
    results = run_tree((TREE,))
    assert len(results) == 68
    mask = polygon_mask((TREE,), 320, 240)
    for result in results:
        for box in result.boxes:
            x, y, w, h = box.to_pixels(320, 240)
            inside = np.count_nonzero(mask[y : y + h, x : x + w]) / (w * h)
            assert inside < 0.25, (box, inside)  # boxes lie outside the tree
    before = [i for i, r in enumerate(results[:HAND_FROM]) if r.motion]
    with_hand = [i for i, r in enumerate(results) if i >= HAND_FROM and r.motion]
    assert before == []  # the tree sways all along: no motion outside it
    assert len(with_hand) >= 8  # the hand over the sky (12 of the last 15 frames)


def test_the_unmasked_tree_is_motion() -> None:
    results = run_tree(())
    assert sum(r.motion for r in results[:HAND_FROM]) >= 40


# ---- synthetic cases


def grey_scene(seed: int = 1, size: tuple[int, int] = (360, 640)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.integers(60, 200, (size[0] // 8, size[1] // 8), dtype=np.uint8)
    return cv2.resize(noise, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)


def test_a_moving_square_inside_a_mask_is_ignored_outside_it_is_seen() -> None:
    mask = ((0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0))
    detector = MotionDetector(MotionSettings(masks=(mask,)))
    scene = grey_scene()
    for i in range(10):
        detector.update(scene, i / FPS)
    inside, outside = scene.copy(), scene.copy()
    inside[100:200, 50:150] = 250
    outside[100:200, 400:500] = 250
    assert not detector.update(inside, 2.0).motion
    result = detector.update(outside, 2.2)
    assert result.motion
    assert result.boxes[0].iou(Box(400 / 640, 100 / 360, 100 / 640, 100 / 360)) > 0.6


def test_small_changes_are_below_min_area() -> None:
    detector = MotionDetector(MotionSettings())
    scene = grey_scene()
    detector.update(scene, 0.0)
    speck = scene.copy()
    speck[100:104, 100:104] = 255
    assert not detector.update(speck, 0.2).motion


def test_a_lighting_change_recalibrates() -> None:
    detector = MotionDetector(MotionSettings())
    scene = grey_scene()
    detector.update(scene, 0.0)
    result = detector.update(cv2.bitwise_not(scene), 0.2)  # not a gain: a new light
    assert result.recalibrated
    assert not result.motion
    assert result.changed_fraction > 0.4
    assert not detector.update(cv2.bitwise_not(scene), 0.4).motion


def test_many_blobs_are_limited_and_merged() -> None:
    detector = MotionDetector(MotionSettings(contour_limit=3))
    scene = np.full((360, 640), 100, np.uint8)
    detector.update(scene, 0.0)
    spots = scene.copy()
    for k in range(8):
        x = 20 + 75 * k
        spots[150:200, x : x + 30] = 200
    spots[20:60, 20:60] = 200  # two touching squares: one box
    spots[20:60, 62:100] = 200
    result = detector.update(spots, 0.2)
    assert len(result.boxes) == 3
    assert result.boxes == tuple(sorted(result.boxes, key=lambda b: b.area, reverse=True))


def test_a_pause_or_time_going_back_starts_again() -> None:
    detector = MotionDetector(MotionSettings(gap_s=5.0))
    scene = grey_scene()
    assert detector.update(scene, 0.0).recalibrated
    assert not detector.update(scene, 0.2).recalibrated
    assert detector.update(scene, 10.0).recalibrated
    assert detector.update(scene, 9.0).recalibrated
    detector.reset()
    assert detector.update(scene, 20.0).recalibrated


def test_deterministic(clip: ClipRun) -> None:
    base = static_loop(clip.empty_frames, 20)
    a, b = MotionDetector(MotionSettings()), MotionDetector(MotionSettings())
    for i, frame in enumerate(base):
        moved = frame.copy()
        cv2.circle(moved, (30 * i, 200), 40, (0, 0, 0), -1)
        assert a.update(moved, i / FPS) == b.update(moved, i / FPS)


@pytest.mark.parametrize(
    ("shape", "size"),
    [((360, 640), (320, 180)), ((576, 768), (320, 240)), ((720, 1280), (320, 180)),
     ((1080, 1920), (320, 180)), ((432, 768), (320, 180))],
)  # fmt: skip
def test_the_working_size_and_first_resize_for_each_input_size(
    shape: tuple[int, int], size: tuple[int, int]
) -> None:
    """320 wide at every size; a frame over twice as large is sampled (nearest) straight to
    it, a smaller one averaged (area); BGR is made grey after the sampling."""
    bgr = np.random.default_rng(3).integers(0, 256, (*shape, 3), dtype=np.uint8)
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    assert processing_size(shape, 320) == size
    if shape[1] > 2 * size[0]:
        expected = cv2.resize(grey, size, interpolation=cv2.INTER_NEAREST)
        from_bgr = cv2.cvtColor(cv2.resize(bgr, size, interpolation=cv2.INTER_NEAREST),
                                cv2.COLOR_BGR2GRAY)  # fmt: skip
    else:
        expected = from_bgr = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    assert np.array_equal(sampled_grey(grey, 320), expected)
    assert np.array_equal(sampled_grey(bgr, 320), from_bgr)


def test_the_caller_may_reuse_its_frame_buffer() -> None:
    """Without a blur the frame at the working size is kept as the previous frame: a copy,
    so a decoder overwriting its buffer does not change the model."""
    scene = grey_scene(size=(180, 320))
    reused, fresh = MotionDetector(MotionSettings(blur=0)), MotionDetector(MotionSettings(blur=0))
    buffer = scene.copy()
    for i in range(6):
        frame = scene.copy()
        cv2.rectangle(frame, (20 * i, 40), (20 * i + 40, 100), 0, -1)
        buffer[:] = frame
        a, b = reused.update(buffer, i / FPS), fresh.update(frame.copy(), i / FPS)
        buffer[:] = 255
        assert a == b


@pytest.mark.parametrize(
    "frame",
    [
        np.zeros((10, 10), np.float32),
        np.zeros((10, 10), np.uint16),
        np.zeros((10, 10, 2), np.uint8),
        np.zeros((10, 10, 3, 1), np.uint8),
        np.zeros((0, 10, 3), np.uint8),
        np.zeros((10,), np.uint8),
        [[0, 1], [2, 3]],
    ],
)
def test_bad_frames_raise_value_error(frame: object) -> None:
    with pytest.raises(ValueError):
        MotionDetector(MotionSettings()).update(frame, 0.0)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [{"width": 4}, {"threshold": 0}, {"blur": 4}, {"learn_rate": 0.0}, {"min_area": 1.0},
     {"lighting_change": 0.0}, {"contour_limit": 0}, {"masks": (((0.1, 0.1), (0.2, 0.2)),)}],
)  # fmt: skip
def test_bad_settings_raise(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        MotionDetector(MotionSettings(**kwargs)).update(np.zeros((36, 64), np.uint8), 0.0)  # type: ignore[arg-type]


frame_shapes = st.tuples(st.integers(1, 90), st.integers(1, 90), st.sampled_from([None, 1, 3, 4]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shapes=st.lists(frame_shapes, min_size=1, max_size=4), seed=st.integers(0, 2**16),
       width=st.sampled_from([8, 32, 320]))  # fmt: skip
def test_random_frames_never_raise_and_boxes_stay_in_the_frame(
    shapes: list[tuple[int, int, int | None]], seed: int, width: int
) -> None:
    rng = np.random.default_rng(seed)
    detector = MotionDetector(MotionSettings(width=width, min_area=0.0))
    for k, (h, w, c) in enumerate(shapes * 2):
        shape = (h, w) if c is None else (h, w, c)
        frame = rng.integers(0, 256, shape, dtype=np.uint8)
        result = detector.update(frame, k * 0.2)
        assert 0.0 <= result.changed_fraction <= 1.0
        assert result.motion == bool(result.boxes)
        for box in result.boxes:
            assert 0.0 <= box.x <= box.x2 <= 1.0 + 1e-9
            assert 0.0 <= box.y <= box.y2 <= 1.0 + 1e-9


# ---- geometry


def test_box_basics() -> None:
    a, b = Box(0.1, 0.1, 0.2, 0.2), Box(0.2, 0.2, 0.2, 0.2)
    assert a.feet() == pytest.approx((0.2, 0.3))
    assert a.iou(b) == pytest.approx(0.01 / 0.07)
    assert a.iou(a) == pytest.approx(1.0)
    assert a.intersects(b)
    assert not a.intersects(Box(0.5, 0.5, 0.1, 0.1))
    assert astuple(a.expanded(0.05)) == pytest.approx((0.05, 0.05, 0.3, 0.3))
    assert astuple(Box(0.0, 0.0, 0.1, 0.1).expanded(0.5)) == pytest.approx((0, 0, 0.6, 0.6))
    assert astuple(Box.from_pixels(10, 20, 30, 40, 100, 200)) == pytest.approx((0.1, 0.1, 0.3, 0.2))
    merged = merge_boxes([a, b, Box(0.8, 0.8, 0.1, 0.1)])
    assert [astuple(m) for m in merged] == [
        pytest.approx((0.1, 0.1, 0.3, 0.3)),
        pytest.approx((0.8, 0.8, 0.1, 0.1)),
    ]


def test_polygons() -> None:
    square = ((0.2, 0.2), (0.6, 0.2), (0.6, 0.6), (0.2, 0.6))
    assert point_in_polygon((0.4, 0.4), square)
    assert point_in_polygon((0.2, 0.4), square)  # on an edge
    assert not point_in_polygon((0.7, 0.4), square)
    assert box_overlaps_polygon(Box(0.5, 0.5, 0.3, 0.3), square)
    assert box_overlaps_polygon(Box(0.0, 0.0, 1.0, 1.0), square)  # box around the polygon
    assert box_overlaps_polygon(Box(0.3, 0.3, 0.1, 0.1), square)  # box inside
    assert not box_overlaps_polygon(Box(0.7, 0.7, 0.2, 0.2), square)
    triangle = ((0.0, 0.0), (1.0, 0.0), (0.0, 1.0))
    assert not box_overlaps_polygon(Box(0.6, 0.6, 0.3, 0.3), triangle)
    mask = polygon_mask((square,), 100, 50)
    assert mask.shape == (50, 100)
    assert mask.dtype == np.uint8
    assert set(np.unique(mask)) == {0, 255}
    assert np.count_nonzero(mask) / mask.size == pytest.approx(0.16, abs=0.03)
    assert mask[20, 40] == 255
    assert mask[5, 5] == 0
    assert not polygon_mask((), 10, 10).any()
