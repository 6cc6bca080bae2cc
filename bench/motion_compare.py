"""Motion detection: edgeguard's MotionDetector against Frigate's own ImprovedMotionDetector.

Frigate's file (frigate/motion/improved_motion.py) is not in this repository: give its path
and a Python that has what it imports (numpy, opencv-python-headless, scipy). It is loaded
unchanged by bench/frigate_runner.py in that Python, in a subprocess, with stub modules for the
few frigate.* names it imports; without it, this prints what to fetch and reports our figures
alone (the JSON's frigate keys null).

On the real footage (intel-iot-devkit one-by-one-person-detection.mp4, 768x432, every 2nd
frame: 5 fps), scaled to 640x360, 768x576, 1280x720 and 1920x1080:
1. speed: frames/s of each detector on the same grey frames (the Y plane, which is what
   Frigate's detect() reads from the YUV frame FFmpeg hands it), one OpenCV thread, each run a
   new detector over the frames timed around the loop; ours and Frigate's runs interleaved,
   the median of the repeats. Ours also on the BGR frames edgeguard's capture hands over;
2. false motion frames on a static scene whose exposure drifts, at each size: the clip's
   empty first 5.6 s played back and forth for 60 s, with the camera gain drifting ±20 %
   (sine, 30 s period), and with sudden gain steps (+20 %, -20 %, every 10 s);
3. motion frames on the clip itself (640x360), in the labelled empty stretches and person
   stretches (labels: tests/test_motion.py).
Every sequence in 2 and 3 is preceded by 60 s of the static scene (not counted), so that both
detectors have settled: Frigate's contrast stretching learns over 50 frames and its background
at 1 % a frame.

Run: .venv/bin/python bench/motion_compare.py --frigate-file improved_motion.py \
         --frigate-python /tmp/frigate-py/bin/python [--quick]   (last line: one JSON object)
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import emit, machine

from edgeguard.analytics.motion import MotionDetector, MotionSettings, processing_size
from edgeguard.lab.footage import locate

FRIGATE_COMMIT = "e3fa70189324e5eb3b1dba756c153f6696f457de"  # 2026-07-23, the newest fetched
FRIGATE_URL = (
    "https://raw.githubusercontent.com/blakeblackshear/frigate/"
    f"{FRIGATE_COMMIT}/frigate/motion/improved_motion.py"
)
RUNNER = Path(__file__).resolve().parent / "frigate_runner.py"
SIZES = ((640, 360), (768, 576), (1280, 720), (1920, 1080))
FPS = 5.0
STEP = 2  # the clip is 10 fps: every 2nd frame
# the same labels as tests/test_motion.py (clip frame numbers, inclusive)
EMPTY = ((0, 56), (206, 226), (456, 500), (706, 744), (876, 918), (1208, 1232), (1368, 1393))
PEOPLE = ((60, 204), (228, 452), (502, 704), (746, 872), (920, 1204), (1234, 1364))

Frame = np.ndarray[Any, np.dtype[np.uint8]]
Motion = list[bool]


def absent_advice() -> str:
    return (
        "Frigate's detector not measured. To compare, fetch Frigate's file, unchanged:\n"
        f"  curl -fsSLo improved_motion.py {FRIGATE_URL}\n"
        "and make a Python that has what it imports, outside the repository:\n"
        "  python3 -m venv /tmp/frigate-py && /tmp/frigate-py/bin/pip install numpy scipy "
        f"opencv-python-headless=={cv2.__version__}.*\n"
        "then run: bench/motion_compare.py --frigate-file improved_motion.py "
        "--frigate-python /tmp/frigate-py/bin/python"
    )


class Frigate:
    """Frigate's detector in the other Python (bench/frigate_runner.py), frames by .npy file."""

    def __init__(self, python: Path, frigate_file: Path) -> None:
        self.process = subprocess.Popen(
            [str(python), str(RUNNER), "--frigate-file", str(frigate_file)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        ready = self._reply()
        self.opencv = str(ready["opencv"])

    def _reply(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"{RUNNER.name} ended (exit {self.process.wait()})")
        return dict(json.loads(line))

    def ask(self, **command: Any) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        return self._reply()

    def seconds(self, frames: Path) -> float:
        return float(self.ask(op="time", frames=str(frames))["seconds"])

    def motion(self, frames: Path, warmup: Path) -> Motion:
        return list(self.ask(op="motion", frames=str(frames), warmup=str(warmup))["motion"])

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"op": "quit"}) + "\n")
        self.process.stdin.close()
        self.process.wait(timeout=30)


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


