"""Measure OpenCV (FFmpeg backend) behaviour against a loopback RTSP server.

usage: measure_cv.py SERVER_KIND URL [--fault kill|stop|term] [--opts OPTS] [--open-ms N] [--read-ms N]
SERVER_KIND picks how the server is started (see start_server)."""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
VENV_BIN = os.path.join(HERE, "venv", "bin")
DATA = "/work/shared/data"


def wait_port(port: int, timeout: float = 10.0) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return time.monotonic() - t0
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"port {port} never opened")


def start_server(kind: str, port: int) -> subprocess.Popen[bytes]:
    if kind == "aio":
        cmd = [os.path.join(VENV_BIN, "rtsp-server"), "--dir", DATA, "-H", "127.0.0.1",
               "-p", str(port), "-cp", str(port - 1)]
    elif kind == "gst":
        cmd = ["/usr/bin/python3", os.path.join(HERE, "gst_rtsp.py"), str(port)]
    else:
        raise SystemExit(kind)
    p = subprocess.Popen(cmd, stdout=open(os.path.join(HERE, f"{kind}-measure.log"), "ab"),
                         stderr=subprocess.STDOUT, start_new_session=True)
    dt = wait_port(port)
    print(f"server {kind} pid={p.pid} listening after {dt:.2f}s", flush=True)
    return p


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("kind")
    ap.add_argument("url")
    ap.add_argument("--port", type=int, default=18554)
    ap.add_argument("--fault", default="kill")
    ap.add_argument("--opts", default="rtsp_transport;tcp")
    ap.add_argument("--open-ms", type=int, default=3000)
    ap.add_argument("--read-ms", type=int, default=3000)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--threads", type=int, default=-1)
    a = ap.parse_args()
    os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = a.opts
    import cv2  # after env is set

    srv = start_server(a.kind, a.port)
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, a.open_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, a.read_ms]
    if a.threads >= 0:
        params += [cv2.CAP_PROP_N_THREADS, a.threads]

    def open_cap() -> tuple[cv2.VideoCapture, float]:
        t0 = time.monotonic()
        cap = cv2.VideoCapture(a.url, cv2.CAP_FFMPEG, params)
        return cap, time.monotonic() - t0

    try:
        cap, dt = open_cap()
        print(f"open: isOpened={cap.isOpened()} in {dt:.3f}s backend={cap.getBackendName()} "
              f"size={cap.get(cv2.CAP_PROP_FRAME_WIDTH):.0f}x{cap.get(cv2.CAP_PROP_FRAME_HEIGHT):.0f} "
              f"fps_prop={cap.get(cv2.CAP_PROP_FPS)}", flush=True)
        t0 = time.monotonic()
        ok, frame = cap.read()
        print(f"first frame ok={ok} after {time.monotonic()-t0:.3f}s shape={None if frame is None else frame.shape}")
        t0 = time.monotonic()
        n = 0
        for _ in range(a.frames):
            ok, frame = cap.read()
            if not ok:
                break
            n += 1
        el = time.monotonic() - t0
        print(f"read {n} frames in {el:.2f}s -> {n/el:.1f} fps", flush=True)

        # fault
        sig = {"kill": signal.SIGKILL, "term": signal.SIGTERM, "stop": signal.SIGSTOP}[a.fault]
        os.killpg(srv.pid, sig)
        tk = time.monotonic()
        print(f"sent SIG{a.fault.upper()} to server", flush=True)
        good = 0
        while True:
            t1 = time.monotonic()
            ok, _ = cap.read()
            if not ok:
                print(f"read() -> False {time.monotonic()-tk:.3f}s after fault (last call took "
                      f"{time.monotonic()-t1:.3f}s, {good} buffered frames still returned)", flush=True)
                break
            good += 1
            print(f"  read ok #{good} took {time.monotonic()-t1:.3f}s", flush=True)
            if time.monotonic() - tk > 120:
                print("still reading 120s after fault!?")
                break
        t1 = time.monotonic()
        ok, _ = cap.read()
        print(f"second read after failure: ok={ok} took {time.monotonic()-t1:.3f}s")
        cap.release()

        if a.fault == "stop":
            os.killpg(srv.pid, signal.SIGKILL)
        srv.wait()
        # reopen while down
        cap, dt = open_cap()
        print(f"open while server down: isOpened={cap.isOpened()} in {dt:.3f}s", flush=True)
        cap.release()
        # restore
        srv = start_server(a.kind, a.port)
        cap, dt = open_cap()
        ok, _ = cap.read()
        print(f"reopen after restart: isOpened={cap.isOpened()} in {dt:.3f}s, read ok={ok}", flush=True)
        cap.release()
    finally:
        try:
            os.killpg(srv.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        srv.wait()


if __name__ == "__main__":
    main()
