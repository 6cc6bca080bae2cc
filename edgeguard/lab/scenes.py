"""People counting measured per scene on labelled multi-person footage (tests and benchmarks only).

The scenes are intel-iot-devkit/sample-videos' GIF previews (CC-BY-4.0, Intel), found beside the
repository like the other footage (``edgeguard.lab.footage``, never downloaded); their per-frame
person counts were labelled by eye and are kept in ``tests/data/<clip>-labels.csv`` (how, and the
counting rule: tests/data/README.md).

``evaluate`` runs the product's own path, that of ``edgeguard analyze``: a camera config with a
whole-frame zone and a crowd rule, the documented defaults otherwise, ``analysis_fps`` = the
clip's frame rate, and the detector either at its default interval (``mode="default"``: 1 s while
there is motion near the zone, 10 s without) or on every analysed frame (``mode="every_frame"``:
the spec's detection intervals set to the frame period, below the config's 0.1 s floor for the
16.7 fps clips; nothing else differs). Every frame is scored: the zone's smoothed count (held
between detector runs, as the pipeline reports it) against the label, and on the frames the
detector ran, its raw number of boxes.

Two whole-frame zones count the same people, each with a crowd rule held for ``CROWD_FOR_S``:
``crowd`` at ``min_people`` = the scene's labelled crowd (``Scene.crowd``), which should be
raised, and ``above`` at one person more, which the labels never reach: any alarm there is a
false crowd (over-counting). The labelled alarm intervals come from the same rule
(``CrowdRule``) fed the labelled counts, so precision and recall compare like with like."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from edgeguard.analytics import analyze as analyze_module
from edgeguard.analytics.pipeline import AnalysisPipeline
from edgeguard.analytics.rules import CrowdRule, CrowdSettings
from edgeguard.analytics.spec import pipeline_spec
from edgeguard.cameras.config import CameraConfig
from edgeguard.lab.footage import Footage, locate

REPO_ROOT = Path(__file__).resolve().parents[2]
LABELS_DIR = REPO_ROOT / "tests" / "data"
ZONE = "crowd"  # the scene's crowd rule; ABOVE: one person more
ABOVE = "above"
CROWD_FOR_S = 1.0  # the clips last 1.8 to 4.3 s: a crowd held for 1 s
CROWD_CLEAR_AFTER_S = 0.5
WARMUP_S = 1.0  # the clips start with people in view: a track is counted once seen for 0.5 s
START = datetime(2026, 12, 5, 12, tzinfo=UTC)  # daytime: no night window applies anyway
Mode = Literal["default", "every_frame"]
MODES: tuple[Mode, ...] = ("default", "every_frame")

Interval = tuple[float, float]


@dataclass(frozen=True)
class Scene:
    """A labelled clip. ``crowd``: the ``min_people`` of its crowd rule (the scene's largest
    labelled group that lasts longer than ``CROWD_FOR_S``)."""

    name: str
    sha256: str
    fps: float
    frames: int
    size: tuple[int, int]
    crowd: int

    @property
    def footage(self) -> Footage:
        return Footage(f"{self.name}.gif", self.sha256, None)

    @property
    def labels_path(self) -> Path:
        return LABELS_DIR / f"{self.name}-labels.csv"


SCENES: tuple[Scene, ...] = (
    Scene("classroom", "9efb6cab2f7392aa3bd15320313db691cfc97270a37cd2b48791f3b032b69da8",
          50 / 3, 45, (480, 270), 4),
    Scene("store-aisle-detection",
          "8f29af471b7df06c4eda38b72c22a86ee4779dfeff91c750b4f8087441ddb4d3",
          50 / 3, 67, (480, 270), 3),
    Scene("worker-zone-detection",
          "258a1df000dfdb488f2992ecc02ed262e7ecf03f638c3f5d1736b26718783447",
          50 / 3, 71, (480, 270), 1),
    Scene("face-demographics-walking",
          "d85689169bdf1735b75c31b5cdf985f25a3fa92a6448e25f529f655002f22b3c",
          12.5, 35, (480, 270), 2),
    Scene("face-demographics-walking-and-pause",
          "6483ce22b1228ecc48f89b591cb99c09ba24e1468bdda5fbfebaae9bcca59dc8",
          12.5, 41, (480, 270), 3),
    Scene("people-detection", "fa63d51a370464652cb902f73de8940292c8b4561c595b92fe252ad23be0f1d9",
          12.5, 23, (480, 270), 1),
)  # fmt: skip


# --- labels ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Label:
    count: int  # people with any recognisable part in view
    partial: int  # of which only a head, a limb or a sliver shows
    note: str


def read_labels(path: Path) -> list[Label]:
    """A clip's labels, one per frame from 0 (columns ``frame,count,partial,note``)."""
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    frames = [int(row["frame"]) for row in rows]
    if frames != list(range(len(rows))):
        raise ValueError(f"{path}: frames must be 0, 1, 2, ... without gaps")
    labels = [Label(int(r["count"]), int(r["partial"]), r["note"]) for r in rows]
    if any(not 0 <= label.partial <= label.count for label in labels):
        raise ValueError(f"{path}: partial must be between 0 and count")
    return labels


