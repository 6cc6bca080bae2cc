"""`edgeguard analyze VIDEO --camera NAME -c FILE`: the exact analysis pipeline of a configured
camera run over a video file, for installers tuning zones and thresholds and for measuring
accuracy. One JSON line per analysed frame and one per event (with --json)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import cv2
import numpy as np
import numpy.typing as npt

from edgeguard.analytics.config import AnalyticsConfig
from edgeguard.analytics.overlay import OverlayError, OverlayWriter, check_target
from edgeguard.analytics.pipeline import AnalysisPipeline, AnalyticsEvent, report_json
from edgeguard.analytics.spec import pipeline_spec
from edgeguard.cameras.config import CameraConfig
from edgeguard.config_loader import load_config

logger = logging.getLogger(__name__)

Frame = npt.NDArray[np.uint8]


class AnalyzeError(RuntimeError):
    """The video or the camera cannot be analysed."""


def frames(path: Path, fps: float) -> Iterator[tuple[int, float, Frame]]:
    """(index, video time in s, frame) of the frames due at ``fps``, by the file's clock."""
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise AnalyzeError(f"{path}: cannot open the video")
    rate = capture.get(cv2.CAP_PROP_FPS) or 25.0
    period, next_due, index = 1.0 / fps, 0.0, -1
    try:
        while True:
            if not capture.grab():
                return
            index += 1
            t = index / rate
            if t + 1e-6 < next_due:
                continue
            next_due += period
            ok, frame = capture.retrieve()
            if ok and frame is not None:
                yield index, t, np.asarray(frame, dtype=np.uint8)
    finally:
        capture.release()


class EventPairs:
    """Turns rule transitions into whole events: kind, zone, start, end."""

    def __init__(self) -> None:
        self.open: dict[tuple[str, str | None], tuple[float, dict[str, Any]]] = {}

    def feed(self, event: AnalyticsEvent) -> dict[str, Any] | None:
        key = (event.kind, event.zone)
        if event.active:
            self.open.setdefault(key, (event.at, event.detail))
            return None
        started = self.open.pop(key, None)
        if started is None:
            return None
        return _event(key, started, event.at, still_open=False)

    def close(self, at: float) -> list[dict[str, Any]]:
        ended = [_event(key, started, at, still_open=True) for key, started in self.open.items()]
        self.open.clear()
        return ended


def _event(
    key: tuple[str, str | None],
    started: tuple[float, dict[str, Any]],
    end: float,
    *,
    still_open: bool,
) -> dict[str, Any]:
    return {
        "type": "event",
        "kind": key[0],
        "zone": key[1],
        "start": round(started[0], 3),
        "end": round(end, 3),
        "open_at_end": still_open,
        "detail": started[1],
    }


def analyze(
    video: Path,
    camera: CameraConfig,
    out: TextIO,
    *,
    as_json: bool,
    start: datetime,
    model: Path | None = None,
    overlay: Path | None = None,
) -> int:
    """Run the pipeline over ``video``; the number of events found. With ``overlay``, the
    analysed frames with the reports drawn on them are written there (see overlay.py)."""
    config = camera.analytics or AnalyticsConfig()
    spec = pipeline_spec(config)
    detector = _detector(model or config.detection.model, config) if spec.zones else None
    pipeline = AnalysisPipeline(
        spec, detector, local_time=lambda t: (start + timedelta(seconds=t)).astimezone()
    )
    drawn = OverlayWriter(overlay, spec.zones, camera.analysis_fps) if overlay else None
    try:
        return _analyze(frames(video, camera.analysis_fps), pipeline, out, as_json, drawn)
    finally:
        if drawn is not None:
            drawn.close()


def _analyze(
    source: Iterator[tuple[int, float, Frame]],
    pipeline: AnalysisPipeline,
    out: TextIO,
    as_json: bool,
    drawn: OverlayWriter | None,
) -> int:
    pairs, events, last_t = EventPairs(), 0, 0.0
    for index, t, frame in source:
        report = pipeline.process(frame, t)
        last_t = t
        if drawn is not None:
            drawn.write(frame, report)
        if as_json:
            out.write(json.dumps({"type": "frame", **report_json(report, index)}) + "\n")
        for change in report.events:
            whole = pairs.feed(change)
            if whole is not None:
                events += 1
                _write_event(out, whole, as_json=as_json)
    for whole in pairs.close(last_t):
        events += 1
        _write_event(out, whole, as_json=as_json)
    return events


def _write_event(out: TextIO, event: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        out.write(json.dumps(event, ensure_ascii=False) + "\n")
        return
    zone = f" zone {event['zone']}" if event["zone"] else ""
    tail = " (still on at the end)" if event["open_at_end"] else ""
    out.write(f"{event['kind']}{zone}: {event['start']:.1f} s - {event['end']:.1f} s{tail}\n")


def _detector(model: Path | None, config: AnalyticsConfig) -> Any:
    from edgeguard.analytics.detector import PersonDetector
    from edgeguard.analytics.model_files import find_person_model

    return PersonDetector(find_person_model(model), min_score=config.detection.min_score, threads=1)


def run(args: argparse.Namespace) -> int:
    if args.overlay is not None:
        try:  # before anything else: a long analysis must not end in an unwritable path
            check_target(args.overlay)
        except OverlayError as exc:
            print(f"edgeguard analyze: --overlay {exc}", file=sys.stderr)
            return 1
    config = load_config(args.config)
    cameras = {camera.name: camera for camera in config.cameras}
    camera = cameras.get(args.camera)
    if camera is None:
        known = ", ".join(sorted(cameras)) or "none"
        print(
            f"edgeguard analyze: no camera {args.camera!r} (configured: {known})", file=sys.stderr
        )
        return 1
    start = args.start or datetime.now(UTC)
    from edgeguard.analytics.model_files import ModelError

    try:
        found = analyze(
            args.video,
            camera,
            sys.stdout,
            as_json=args.json,
            start=start,
            model=args.model,
            overlay=args.overlay,
        )
    except (AnalyzeError, ModelError, OverlayError) as exc:
        print(f"edgeguard analyze: {exc}", file=sys.stderr)
        return 1
    if not args.json:
        print(f"{found} event(s)")
    return 0