def grey(frames: Sequence[Frame]) -> Frame:
    """N x H x W: the frames' grey (luma) planes."""
    return np.stack([cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in frames])


def our_seconds(frames: Sequence[Frame] | Frame, width: int) -> float:
    """A new detector, then the frames timed around the loop, as frigate_runner.py does."""
    detector = MotionDetector(MotionSettings(width=width))
    start = time.perf_counter()
    for i, frame in enumerate(frames):
        detector.update(frame, i / FPS)
    return time.perf_counter() - start


def our_motion(frames: Frame, warmup: Frame, width: int) -> Motion:
    detector = MotionDetector(MotionSettings(width=width))
    n = len(warmup)
    for i, frame in enumerate(warmup):
        detector.update(frame, i / FPS)
    return [detector.update(f, (n + i) / FPS).motion for i, f in enumerate(frames)]


def gained(frames: Frame, gains: Sequence[float]) -> Frame:
    return np.stack([cv2.convertScaleAbs(f, alpha=g) for f, g in zip(frames, gains, strict=True)])


def static_sequences(empty: Frame, seconds: float) -> dict[str, Frame]:
    loop = np.concatenate([empty, empty[-2:0:-1]])  # back and forth: no jump at the seam
    n = round(seconds * FPS)
    base = loop[[i % len(loop) for i in range(n)]]
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


def fps(seconds: Sequence[float], frames: int) -> float | None:
    return round(frames / statistics.median(seconds), 1) if seconds else None


def saved(folder: Path, name: str, frames: Frame) -> Path:
    path = folder / f"{name}.npy"
    np.save(path, frames)
    return path