# --- the figures -------------------------------------------------------------------------------
def count_errors(predicted: Sequence[int], truth: Sequence[int]) -> dict[str, float]:
    """Per-frame count error: mean absolute error, bias (mean of predicted - truth: positive
    is over-counting), the largest absolute error, the share of frames exactly right."""
    if len(predicted) != len(truth) or not truth:
        raise ValueError("predicted and truth: the same number of frames, at least one")
    diffs = [p - t for p, t in zip(predicted, truth, strict=True)]
    n = len(diffs)
    return {
        "frames": n,
        "mae": sum(abs(d) for d in diffs) / n,
        "bias": sum(diffs) / n,
        "max_error": max(abs(d) for d in diffs),
        "exact": sum(d == 0 for d in diffs) / n,
    }


def crowd_intervals(
    counts: Sequence[tuple[float, int]], settings: CrowdSettings, end: float
) -> list[Interval]:
    """The crowd rule's alarm intervals (from the time it is raised to the time it clears, as
    `edgeguard analyze` reports them) for a series of (time, count); one still on at the last
    sample ends at ``end``."""
    rule = CrowdRule(ZONE, settings)
    out: list[Interval] = []
    start: float | None = None
    for t, count in counts:
        event = rule.update(count, t)
        if event is None:
            continue
        if event.active:
            start = event.at
        elif start is not None:
            out.append((start, event.at))
            start = None
    if start is not None:
        out.append((start, end))
    return out


def _length(intervals: Sequence[Interval]) -> float:
    return sum(max(0.0, b - a) for a, b in intervals)


def _shared(a: Sequence[Interval], b: Sequence[Interval]) -> float:
    return sum(max(0.0, min(x2, y2) - max(x1, y1)) for x1, x2 in a for y1, y2 in b)


def alarm_scores(predicted: Sequence[Interval], truth: Sequence[Interval]) -> dict[str, Any]:
    """Precision and recall of alarm intervals against the labelled ones, two ways: by
    interval (an alarm is right when it overlaps a labelled one, a labelled one is found when
    an alarm overlaps it; as tests/test_detector.py counts them) and by time (seconds of alarm
    inside labelled alarm / seconds of alarm, and / seconds of labelled alarm). None where
    there is nothing to divide by (no alarm, no labelled alarm)."""

    def overlaps(x: Interval, y: Interval) -> bool:
        return x[0] < y[1] and y[0] < x[1]

    right = [p for p in predicted if any(overlaps(p, t) for t in truth)]
    found = [t for t in truth if any(overlaps(p, t) for p in predicted)]
    shared = _shared(predicted, truth)
    return {
        "precision": len(right) / len(predicted) if predicted else None,
        "recall": len(found) / len(truth) if truth else None,
        "time_precision": shared / _length(predicted) if _length(predicted) > 0 else None,
        "time_recall": shared / _length(truth) if _length(truth) > 0 else None,
    }


