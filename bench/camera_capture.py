"""Camera capture cost and camera-loss detection time.

1. CPU (% of one core) and RSS of one capture process (`python -m edgeguard.cameras.capture`,
   exactly as the daemon runs it) reading a real RTSP stream (gst-rtsp-server on loopback
   serving the intel-iot-devkit footage re-encoded to 640x360 and 1920x1080 H.264, 10 fps), at
   analysis rates of 5 and 10 frames/s. Capture alone: decode every frame, convert the kept
   ones, hand them to no analysis.
2. Time from stream loss (RTSP server SIGKILLed) to the `camera_offline` alarm at a police
   subscriber (the daemon as a process, mosquitto over TLS), minus the configured
   `offline_after`: the detection and delivery overhead.

Run: .venv/bin/python bench/camera_capture.py [--quick]   (last line: one JSON object)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import CaptureProcess, cpu_s, emit, machine, percentiles, rss_mb

from edgeguard.cameras.wire import CaptureSettings
from edgeguard.lab.footage import locate, scaled
from edgeguard.lab.harness import DaemonProcess, PoliceSubscriber, lab_broker, make_site
from edgeguard.lab.rtsp_server import RtspServer

RESOLUTIONS = [(640, 360), (1920, 1080)]
ANALYSIS_FPS = [5.0, 10.0]
WARMUP_S = 4.0
OFFLINE_AFTER_S = 5.0


def measure_capture(url: str, fps: float, seconds: float) -> dict[str, Any]:
    capture = CaptureProcess(CaptureSettings(name="bench", url=url, analysis_fps=fps))
    try:
        time.sleep(WARMUP_S)
        latest = capture.latest
        frames0, kept0 = latest.get("frames_in", 0), latest.get("frames_out", 0)
        cpu0, t0 = cpu_s(capture.pid), time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - t0
        cpu = (cpu_s(capture.pid) - cpu0) / elapsed * 100
        return {
            "cpu_pct_of_core": round(cpu, 1),
            "rss_mb": round(rss_mb(capture.pid), 1),
            "fps_in": round((latest.get("frames_in", 0) - frames0) / elapsed, 2),
            "fps_out": round((latest.get("frames_out", 0) - kept0) / elapsed, 2),
            "open_s": latest.get("open_seconds"),
        }
    finally:
        capture.close()


def capture_costs(seconds: float) -> list[dict[str, Any]]:
    results = []
    source = locate()
    for width, height in RESOLUTIONS:
        video = scaled(source, width, height)
        with RtspServer(video) as server:
            for fps in ANALYSIS_FPS:
                row = {"resolution": f"{width}x{height}", "analysis_fps": fps}
                row |= measure_capture(server.url, fps, seconds)
                print(json.dumps(row))
                results.append(row)
    return results


def loss_to_alarm(cycles: int) -> dict[str, Any]:
    samples: list[float] = []
    absolute: list[float] = []
    with tempfile.TemporaryDirectory(prefix="eg-cam-bench-") as tmp:
        broker = lab_broker(Path(tmp) / "lab")
        site = make_site(Path(tmp) / "site", broker)
        server = RtspServer(locate())
        server.start()
        site.data["cameras"] = [
            {
                "name": "cam-er-1",
                "location": "er",
                "stream_url": server.url,
                "offline_after": OFFLINE_AFTER_S,
            }
        ]
        site.write()
        daemon = DaemonProcess(site)
        try:
            daemon.start()
            with PoliceSubscriber(broker, {site.site_id: site.public_key}) as police:
                for cycle in range(cycles):
                    _wait_state(daemon, "online")
                    time.sleep(1.0)
                    before = len(_offline_alarms(police))
                    lost = time.perf_counter()
                    server.kill()
                    police.wait_for(lambda p, n=before: len(_offline_alarms(p)) > n, 60)
                    arrival = _offline_alarms(police)[-1][0]
                    samples.append(arrival - lost - OFFLINE_AFTER_S)
                    absolute.append(arrival - lost)
                    print(f"cycle {cycle}: {arrival - lost:.3f} s from loss to alarm")
                    server.start()
        finally:
            daemon.stop()
            server.kill()
            broker.stop()
    # The offline clock starts at the last frame, up to one frame interval before the loss,
    # so the overhead can be slightly negative.
    return {
        "offline_after_s": OFFLINE_AFTER_S,
        "loss_to_alarm": percentiles(absolute),
        "overhead": percentiles(samples),
    }


def _offline_alarms(police: PoliceSubscriber) -> list[tuple[float, dict[str, Any]]]:
    return [
        (at, r.payload)
        for at, r in police.received
        if r.kind == "alarm"
        and r.payload
        and r.payload["kind"] == "camera_offline"
        and r.payload["message"] == "new"
    ]


def _wait_state(daemon: DaemonProcess, state: str) -> None:
    deadline = time.monotonic() + 30
    while daemon.status()["cameras"]["cam-er-1"]["state"] != state:
        if time.monotonic() > deadline:
            raise TimeoutError(f"camera not {state}")
        time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter windows, fewer cycles")
    args = parser.parse_args()
    seconds, cycles = (6.0, 2) if args.quick else (20.0, 5)
    capture = capture_costs(seconds)
    loss = loss_to_alarm(cycles)
    print(
        f"stream loss -> camera_offline at police (offline_after {OFFLINE_AFTER_S} s): "
        f"p50 {loss['loss_to_alarm'].get('p50_ms')} ms, p99 {loss['loss_to_alarm'].get('p99_ms')}"
        f" ms; beyond offline_after: p50 {loss['overhead'].get('p50_ms')} ms, "
        f"p99 {loss['overhead'].get('p99_ms')} ms"
    )
    emit({"bench": "camera_capture", "machine": machine(), "capture": capture, "loss": loss})


if __name__ == "__main__":
    main()
