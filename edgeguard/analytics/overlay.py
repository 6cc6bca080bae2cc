"""`edgeguard analyze --overlay OUT`: the analysed frames with what the pipeline saw drawn on
them, for an installer to look at instead of reading JSON: the zones (named polygons), each
person box with the detector's score, the count per zone, motion boxes, and the events as text
on the frames they happen on (and a line per alarm while it is active). OUT is a video file
(.mp4 or .avi) or a directory of PNG frames (frame-000001.png ...)."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from edgeguard.analytics.geometry import Box
from edgeguard.analytics.pipeline import AnalyticsEvent, FrameReport
from edgeguard.analytics.spec import ZoneSpec

Frame = npt.NDArray[np.uint8]
VIDEO_CODECS = {".mp4": "mp4v", ".avi": "MJPG"}
ZONE_COLOUR = (255, 200, 0)  # BGR: cyan-blue
PERSON_COLOUR = (0, 255, 0)
MOTION_COLOUR = (0, 200, 255)
EVENT_COLOUR = (0, 0, 255)
FONT = cv2.FONT_HERSHEY_SIMPLEX
EVENT_HOLD_FRAMES = 10  # a transition's text stays this many frames, so it can be seen


class OverlayError(RuntimeError):
    """The overlay cannot be written where asked."""


def check_target(out: Path) -> str:
    """``"video"`` or ``"frames"`` for ``out``, or an OverlayError naming the path: checked
    before the analysis starts, by creating what will be written (a new file is removed)."""
    suffix = out.suffix.lower()
    if out.is_dir() or not suffix:
        _check_dir(out)
        return "frames"
    if suffix not in VIDEO_CODECS:
        raise OverlayError(f"{out}: not .mp4, .avi or a directory for PNG frames")
    parent = out.parent
    if not parent.is_dir():
        raise OverlayError(f"{out}: the directory {parent} does not exist")
    existed = out.exists()
    try:
        with out.open("ab"):
            pass
    except OSError as exc:
        raise OverlayError(f"{out}: cannot write ({exc.strerror or exc})") from exc
    if not existed:
        out.unlink()
    return "video"


def _check_dir(out: Path) -> None:
    if not out.parent.is_dir():
        raise OverlayError(f"{out}: the directory {out.parent} does not exist")
    try:
        out.mkdir(exist_ok=True)
    except OSError as exc:
        raise OverlayError(f"{out}: cannot create the directory ({exc.strerror or exc})") from exc
    if not os.access(out, os.W_OK | os.X_OK):
        raise OverlayError(f"{out}: the directory is not writable")
    probe = out / ".edgeguard-overlay-probe"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise OverlayError(f"{out}: cannot write in the directory ({exc.strerror or exc})") from exc


class OverlayWriter:
    """Draws each analysed frame's report and writes it to the video or the PNG directory."""

    def __init__(self, out: Path, zones: tuple[ZoneSpec, ...], fps: float) -> None:
        self.out = out
        self.kind = check_target(out)
        self.zones = zones
        self.fps = fps
        self.written = 0
        self._video: cv2.VideoWriter | None = None
        self._people: tuple[Box, ...] = ()
        self._scores: tuple[float, ...] = ()
        self._active: dict[tuple[str, str | None], str] = {}
        self._recent: list[tuple[int, str]] = []  # (frame written until, text)

    def write(self, frame: Frame, report: FrameReport) -> None:
        if report.people is not None:  # between detector runs the last boxes are shown
            self._people, self._scores = report.people, report.scores or ()
        self._note(report.events)
        image = self.draw(frame, report)
        self.written += 1
        if self.kind == "frames":
            path = self.out / f"frame-{self.written:06d}.png"
            if not cv2.imwrite(str(path), image):
                raise OverlayError(f"{path}: cannot write the PNG")
            return
        self._writer(image).write(image)

    def close(self) -> None:
        if self._video is not None:
            self._video.release()
            self._video = None

    def _writer(self, image: Frame) -> cv2.VideoWriter:
        if self._video is None:
            fourcc = cv2.VideoWriter.fourcc(*VIDEO_CODECS[self.out.suffix.lower()])
            size = (image.shape[1], image.shape[0])
            video = cv2.VideoWriter(str(self.out), fourcc, self.fps, size)
            if not video.isOpened():
                raise OverlayError(f"{self.out}: OpenCV cannot open a video writer for it")
            self._video = video
        return self._video

    def _note(self, events: tuple[AnalyticsEvent, ...]) -> None:
        until = self.written + EVENT_HOLD_FRAMES
        self._recent = [(u, text) for u, text in self._recent if u > self.written]
        for event in events:
            name = event.kind + (f" {event.zone}" if event.zone else "")
            key = (event.kind, event.zone)
            if event.active:
                self._active[key] = f"{name} ACTIVE since {event.at:.1f} s"
            else:
                self._active.pop(key, None)
            state = "starts" if event.active else "ends"
            self._recent.append((until, f"{event.at:.1f} s: {name} {state}"))

    def draw(self, frame: Frame, report: FrameReport) -> Frame:
        image = _bgr(frame)
        height, width = image.shape[:2]
        scale = max(0.6, min(width, height) / 480)
        for box in report.motion:
            _rect(image, box, MOTION_COLOUR, 1)
        for zone in self.zones:
            _zone(image, zone, report.counts.get(zone.name, 0), scale)
        for i, box in enumerate(self._people):
            score = self._scores[i] if i < len(self._scores) else None
            _person(image, box, score, scale)
        lines = [f"{name}: {report.counts.get(name, 0)}" for name in (z.name for z in self.zones)]
        lines.append(f"t {report.t:.1f} s  frame {self.written + 1}")
        alerts = list(self._active.values()) + [text for _, text in self._recent]
        step = round(24 * scale)  # bottom left: the zones' labels are at their top left
        top = height - 8 - step * (len(lines) + len(alerts) + 1)
        _text_block(image, alerts, (8, top), EVENT_COLOUR, scale)
        _text_block(image, lines, (8, top + step * len(alerts)), (255, 255, 255), scale)
        return image


