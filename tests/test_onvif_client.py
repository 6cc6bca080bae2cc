"""The ONVIF client against the fake camera (edgeguard.lab.fake_onvif), and the pure event
normalisation on topics and answers shaped like real cameras' (docs/cameras-onvif.md)."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest

from edgeguard.cameras.onvif_answers import OnvifError
from edgeguard.cameras.onvif_client import MAX_SNAPSHOT_BYTES, OnvifDevice
from edgeguard.cameras.onvif_events import OnvifEvent, classify_topic, parse_pull_messages
from edgeguard.lab.fake_onvif import DEFAULT_JPEG, FakeOnvifCamera

T = TypeVar("T")
MAIN = "rtsp://127.0.0.1:8554/main"
SUB = "rtsp://127.0.0.1:8554/sub"


@pytest.fixture
def camera() -> Iterator[FakeOnvifCamera]:
    with FakeOnvifCamera("admin", "pw", stream_uris={"main": MAIN, "sub": SUB}) as cam:
        yield cam


def device(cam: FakeOnvifCamera, password: str = "pw", **kwargs: Any) -> OnvifDevice:
    kwargs.setdefault("timeout_s", 3.0)
    return OnvifDevice(cam.host, cam.port, "admin", password, **kwargs)


def run(body: Callable[[OnvifDevice], Awaitable[T]], dev: OnvifDevice) -> T:
    """Run body(dev) on a fresh loop and close the device whatever happens."""

    async def main() -> T:
        try:
            return await body(dev)
        finally:
            await dev.close()

    return asyncio.run(main())


async def take(events: AsyncIterator[OnvifEvent], count: int, within_s: float = 10.0,
               ) -> list[OnvifEvent]:
    got: list[OnvifEvent] = []
    async with asyncio.timeout(within_s):
        async for event in events:
            got.append(event)
            if len(got) == count:
                break
    return got


def short(events: list[OnvifEvent]) -> list[tuple[str, str | None, bool | None, bool]]:
    return [(e.kind, e.source, e.active, e.initialized) for e in events]


# --- connect ------------------------------------------------------------------------------


def test_connect_picks_the_substream_and_returns_its_uris(camera: FakeOnvifCamera) -> None:
    async def body(dev: OnvifDevice) -> Any:
        return await dev.connect()

    info = run(body, device(camera))
    assert info.analysis_profile == "Profile_2"
    assert info.stream_uri == SUB
    assert info.snapshot_uri == f"{camera.base}/onvif-http/snapshot?Profile_2"
    assert [(p.token, p.width, p.height, p.encoding, p.fps) for p in info.profiles] == [
        ("Profile_1", 1920, 1080, "H264", 25.0), ("Profile_2", 640, 360, "H264", 25.0)]
    assert (info.manufacturer, info.model) == ("EdgeGuardLab", "FAKE-IPC-1")
    assert info.serial
    assert info.firmware
    assert info.hardware_id == "88"
    assert info.has_events
    assert info.has_ptz
    assert info.digital_inputs == ("DI_1",)
    assert info.clock_drift_s is not None
    assert abs(info.clock_drift_s) <= 1.5
    assert {"GetServices", "GetProfiles", "GetStreamUri", "GetSnapshotUri",
            "GetDigitalInputs"} <= set(camera.requests)


def test_a_profile_token_is_honoured_and_an_unknown_one_refused(
        camera: FakeOnvifCamera) -> None:
    async def body(dev: OnvifDevice) -> Any:
        return await dev.connect()

    info = run(body, device(camera, profile="Profile_1"))
    assert (info.analysis_profile, info.stream_uri) == ("Profile_1", MAIN)
    with pytest.raises(OnvifError, match="Profile_9") as caught:
        run(body, device(camera, profile="Profile_9"))
    assert caught.value.auth is False


def test_clock_drift_is_camera_minus_ours(camera: FakeOnvifCamera) -> None:
    camera.clock_offset_s = 120

    async def body(dev: OnvifDevice) -> Any:
        return await dev.connect()

    drift = run(body, device(camera)).clock_drift_s
    assert drift is not None
    assert abs(drift - 120) <= 1.5


def test_a_clock_that_needs_credentials_is_read_with_them() -> None:
    with FakeOnvifCamera("admin", "pw", clock_needs_auth=True) as cam:
        cam.clock_offset_s = 120

        async def body(dev: OnvifDevice) -> Any:
            return await dev.connect()

        drift = run(body, device(cam)).clock_drift_s
        assert drift is not None
        assert abs(drift - 120) <= 1.5
        assert cam.requests[:2] == ["GetSystemDateAndTime", "GetSystemDateAndTime"]


def test_a_skewed_clock_that_needs_credentials_is_named_when_the_login_is_refused() -> None:
    """A camera that checks WS-Security timestamps, 10 minutes off, and wants credentials
    even for GetSystemDateAndTime: every call is refused, yet the message names the clock
    (read from the Date header of the refusal), not only the password."""
    with FakeOnvifCamera("admin", "pw", clock_needs_auth=True, max_token_age_s=5) as cam:
        cam.clock_offset_s = 600

        async def body(dev: OnvifDevice) -> Any:
            return await dev.connect()

        off = r"the camera clock is \+(599|600|601) s off"
        with pytest.raises(OnvifError, match=off) as caught:
            run(body, device(cam))
        assert caught.value.auth


def test_a_wrong_password_on_a_camera_with_a_good_clock_names_no_clock() -> None:
    with FakeOnvifCamera("admin", "pw", clock_needs_auth=True, max_token_age_s=5) as cam:
        async def body(dev: OnvifDevice) -> Any:
            return await dev.connect()

        with pytest.raises(OnvifError) as caught:
            run(body, device(cam, password="wrong"))
        assert caught.value.auth
        assert "clock" not in str(caught.value)


def test_password_text_tokens_are_accepted_too(camera: FakeOnvifCamera) -> None:
    async def body(dev: OnvifDevice) -> Any:
        return await dev.connect()

    assert run(body, device(camera, password_digest=False)).analysis_profile == "Profile_2"


def test_a_camera_without_get_services_is_read_through_get_capabilities() -> None:
    with FakeOnvifCamera("admin", "pw", supports_get_services=False) as cam:
        async def body(dev: OnvifDevice) -> Any:
            return await dev.connect()

        info = run(body, device(cam))
        assert "GetCapabilities" in cam.requests
        assert info.has_events
        assert info.analysis_profile == "Profile_2"


def test_a_wrong_password_is_an_auth_error(camera: FakeOnvifCamera) -> None:
    async def body(dev: OnvifDevice) -> Any:
        return await dev.connect()

    with pytest.raises(OnvifError) as caught:
        run(body, device(camera, password="wrong"))
    assert caught.value.auth is True
    assert "wrong" not in str(caught.value)
    assert "GetProfiles" not in camera.requests


def test_a_hung_camera_fails_within_the_timeout(camera: FakeOnvifCamera) -> None:
    async def body(dev: OnvifDevice) -> Any:
        return await dev.connect()

    camera.set_unresponsive(True)
    started = time.monotonic()
    try:
        with pytest.raises(OnvifError, match="timed out") as caught:
            run(body, device(camera, timeout_s=1.0))
    finally:
        camera.set_unresponsive(False)
    assert caught.value.auth is False
    assert time.monotonic() - started < 3.0


def test_an_unreachable_camera_is_not_an_auth_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    async def body(dev: OnvifDevice) -> Any:
        return await dev.connect()

    with pytest.raises(OnvifError) as caught:
        run(body, OnvifDevice("127.0.0.1", port, "admin", "pw", timeout_s=2.0))
    assert caught.value.auth is False


# --- snapshot -----------------------------------------------------------------------------


def test_snapshot_uses_http_digest(camera: FakeOnvifCamera) -> None:
    async def body(dev: OnvifDevice) -> bytes:
        await dev.connect()
        return await dev.snapshot()

    assert run(body, device(camera)) == DEFAULT_JPEG
    assert camera.snapshot_requests == ["", "Digest"]  # challenged first, then digest


def test_snapshot_falls_back_to_basic_when_that_is_all_the_camera_offers() -> None:
    jpeg = b"\xff\xd8jpeg"
    with FakeOnvifCamera("admin", "pw", snapshot_auth="basic", snapshot_jpeg=jpeg) as cam:
        async def body(dev: OnvifDevice) -> bytes:
            await dev.connect()
            return await dev.snapshot()

        assert run(body, device(cam)) == jpeg
        assert cam.snapshot_requests == ["", "Basic"]


def test_snapshot_with_a_wrong_password_is_an_auth_error(camera: FakeOnvifCamera) -> None:
    async def body(dev: OnvifDevice) -> bytes:
        await dev.connect()
        dev._password = "wrong"  # the SOAP side accepted, the web server refuses
        return await dev.snapshot()

    with pytest.raises(OnvifError) as caught:
        run(body, device(camera))
    assert caught.value.auth is True


def test_snapshot_size_is_bounded() -> None:
    big = b"\xff\xd8" + bytes(MAX_SNAPSHOT_BYTES)
    with FakeOnvifCamera("admin", "pw", snapshot_jpeg=big) as cam:
        async def body(dev: OnvifDevice) -> bytes:
            await dev.connect()
            return await dev.snapshot()

        with pytest.raises(OnvifError, match="too large"):
            run(body, device(cam))


# --- events -------------------------------------------------------------------------------


def test_events_give_initial_state_then_inputs_motion_and_tamper(
        camera: FakeOnvifCamera) -> None:
    async def body(dev: OnvifDevice) -> list[OnvifEvent]:
        await dev.connect()
        events = dev.events(pull_timeout_s=2)
        got = await take(events, 3)
        camera.set_digital_input("DI_1", True)
        got += await take(events, 1)
        camera.set_digital_input("DI_1", False)
        camera.emit_motion(True)
        camera.emit_tamper(True)
        got += await take(events, 3)
        return got

    got = run(body, device(camera))
    assert short(got) == [
        ("digital_input", "DI_1", False, True),
        ("motion", "VideoSourceToken", False, True),
        ("tamper", "VideoSourceToken", False, True),
        ("digital_input", "DI_1", True, False),
        ("digital_input", "DI_1", False, False),
        ("motion", "VideoSourceToken", True, False),
        ("tamper", "VideoSourceToken", True, False),
    ]
    assert got[3].topic == "tns1:Device/Trigger/DigitalInput"
    assert all(e.at.tzinfo is not None for e in got)
    assert abs((got[3].at - dt.datetime.now(dt.UTC)).total_seconds()) < 30


def test_initial_state_reports_an_input_already_active(camera: FakeOnvifCamera) -> None:
    camera.set_digital_input("DI_1", True)

    async def body(dev: OnvifDevice) -> list[OnvifEvent]:
        await dev.connect()
        return await take(dev.events(), 1)

    assert short(run(body, device(camera))) == [("digital_input", "DI_1", True, True)]


def test_the_subscription_is_renewed_before_it_expires(camera: FakeOnvifCamera) -> None:
    async def body(dev: OnvifDevice) -> list[OnvifEvent]:
        await dev.connect()
        events = dev.events(pull_timeout_s=1)
        await take(events, 3)
        consumer = asyncio.ensure_future(take(events, 1, within_s=10))
        await asyncio.sleep(3.5)  # the fake ends a 2 s subscription unless renewed
        camera.set_digital_input("DI_1", True)
        return await consumer

    got = run(body, device(camera, subscription_s=2))
    assert short(got) == [("digital_input", "DI_1", True, False)]
    assert camera.requests.count("Renew") >= 2


def test_a_lost_subscription_raises(camera: FakeOnvifCamera) -> None:
    async def body(dev: OnvifDevice) -> None:
        await dev.connect()
        events = dev.events(pull_timeout_s=1)
        await take(events, 3)
        camera.drop_subscriptions()
        await take(events, 1)

    with pytest.raises(OnvifError, match="ResourceUnknown") as caught:
        run(body, device(camera))
    assert caught.value.auth is False


def test_a_rebooted_camera_raises_and_a_new_subscription_works(
        camera: FakeOnvifCamera) -> None:
    async def body(dev: OnvifDevice) -> list[OnvifEvent]:
        await dev.connect()
        events = dev.events(pull_timeout_s=1)
        await take(events, 3)
        camera.restart()
        with pytest.raises(OnvifError):
            await take(events, 1)
        await dev.connect()
        return await take(dev.events(pull_timeout_s=1), 3)

    assert len(run(body, device(camera))) == 3


def test_close_unsubscribes(camera: FakeOnvifCamera) -> None:
    async def body(dev: OnvifDevice) -> None:
        await dev.connect()
        await take(dev.events(), 3)
        assert camera.subscriptions == 1

    run(body, device(camera))
    assert "Unsubscribe" in camera.requests
    assert camera.subscriptions == 0


def test_garbage_from_the_camera_is_an_onvif_error(camera: FakeOnvifCamera) -> None:
    async def body(dev: OnvifDevice) -> None:
        await dev.connect()
        events = dev.events(pull_timeout_s=1)
        await take(events, 3)
        camera.corrupt_next_pull(b"<env:Envelope><unclosed")
        await take(events, 1)

    with pytest.raises(OnvifError, match="malformed") as caught:
        run(body, device(camera))
    assert caught.value.auth is False


def test_odd_values_and_unknown_topics_are_events_not_errors(camera: FakeOnvifCamera) -> None:
    async def body(dev: OnvifDevice) -> list[OnvifEvent]:
        await dev.connect()
        events = dev.events(pull_timeout_s=1)
        await take(events, 3)
        camera.emit("tns1:Device/Trigger/DigitalInput", {"InputToken": "DI_1"},
                    {"LogicalState": "maybe"})
        camera.emit("tns1:Monitoring/ProcessorUsage", {}, {"Value": "0.4"})
        camera.emit("tns1:Device/Trigger/tnshik:AlarmIn", {"AlarmInToken": "AlarmIn_1"},
                    {"State": "TRUE"})
        return await take(events, 3)

    assert short(run(body, device(camera))) == [
        ("digital_input", "DI_1", None, False),
        ("other", None, None, False),
        ("digital_input", "AlarmIn_1", True, False),
    ]


# --- PTZ ----------------------------------------------------------------------------------


def test_goto_preset_and_home_reach_the_camera(camera: FakeOnvifCamera) -> None:
    async def body(dev: OnvifDevice) -> None:
        await dev.connect()
        await dev.goto_preset("1")
        await dev.goto_preset("2", profile="Profile_1")
        await dev.goto_home()
        with pytest.raises(OnvifError, match="NoToken"):
            await dev.goto_preset("99")

    run(body, device(camera))
    assert camera.ptz_calls == [("GotoPreset", "Profile_2", "1"),
                                ("GotoPreset", "Profile_1", "2"),
                                ("GotoHomePosition", "Profile_2")]


def test_ptz_on_a_camera_without_ptz_is_refused() -> None:
    with FakeOnvifCamera("admin", "pw", ptz=False) as cam:
        async def body(dev: OnvifDevice) -> None:
            info = await dev.connect()
            assert not info.has_ptz
            await dev.goto_home()

        with pytest.raises(OnvifError, match="PTZ"):
            run(body, device(cam))


# --- classify_topic -----------------------------------------------------------------------

VS = {"VideoSourceConfigurationToken": "VideoSourceToken",
      "VideoAnalyticsConfigurationToken": "VideoAnalyticsToken", "Rule": "MyMotionDetectorRule"}
CASES: list[tuple[str, dict[str, str], dict[str, str], str, str | None, bool | None]] = [
    # ONVIF core topics
    ("tns1:Device/Trigger/DigitalInput", {"LogicalState": "true"}, {"InputToken": "DI_1"},
     "digital_input", "DI_1", True),
    ("tns1:Device/Trigger/DigitalInput", {"LogicalState": "FALSE"}, {"InputToken": "DI_1"},
     "digital_input", "DI_1", False),
    ("tns1:RuleEngine/CellMotionDetector/Motion", {"IsMotion": "true"}, VS,
     "motion", "VideoSourceToken", True),
    ("tns1:VideoSource/MotionAlarm", {"State": "1"}, {"Source": "VideoSource_1"},
     "motion", "VideoSource_1", True),
    ("tns1:RuleEngine/MotionRegionDetector/Motion", {"State": "0"}, VS,
     "motion", "VideoSourceToken", False),
    ("tns1:RuleEngine/TamperDetector/Tamper", {"IsTamper": "True"}, VS,
     "tamper", "VideoSourceToken", True),
    ("tns1:VideoSource/GlobalSceneChange/ImagingService", {"State": "true"},
     {"Source": "VideoSourceToken"}, "tamper", "VideoSourceToken", True),
    ("tns1:VideoSource/GlobalSceneChange/AnalyticsService", {"State": "false"},
     {"Source": "VideoSourceToken"}, "tamper", "VideoSourceToken", False),
    # vendors
    ("tns1:Device/Trigger/tnshik:AlarmIn", {"State": "true"}, {"AlarmInToken": "AlarmIn_1"},
     "digital_input", "AlarmIn_1", True),
    ("tns1:VideoSource/tns1:Device/Trigger/DigitalInput", {"LogicalState": "false"},
     {"InputToken": "00000"}, "digital_input", "00000", False),
    ("tns1:Device/tnsaxis:IO/Port", {"state": "1"}, {"port": "1"},
     "digital_input", "1", True),
    ("tns1:VideoAnalytics/tnshik:MotionAlarm", {"State": "FALSE"}, {"Source": "vstoken_ch0001"},
     "motion", "vstoken_ch0001", False),
    ("tns1:RuleEngine/TamperDetector/Tamper", {"State": "FALSE"},
     {"VideoSourceToken": "vstoken_ch0001"}, "tamper", "vstoken_ch0001", False),
    ("tns1:UserAlarm/VideoCover", {"State": "TRUE"}, {"VideoSourceToken": "vstoken_ch0001"},
     "tamper", "vstoken_ch0001", True),
    ("tns1:VideoSource/tnsaxis:Tampering", {"tampering": "1"}, {"channel": "1"},
     "tamper", "1", True),
    ("TNS1:DEVICE/TRIGGER/DIGITALINPUT", {"logicalstate": "1"}, {"inputtoken": "DI_2"},
     "digital_input", "DI_2", True),
    # not ours, or not readable
    ("tns1:Device/Trigger/Relay", {"LogicalState": "active"}, {"RelayToken": "R1"},
     "other", "R1", None),
    ("tns1:Monitoring/ProcessorUsage", {"Value": "0.5"}, {}, "other", None, None),
    ("tns1:RuleEngine/FieldDetector/ObjectsInside", {"IsInside": "true"}, VS,
     "other", "VideoSourceToken", True),
    ("tns1:RuleEngine/CellMotionDetector/MotionXYZ", {"IsMotion": "true"}, VS,
     "other", "VideoSourceToken", True),
    ("tns1:Device/Trigger/DigitalInput", {"LogicalState": "yes"}, {},
     "digital_input", None, None),
    ("tns1:Device/Trigger/DigitalInput", {}, {"InputToken": "DI_1"},
     "digital_input", "DI_1", None),
    ("", {}, {}, "other", None, None),
    ("////::://", {"a": "1", "b": "0"}, {}, "other", None, None),
    ("tns1:Motion\x00/\u202e", {"State": "1"}, {}, "other", None, True),
]


@pytest.mark.parametrize(("topic", "data", "source", "kind", "src", "active"), CASES)
def test_classify_topic(topic: str, data: dict[str, str], source: dict[str, str], kind: str,
                        src: str | None, active: bool | None) -> None:
    event = classify_topic(topic, data, source)
    assert (event.kind, event.source, event.active) == (kind, src, active)
    assert event.at.tzinfo is not None
    assert not event.initialized


def test_classify_topic_bounds_what_it_keeps() -> None:
    event = classify_topic("tns1:" + "x/" * 5000, {"State": "1"}, {"InputToken": "y" * 5000})
    assert event.kind == "other"
    assert len(event.topic) <= 256
    long_source = classify_topic("tns1:Device/Trigger/DigitalInput", {"LogicalState": "1"},
                                 {"InputToken": "y" * 5000})
    assert long_source.source is not None
    assert len(long_source.source) <= 256


# --- PullMessages answers (our parser) ----------------------------------------------------

ENV = ('<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" '
       'xmlns:tt="http://www.onvif.org/ver10/schema" '
       'xmlns:tev="http://www.onvif.org/ver10/events/wsdl" '
       'xmlns:wsnt="http://docs.oasis-open.org/wsn/b-2" '
       'xmlns:ter="http://www.onvif.org/ver10/error" '
       'xmlns:tns1="http://www.onvif.org/ver10/topics"><env:Body>{}</env:Body></env:Envelope>')


def notification(topic: str, source: str, data: str, at: str = "2026-04-18T20:34:05Z",
                 op: str = "Changed") -> str:
    return ("<wsnt:NotificationMessage><wsnt:Topic Dialect=\"http://www.onvif.org/ver10/tev/"
            f"topicExpression/ConcreteSet\">{topic}</wsnt:Topic><wsnt:Message>"
            f'<tt:Message UtcTime="{at}" PropertyOperation="{op}"><tt:Source>{source}'
            f"</tt:Source><tt:Data>{data}</tt:Data></tt:Message></wsnt:Message>"
            "</wsnt:NotificationMessage>")


def pull_response(*messages: str) -> bytes:
    return ENV.format("<tev:PullMessagesResponse><tev:CurrentTime>2026-04-18T20:34:05Z"
                      "</tev:CurrentTime><tev:TerminationTime>2026-04-18T20:44:10Z"
                      "</tev:TerminationTime>" + "".join(messages)
                      + "</tev:PullMessagesResponse>").encode()


def test_parse_a_hikvision_shaped_answer() -> None:
    content = pull_response(
        notification("tns1:VideoSource/MotionAlarm",
                     '<tt:SimpleItem Name="Source" Value="VideoSource_1"/>',
                     '<tt:SimpleItem Name="State" Value="false"/>', op="Initialized"),
        notification("tns1:RuleEngine/CellMotionDetector/Motion",
                     '<tt:SimpleItem Name="VideoSourceConfigurationToken" '
                     'Value="VideoSourceToken"/>'
                     '<tt:SimpleItem Name="Rule" Value="MyMotionDetectorRule"/>',
                     '<tt:SimpleItem Name="IsMotion" Value="true"/>'),
        notification("tns1:Monitoring/OperatingTime/LastReboot", "",
                     '<tt:SimpleItem Name="Status" Value="0000-00-00T00:00:00Z"/>',
                     at="2023-06-01T07:27:22"),  # no zone: taken as UTC
    )
    events = parse_pull_messages(content)
    assert short(events) == [("motion", "VideoSource_1", False, True),
                             ("motion", "VideoSourceToken", True, False),
                             ("other", None, None, False)]
    assert events[0].at == dt.datetime(2026, 4, 18, 20, 34, 5, tzinfo=dt.UTC)
    assert events[2].at == dt.datetime(2023, 6, 1, 7, 27, 22, tzinfo=dt.UTC)


def test_parse_survives_odd_messages() -> None:
    content = pull_response(
        "<wsnt:NotificationMessage><wsnt:Topic>tns1:Device/Trigger/DigitalInput</wsnt:Topic>"
        "</wsnt:NotificationMessage>",  # no Message: skipped
        notification("tns1:Device/Trigger/DigitalInput",
                     '<tt:SimpleItem Name="InputToken"/>',  # no Value
                     '<tt:SimpleItem Name="LogicalState" Value="true"/>', at="yesterday"),
    )
    events = parse_pull_messages(content)
    assert short(events) == [("digital_input", None, True, False)]
    assert abs((events[0].at - dt.datetime.now(dt.UTC)).total_seconds()) < 60


@pytest.mark.parametrize(("content", "auth"), [
    (ENV.format("<env:Fault><env:Code><env:Value>env:Sender</env:Value><env:Subcode>"
                "<env:Value>ter:NotAuthorized</env:Value></env:Subcode></env:Code><env:Reason>"
                '<env:Text xml:lang="en">Sender not Authorized</env:Text></env:Reason>'
                "</env:Fault>").encode(), True),
    (b"<not xml", False),
    (b"", False),
    (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>'
     b"<lolz>&lol2;</lolz>", False),
    (ENV.format("<tev:SomethingElse/>").encode(), False),
    (b"<html><body>401</body></html>", False),
])
def test_parse_refuses_faults_and_garbage(content: bytes, auth: bool) -> None:
    with pytest.raises(OnvifError) as caught:
        parse_pull_messages(content)
    assert caught.value.auth is auth


def test_close_without_connect_is_harmless() -> None:
    """close() on a device never connected, and again on a closed one, neither raises nor
    leaves a session open; a call before connect is a plain OnvifError, not a crash."""

    async def body() -> OnvifDevice:
        dev = OnvifDevice("127.0.0.1", 9, "admin", "pw")
        await dev.close()
        with pytest.raises(OnvifError, match="no snapshot URI") as caught:
            await dev.snapshot()
        assert caught.value.auth is False
        with pytest.raises(OnvifError, match="not connected"):
            await dev.stream_uri("Profile_1")
        await dev.close()
        await dev.close()
        return dev

    dev = asyncio.run(body())
    assert dev.info is None
    assert repr(dev) == "OnvifDevice(127.0.0.1:9, user='admin')"
