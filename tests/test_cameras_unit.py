"""Camera pieces on their own: config checks, the wire format, health decisions, coverage,
evidence files, the police side's snapshot check, and the supervised child process."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from edgeguard.cameras.child import ChildProcess
from edgeguard.cameras.config import CameraConfig, redact_url, with_credentials
from edgeguard.cameras.evidence import EvidenceFiles
from edgeguard.cameras.manager import coverage_report, detector_socket_path
from edgeguard.cameras.runner import CameraRunner
from edgeguard.cameras.wire import MAX_LINE, CaptureSettings, WireError, encode, read_message
from edgeguard.config import EdgeguardConfig, ReferenceProblemsError
from edgeguard.config_loader import ConfigError, load_config
from edgeguard.receiver import Receiver
from edgeguard.signing import Signer, generate_keypair, load_public_key

BASE: dict[str, Any] = {
    "site": {"id": "hosp-01", "name": "市第一人民医院"},
    "signing": {"private_key": "/etc/edgeguard/site.key"},
    "locations": {
        "er": {"label": "急诊分诊台", "zone": "ER", "cameras": ["cam-a", "nvr-cam"]},
        "cashier": {"label": "收费处", "zone": "cashier"},
        "hall": {"label": "挂号大厅", "zone": "registration"},
    },
    "inputs": [{"type": "simulated", "name": "er-button", "location": "er"}],
}


def _config(cameras: list[dict[str, Any]]) -> EdgeguardConfig:
    return EdgeguardConfig.model_validate({**BASE, "cameras": cameras})


def _rtsp(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "location": "er", "stream_url": "rtsp://10.0.0.5/ch1", **extra}


# --- configuration ---------------------------------------------------------------------------
def test_linked_cameras_from_both_sides_in_order() -> None:
    config = _config([_rtsp("cam-a"), _rtsp("cam-b", location="hall", linked_locations=["er"])])
    assert config.cameras_for("er") == ["cam-a", "nvr-cam", "cam-b"]
    assert config.cameras_for("hall") == []
    assert config.unconfigured_cameras() == ["nvr-cam"]  # listed in alarms, no snapshots


@pytest.mark.parametrize(
    ("camera", "message"),
    [
        ({"name": "c", "location": "er"}, "give `stream_url` or `onvif`"),
        (_rtsp("c", stream_url="file:///etc/passwd"), "scheme 'file' not supported"),
        (_rtsp("c", stream_url="10.0.0.5/ch1"), "scheme '(none)' not supported"),
        (_rtsp("c", ptz={"preset": "1"}), "`ptz` needs `onvif`"),
        (
            _rtsp("c", inputs=[{"name": "x", "token": "1", "location": "er"}]),
            "need `onvif` with `events: true`",
        ),
        (_rtsp("c", offline_after=1), "greater than or equal to 2"),
        (_rtsp("c", analysis_fps=0), "greater than 0"),
        (_rtsp("c", colour="red"), "Extra inputs are not permitted"),
    ],
)
def test_bad_camera_config_is_refused(camera: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        _config([camera])
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("cameras", "message"),
    [
        ([_rtsp("c", location="nowhere")], "location 'nowhere' is not defined"),
        ([_rtsp("c", linked_locations=["nowhere"])], "location 'nowhere' is not defined"),
        ([_rtsp("c"), _rtsp("c")], "device name 'c' is used twice"),
        ([_rtsp("er-button")], "device name 'er-button' is used twice"),
        (
            [
                {
                    "name": "c",
                    "location": "er",
                    "onvif": {"host": "10.0.0.6", "username": "u", "password": "p"},
                    "inputs": [{"name": "er-button", "token": "1", "location": "er"}],
                }
            ],
            "alarm source 'er-button' is defined twice",
        ),
    ],
)
def test_camera_cross_references_are_checked(cameras: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        _config(cameras)
    assert message in str(info.value)


def test_camera_errors_point_at_their_yaml_line(tmp_path: Path) -> None:
    path = tmp_path / "edgeguard.yaml"
    path.write_text(
        "site: {id: hosp-01, name: x}\n"
        "signing: {private_key: /k}\n"
        "locations:\n  er: {label: er}\n"
        "cameras:\n"
        "  - name: cam-a\n"
        "    location: nowhere\n"
        "    stream_url: rtsp://10.0.0.5/ch1\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert [str(i) for i in info.value.issues] == [
        f"{path}:7: cameras[0].location: location 'nowhere' is not defined under `locations`"
    ]


def test_reference_problems_error_has_paths() -> None:
    with pytest.raises(ValidationError) as info:
        _config([_rtsp("c", location="nowhere")])
    cause = info.value.errors()[0]["ctx"]["error"]
    assert isinstance(cause, ReferenceProblemsError)
    assert cause.problems[0][0] == ("cameras", 0, "location")


def test_credentials_go_into_the_url_and_never_into_logs() -> None:
    url = with_credentials("rtsp://10.0.0.5:554/ch1?x=1", "admin", "p@ss:w/rd")
    assert url == "rtsp://admin:p%40ss%3Aw%2Frd@10.0.0.5:554/ch1?x=1"
    assert redact_url(url) == "rtsp://admin:***@10.0.0.5:554/ch1?x=1"
    assert with_credentials("rtsp://own:pw@h/c", "admin", "x") == "rtsp://own:pw@h/c"
    assert with_credentials("rtsp://h/c", None, None) == "rtsp://h/c"
    camera = CameraConfig.model_validate(
        {
            "name": "c",
            "location": "er",
            "onvif": {"host": "h", "username": "onvif-user", "password": "onvif-pw"},
        }
    )
    assert camera.stream_credentials() == ("onvif-user", "onvif-pw")  # defaults to ONVIF's


# --- the pipe --------------------------------------------------------------------------------
def test_wire_round_trip_with_blob() -> None:
    stream = io.BytesIO(encode({"type": "snapshot", "size": 4}) + b"\xff\xd8ab" + b'{"a":1}\n')
    assert read_message(stream) == ({"type": "snapshot", "size": 4}, b"\xff\xd8ab")
    assert read_message(stream) == ({"a": 1}, None)
    assert read_message(stream) is None


@pytest.mark.parametrize(
    "data",
    [
        b"not json\n",
        b"[1, 2]\n",
        b'{"size": -1}\n',
        b'{"size": "5"}\n',
        b'{"size": 99999999999}\n',
        b'{"size": 10}\nshort',
        b"x" * (MAX_LINE + 10) + b"\n",
        b'{"truncated": ',
    ],
)
def test_wire_rejects_garbage(data: bytes) -> None:
    with pytest.raises(WireError):
        read_message(io.BytesIO(data))


def test_capture_settings_are_validated() -> None:
    ok = CaptureSettings.from_dict({"name": "c", "url": "rtsp://h/c", "analysis_fps": 5})
    assert CaptureSettings.from_dict(json.loads(encode(ok.to_dict()))) == ok
    for bad in (
        {"name": "c", "url": "rtsp://h/c", "analysis_fps": 0},
        {"name": "c", "url": "rtsp://h/c", "analysis_fps": True},
        {"name": "", "url": "rtsp://h/c", "analysis_fps": 5},
        {"name": "c", "url": "rtsp://h/c"},
        {"name": "c", "url": "rtsp://h/c", "analysis_fps": 5, "shell": "rm -rf /"},
        ["not", "an", "object"],
    ):
        with pytest.raises(WireError):
            CaptureSettings.from_dict(bad)


# --- health decisions ------------------------------------------------------------------------
class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeChild:
    started_at = 0.0
    restarts = 0


def test_offline_after_silence_and_online_on_the_first_frame() -> None:
    clock = FakeClock()
    changes: list[str] = []
    runner = CameraRunner(
        CameraConfig.model_validate(_rtsp("c", offline_after=10)),
        lambda _name, state, _detail: changes.append(state),
        clock=clock,
    )
    runner.child = FakeChild()  # type: ignore[assignment]
    runner.evaluate(clock.now)
    assert runner.state == "starting"  # no frame yet: not online
    clock.now += 9.9
    runner.evaluate(clock.now)
    assert changes == []
    clock.now += 0.2  # 10.1 s after start without a frame
    runner.evaluate(clock.now)
    assert changes == ["offline"]
    runner.stats = {"last_frame_mono": clock.now - 0.1, "fps_in": 10.0}
    runner.evaluate(clock.now)
    assert changes == ["offline", "online"]
    clock.now += 9.0
    runner.evaluate(clock.now)
    assert changes == ["offline", "online"]
    clock.now += 1.5  # the last frame is now 10.6 s old
    runner.evaluate(clock.now)
    assert changes == ["offline", "online", "offline"]
    detail = runner.health_detail(clock.now)
    assert detail["last_frame_age_s"] == 10.6
    assert detail["location"] == "er"


def test_a_frame_from_a_previous_child_does_not_count() -> None:
    clock = FakeClock()
    runner = CameraRunner(CameraConfig.model_validate(_rtsp("c")), lambda *_a: None, clock=clock)
    child = FakeChild()
    child.started_at = clock.now
    runner.child = child  # type: ignore[assignment]
    runner.stats = {"last_frame_mono": clock.now - 5}  # stats of the process before
    assert runner.last_frame() is None


# --- coverage --------------------------------------------------------------------------------
def test_coverage_report_per_key_area() -> None:
    config = _config(
        [
            _rtsp("cam-a"),
            _rtsp("cam-b"),
            _rtsp("cam-c", location="cashier"),
            _rtsp("cam-d", location="hall", key_area="ER", enabled=False),
        ]
    )
    report = coverage_report(config, {"cam-a": "offline", "cam-b": "online", "cam-c": "offline"})
    by_area = {area["key_area"]: area for area in report}
    assert by_area["ER"]["covered"] is True
    assert by_area["ER"]["live"] == 1
    assert [c["name"] for c in by_area["ER"]["cameras"]] == ["cam-a", "cam-b", "cam-d"]
    assert by_area["ER"]["cameras"][2]["state"] == "disabled"
    assert by_area["cashier"]["covered"] is False
    assert by_area["registration"] == {
        "key_area": "registration",
        "locations": ["hall"],
        "cameras": [],
        "live": 0,
        "covered": False,
    }


# --- evidence --------------------------------------------------------------------------------
def test_snapshot_file_is_written_and_described(tmp_path: Path) -> None:
    files = EvidenceFiles(tmp_path / "evidence")
    item = files.save_snapshot("01a2-ev", "cam-a", b"\xff\xd8jpeg", 1_790_000_000.25, "stream")
    path = Path(item["path"])
    assert path.read_bytes() == b"\xff\xd8jpeg"
    assert path.parent == tmp_path / "evidence" / "01a2-ev"
    assert item["sha256"] == hashlib.sha256(b"\xff\xd8jpeg").hexdigest()
    assert item["taken_at"].endswith(".250Z")
    assert not list(path.parent.glob("*.part"))


def test_snapshot_still_described_when_the_disk_refuses(tmp_path: Path) -> None:
    blocked = tmp_path / "evidence"
    blocked.write_text("a file where the folder should be")
    item = EvidenceFiles(blocked).save_snapshot("ev", "cam-a", b"\xff\xd8", 0.0, "stream")
    assert item["path"].startswith("(not stored: ")
    assert item["bytes"] == 2  # still published, the police get it


def test_police_side_checks_snapshots_against_the_signed_evidence(tmp_path: Path) -> None:
    public = generate_keypair(tmp_path / "site.key")
    signer = Signer.from_file(tmp_path / "site.key")
    receiver = Receiver({"hosp-01": load_public_key(public)})
    jpeg = b"\xff\xd8 the image"
    got = receiver.handle("edgeguard/hosp-01/snapshot/ev-1/cam-a", jpeg)
    assert got.kind == "snapshot"
    assert got.blob == jpeg
    assert got.warning is None

    def evidence(sha: str) -> bytes:
        return signer.encode(
            {
                "v": 1,
                "type": "alarm",
                "message": "evidence",
                "site": "hosp-01",
                "event_id": "ev-1",
                "seq": 2,
                "evidence": [{"camera": "cam-a", "kind": "snapshot", "sha256": sha}],
            }
        )

    good = receiver.handle("edgeguard/hosp-01/alarm/b", evidence(hashlib.sha256(jpeg).hexdigest()))
    assert good.warning is None
    bad = receiver.handle("edgeguard/hosp-01/alarm/b", evidence("0" * 64))
    assert bad.warning is not None
    assert "does not match" in bad.warning
    for topic in ("edgeguard/hosp-01/snapshot/ev-1", "edgeguard/nobody/snapshot/e/c"):
        assert receiver.handle(topic, jpeg).warning is not None
    assert receiver.handle("edgeguard/hosp-01/snapshot/e/c", b"").warning is not None


# --- the supervised child --------------------------------------------------------------------
CHILD_SCRIPT = """
import json, os, sys, time
sys.stdin.readline()
print(json.dumps({"type": "hello", "pid": os.getpid()}), flush=True)
mode = os.environ.get("EG_CHILD_MODE", "talk")
if mode == "garbage":
    print("this is not json", flush=True)
    time.sleep(30)
