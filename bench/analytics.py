"""Video analytics cost on the real footage (intel-iot-devkit one-by-one clip).

1. Throughput in this process, on decoded frames held in memory, at 640x360 and 1280x720:
   motion alone, person detection alone (ms per detection, 1 thread), the whole pipeline
   (motion + gated detection + counting + crowd rule + tamper) at the clip's pace.
2. One camera as the daemon runs it: a capture process (`python -m edgeguard.cameras.capture`)
   reading a real RTSP stream of the clip at 640x360 10 fps, analysing 5 fps with a counting
   zone and a crowd rule; its CPU (% of one core) and RSS, with and without analysis, so the
   analysis's own share shows. Target (design brief): motion + crowd <= 5 % of one core.

Run: .venv/bin/python bench/analytics.py [--quick]   (last line: one JSON object)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import CaptureProcess, cpu_s, emit, machine, memory_mb, rss_mb

from edgeguard.analytics.detector import PersonDetector
from edgeguard.analytics.model_files import find_person_model
from edgeguard.analytics.motion import MotionDetector, MotionSettings
from edgeguard.analytics.pipeline import AnalysisPipeline
from edgeguard.analytics.spec import PipelineSpec, ZoneSpec
from edgeguard.cameras.wire import CaptureSettings, encode
from edgeguard.lab.footage import locate, scaled
from edgeguard.lab.rtsp_server import RtspServer

SIZES = [(640, 360), (1280, 720)]
TABLE = ((0.45, 0.72), (0.72, 0.72), (0.72, 0.98), (0.45, 0.98))


def load_frames(size: tuple[int, int], count: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(locate()))
    frames = []
    while len(frames) < count:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.resize(frame, size, interpolation=cv2.INTER_AREA))
    capture.release()
    return frames


def rate(label: str, frames: list[np.ndarray], work: Any) -> dict[str, float]:
    started = time.perf_counter()
    for i, frame in enumerate(frames):
        work(frame, i * 0.2)
    elapsed = time.perf_counter() - started
    result = {"fps": round(len(frames) / elapsed, 1), "ms": round(1000 * elapsed / len(frames), 3)}
    print(f"{label}: {result['fps']} frames/s, {result['ms']} ms/frame")
    return result


def spec() -> PipelineSpec:
    zone = ZoneSpec("table", TABLE, crowd={"min_people": 1, "for_s": 3.0, "clear_after_s": 2.0})
    return PipelineSpec(motion={}, tamper={"hold_s": 5.0}, zones=(zone,))


def in_process(count: int) -> dict[str, Any]:
    model = find_person_model()
    detector = PersonDetector(model, threads=1)
    results: dict[str, Any] = {}
    for width, height in SIZES:
        frames = load_frames((width, height), count)
        key = f"{width}x{height}"
        motion = MotionDetector(MotionSettings())
        detect = frames[:: max(1, len(frames) // 60)]
        pipeline = AnalysisPipeline(spec(), detector)
        results[key] = {
            "motion": rate(f"{key} motion alone", frames, motion.update),
            "detection": rate(f"{key} detection alone", detect, lambda f, _t: detector.detect(f)),
            "pipeline": rate(f"{key} whole pipeline (5 fps pace)", frames, pipeline.process),
        }
    return results


def detector_service(path: Path) -> subprocess.Popen[bytes]:
    """The shared person detector, as the daemon starts it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgeguard.analytics.detector_service"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )
    assert proc.stdin is not None
    proc.stdin.write(encode({"socket": str(path), "model": None, "threads": 1}))
    proc.stdin.flush()
    for _ in range(200):
        if path.exists():
            break
        time.sleep(0.05)
    return proc


def camera_process(
    url: str, seconds: float, *, analytics: bool, detector: Path | None = None
) -> dict[str, Any]:
    settings = CaptureSettings(
        name="bench",
        url=url,
        analysis_fps=5.0,
        analytics=spec().to_dict() if analytics else None,
        detector_socket=str(detector) if detector else None,
    )
    capture = CaptureProcess(settings)
    try:
        time.sleep(6.0)
        cpu0, t0 = cpu_s(capture.pid), time.monotonic()
        time.sleep(seconds)
        cpu = (cpu_s(capture.pid) - cpu0) / (time.monotonic() - t0) * 100
        return {
            "cpu_pct_of_core": round(cpu, 1),
            "rss_mb": round(rss_mb(capture.pid), 1),
            "memory": memory_mb(capture.pid),
            "analysis": capture.latest.get("analysis"),
            "events": len(capture.events),
        }
    finally:
        capture.close()


def two_cameras(url: str, detector: Path) -> dict[str, Any]:
    """Two analysed cameras on one shared detector: the memory each process has to itself
    (USS) is what every further camera adds; RSS counts OpenCV's libraries in both."""
    processes = [
        CaptureProcess(
            CaptureSettings(
                name=f"bench{i}",
                url=url,
                analysis_fps=5.0,
                analytics=spec().to_dict(),
                detector_socket=str(detector),
            )
        )
        for i in (1, 2)
    ]
    try:
        time.sleep(12.0)
        per_camera = [memory_mb(p.pid) for p in processes]
    finally:
        for process in processes:
            process.close()
    return {"cameras": per_camera, "added_per_camera_mb": max(m["uss_mb"] for m in per_camera)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer frames, shorter windows")
    args = parser.parse_args()
    count, seconds = (150, 10.0) if args.quick else (600, 30.0)
    throughput = in_process(count)
    socket_path = Path(f"/tmp/eg-bench-detector-{os.getpid()}.sock")
    with RtspServer(scaled(locate(), 640, 360)) as server:
        capture_only = camera_process(server.url, seconds, analytics=False)
        in_process_detector = camera_process(server.url, seconds, analytics=True)
        service = detector_service(socket_path)
        try:
            with_analysis = camera_process(
                server.url, seconds, analytics=True, detector=socket_path
            )
            with_analysis["detector_service_rss_mb"] = round(rss_mb(service.pid), 1)
            with_analysis["detector_service_memory"] = memory_mb(service.pid)
            two = two_cameras(server.url, socket_path)
            with_analysis["detector_service_cpu_s"] = cpu_s(service.pid)
        finally:
            assert service.stdin is not None
            service.stdin.close()
            service.wait(10)
            socket_path.unlink(missing_ok=True)
    share = round(with_analysis["cpu_pct_of_core"] - capture_only["cpu_pct_of_core"], 1)
    print(f"camera process, capture only: {json.dumps(capture_only)}")
    print(f"camera process, own detector: {json.dumps(in_process_detector)}")
    print(f"camera process, shared detector: {json.dumps(with_analysis)}")
    print(f"analysis share at 5 fps: {share} % of one core in the camera process (target <= 5 %)")
    print(
        f"two analysed cameras, shared detector: {json.dumps(two['cameras'])}; each further "
        f"camera adds {two['added_per_camera_mb']} MB (USS; target <= 60 MB)"
    )
    emit(
        {
            "bench": "analytics",
            "machine": machine(),
            "throughput": throughput,
            "camera_640x360_5fps": {
                "capture_only": capture_only,
                "capture_and_analysis": with_analysis,
                "capture_and_analysis_own_detector": in_process_detector,
                "analysis_share_pct_of_core": share,
            },
            "two_cameras_shared_detector": two,
        }
    )


if __name__ == "__main__":
    main()
