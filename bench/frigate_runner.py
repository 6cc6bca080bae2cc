"""Runs Frigate's own motion detector (frigate/motion/improved_motion.py, loaded unchanged from
the path given) for bench/motion_compare.py, in a Python that has what the file needs (numpy,
opencv-python-headless, scipy). Written here; nothing of Frigate's is copied.

The file imports a few names from the rest of Frigate; they are provided as minimal stub
modules (``frigate.camera.PTZMetrics``, ``frigate.config.config.RuntimeMotionConfig``,
``frigate.motion.MotionDetector``, ``frigate.util.image.grab_cv2_contours``) written at start
into a temporary folder put first on ``sys.path``. The config has the defaults of Frigate's
MotionConfig (frigate/config/camera/motion.py) and no mask.

Protocol: one JSON object a line on stdin, one reply a line on stdout.
  {"op": "time", "frames": "a.npy"}                  -> {"seconds": s, "frames": n}
      a new detector, then the frames' ``detect()`` timed with ``time.perf_counter``
      around the loop (construction not timed), exactly as motion_compare.py times ours;
  {"op": "motion", "frames": "b.npy", "warmup": "c.npy"}   -> {"motion": [bool, ...]}
      a new detector over the warm-up frames and then the frames; one flag per frame
      (any motion box), the warm-up not included;
  {"op": "quit"}.
Frames are grey (the Y plane Frigate's detect() reads from its YUV frame), N x H x W uint8.

Run by motion_compare.py: <python> bench/frigate_runner.py --frigate-file PATH
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

STUBS = {
    "frigate/__init__.py": "",
    "frigate/camera/__init__.py": '''
class PTZMetrics:
    """Stub: never passed (no PTZ camera in the bench)."""
''',
    "frigate/config/__init__.py": '''
class MotionConfig:
    """Frigate's MotionConfig defaults (frigate/config/camera/motion.py)."""

    def __init__(self, **overrides):
        self.enabled = True
        self.threshold = 30
        self.lightning_threshold = 0.8
        self.skip_motion_threshold = None
        self.improve_contrast = True
        self.contour_area = 10
        self.delta_alpha = 0.2
        self.frame_alpha = 0.01
        self.frame_height = 100
        self.mqtt_off_delay = 30
        for key, value in overrides.items():
            setattr(self, key, value)
''',
    "frigate/config/config.py": '''
import numpy as np

from frigate.config import MotionConfig


class RuntimeMotionConfig(MotionConfig):
    """MotionConfig with the rasterized mask: no mask (255 everywhere), as Frigate makes it."""

    def __init__(self, frame_shape=(1, 1), **overrides):
        super().__init__(**overrides)
        self.rasterized_mask = np.full(frame_shape, 255, np.uint8)
''',
    "frigate/motion/__init__.py": '''
from abc import ABC


class MotionDetector(ABC):
    """Stub of Frigate's abstract base: the interface only."""
''',
    "frigate/util/__init__.py": "",
    "frigate/util/image.py": '''
def grab_cv2_contours(cnts):
    """findContours' contours whatever the OpenCV version (2 or 3 results)."""
    if len(cnts) == 2:
        return cnts[0]
    if len(cnts) == 3:
        return cnts[1]
    raise ValueError(f"findContours gave {len(cnts)} values, not 2 or 3")
''',
}


def load(frigate_file: Path, stub_dir: Path) -> Any:
    """Frigate's ImprovedMotionDetector class and the stub RuntimeMotionConfig."""
    for name, text in STUBS.items():
        path = stub_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.lstrip(), encoding="utf-8")
    sys.path.insert(0, str(stub_dir))
    spec = importlib.util.spec_from_file_location("frigate.motion.improved_motion", frigate_file)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    from frigate.config.config import RuntimeMotionConfig  # type: ignore[import-not-found]

    return module.ImprovedMotionDetector, RuntimeMotionConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frigate-file", type=Path, required=True)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory(prefix="frigate-stubs-") as stub_dir:
        detector_class, config_class = load(args.frigate_file.resolve(), Path(stub_dir))

        def new(shape: tuple[int, int]) -> Any:
            return detector_class(shape, config_class(frame_shape=shape), 5)

        print(json.dumps({"ready": True, "opencv": cv2.__version__}), flush=True)
        cache: dict[str, Any] = {}  # the last frames file read: repeats do not reload it
        for line in sys.stdin:
            command = json.loads(line)
            if command["op"] == "quit":
                break
            if command["frames"] not in cache:
                cache.clear()
                cache[command["frames"]] = np.load(command["frames"])
            frames = cache[command["frames"]]
            shape = (int(frames.shape[1]), int(frames.shape[2]))
            if command["op"] == "time":
                detector = new(shape)
                start = time.perf_counter()
                for frame in frames:
                    detector.detect(frame)
                seconds = time.perf_counter() - start
                reply: dict[str, Any] = {"seconds": seconds, "frames": len(frames)}
            else:
                detector = new(shape)
                for frame in np.load(command["warmup"]):
                    detector.detect(frame)
                reply = {"motion": [bool(detector.detect(frame)) for frame in frames]}
            print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