# --- running the product's pipeline ------------------------------------------------------------
def scene_camera(scene: Scene) -> CameraConfig:
    """The camera config of a scene: defaults, two whole-frame zones with the scene's crowd
    rule and one person more (see the module's docstring), analysis at the clip's frame rate."""
    width, height = scene.size
    polygon = [[0, 0], [width, 0], [width, height], [0, height]]
    zones = [
        {"name": name, "polygon": polygon,
         "crowd": {"min_people": people, "for_s": CROWD_FOR_S,
                   "clear_after_s": CROWD_CLEAR_AFTER_S}}
        for name, people in ((ZONE, scene.crowd), (ABOVE, scene.crowd + 1))
    ]  # fmt: skip
    return CameraConfig.model_validate(
        {
            "name": "cam-scene",
            "location": "scene",
            "stream_url": "rtsp://127.0.0.1:1/scene",
            "analysis_fps": scene.fps,
            "analytics": {"frame_size": [width, height], "zones": zones},
        }
    )


def run_analysis(
    video: Path, camera: CameraConfig, mode: Mode, model: Path | None = None
) -> list[dict[str, Any]]:
    """The JSON lines ``edgeguard analyze --json`` writes for ``video``; ``every_frame`` runs
    the same functions with the spec's detection intervals set to the frame period."""
    out = io.StringIO()
    if mode == "default":
        analyze_module.analyze(video, camera, out, as_json=True, start=START, model=model)
    else:
        config = camera.analytics
        assert config is not None
        period = 1.0 / camera.analysis_fps
        spec = replace(pipeline_spec(config), detect_interval=period, idle_interval=period)
        detector = analyze_module._detector(model or config.detection.model, config)
        pipeline = AnalysisPipeline(
            spec, detector, local_time=lambda t: (START + timedelta(seconds=t)).astimezone()
        )
        source = analyze_module.frames(video, camera.analysis_fps)
        analyze_module._analyze(source, pipeline, out, True, None)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def evaluate(scene: Scene, mode: Mode, *, model: Path | None = None) -> dict[str, Any]:
    """The figures of one scene in one mode (see the module's docstring)."""
    video = locate(scene.footage, download=False)
    labels = read_labels(scene.labels_path)
    lines = run_analysis(video, scene_camera(scene), mode, model)
    frames = [x for x in lines if x["type"] == "frame"]
    if [f["frame"] for f in frames] != list(range(len(labels))):
        raise RuntimeError(f"{scene.name}: analysed frames do not match the {len(labels)} labels")
    truth = [label.count for label in labels]
    smoothed = [int(f["counts"][ZONE]) for f in frames]
    ran = [i for i, f in enumerate(frames) if f["people"] is not None]
    raw = [len(frames[i]["people"]) for i in ran]
    period = 1.0 / scene.fps
    end = len(labels) * period
    warm = math.ceil(WARMUP_S / period - 1e-9)
    labelled = [(i * period, n) for i, n in enumerate(truth)]
    rules = {}
    for zone, people in ((ZONE, scene.crowd), (ABOVE, scene.crowd + 1)):
        settings = CrowdSettings(people, CROWD_FOR_S, clear_after_s=CROWD_CLEAR_AFTER_S)
        truth_alarms = crowd_intervals(labelled, settings, end)
        alarms = [
            (float(e["start"]), end if e["open_at_end"] else float(e["end"]))
            for e in lines
            if e["type"] == "event" and e["kind"] == "crowd" and e["zone"] == zone
        ]
        rules[zone] = {
            "rule": {"min_people": people, "for_s": CROWD_FOR_S,
                     "clear_after_s": CROWD_CLEAR_AFTER_S},
            "labelled": [(round(a, 3), round(b, 3)) for a, b in truth_alarms],
            "alarms": [(round(a, 3), round(b, 3)) for a, b in alarms],
            "scores": alarm_scores(alarms, truth_alarms),
            "alarm_s": round(_length(alarms), 3),
        }  # fmt: skip
    return {
        "scene": scene.name,
        "mode": mode,
        "frames": len(labels),
        "fps": round(scene.fps, 2),
        "detector_runs": len(ran),
        "people_max": max(truth),
        "counted": count_errors(smoothed, truth),
        "counted_after_warmup": count_errors(smoothed[warm:], truth[warm:]),
        "raw_on_detector_frames": count_errors(raw, [truth[i] for i in ran]),
        "crowd": rules[ZONE],
        "crowd_plus_one": rules[ABOVE],
        "per_frame": {"truth": truth, "counted": smoothed,
                      "raw": {str(i): n for i, n in zip(ran, raw, strict=True)}},
    }  # fmt: skip
