"""Motion detection: edgeguard's MotionDetector against a port of Frigate's ImprovedMotionDetector.

On the real footage (intel-iot-devkit one-by-one-person-detection.mp4, every 2nd frame: 5 fps),
scaled to 640x360 and 1280x720:
1. speed: frames/s and ms/frame of each detector, one OpenCV thread (a Pi core's view). Frigate
   gets the grey (Y) plane, as in Frigate where FFmpeg hands it over for free; ours is timed on
   the same grey frames and on the BGR frames the capture process actually hands over;
2. false motion frames on a static scene whose exposure drifts: the clip's empty first 5.6 s
   played back and forth for 60 s, with the camera gain drifting ±20 % (sine, 30 s period),
   and with sudden gain steps (+20 %, -20 %, every 10 s);
3. motion frames on the clip itself, in the labelled empty stretches and person stretches
   (labels: tests/test_motion.py).
Every sequence in 2 and 3 is preceded by 60 s of the static scene (not counted), so that both
detectors have settled: Frigate's contrast stretching learns over 50 frames and its background
at 1 % a frame.

Run: .venv/bin/python bench/motion_compare.py [--quick]   (last line: one JSON object)
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import emit, machine
from frigate_motion import FrigateMotionConfig, ImprovedMotionDetector

from edgeguard.analytics.motion import MotionDetector, MotionSettings
from edgeguard.lab.footage import locate

FPS = 5.0
STEP = 2  # the clip is 10 fps: every 2nd frame
# the same labels as tests/test_motion.py (clip frame numbers, inclusive)
EMPTY = ((0, 56), (206, 226), (456, 500), (706, 744), (876, 918), (1208, 1232), (1368, 1393))
PEOPLE = ((60, 204), (228, 452), (502, 704), (746, 872), (920, 1204), (1234, 1364))

Frame = np.ndarray[Any, np.dtype[np.uint8]]


def decode(limit: int | None) -> list[tuple[int, Frame]]:
    cap = cv2.VideoCapture(str(locate()))
    frames: list[tuple[int, Frame]] = []
    index = 0
    while cap.grab():
        if index % STEP == 0:
            frames.append((index, cap.retrieve()[1]))
        index += 1
        if limit is not None and index >= limit:
            break
    cap.release()
    return frames


def scaled(frames: Sequence[Frame], size: tuple[int, int]) -> list[Frame]:
    return [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames]


def grey(frames: Sequence[Frame]) -> list[Frame]:
    return [cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in frames]


Runner = Callable[[Sequence[Frame]], list[bool]]


def ours(frames: Sequence[Frame]) -> list[bool]:
    detector = MotionDetector(MotionSettings(width=WIDTH))
    return [detector.update(f, i / FPS).motion for i, f in enumerate(frames)]


def frigate(frames: Sequence[Frame]) -> list[bool]:
    """Frigate's detector on grey (Y) frames; BGR frames are converted first, as Frigate
    would need for a BGR source."""
    detector = ImprovedMotionDetector(frames[0].shape[:2], FrigateMotionConfig())
    out = []
    for f in frames:
        plane = cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) if f.ndim == 3 else f
        out.append(bool(detector.detect(plane)))
    return out


def warmed(run: Runner, warmup: Sequence[Frame]) -> Runner:
    """The runner on the warm-up frames followed by the frames; only the latter counted."""

    def run_warmed(frames: Sequence[Frame]) -> list[bool]:
        return run(list(warmup) + list(frames))[len(warmup) :]

    return run_warmed


def timed(run: Runner, frames: Sequence[Frame], repeat: int) -> dict[str, float]:
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        run(frames)
        best = min(best, time.perf_counter() - start)
    ms = best / len(frames) * 1000
    return {
        "fps": round(len(frames) / best, 1),
        "ms_per_frame": round(ms, 3),
        "core_pct_at_5fps": round(ms * FPS / 10, 2),
    }


def gained(frames: Sequence[Frame], gains: Sequence[float]) -> list[Frame]:
    return [cv2.convertScaleAbs(f, alpha=g) for f, g in zip(frames, gains, strict=True)]


def static_sequences(empty: Sequence[Frame], seconds: float) -> dict[str, list[Frame]]:
    loop = list(empty) + list(empty[-2:0:-1])  # back and forth: no jump at the seam
    n = round(seconds * FPS)
    base = [loop[i % len(loop)] for i in range(n)]
    drift = [1.0 + 0.2 * math.sin(2 * math.pi * (i / FPS) / 30.0) for i in range(n)]
    steps = [(1.0, 1.2, 1.0, 0.8)[int(i / FPS // 10) % 4] for i in range(n)]
    return {"static": base, "drift": gained(base, drift), "steps": gained(base, steps)}


def in_ranges(index: int, ranges: Sequence[tuple[int, int]]) -> bool:
    return any(a <= index <= b for a, b in ranges)


def clip_counts(indices: Sequence[int], motion: Sequence[bool]) -> dict[str, int]:
    empty = [m for i, m in zip(indices, motion, strict=True) if in_ranges(i, EMPTY)]
    people = [m for i, m in zip(indices, motion, strict=True) if in_ranges(i, PEOPLE)]
    return {
        "empty_frames": len(empty),
        "empty_motion_frames": sum(empty),
        "person_frames": len(people),
        "person_motion_frames": sum(people),
    }


WIDTH = 320


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="300 clip frames, 1 repeat")
    parser.add_argument(
        "--width", type=int, default=None, help="our processing width (default: the setting's)"
    )
    args = parser.parse_args()
    global WIDTH  # noqa: PLW0603 - a bench option
    WIDTH = args.width or MotionSettings().width
    cv2.setNumThreads(1)
    repeat = 1 if args.quick else 3
    decoded = decode(300 if args.quick else None)
    indices = [i for i, _ in decoded]
    raw = [f for _, f in decoded]
    print(f"{len(raw)} frames of {locate().name} at {FPS:g} fps; OpenCV threads: 1")
    result: dict[str, Any] = {"bench": "motion_compare", "machine": machine(), "frames": len(raw)}
    for size in ((640, 360), (1280, 720)):
        bgr = scaled(raw, size)
        grey_frames = grey(bgr)
        key = f"{size[0]}x{size[1]}"
        speed = {
            "ours_bgr": timed(ours, bgr, repeat),
            "frigate_bgr": timed(frigate, bgr, repeat),
            "ours_grey": timed(ours, grey_frames, repeat),
            "frigate_grey": timed(frigate, grey_frames, repeat),
        }
        result[key] = speed
        for name, s in speed.items():
            print(
                f"{key:<10} {name:<13} {s['fps']:>8.1f} frames/s  "
                f"{s['ms_per_frame']:>7.3f} ms/frame  "
                f"{s['core_pct_at_5fps']:>5.2f} % of a core at 5 fps"
            )
        if size == (640, 360):
            empty = [f for i, f in zip(indices, grey_frames, strict=True) if i <= EMPTY[0][1]]
            sequences = static_sequences(empty, 60.0)
            warmup = sequences.pop("static")
            result["clip"] = {
                "ours": clip_counts(indices, warmed(ours, warmup)(grey_frames)),
                "frigate": clip_counts(indices, warmed(frigate, warmup)(grey_frames)),
            }
    false_motion: dict[str, dict[str, int]] = {}
    for name, frames in {"static": warmup, **sequences}.items():
        false_motion[name] = {
            "frames": len(frames),
            "ours": sum(warmed(ours, warmup)(frames)),
            "frigate": sum(warmed(frigate, warmup)(frames)),
        }
    result["false_motion"] = false_motion
    for name, counts in false_motion.items():
        print(
            f"false motion frames, {name:<6} ({counts['frames']} frames): "
            f"ours {counts['ours']:>3}, frigate {counts['frigate']:>3}"
        )
    for name, counts in result["clip"].items():
        print(
            f"clip, {name:<8} motion in {counts['empty_motion_frames']}/{counts['empty_frames']}"
            f" empty frames, {counts['person_motion_frames']}/{counts['person_frames']} person"
            " frames"
        )
    emit(result)


if __name__ == "__main__":
    main()