if mode == "silent":
    time.sleep(30)
while True:
    print(json.dumps({"type": "stats"}), flush=True)
    time.sleep(0.1)
"""


@pytest.fixture
def child_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    package = tmp_path / "egchild"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "child.py").write_text(CHILD_SCRIPT)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    return "egchild.child"


async def _run_child(module: str, seconds: float) -> tuple[ChildProcess, list[Any]]:
    messages: list[Any] = []
    child = ChildProcess("test", module, b"{}\n", lambda m, _b: messages.append(m), silence_s=1.0)
    child.start()
    await asyncio.sleep(seconds)
    return child, messages


def test_a_killed_child_is_started_again(
    child_module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EG_CHILD_MODE", "talk")

    async def scenario() -> tuple[int, int, int]:
        child, messages = await _run_child(child_module, 1.5)
        first = child.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        for _ in range(100):
            if child.pid != first:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        hellos = sum(1 for m in messages if m["type"] == "hello")
        restarts, pid = child.restarts, child.pid
        await child.stop()
        assert pid is not None
        return hellos, restarts, pid

    hellos, restarts, pid = asyncio.run(scenario())
    assert restarts == 1
    assert hellos == 2
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # stopped with the supervisor


def test_a_silent_child_is_killed_and_one_that_talks_garbage_too(
    child_module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario(mode: str) -> int:
        monkeypatch.setenv("EG_CHILD_MODE", mode)
        child, _ = await _run_child(child_module, 3.5)
        restarts = child.restarts
        await child.stop()
        return restarts

    assert asyncio.run(scenario("silent")) >= 1
    assert asyncio.run(scenario("garbage")) >= 1


def test_detector_socket_path_fits_a_unix_socket() -> None:
    short = detector_socket_path(Path("/run/edgeguard/control.sock"))
    assert short == Path("/run/edgeguard/detector.sock")
    deep = Path("/var/lib/" + "x" * 120) / "control.sock"
    long_one = detector_socket_path(deep)
    assert len(os.fsencode(long_one)) < 108
    assert long_one != detector_socket_path(Path("/var/lib/" + "y" * 120) / "control.sock")



def test_listen_names_each_evidence_item_by_its_kind() -> None:
    """`edgeguard listen` shows snapshots as snapshots and clips as clips kept at the site."""
    from edgeguard.receiver import render_alarm

    payload = {
        "site": "hosp-01", "site_name": "医院", "kind": "panic", "message": "evidence",
        "priority": 1, "location": {"label": "急诊分诊台"}, "event_id": "x", "seq": 3,
        "evidence": [
            {"kind": "snapshot", "camera": "cam-er-1", "bytes": 36318, "sha256": "d3597dc4ac5c9"},
            {"kind": "clip", "camera": "cam-er-1", "bytes": 996946, "sha256": "b62f90a6d04f1",
             "duration_s": 40.2},
            {"kind": "snapshot", "camera": "cam-er-2", "error": "camera offline"},
        ],
    }  # fmt: skip
    text = render_alarm(payload)
    assert "snapshot cam-er-1: 36318 bytes, sha256 d3597dc4ac5c" in text
    assert "clip cam-er-1: 40.2 s kept at the site, 996946 bytes" in text
    assert "snapshot cam-er-2: camera offline" in text
