"""`edgeguard analyze --overlay OUT` on the real footage: a video or PNG frames, one per analysed
frame, with the zones, boxes, scores, counts and events drawn; an unwritable OUT is refused
before the analysis starts."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeguard.analytics.analyze import frames
from edgeguard.analytics.model_files import ModelError, find_person_model
from edgeguard.cli import main
from edgeguard.lab.footage import composed, locate
from edgeguard.signing import generate_keypair

TABLE = [[345, 311], [553, 311], [553, 423], [345, 423]]  # around the standing table, 768x432


@pytest.fixture(scope="module")
def clip() -> Path:
    """8 s of the clip: a person walks up to the table (visit 5)."""
    try:
        find_person_model()
    except ModelError as exc:
        pytest.skip(str(exc))
    return composed(locate(), [(96.0, 104.0)], "overlay-8s")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    generate_keypair(tmp_path / "site.key")
    path = tmp_path / "edgeguard.yaml"
    path.write_text(
        "site: {id: hosp-01, name: x}\n"
        f"signing: {{private_key: {tmp_path / 'site.key'}}}\n"
        "locations: {er: {label: er}}\n"
        "cameras:\n"
        "  - name: cam-er-1\n"
        "    location: er\n"
        "    stream_url: rtsp://127.0.0.1:1/cam1\n"
        "    analysis_fps: 5\n"
        "    analytics:\n"
        "      frame_size: [768, 432]\n"
        f"      zones: [{{name: table, polygon: {TABLE},\n"
        "               crowd: {min_people: 1, for_s: 1, clear_after_s: 2}}]\n",
        encoding="utf-8",
    )
    return path


def _analyze(
    clip: Path, config: Path, out: Path, capsys: pytest.CaptureFixture[str]
) -> list[dict[str, object]]:
    argv = ["analyze", str(clip), "--camera", "cam-er-1", "-c", str(config), "--json"]
    assert main([*argv, "--overlay", str(out)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    return [x for x in lines if x["type"] == "frame"]


def _video_frames(path: Path) -> Iterator[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened()
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                return
            yield frame
    finally:
        capture.release()


def _border_differs(drawn: np.ndarray, original: np.ndarray, box: list[float]) -> bool:
    """Whether the pixels along the left edge of a normalised box were drawn over."""
    height, width = original.shape[:2]
    x = round(box[0] * (width - 1))
    y1, y2 = round(box[1] * (height - 1)), round((box[1] + box[3]) * (height - 1))
    column = slice(max(x - 1, 0), x + 2)
    diff = np.abs(drawn[y1:y2, column].astype(int) - original[y1:y2, column].astype(int))
    return float(diff.mean()) > 40


@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
def test_overlay_video(
    suffix: str, clip: Path, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / f"out{suffix}"
    reports = _analyze(clip, config, out, capsys)
    written = list(_video_frames(out))
    assert len(written) == len(reports) > 10
    assert written[0].shape == (432, 768, 3)
    originals = [frame for _, _, frame in frames(clip, 5.0)]
    index = next(i for i, r in enumerate(reports) if r["people"])
    box = reports[index]["people"][0]  # type: ignore[index]
    assert _border_differs(written[index], originals[index], box)


def test_overlay_png_frames(
    clip: Path, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "frames"
    reports = _analyze(clip, config, out, capsys)
    pngs = sorted(out.glob("frame-*.png"))
    assert len(pngs) == len(reports)
    assert pngs[0].name == "frame-000001.png"
    originals = [frame for _, _, frame in frames(clip, 5.0)]
    drawn = [(i, r) for i, r in enumerate(reports) if r["people"]]
    assert drawn
    for i, report in drawn[:5]:
        image = cv2.imread(str(pngs[i]))
        for box in report["people"]:  # type: ignore[attr-defined]
            assert _border_differs(image, originals[i], box)
    # the zone's outline is drawn on every frame, even one without a person
    first = cv2.imread(str(pngs[0]))
    x = TABLE[0][0]
    assert not np.array_equal(first[320:420, x], originals[0][320:420, x])


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("missing/out.mp4", "does not exist"),
        ("missing/frames", "does not exist"),
        ("out.gif", "not .mp4, .avi or a directory"),
        ("a-file/out.mp4", "does not exist"),
    ],
)
def test_unwritable_overlay_is_refused_before_the_analysis(
    name: str, message: str, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a-file").write_text("x", encoding="utf-8")
    out = tmp_path / name
    video = tmp_path / "no-such-video.mp4"  # the analysis would fail on it: it never starts
    argv = ["analyze", str(video), "--camera", "cam-er-1", "-c", str(config)]
    assert main([*argv, "--overlay", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert str(out) in err
    assert message in err
    assert "cannot open the video" not in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_read_only_directory_is_refused(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        argv = ["analyze", str(tmp_path / "x.mp4"), "--camera", "cam-er-1", "-c", str(config)]
        assert main([*argv, "--overlay", str(locked / "out.mp4")]) == 1
        assert "cannot write" in capsys.readouterr().err
    finally:
        locked.chmod(0o700)


def test_a_path_the_kernel_refuses(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """/proc refuses new files even to root: the probe write catches it."""
    argv = ["analyze", str(tmp_path / "x.mp4"), "--camera", "cam-er-1", "-c", str(config)]
    assert main([*argv, "--overlay", "/proc/edgeguard-overlay.mp4"]) == 1
    err = capsys.readouterr().err
    assert "/proc/edgeguard-overlay.mp4: cannot write" in err