def _bgr(frame: Frame) -> Frame:
    if frame.ndim == 2 or frame.shape[2] == 1:
        return np.asarray(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR), dtype=np.uint8)
    if frame.shape[2] == 4:
        return np.asarray(cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR), dtype=np.uint8)
    return frame.copy()


def _px(image: Frame, x: float, y: float) -> tuple[int, int]:
    height, width = image.shape[:2]
    return (round(x * (width - 1)), round(y * (height - 1)))


def _rect(image: Frame, box: Box, colour: tuple[int, int, int], thickness: int) -> None:
    cv2.rectangle(image, _px(image, box.x, box.y), _px(image, box.x2, box.y2), colour, thickness)


def _person(image: Frame, box: Box, score: float | None, scale: float) -> None:
    _rect(image, box, PERSON_COLOUR, max(2, round(2 * scale)))
    if score is not None:
        x, y = _px(image, box.x, box.y)
        _label(image, f"{score:.2f}", (x, max(y - 4, 14)), PERSON_COLOUR, scale)


def _zone(image: Frame, zone: ZoneSpec, count: int, scale: float) -> None:
    points = np.array([_px(image, x, y) for x, y in zone.polygon], dtype=np.int32)
    cv2.polylines(image, [points], True, ZONE_COLOUR, max(2, round(2 * scale)))
    x, y = int(points[:, 0].min()), int(points[:, 1].min())
    _label(image, f"{zone.name}: {count}", (x + 4, y + round(22 * scale)), ZONE_COLOUR, scale)


def _label(
    image: Frame, text: str, origin: tuple[int, int], colour: tuple[int, int, int], scale: float
) -> None:
    """Text on a dark backing, readable on any scene."""
    size = 0.6 * scale
    thickness = max(1, round(1.5 * scale))
    (w, h), base = cv2.getTextSize(text, FONT, size, thickness)
    x, y = origin
    cv2.rectangle(image, (x - 2, y - h - 3), (x + w + 2, y + base), (0, 0, 0), -1)
    cv2.putText(image, text, (x, y), FONT, size, colour, thickness, cv2.LINE_AA)


def _text_block(
    image: Frame,
    lines: list[str],
    origin: tuple[int, int],
    colour: tuple[int, int, int],
    scale: float,
) -> None:
    step = round(24 * scale)
    x, y = origin
    for i, line in enumerate(lines):
        _label(image, line, (x + 2, y + step * (i + 1)), colour, scale)
