"""The whole analysis pipeline and `edgeguard analyze` on the real footage, against the hand
labels in tests/data (people visible per frame range of the one-by-one clip)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edgeguard.analytics.analyze import analyze, frames
from edgeguard.analytics.model_files import ModelError, find_person_model
from edgeguard.analytics.pipeline import AnalysisPipeline, in_schedule
from edgeguard.analytics.spec import PipelineSpec, ZoneSpec, pipeline_spec
from edgeguard.cameras.config import CameraConfig
from edgeguard.cli import main
from edgeguard.lab.footage import locate
from edgeguard.signing import generate_keypair

LABELS = Path(__file__).parent / "data" / "one-by-one-labels.csv"
FPS = 10.0  # the clip's frame rate
TABLE = [[345, 311], [553, 311], [553, 423], [345, 423]]  # around the standing table, 768x432


def _model_or_skip() -> Path:
    try:
        return find_person_model()
    except ModelError as exc:
        pytest.skip(str(exc))


def _camera(**analytics: Any) -> CameraConfig:
    return CameraConfig.model_validate(
        {
            "name": "cam-er-1",
            "location": "er",
            "stream_url": "rtsp://127.0.0.1:1/cam1",
            "analytics": {"frame_size": [768, 432], **analytics},
        }
    )


def _visits() -> list[tuple[float, float]]:
    """Labelled stretches with a person at the table: (start, end) in seconds."""
    with LABELS.open(encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["phase"] == "at_table"]
    return [(int(r["start_frame"]) / FPS, (int(r["end_frame"]) + 1) / FPS) for r in rows]


def _run(camera: CameraConfig) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    out = io.StringIO()
    analyze(locate(), camera, out, as_json=True, start=datetime(2026, 11, 23, 12, tzinfo=UTC))
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    return [x for x in lines if x["type"] == "frame"], [x for x in lines if x["type"] == "event"]


def test_crowd_alarms_match_the_labelled_visits() -> None:
    """min_people=1 makes every visit at the table a 'crowd': precision and recall of the
    alarm intervals against the labels (the clip never has two people)."""
    _model_or_skip()
    crowd = {"min_people": 1, "for_s": 3, "clear_after_s": 2}
    zone = {"name": "table", "polygon": TABLE, "crowd": crowd}
    frame_lines, events = _run(_camera(zones=[zone]))
    crowd = [(e["start"], e["end"]) for e in events if e["kind"] == "crowd"]
    visits = _visits()
    hits = [v for v in visits if any(s < v[1] and e > v[0] for s, e in crowd)]
    true_alarms = [c for c in crowd if any(c[0] < v[1] and c[1] > v[0] for v in visits)]
    assert len(hits) == len(visits) == 6  # recall 1.0
    assert len(true_alarms) == len(crowd) == 6  # precision 1.0
    for (start, _end), (visit_start, _) in zip(sorted(crowd), sorted(visits), strict=True):
        assert visit_start - 3 <= start <= visit_start + 8  # raised within seconds
    assert all(e["detail"]["count"] >= 1 for e in events if e["kind"] == "crowd")
    assert len(frame_lines) == pytest.approx(1394 / 2, abs=3)  # 5 fps of a 10 fps clip
    counted = [f for f in frame_lines if f["people"] is not None]
    assert counted  # the detector ran, gated by motion
    assert all(set(f["counts"]) == {"table"} for f in frame_lines)


def test_two_people_needed_means_no_crowd_on_this_clip() -> None:
    _model_or_skip()
    zone = {"name": "table", "polygon": TABLE, "crowd": {"min_people": 2, "for_s": 3}}
    _, events = _run(_camera(zones=[zone]))
    assert not [e for e in events if e["kind"] == "crowd"]


def test_count_error_per_frame_against_labels() -> None:
    """Smoothed count of the whole-frame zone, frame by frame, against the labels."""
    _model_or_skip()
    whole = [[0, 0], [768, 0], [768, 432], [0, 432]]
    zone = {"name": "room", "polygon": whole}
    frame_lines, _ = _run(_camera(zones=[zone], detection={"interval": 0.2, "idle_interval": 1}))
    truth: dict[int, int] = {}
    with LABELS.open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            for i in range(int(row["start_frame"]), int(row["end_frame"]) + 1):
                truth[i] = int(row["people"])
    errors = [abs(f["counts"]["room"] - truth[f["frame"]]) for f in frame_lines]
    mae = sum(errors) / len(errors)
    exact = errors.count(0) / len(errors)
    assert mae < 0.15
    assert exact > 0.85


def test_no_zones_means_no_detector_and_motion_only() -> None:
    frame_lines, events = _run(_camera())
    assert all(f["people"] is None for f in frame_lines)
    assert any(f["motion"] for f in frame_lines)
    assert not [e for e in events if e["kind"] in ("crowd", "tamper")]


def test_covered_view_is_tamper_in_the_pipeline() -> None:
    spec = pipeline_spec(_camera().analytics)  # type: ignore[arg-type]
    pipeline = AnalysisPipeline(spec, detector=None)
    real = [item[2] for _, item in zip(range(80), frames(locate(), 5.0), strict=False)]
    t, raised, restored = 0.0, None, None
    for frame in real[:60]:  # learn the view
        pipeline.process(frame, t)
        t += 0.2
    black = np.zeros_like(real[0])
    for _ in range(40):  # covered for 8 s
        for event in pipeline.process(black, t).events:
            if event.kind == "tamper" and event.active:
                raised = (t, event.detail["reason"])
        t += 0.2
    for frame in real[60:80] * 3:  # uncovered
        for event in pipeline.process(frame, t).events:
            if event.kind == "tamper" and not event.active:
                restored = t
        t += 0.2
    assert raised is not None
    assert raised[1] == "covered"
    assert restored is not None


def test_spec_survives_the_pipe() -> None:
    camera = _camera(
        zones=[
            {
                "name": "store",
                "polygon": TABLE,
                "motion_alarm": {"days": ["mon"], "start": "22:00", "end": "06:00"},
                "crowd": {"min_people": 3, "for_s": 10, "clear_below": 2},
            }
        ],
        motion={"masks": [[[0, 0], [100, 0], [100, 100]]]},
    )
    spec = pipeline_spec(camera.analytics)  # type: ignore[arg-type]
    again = PipelineSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec
    assert spec.zones[0].polygon[0] == pytest.approx((345 / 768, 311 / 432))


@pytest.mark.parametrize(
    ("when", "inside"),
    [
        ("2026-11-23T23:00", True),  # Monday night
        ("2026-11-24T05:59", True),  # Tuesday early morning: the Monday window
        ("2026-11-24T06:00", False),
        ("2026-11-24T23:00", False),  # Tuesday night: not a window day
        ("2026-11-23T21:59", False),
    ],
)
def test_night_window(when: str, inside: bool) -> None:
    window = {"days": ["mon"], "start": "22:00", "end": "06:00"}
    assert in_schedule(window, datetime.fromisoformat(when)) is inside


def test_analyze_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _model_or_skip()
    generate_keypair(tmp_path / "site.key")
    config = tmp_path / "edgeguard.yaml"
    config.write_text(
        "site: {id: hosp-01, name: x}\n"
        f"signing: {{private_key: {tmp_path / 'site.key'}}}\n"
        "locations: {er: {label: 急诊}}\n"
        "cameras:\n"
        "  - name: cam-er-1\n"
        "    location: er\n"
        "    stream_url: rtsp://127.0.0.1:1/cam1\n"
        "    analytics:\n"
        "      frame_size: [768, 432]\n"
        f"      zones: [{{name: table, polygon: {TABLE},\n"
        "               crowd: {min_people: 1, for_s: 3, clear_after_s: 2}}]\n",
        encoding="utf-8",
    )
    assert main(["analyze", str(locate()), "--camera", "cam-er-1", "-c", str(config)]) == 0
    text = capsys.readouterr().out
    assert text.count("crowd zone table:") == 6
    argv = ["analyze", str(locate()), "--camera", "cam-er-1", "-c", str(config), "--json"]
    assert main(argv) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    detected = [x for x in lines if x["type"] == "frame" and x["people"]]
    assert detected
    for line in detected:  # a score for every box
        assert len(line["scores"]) == len(line["people"])
        assert all(0.0 < s <= 1.0 for s in line["scores"])
    assert main(["analyze", str(locate()), "--camera", "nope", "-c", str(config)]) == 1
    assert "no camera 'nope'" in capsys.readouterr().err
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    assert main(["analyze", str(broken), "--camera", "cam-er-1", "-c", str(config)]) == 1
    assert "cannot open the video" in capsys.readouterr().err


def test_a_broken_frame_size_is_refused() -> None:
    with pytest.raises(ValueError, match="outside the 768x432 frame_size"):
        _camera(zones=[{"name": "z", "polygon": [[0, 0], [900, 0], [0, 10]]}])
    with pytest.raises(ValueError, match="clear_below"):
        _camera(
            zones=[{"name": "z", "polygon": TABLE, "crowd": {"min_people": 2, "clear_below": 3}}]
        )


def test_real_frame_shape_reaches_the_pipeline() -> None:
    _, _, frame = next(frames(locate(), 5.0))
    assert frame.shape == (432, 768, 3)
    assert cv2.mean(frame)[0] > 10


TREE_PX = [[32, 0], [240, 0], [240, 108], [320, 132], [320, 240], [32, 240]]  # tree.avi foliage
HAND_FRAME = 53  # from here a hand reaches into the view (the detector may call it a person)


def _tree_clip() -> Path:
    from edgeguard.lab.footage import search_dirs

    for folder in search_dirs():
        if (folder / "tree.avi").is_file():
            return folder / "tree.avi"
    pytest.skip("tree.avi not available")


def test_tree_clip_no_person_and_no_motion_alarm_in_a_masked_zone() -> None:
    """tree.avi: foliage swaying behind a window, no person until a hand reaches in at the
    end. With the tree masked, a zone over it whose motion is an alarm all day raises nothing,
    and nobody is counted while only the tree moves."""
    _model_or_skip()
    camera = CameraConfig.model_validate(
        {
            "name": "cam-window",
            "location": "er",
            "stream_url": "rtsp://127.0.0.1:1/cam1",
            "analysis_fps": 15,
            "analytics": {
                "frame_size": [320, 240],
                "motion": {"masks": [TREE_PX]},
                "detection": {"interval": 0.2, "idle_interval": 1},
                "zones": [
                    {
                        "name": "garden",
                        "polygon": TREE_PX,
                        "crowd": {"min_people": 1, "for_s": 0, "clear_after_s": 1},
                        "motion_alarm": {"start": "00:00", "end": "23:59"},
                    }
                ],
            },
        }
    )
    out = io.StringIO()
    analyze(_tree_clip(), camera, out, as_json=True, start=datetime(2026, 11, 23, 12, tzinfo=UTC))
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    frame_lines = [x for x in lines if x["type"] == "frame"]
    before_hand = [f for f in frame_lines if f["frame"] < HAND_FRAME]
    assert len(before_hand) > 45
    assert all(f["counts"]["garden"] == 0 for f in before_hand)
    assert sum(f["people"] is not None for f in before_hand) >= 3  # the detector did look
    alarms = [x for x in lines if x["type"] == "event" and x["kind"] in ("crowd", "motion")]
    assert not [x for x in alarms if x["start"] < HAND_FRAME / 15]


class _CountingDetector:
    def __init__(self) -> None:
        self.calls = 0

    def detect(self, frame_bgr: Any, region: Any = None) -> list[Any]:
        self.calls += 1
        return []


@pytest.mark.parametrize(("interval", "every"), [(0.1, 1), (0.5, 5), (1.0, 10)])
def test_the_detector_runs_on_every_frame_due(interval: float, every: int) -> None:
    """10 fps, frame times as a camera gives them (index / rate, rounding included)."""
    zone = ZoneSpec("all", ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)))
    spec = PipelineSpec(tamper=None, zones=(zone,), detect_interval=interval,
                        idle_interval=interval)  # fmt: skip
    detector = _CountingDetector()
    pipeline = AnalysisPipeline(spec, detector)
    frame = np.zeros((48, 64, 3), dtype=np.uint8)
    ran = [pipeline.process(frame, i / 10.0).people is not None for i in range(100)]
    assert ran == [i % every == 0 for i in range(100)]
    assert detector.calls == 100 // every
