"""The capture process's end of the shared person detector (detector_service.py). It has the
interface of PersonDetector; when the service is away it answers "nobody" (counts fall to 0,
which clears crowd alarms rather than raising false ones), logs it once and tries again after a
back-off."""

from __future__ import annotations

import logging
import socket
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from edgeguard.analytics.detector import Detection
from edgeguard.analytics.geometry import Box
from edgeguard.cameras.wire import WireError, encode, read_message

logger = logging.getLogger(__name__)

Frame = npt.NDArray[np.uint8]
RETRY_S = 5.0


class RemoteDetector:
    def __init__(
        self, path: Path, *, min_score: float, input_side: int = 300, timeout_s: float = 5.0
    ) -> None:
        self.path = path
        self.min_score = min_score
        self.input_side = input_side
        self.timeout_s = timeout_s
        self._sock: socket.socket | None = None
        self._retry_at = 0.0
        self.error: str | None = None

    def detect(self, frame_bgr: Frame, region: Box | None = None) -> list[Detection]:
        if region is not None:
            raise ValueError("the shared detector takes whole frames")
        if time.monotonic() < self._retry_at:
            return []
        try:
            boxes = self._ask(self._small(frame_bgr))
        except (OSError, WireError, ValueError) as exc:
            self._fail(str(exc))
            return []
        if self.error is not None:
            logger.info("person detector service back")
            self.error = None
        return [
            Detection(Box(float(x), float(y), float(w), float(h)), float(score))
            for x, y, w, h, score in boxes
            if score >= self.min_score
        ]

    def _small(self, frame: Frame) -> Frame:
        """Shorter side down to the model's input (the service would shrink it anyway): a
        quarter of the bytes of a 720p frame cross the socket."""
        image: Any = frame
        if frame.ndim == 2:
            image = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        elif frame.shape[2] == 4:
            image = cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
        height, width = image.shape[:2]
        scale = self.input_side / min(height, width)
        if scale < 1:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(image, dtype=np.uint8)

    def _ask(self, frame: Frame) -> list[list[float]]:
        sock = self._connect()
        height, width = frame.shape[:2]
        data = frame.tobytes()
        sock.sendall(encode({"w": width, "h": height, "size": len(data)}) + data)
        with sock.makefile("rb") as reader:
            item = read_message(reader)
        if item is None:
            raise OSError("the detector service closed the connection")
        answer = item[0]
        if "error" in answer:
            raise ValueError(str(answer["error"]))
        boxes = answer.get("boxes")
        if not isinstance(boxes, list):
            raise WireError("bad answer")
        return boxes

    def _connect(self) -> socket.socket:
        if self._sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.timeout_s)
            try:
                sock.connect(str(self.path))
            except OSError:
                sock.close()
                raise
            self._sock = sock
        return self._sock

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _fail(self, reason: str) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self.error is None:
            logger.error("person detector service unavailable (%s); counting paused", reason)
        self.error = reason
        self._retry_at = time.monotonic() + RETRY_S
