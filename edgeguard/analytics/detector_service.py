"""One person detector for every camera: ``python -m edgeguard.analytics.detector_service``.

The daemon starts it (supervised like the capture processes) when a camera counts people. It
loads the ONNX model once and answers the capture processes on a Unix socket, so a camera's
process does not carry its own onnxruntime session (~75 MB and more each). Requests are served
one at a time: one detection takes ~19 ms here, and cameras ask at most once a second each.

Wire format (edgeguard.cameras.wire): request {"w": W, "h": H, "size": W*H*3} + BGR bytes;
answer {"boxes": [[x, y, w, h, score], ...]} (normalised) or {"error": "..."}."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgeguard.cameras.wire import WireError, child_start, encode, read_message

logger = logging.getLogger(__name__)

SERVICE_MIN_SCORE = 0.1  # clients keep what passes their own min_score
MAX_SIDE = 4096


class DetectorService:
    def __init__(self, detector: Any, path: Path) -> None:
        self.detector = detector
        self.path = path
        self.lock = threading.Lock()
        self.requests = 0
        self.busy_s = 0.0
        self.ready = threading.Event()  # set once clients can connect

    def serve(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(self.path))
        self.path.chmod(0o600)
        server.listen(16)
        self.ready.set()
        logger.info("person detector serving on %s", self.path)
        while True:
            conn, _ = server.accept()
            threading.Thread(target=self._client, args=(conn,), daemon=True).start()

    def _client(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as reader:
            while True:
                try:
                    item = read_message(reader)
                except WireError as exc:
                    logger.warning("detector client sent garbage: %s", exc)
                    return
                if item is None:
                    return
                conn.sendall(encode(self.answer(*item)))

    def answer(self, request: dict[str, Any], blob: bytes | None) -> dict[str, Any]:
        width, height = request.get("w"), request.get("h")
        if not isinstance(width, int) or not isinstance(height, int):
            return {"error": "w and h must be integers"}
        if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
            return {"error": "bad frame size"}
        if blob is None or len(blob) != width * height * 3:
            return {"error": "frame bytes do not match w x h x 3"}
        frame = np.frombuffer(blob, np.uint8).reshape(height, width, 3)
        started = time.perf_counter()
        with self.lock:
            detections = self.detector.detect(frame)
        self.busy_s += time.perf_counter() - started
        self.requests += 1
        return {"boxes": [[d.box.x, d.box.y, d.box.w, d.box.h, d.score] for d in detections]}


def _heartbeat(service: DetectorService, channel: Any) -> None:
    while True:
        ms = 1000 * service.busy_s / service.requests if service.requests else None
        channel.send({"type": "alive", "requests": service.requests, "ms": ms})
        time.sleep(2.0)


def main() -> int:
    channel, raw = child_start("detector", "EDGEGUARD_DETECTOR_LOG")
    from edgeguard.analytics.detector import PersonDetector
    from edgeguard.analytics.model_files import find_person_model

    model = find_person_model(Path(raw["model"]) if raw.get("model") else None)
    detector = PersonDetector(
        model, min_score=SERVICE_MIN_SCORE, threads=int(raw.get("threads", 1))
    )
    service = DetectorService(detector, Path(str(raw["socket"])))

    def watch_parent() -> None:
        for _ in channel.commands():
            pass
        os._exit(0)  # stdin closed: the daemon is gone or asked us to stop

    threading.Thread(target=watch_parent, daemon=True).start()
    threading.Thread(target=_heartbeat, args=(service, channel), daemon=True).start()
    service.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
