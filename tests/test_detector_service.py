"""The shared person detector: the service on a Unix socket and the capture process's client,
on real frames of the footage; garbage and a vanished service never raise."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import cv2
import pytest

from edgeguard.analytics.detector import PersonDetector
from edgeguard.analytics.detector_service import SERVICE_MIN_SCORE, DetectorService
from edgeguard.analytics.model_files import ModelError, find_person_model
from edgeguard.analytics.remote import RemoteDetector
from edgeguard.cameras.wire import encode, read_message
from edgeguard.lab.footage import locate

PERSON_FRAME = 150  # person 1 stands at the table (tests/data/one-by-one-labels.csv)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[DetectorService]:
    try:
        model = find_person_model()
    except ModelError as exc:
        pytest.skip(str(exc))
    path = Path("/tmp") / f"eg-detector-{tmp_path.name[-20:]}.sock"  # AF_UNIX paths are short
    running = DetectorService(PersonDetector(model, min_score=SERVICE_MIN_SCORE), path)
    threading.Thread(target=running.serve, daemon=True).start()
    # not path.exists(): a socket file left by an earlier run would race the service's unlink
    assert running.ready.wait(30), "the detector service did not start listening"
    yield running
    path.unlink(missing_ok=True)


def _frame(index: int) -> cv2.typing.MatLike:
    capture = cv2.VideoCapture(str(locate()))
    capture.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, frame = capture.read()
    capture.release()
    assert ok
    return frame


def test_remote_detection_matches_the_local_detector(service: DetectorService) -> None:
    frame = _frame(PERSON_FRAME)
    remote = RemoteDetector(service.path, min_score=0.2)
    local = PersonDetector(find_person_model(), min_score=0.2)
    try:
        far, near = remote.detect(frame), local.detect(frame)
        assert len(far) == len(near) == 1
        assert far[0].box.iou(near[0].box) > 0.8  # the remote side sees a 300-px copy
        assert remote.detect(_frame(10)) == []  # the empty room
    finally:
        remote.close()
    assert service.requests == 2


def test_garbage_gets_an_error_and_the_service_goes_on(service: DetectorService) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(service.path))
        sock.sendall(encode({"w": 10, "h": 10, "size": 3}) + b"abc")
        with sock.makefile("rb") as reader:
            answer = read_message(reader)
        assert answer is not None
        assert "error" in answer[0]
        sock.sendall(b"not json at all\n")
    remote = RemoteDetector(service.path, min_score=0.2)
    try:
        assert len(remote.detect(_frame(PERSON_FRAME))) == 1
    finally:
        remote.close()


def test_no_service_means_no_people_and_a_logged_error(tmp_path: Path) -> None:
    remote = RemoteDetector(tmp_path / "absent.sock", min_score=0.2)
    assert remote.detect(_frame(PERSON_FRAME)) == []
    assert remote.error is not None
    assert remote.detect(_frame(PERSON_FRAME)) == []  # backing off, no new attempt