def speed(
    frames: Sequence[Frame], key: str, folder: Path, frigate: Frigate | None, args: Any
) -> dict[str, Any]:
    """ours (grey), Frigate (grey) and ours (BGR), interleaved, each repeat in a new order."""
    bgr = list(frames)
    grey_frames = grey(bgr)
    path = saved(folder, f"time-{key}", grey_frames)
    runs: dict[str, list[float]] = {"ours": [], "frigate": [], "ours_bgr": []}
    if frigate is not None:
        frigate.seconds(path)  # loads the file: not in any repeat
    for r in range(args.repeat):
        order = ["ours", "frigate", "ours_bgr"]
        for name in order[r % 3 :] + order[: r % 3]:
            if name == "ours":
                runs[name].append(our_seconds(grey_frames, args.width))
            elif name == "ours_bgr":
                runs[name].append(our_seconds(bgr, args.width))
            elif frigate is not None:
                runs[name].append(frigate.seconds(path))
    path.unlink()
    n = len(bgr)
    ours, theirs = fps(runs["ours"], n), fps(runs["frigate"], n)
    return {
        "ours_fps": ours,
        "frigate_fps": theirs,
        "ratio": round(ours / theirs, 3) if ours and theirs else None,
        "ours_bgr_fps": fps(runs["ours_bgr"], n),
        "ours_working_size": list(processing_size(grey_frames.shape[1:], args.width)),
        "frigate_working_size": [100 * grey_frames.shape[2] // grey_frames.shape[1], 100],
    }


def false_motion(
    empty: Frame, folder: Path, frigate: Frigate | None, width: int
) -> dict[str, dict[str, Any]]:
    sequences = static_sequences(empty, 60.0)
    warmup = sequences["static"]
    warm_path = saved(folder, "warmup", warmup)
    out: dict[str, dict[str, Any]] = {}
    for name, frames in sequences.items():
        counts: dict[str, Any] = {
            "frames": len(frames),
            "ours": sum(our_motion(frames, warmup, width)),
            "frigate": None,
        }
        if frigate is not None:
            path = saved(folder, name, frames)
            counts["frigate"] = sum(frigate.motion(path, warm_path))
            path.unlink()
        out[name] = counts
    warm_path.unlink()
    return out


def clip_record(
    indices: Sequence[int],
    grey_frames: Frame,
    warmup: Frame,
    folder: Path,
    frigate: Frigate | None,
    width: int,
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "ours": clip_counts(indices, our_motion(grey_frames, warmup, width)),
        "frigate": None,
    }
    if frigate is not None:
        path, warm_path = saved(folder, "clip", grey_frames), saved(folder, "warm", warmup)
        record["frigate"] = clip_counts(indices, frigate.motion(path, warm_path))
    return record


def start_frigate(args: Any) -> Frigate | None:
    file, python = args.frigate_file, args.frigate_python
    if file is None or python is None or not file.is_file() or not python.exists():
        if file is not None and not file.is_file():
            print(f"no such file: {file}")
        if python is not None and not python.exists():
            print(f"no such Python: {python}")
        print(absent_advice())
        return None
    frigate = Frigate(python, file)
    print(f"Frigate's detector: {file} (OpenCV {frigate.opencv} in {python})")
    if frigate.opencv != cv2.__version__:
        print(f"  note: ours runs with OpenCV {cv2.__version__}")
    return frigate


def dash(value: object) -> str:
    return "-" if value is None else str(value)


def fmt(value: float | None) -> str:
    return f"{value:>9,.1f}" if value is not None else f"{'-':>9}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frigate-file", type=Path, help="Frigate's improved_motion.py")
    parser.add_argument("--frigate-python", type=Path, help="a Python with numpy, cv2, scipy")
    parser.add_argument("--quick", action="store_true", help="300 clip frames, 3 repeats")
    parser.add_argument("--repeat", type=int, default=None, help="timing repeats (default 7)")
    parser.add_argument("--timing-frames", type=int, default=300, help="analysed frames timed")
    parser.add_argument(
        "--width", type=int, default=None, help="our processing width (default: the setting's)"
    )
    args = parser.parse_args()
    args.width = args.width or MotionSettings().width
    args.repeat = args.repeat or (3 if args.quick else 7)
    cv2.setNumThreads(1)
    decoded = decode(300 if args.quick else None)
    indices = [i for i, _ in decoded]
    raw = [f for _, f in decoded]
    timing = raw[: args.timing_frames]
    first_empty = [f for i, f in zip(indices, raw, strict=True) if i <= EMPTY[0][1]]
    frigate = start_frigate(args)
    print(
        f"{len(raw)} frames of {locate().name} at {FPS:g} fps ({len(timing)} timed, median of "
        f"{args.repeat} interleaved repeats); OpenCV threads: 1"
    )
    result: dict[str, Any] = {
        "bench": "motion_compare",
        "machine": machine(),
        "frames": len(raw),
        "timed_frames": len(timing),
        "repeats": args.repeat,
        "frigate_file": str(args.frigate_file) if frigate else None,
        "frigate_commit": FRIGATE_COMMIT if frigate else None,
        "sizes": {},
    }
    print(
        f"{'input':<10} {'ours /s':>9} {'Frigate /s':>10} {'ratio':>6} {'ours BGR /s':>11}"
        f"  working size ours / Frigate   false motion: drift, steps (ours / Frigate)"
    )
    try:
        with tempfile.TemporaryDirectory(prefix="motion-compare-") as tmp:
            folder = Path(tmp)
            for size in SIZES:
                key = f"{size[0]}x{size[1]}"
                entry = speed(scaled(timing, size), key, folder, frigate, args)
                empty = grey(scaled(first_empty, size))
                entry["false_motion"] = false_motion(empty, folder, frigate, args.width)
                result["sizes"][key] = entry
                fm = entry["false_motion"]
                ratio = entry["ratio"]
                print(
                    f"{key:<10} {fmt(entry['ours_fps'])} {fmt(entry['frigate_fps']):>10} "
                    f"{(f'{ratio:.2f}' if ratio else '-'):>6} {fmt(entry['ours_bgr_fps']):>11}"
                    f"  {'x'.join(map(str, entry['ours_working_size'])):>9} / "
                    f"{'x'.join(map(str, entry['frigate_working_size'])):<9}         "
                    f"{fm['drift']['ours']}/{fm['drift']['frames']} vs "
                    f"{dash(fm['drift']['frigate'])}, {fm['steps']['ours']} vs "
                    f"{dash(fm['steps']['frigate'])}"
                )
                sys.stdout.flush()
            grey_clip = grey(scaled(raw, (640, 360)))
            warm = static_sequences(grey(scaled(first_empty, (640, 360))), 60.0)["static"]
            result["clip"] = clip_record(indices, grey_clip, warm, folder, frigate, args.width)
    finally:
        if frigate is not None:
            frigate.close()
    base = result["sizes"]["640x360"]["false_motion"]
    for name, counts in base.items():
        print(
            f"640x360 false motion frames, {name:<6} ({counts['frames']} frames): "
            f"ours {counts['ours']:>3}, frigate {dash(counts['frigate'])}"
        )
    for name, counts in result["clip"].items():
        if counts is not None:
            print(
                f"clip, {name:<8} motion in {counts['empty_motion_frames']}/"
                f"{counts['empty_frames']} empty frames, {counts['person_motion_frames']}/"
                f"{counts['person_frames']} person frames"
            )
    ratios = [e["ratio"] for e in result["sizes"].values()]
    result["slowest_ratio"] = min(ratios) if all(ratios) else None
    emit(result)


if __name__ == "__main__":
    main()
