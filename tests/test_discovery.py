"""WS-Discovery probe and the `discover` command, against the fake camera's unicast responder
and a hostile one, all on 127.0.0.1."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from edgeguard.cameras.discover_args import add_discover_arguments
from edgeguard.cameras.discovery import (
    DiscoveredDevice,
    camera_name,
    describe,
    interface_ipv4,
    parse_probe_matches,
    probe,
    probe_message,
    render_snippets,
    run_discover,
)
from edgeguard.cameras.onvif_answers import OnvifError
from edgeguard.config_base import NAME_PATTERN
from edgeguard.lab.fake_onvif import FakeOnvifCamera

SUB = "rtsp://127.0.0.1:8554/sub"


@pytest.fixture
def camera() -> Iterator[FakeOnvifCamera]:
    with FakeOnvifCamera("admin", "pw", discovery_port=0,
                         stream_uris={"sub": SUB, "main": "rtsp://u:secret@127.0.0.1/main"}) as cam:
        yield cam


def target(cam: FakeOnvifCamera) -> tuple[str, int]:
    assert cam.discovery_port is not None
    return ("127.0.0.1", cam.discovery_port)


def found(cam: FakeOnvifCamera, **kwargs: Any) -> list[DiscoveredDevice]:
    return asyncio.run(probe(target=target(cam), timeout_s=0.5, **kwargs))


def namespace(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="edgeguard discover")
    add_discover_arguments(parser)
    return parser.parse_args(list(argv))


# --- probe --------------------------------------------------------------------------------


def test_probe_finds_the_camera_with_its_xaddr(camera: FakeOnvifCamera) -> None:
    devices = found(camera, interface="lo")
    assert len(devices) == 1  # the Probe goes out twice; the answers are de-duplicated
    device = devices[0]
    assert device.epr == camera.endpoint_reference
    assert device.xaddrs == (f"http://127.0.0.1:{camera.port}/onvif/device_service",)
    assert (device.host, device.port, device.sender) == ("127.0.0.1", camera.port, "127.0.0.1")
    assert "dn:NetworkVideoTransmitter" in device.types
    assert (device.name, device.hardware) == ("Lab Camera", "FAKE-IPC-1")


def test_the_fake_ignores_probes_for_other_types(camera: FakeOnvifCamera) -> None:
    other = probe_message("urn:uuid:1").replace(b"dn:NetworkVideoTransmitter",
                                               b"dn:NetworkVideoDisplay")
    assert camera.probe_matches(other) is None
    assert camera.probe_matches(probe_message("urn:uuid:1")) is not None
    assert camera.probe_matches(b"\x00garbage") is None


class Hostile:
    """Answers any datagram with garbage, then one valid ProbeMatches from `camera`."""

    def __init__(self, camera: FakeOnvifCamera) -> None:
        self.camera = camera
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def garbage(self, probe_id: str) -> list[bytes]:
        valid = self.camera.probe_matches(probe_message(probe_id)) or b""
        return [
            b"\xff\xfe\x00 not xml at all",
            b"<" * 60000,
            b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;">]>'
            b"<d>&b;</d>",
            b"<Envelope><Body><ProbeMatches></ProbeMatches></Body></Envelope>",
            b"<html><body>hello</body></html>",
            valid.replace(probe_id.encode(), b"urn:uuid:someone-else"),  # another probe's
            valid.replace(b"<d:XAddrs>", b"<d:XAddrs>javascript:alert(1) "),
        ]

    def serve(self) -> None:
        while not self.stop.is_set():
            try:
                datagram, sender = self.sock.recvfrom(65536)
            except TimeoutError:
                continue
            probe_id = re.search(rb"<a:MessageID>([^<]+)<", datagram)
            assert probe_id is not None
            for junk in self.garbage(probe_id.group(1).decode()):
                self.sock.sendto(junk, sender)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2)
        self.sock.close()


def test_garbage_datagrams_are_ignored(camera: FakeOnvifCamera) -> None:
    hostile = Hostile(camera)
    try:
        devices = asyncio.run(probe(target=("127.0.0.1", hostile.port), timeout_s=0.5))
    finally:
        hostile.close()
    assert [(d.epr, d.xaddrs) for d in devices] == [(camera.endpoint_reference, (camera.xaddr,))]


def test_probe_to_a_silent_port_finds_nothing() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert asyncio.run(probe(target=("127.0.0.1", port), timeout_s=0.3)) == []


# --- parsing ------------------------------------------------------------------------------

MATCHES = """<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://www.w3.org/2003/05/soap-envelope"
 xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing"
 xmlns:wsdd="http://docs.oasis-open.org/ws-dd/ns/discovery/2009/01">
 <SOAP-ENV:Header><wsa:RelatesTo>urn:uuid:probe-1</wsa:RelatesTo></SOAP-ENV:Header>
 <SOAP-ENV:Body><wsdd:ProbeMatches>
  <wsdd:ProbeMatch>
   <wsa:EndpointReference><wsa:Address>urn:uuid:cam-a</wsa:Address></wsa:EndpointReference>
   <wsdd:Types>tdn:NetworkVideoTransmitter tds:Device</wsdd:Types>
   <wsdd:Scopes>onvif://www.onvif.org/name/HIKVISION%20DS-2CD2143G2-I
    onvif://www.onvif.org/hardware/DS-2CD2143G2-I onvif://www.onvif.org/location/city/hangzhou
   </wsdd:Scopes>
   <wsdd:XAddrs>http://[fe80::1]/onvif/device_service http://192.168.1.64/onvif/device_service
   </wsdd:XAddrs>
  </wsdd:ProbeMatch>
  <wsdd:ProbeMatch>
   <wsdd:Types>dn:NetworkVideoTransmitter</wsdd:Types>
   <wsdd:XAddrs>https://192.168.1.65:8443/onvif/device_service</wsdd:XAddrs>
  </wsdd:ProbeMatch>
  <wsdd:ProbeMatch><wsa:EndpointReference><wsa:Address>urn:uuid:cam-c</wsa:Address>
   </wsa:EndpointReference></wsdd:ProbeMatch>
 </wsdd:ProbeMatches></SOAP-ENV:Body></SOAP-ENV:Envelope>"""


def test_parse_probe_matches_reads_real_shapes() -> None:
    a, b, c = parse_probe_matches(MATCHES.encode(), "192.168.1.64", relates_to="urn:uuid:probe-1")
    assert (a.epr, a.host, a.port) == ("urn:uuid:cam-a", "192.168.1.64", 80)  # IPv4 preferred
    assert len(a.xaddrs) == 2
    assert (a.name, a.hardware, a.location) == ("HIKVISION DS-2CD2143G2-I", "DS-2CD2143G2-I",
                                                "city/hangzhou")
    assert (b.epr, b.host, b.port) == ("https://192.168.1.65:8443/onvif/device_service",
                                       "192.168.1.65", 8443)
    assert (c.epr, c.xaddrs, c.host, c.port) == ("urn:uuid:cam-c", (), None, None)
    assert parse_probe_matches(MATCHES.encode(), "x", relates_to="urn:uuid:other") == []


@pytest.mark.parametrize("datagram", [
    b"", b"\x00" * 100, b"<a>", b"<Envelope/>", b"x" * 70000,
    b"<Envelope><Body><ProbeMatches><ProbeMatch><XAddrs>file:///etc/passwd ftp://x"
    b"</XAddrs></ProbeMatch></ProbeMatches></Body></Envelope>",
])
def test_parse_probe_matches_takes_no_garbage(datagram: bytes) -> None:
    devices = parse_probe_matches(datagram, "10.0.0.9")
    assert all(d.host is None and d.xaddrs == () for d in devices)


def test_interface_addresses() -> None:
    assert interface_ipv4("lo") == "127.0.0.1"
    assert interface_ipv4("127.0.0.1") == "127.0.0.1"
    with pytest.raises(ValueError, match="no IPv4"):
        interface_ipv4("nonexistent0")


def test_camera_names_are_valid_config_names() -> None:
    hostile = parse_probe_matches(
        b"<Envelope><Body><ProbeMatches><ProbeMatch><Scopes>onvif://www.onvif.org/name/"
        b"..%2F..%0A-%20name%3A%20evil" + b"x" * 200 + b"</Scopes><XAddrs>http://10.1.2.3/onvif/"
        b"device_service</XAddrs></ProbeMatch></ProbeMatches></Body></Envelope>", "10.1.2.3")[0]
    for device in (hostile, *parse_probe_matches(MATCHES.encode(), "192.168.1.64")):
        assert re.match(NAME_PATTERN, camera_name(device)), camera_name(device)
    assert camera_name(parse_probe_matches(MATCHES.encode(), "1")[0]) == (
        "hikvision-ds-2cd2143g2-i-192-168-1-64")


# --- describe and the command -------------------------------------------------------------


def test_describe_makes_a_config_snippet(camera: FakeOnvifCamera) -> None:
    (device,) = found(camera)
    snippet = asyncio.run(describe(device, "admin", "pw", password_env="CAM_PW"))
    assert snippet["name"] == "lab-camera-127-0-0-1"
    assert snippet["location"] == "CHANGE-ME"
    assert snippet["onvif"] == {"host": "127.0.0.1", "port": camera.port, "username": "admin",
                                "password": {"env": "CAM_PW"}, "profile": "Profile_2"}
    assert "EdgeGuardLab FAKE-IPC-1" in snippet["comment"]
    profiles = {p["token"]: p for p in snippet["profiles"]}
    assert profiles["Profile_2"]["stream_uri"] == SUB
    assert profiles["Profile_2"]["analysis"]
    assert profiles["Profile_1"]["resolution"] == "1920x1080"
    assert "secret" not in profiles["Profile_1"]["stream_uri"]  # credentials never printed


def test_describe_with_a_wrong_password_is_an_auth_error(camera: FakeOnvifCamera) -> None:
    (device,) = found(camera)
    with pytest.raises(OnvifError) as caught:
        asyncio.run(describe(device, "admin", "nope"))
    assert caught.value.auth


def test_run_discover_prints_yaml_to_paste(camera: FakeOnvifCamera,
                                           capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB_CAMERA_PASSWORD", "pw")
    host, port = target(camera)
    args = namespace("--target", f"{host}:{port}", "--timeout", "0.5", "--interface", "lo",
                     "--username", "admin", "--password-env", "LAB_CAMERA_PASSWORD")
    assert run_discover(args) == 0
    out = capsys.readouterr().out
    assert yaml.safe_load(out) == [{
        "name": "lab-camera-127-0-0-1", "location": "CHANGE-ME",
        "onvif": {"host": "127.0.0.1", "port": camera.port, "username": "admin",
                  "password": {"env": "LAB_CAMERA_PASSWORD"}, "profile": "Profile_2"}}]
    assert "# EdgeGuardLab FAKE-IPC-1, firmware" in out
    assert f"Profile_2 subStream H264 640x360 25 fps {SUB}  <- analysis" in out
    assert "pw" not in re.sub(r"[a-z]pw|pw[a-z_]", "", out)


def test_run_discover_without_credentials_still_prints_a_snippet(
        camera: FakeOnvifCamera, capsys: pytest.CaptureFixture[str]) -> None:
    host, port = target(camera)
    assert run_discover(namespace("--target", f"{host}:{port}", "--timeout", "0.5")) == 0
    out = capsys.readouterr().out
    (entry,) = yaml.safe_load(out)
    assert entry["onvif"]["username"] == "CHANGE-ME"
    assert entry["onvif"]["password"] == {"env": "CAMERA_PASSWORD"}
    assert "not verified: no credentials given" in out


def test_run_discover_says_why_when_credentials_are_refused(
        camera: FakeOnvifCamera, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB_CAMERA_PASSWORD", "wrong")
    host, port = target(camera)
    args = namespace("--target", f"{host}:{port}", "--timeout", "0.5", "--username", "admin",
                     "--password-env", "LAB_CAMERA_PASSWORD")
    assert run_discover(args) == 0
    out = capsys.readouterr().out
    assert "not verified: the camera refused the credentials" in out
    assert yaml.safe_load(out)[0]["onvif"]["username"] == "admin"


def test_run_discover_names_a_skewed_clock_when_credentials_are_refused(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB_CAMERA_PASSWORD", "pw")
    with FakeOnvifCamera("admin", "pw", discovery_port=0, clock_needs_auth=True,
                         max_token_age_s=5) as cam:
        cam.clock_offset_s = -600
        host, port = target(cam)
        args = namespace("--target", f"{host}:{port}", "--timeout", "0.5", "--username",
                         "admin", "--password-env", "LAB_CAMERA_PASSWORD")
        assert run_discover(args) == 0
    out = capsys.readouterr().out
    assert re.search(r"the camera refused the credentials, and its clock is -(599|600|601) s "
                     r"off", out), out


def test_run_discover_fails_when_nothing_answers(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert run_discover(namespace("--target", f"127.0.0.1:{port}", "--timeout", "0.3")) == 1
    assert "no ONVIF camera answered" in capsys.readouterr().err


class Responder:
    """Answers each Probe on 127.0.0.1 with `reply(probe_id)`, a crafted datagram."""

    def __init__(self, reply: Callable[[str], bytes]) -> None:
        self.reply = reply
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while not self.stop.is_set():
            try:
                datagram, sender = self.sock.recvfrom(65536)
            except TimeoutError:
                continue
            probe_id = re.search(rb"<a:MessageID>([^<]+)<", datagram)
            if probe_id is not None:
                self.sock.sendto(self.reply(probe_id.group(1).decode()), sender)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2)
        self.sock.close()


@contextlib.contextmanager
def responder(reply: Callable[[str], bytes]) -> Iterator[Responder]:
    answering = Responder(reply)
    try:
        yield answering
    finally:
        answering.close()


def bare_probe_match(probe_id: str, body_tag: str = "d:ProbeMatch") -> bytes:
    """A ProbeMatch straight in the Body, without the ProbeMatches wrapper (as ipycam sends)."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?><s:Envelope '
        'xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
        'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
        'xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery"><s:Header>'
        f"<a:RelatesTo>{probe_id}</a:RelatesTo></s:Header><s:Body><{body_tag}>"
        "<a:EndpointReference><a:Address>urn:uuid:ipycam-1</a:Address></a:EndpointReference>"
        "<d:Types>dn:NetworkVideoTransmitter</d:Types>"
        "<d:Scopes>onvif://www.onvif.org/name/ipycam</d:Scopes>"
        "<d:XAddrs>http://127.0.0.1:8080/onvif/device_service</d:XAddrs>"
        f"</{body_tag}></s:Body></s:Envelope>"
    ).encode()


