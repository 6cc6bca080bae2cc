"""What a capture process runs beside its read loop when configured: the analysis pipeline
(in its own thread, always on the latest frame, so a slow detection never stalls decoding)
and the evidence-clip recorder. Both report to the daemon over the process's channel."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edgeguard.cameras.wire import CaptureSettings, ChildChannel

logger = logging.getLogger(__name__)

Frame = npt.NDArray[np.uint8]


class AnalysisWorker:
    """Runs the pipeline on the newest frame; frames that arrive while it is busy replace the
    waiting one (dropped, counted)."""

    def __init__(self, settings: CaptureSettings, channel: ChildChannel) -> None:
        from edgeguard.analytics.pipeline import AnalysisPipeline
        from edgeguard.analytics.spec import PipelineSpec

        assert settings.analytics is not None
        spec = PipelineSpec.from_dict(settings.analytics)
        self.pipeline = AnalysisPipeline(spec, _detector(settings) if spec.zones else None)
        self.channel = channel
        self.name = settings.name
        self._slot: tuple[Frame, float] | None = None
        self._ready = threading.Condition()
        self.dropped = 0
        self.analysed = 0
        self.busy_s = 0.0
        self.counts: dict[str, int] = {}

    def offer(self, frame: Frame, wall: float) -> None:
        """A frame consumer of the capture loop: cheap, never blocks on the analysis."""
        with self._ready:
            if self._slot is not None:
                self.dropped += 1
            self._slot = (frame, wall)
            self._ready.notify()

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            with self._ready:
                if self._slot is None:
                    self._ready.wait(0.5)
                item, self._slot = self._slot, None
            if item is not None:
                self._analyse(*item)

    def _analyse(self, frame: Frame, wall: float) -> None:
        started = time.perf_counter()
        try:
            report = self.pipeline.process(frame, wall)
        except Exception:
            logger.exception("camera %s: analysis failed on a frame", self.name)
            return
        self.busy_s += time.perf_counter() - started
        self.analysed += 1
        self.counts = report.counts
        for event in report.events:
            self.channel.send({"type": "analytics", **event.to_dict()})

    def stats(self) -> dict[str, Any]:
        return {
            "analysed": self.analysed,
            "dropped": self.dropped,
            "analysis_ms": round(1000 * self.busy_s / self.analysed, 2) if self.analysed else None,
            "counts": self.counts,
        }


def _detector(settings: CaptureSettings) -> Any:
    if settings.detector_socket is not None:
        from edgeguard.analytics.remote import RemoteDetector

        return RemoteDetector(Path(settings.detector_socket), min_score=settings.min_score)
    from edgeguard.analytics.detector import PersonDetector
    from edgeguard.analytics.model_files import find_person_model

    model = find_person_model(Path(settings.model) if settings.model else None)
    return PersonDetector(model, min_score=settings.min_score, threads=1)


class Clips:
    """The clip recorder of this camera, and the daemon's clip requests."""

    def __init__(self, settings: CaptureSettings, channel: ChildChannel) -> None:
        from edgeguard.analytics.recorder import ClipRecorder, RecorderSettings

        assert settings.clip_url is not None
        self.channel = channel
        self.recorder = ClipRecorder(
            RecorderSettings(
                url=settings.clip_url,
                pre_s=settings.clip_pre_s,
                post_s=settings.clip_post_s,
                rtsp_transport=settings.rtsp_transport,
            )
        )
        self.recorder.start()

    def request(self, command: dict[str, Any]) -> None:
        request_id = command.get("id")

        def done(result: Any, error: str | None) -> None:
            if result is None:
                self.channel.send({"type": "clip", "id": request_id, "error": error or "failed"})
                return
            self.channel.send(
                {
                    "type": "clip",
                    "id": request_id,
                    "path": str(result.path),
                    "start_wall": result.start_wall,
                    "end_wall": result.end_wall,
                    "duration_s": round(result.duration_s, 3),
                    "bytes": result.bytes,
                    "sha256": result.sha256,
                    "codec": result.codec,
                    "width": result.width,
                    "height": result.height,
                    "gaps": result.gaps,
                }
            )

        try:
            self.recorder.request_clip(
                float(command["alarm_wall"]),
                Path(str(command["path"])),
                pre_s=float(command["pre_s"]),
                post_s=float(command["post_s"]),
                done=done,
            )
        except (KeyError, TypeError, ValueError) as exc:
            done(None, f"bad clip request: {exc}")

    def stop(self) -> None:
        self.recorder.stop()