def test_a_bare_probe_match_in_the_body_is_a_camera(
        capsys: pytest.CaptureFixture[str]) -> None:
    with responder(bare_probe_match) as answering:
        devices = asyncio.run(probe(target=("127.0.0.1", answering.port), timeout_s=0.5))
        code = run_discover(namespace("--target", f"127.0.0.1:{answering.port}",
                                      "--timeout", "0.5"))
    assert [(d.epr, d.host, d.port, d.name) for d in devices] == [
        ("urn:uuid:ipycam-1", "127.0.0.1", 8080, "ipycam")]
    assert code == 0
    assert yaml.safe_load(capsys.readouterr().out)[0]["onvif"]["port"] == 8080


@pytest.mark.parametrize(("reply", "reason"), [
    (lambda probe_id: bare_probe_match(probe_id, "d:Hello"),
     "no ProbeMatches or ProbeMatch in the SOAP body"),
    (lambda probe_id: b"<html><body>hello</body></html>", "not a SOAP envelope"),
    (lambda probe_id: bare_probe_match("urn:uuid:another"), "it answers another probe"),
    (lambda probe_id: b"\xff\xfe not xml", "unreadable XML"),
])
def test_run_discover_says_who_answered_and_why_the_answer_was_dropped(
        reply: Callable[[str], bytes], reason: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    with responder(reply) as answering:
        code = run_discover(namespace("--target", f"127.0.0.1:{answering.port}",
                                      "--timeout", "0.5"))
    err = capsys.readouterr().err
    assert code == 1
    assert f"127.0.0.1 answered, but its answer was dropped: {reason}" in err
    assert "no ONVIF camera answered" not in err


@pytest.mark.parametrize("argv", [["--target", "camera.local:3702"], ["--target", "1.2.3.4"],
                                  ["--timeout", "0"], ["--timeout", "x"],
                                  ["--password", "secret"]])
def test_bad_options_are_usage_errors(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        namespace(*argv)
    assert caught.value.code == 2


def test_rendered_comments_cannot_inject_config() -> None:
    snippet = {"name": "cam", "location": "CHANGE-ME", "onvif": {"host": "10.0.0.1"},
               "comment": "model\n- name: injected\n  location: x",
               "profiles": [{"token": "P\n- name: also", "name": "n", "encoding": "H264",
                             "resolution": "1x1", "fps": 1.0, "stream_uri": None}]}
    assert [e["name"] for e in yaml.safe_load(render_snippets([snippet]))] == ["cam"]
