"""A fake ONVIF camera on loopback for tests and labs (docs/cameras-onvif.md, "The fake").

One HTTP server in a background thread answers the ONVIF device, media, events, PTZ and
DeviceIO operations the edgeguard client uses, shaped as the ONVIF WSDLs define them and as a
Hikvision camera writes them (namespaces, PullSubManager addresses, Initialized messages, the
faults); it checks WS-Security UsernameToken (PasswordDigest and PasswordText), long-polls
PullMessages, expires subscriptions, and serves a snapshot behind HTTP Digest (RFC 7616, MD5,
qop=auth). An optional UDP responder answers WS-Discovery 1.0 Probes with ProbeMatches.

    with FakeOnvifCamera(username="admin", password="pw") as cam:
        cam.set_digital_input("DI_1", True)

Run by hand: python -m edgeguard.lab.fake_onvif --port 8080 --discovery-port 3702
"""

from __future__ import annotations

import argparse
import base64
import collections
import contextlib
import datetime as dt
import email.utils
import hashlib
import re
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import escape, quoteattr

from lxml import etree

NS_DEVICE = "http://www.onvif.org/ver10/device/wsdl"
NS_MEDIA = "http://www.onvif.org/ver10/media/wsdl"
NS_EVENTS = "http://www.onvif.org/ver10/events/wsdl"
NS_PTZ = "http://www.onvif.org/ver20/ptz/wsdl"
NS_DEVICEIO = "http://www.onvif.org/ver10/deviceIO/wsdl"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
WSD = "http://schemas.xmlsoap.org/ws/2005/04/discovery"
WSA_2004 = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
CONCRETE_SET = "http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet"
# The namespaces a Hikvision camera declares on every envelope (captured answers in
# gBillal/ex_onvif test/fixtures), trimmed to those the answers here use.
ENVELOPE_OPEN = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" '
    'xmlns:soapenc="http://www.w3.org/2003/05/soap-encoding" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    'xmlns:xs="http://www.w3.org/2001/XMLSchema" '
    'xmlns:tt="http://www.onvif.org/ver10/schema" '
    f'xmlns:tds="{NS_DEVICE}" xmlns:trt="{NS_MEDIA}" xmlns:tev="{NS_EVENTS}" '
    f'xmlns:tptz="{NS_PTZ}" xmlns:tmd="{NS_DEVICEIO}" '
    'xmlns:ter="http://www.onvif.org/ver10/error" '
    'xmlns:dn="http://www.onvif.org/ver10/network/wsdl" '
    'xmlns:tns1="http://www.onvif.org/ver10/topics" '
    'xmlns:wsnt="http://docs.oasis-open.org/wsn/b-2" '
    'xmlns:wsa="http://www.w3.org/2005/08/addressing" '
    'xmlns:wstop="http://docs.oasis-open.org/wsn/t-1" '
    'xmlns:wsrf-bf="http://docs.oasis-open.org/wsrf/bf-2" '
    'xmlns:wsrf-r="http://docs.oasis-open.org/wsrf/r-2" '
    'xmlns:tnshik="http://www.hikvision.com/2011/event/topics">'
)
DEFAULT_JPEG = (  # a valid 1x1 grey baseline JPEG
    b"\xff\xd8\xff\xdb\x00C\x00" + bytes([8] * 64)
    + b"\xff\xc0\x00\x0b\x08\x00\x01\x00\x01\x01\x01\x11\x00"
    + b"\xff\xc4\x00\x14\x00\x01" + bytes(15) + b"\x00"
    + b"\xff\xc4\x00\x14\x10\x01" + bytes(15) + b"\x00"
    + b"\xff\xda\x00\x08\x01\x01\x00\x00?\x00\xd2\xcf \xff\xd9"
)
PRE_AUTH = frozenset({"GetSystemDateAndTime"})  # ONVIF Core 5.9.4: answered without a token
MAX_PULL_WAIT_S = 60.0
MAX_QUEUE = 1000
REALM = "IP Camera(lab)"


@dataclass(frozen=True)
class FakeProfile:
    key: str  # the stream_uris key: "main", "sub"
    token: str
    name: str
    width: int
    height: int
    fps: int = 25
    encoding: str = "H264"
    bitrate_kbps: int = 4096


DEFAULT_PROFILES = (
    FakeProfile("main", "Profile_1", "mainStream", 1920, 1080, 25, "H264", 4096),
    FakeProfile("sub", "Profile_2", "subStream", 640, 360, 25, "H264", 512),
)


@dataclass
class _Subscription:
    sid: str
    deadline: float  # time.monotonic()
    queue: collections.deque[dict[str, Any]] = field(
        default_factory=lambda: collections.deque(maxlen=MAX_QUEUE))


class _FaultError(Exception):
    def __init__(self, status: int, code: str, subcodes: Sequence[str], reason: str) -> None:
        super().__init__(reason)
        self.status, self.code, self.subcodes, self.reason = status, code, subcodes, reason

    def xml(self) -> str:
        sub = ""
        for value in reversed(self.subcodes):
            sub = f"<env:Subcode><env:Value>{value}</env:Value>{sub}</env:Subcode>"
        return (f"<env:Fault><env:Code><env:Value>{self.code}</env:Value>{sub}</env:Code>"
                f'<env:Reason><env:Text xml:lang="en">{escape(self.reason)}</env:Text>'
                "</env:Reason></env:Fault>")


def not_authorized() -> _FaultError:
    return _FaultError(400, "env:Sender", ["ter:NotAuthorized"], "Sender not Authorized")


def not_supported() -> _FaultError:
    return _FaultError(500, "env:Receiver", ["ter:ActionNotSupported"],
                       "Optional Action Not Implemented")


def no_profile() -> _FaultError:
    return _FaultError(400, "env:Sender", ["ter:InvalidArgVal", "ter:NoProfile"], "No such profile")


def resource_unknown() -> _FaultError:
    # what a Hikvision answers for a PullSubManager it does not know (spupuz/VibeNVR#290)
    return _FaultError(400, "env:Sender", ["wsrf-r:ResourceUnknownFault"], "Unknown pullpoint")


def iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_DIGEST_FIELD = re.compile(r'(\w+)=(?:"([^"]*)"|([^\s,]*))')
_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")


def parse_duration(text: str) -> float | None:
    """xs:duration limited to days/hours/minutes/seconds ("PT60S", "PT1M30S")."""
    match = _DURATION.match(text.strip())
    if not match or text.strip() in ("P", "PT"):
        return None
    days, hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return days * 86400 + hours * 3600 + minutes * 60 + seconds


def _local(el: Any) -> str:
    return etree.QName(el).localname if isinstance(el.tag, str) else ""


def _find(el: Any, name: str) -> Any:
    if el is None:
        return None
    return next((c for c in el.iter() if _local(c) == name), None)


def _findtext(el: Any, name: str) -> str | None:
    found = _find(el, name)
    return None if found is None else (found.text or "").strip()


def _parse(raw: bytes) -> Any:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.fromstring(raw, parser)


def _item(name: str, value: str) -> str:
    return f"<tt:SimpleItem Name={quoteattr(name)} Value={quoteattr(value)}/>"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], camera: FakeOnvifCamera) -> None:
        self.camera = camera
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def cut_connections(self) -> None:
        with self.connections_lock:
            open_now = list(self.connections)
        for conn in open_now:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class FakeOnvifCamera:
    """A fake ONVIF camera on `host`:`port` (an ephemeral port unless given)."""

    def __init__(
        self,
        username: str = "admin",
        password: str = "pw",
        *,
        stream_uris: Mapping[str, str] | None = None,
        snapshot_jpeg: bytes = DEFAULT_JPEG,
        profiles: Sequence[FakeProfile] = DEFAULT_PROFILES,
        digital_inputs: Sequence[str] = ("DI_1",),
        presets: Mapping[str, str] | None = None,
        ptz: bool = True,
        supports_get_services: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
        discovery_port: int | None = None,
        manufacturer: str = "EdgeGuardLab",
        model: str = "FAKE-IPC-1",
        firmware: str = "V5.7.3 build 220112",
        serial: str = "FAKE-IPC-1-20260101AACH000001",
        hardware_id: str = "88",
        name: str = "Lab Camera",
        max_termination_s: float = 3600.0,
        snapshot_auth: str = "digest",
        clock_needs_auth: bool = False,
        max_token_age_s: float | None = None,
    ) -> None:
        self.username, self.password = username, password
        self.profiles = tuple(profiles)
        self.stream_uris = dict(stream_uris or {})
        self.snapshot_jpeg = snapshot_jpeg
        self.presets = dict(presets if presets is not None else {"1": "door", "2": "corridor"})
        self.ptz = ptz
        self.supports_get_services = supports_get_services
        self.host, self.port = host, port
        self.discovery_port = discovery_port
        self.identity = {"Manufacturer": manufacturer, "Model": model,
                         "FirmwareVersion": firmware, "SerialNumber": serial,
                         "HardwareId": hardware_id}
        self.name = name
        self.max_termination_s = max_termination_s
        self.snapshot_auth = snapshot_auth
        self.clock_needs_auth = clock_needs_auth
        self.max_token_age_s = max_token_age_s
        self.endpoint_reference = f"urn:uuid:{uuid.uuid4()}"
        self.clock_offset_s = 0.0
        self.requests: list[str] = []
        self.snapshot_requests: list[str] = []  # the Authorization scheme of each GET
        self.ptz_calls: list[tuple[str, ...]] = []
        self.inputs = dict.fromkeys(digital_inputs, False)
        self.motion = False
        self.tamper = False
        self._cond = threading.Condition()
        self._subs: dict[str, _Subscription] = {}
        self._sub_counter = 0
        self._unresponsive = False
        self._stopping = False
        self._corrupt_pull: bytes | None = None
        self._nonces: collections.deque[str] = collections.deque(maxlen=256)
        self._server: _Server | None = None
        self._threads: list[threading.Thread] = []
        self._udp: socket.socket | None = None
        self._instance_id = 1

    # --- lifecycle ---

    def __enter__(self) -> FakeOnvifCamera:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        with self._cond:
            self._stopping = False
        self._server = _Server((self.host, self.port), self)
        self.port = self._server.server_address[1]
        server = self._server
        self._spawn(lambda: server.serve_forever(poll_interval=0.05), "fake-onvif-http")
        if self.discovery_port is not None:
            self._udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._udp.bind((self.host, self.discovery_port))
            self._udp.settimeout(0.1)
            self.discovery_port = self._udp.getsockname()[1]
            self._spawn(self._discovery_loop, "fake-onvif-wsd")

    def _spawn(self, target: Any, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        """Stop answering; open connections are cut, waiting long polls end."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.cut_connections()
            self._server.server_close()
            self._server = None
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()
        if self._udp is not None:
            self._udp.close()
            self._udp = None

    def restart(self) -> None:
        """A reboot: same address, every subscription forgotten."""
        self.stop()
        with self._cond:
            self._subs.clear()
            self._instance_id += 1
        self.start()

    @property
    def xaddr(self) -> str:
        return f"http://{self.host}:{self.port}/onvif/device_service"

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    # --- test controls ---

    def now(self) -> dt.datetime:
        """The camera's clock."""
        return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.clock_offset_s)

    def set_unresponsive(self, hung: bool) -> None:
        """Accept connections but answer nothing (a hung device); False resumes."""
        with self._cond:
            self._unresponsive = hung
            self._cond.notify_all()

    def drop_subscriptions(self) -> None:
        with self._cond:
            self._subs.clear()
            self._cond.notify_all()

    def corrupt_next_pull(self, body: bytes) -> None:
        """The next PullMessages is answered with `body` as it is (HTTP 200)."""
        with self._cond:
            self._corrupt_pull = body
            self._cond.notify_all()

    @property
    def subscriptions(self) -> int:
        with self._cond:
            self._expire()
            return len(self._subs)

    def set_digital_input(self, token: str, state: bool) -> None:
        with self._cond:
            self.inputs[token] = state
        self.emit("tns1:Device/Trigger/DigitalInput", {"InputToken": token},
                  {"LogicalState": "true" if state else "false"})

    def emit_motion(self, active: bool) -> None:
        with self._cond:
            self.motion = active
        self.emit("tns1:RuleEngine/CellMotionDetector/Motion", self._analytics_source("Motion"),
                  {"IsMotion": "true" if active else "false"})

    def emit_tamper(self, active: bool) -> None:
        with self._cond:
            self.tamper = active
        self.emit("tns1:RuleEngine/TamperDetector/Tamper", self._analytics_source("Tamper"),
                  {"IsTamper": "true" if active else "false"})

    def emit(self, topic: str, source: Mapping[str, str], data: Mapping[str, str],
             operation: str = "Changed") -> None:
        """Queue one notification on every live subscription."""
        message = {"topic": topic, "source": dict(source), "data": dict(data),
                   "operation": operation, "at": self.now()}
        with self._cond:
            self._expire()
            for sub in self._subs.values():
                sub.queue.append(message)
            self._cond.notify_all()

    @staticmethod
    def _analytics_source(rule: str) -> dict[str, str]:
        return {"VideoSourceConfigurationToken": "VideoSourceToken",
                "VideoAnalyticsConfigurationToken": "VideoAnalyticsToken",
                "Rule": f"My{rule}DetectorRule"}

    def _initial_state(self) -> list[dict[str, Any]]:
        at = self.now()
        messages: list[dict[str, Any]] = [
            {"topic": "tns1:Device/Trigger/DigitalInput", "source": {"InputToken": token},
             "data": {"LogicalState": "true" if state else "false"}}
            for token, state in self.inputs.items()]
        messages.append({"topic": "tns1:RuleEngine/CellMotionDetector/Motion",
                         "source": self._analytics_source("Motion"),
                         "data": {"IsMotion": "true" if self.motion else "false"}})
        messages.append({"topic": "tns1:RuleEngine/TamperDetector/Tamper",
                         "source": self._analytics_source("Tamper"),
                         "data": {"IsTamper": "true" if self.tamper else "false"}})
        for message in messages:
            message.update(operation="Initialized", at=at)
        return messages

    # --- HTTP plumbing used by the handler ---

    def hang_if_unresponsive(self) -> bool:
        """Block while unresponsive; True when the request must then go unanswered."""
        with self._cond:
            if not self._unresponsive:
                return False
            while self._unresponsive and not self._stopping:
                self._cond.wait(0.5)
        return True

    def handle_soap(self, path: str, raw: bytes) -> tuple[int, str]:
        try:
            root = _parse(raw)
        except etree.XMLSyntaxError:
            return 400, self._envelope(_FaultError(400, "env:Sender", ["ter:WellFormed"],
                                              "Not well-formed").xml())
        body = _find(root, "Body")
        first = None if body is None else next((c for c in body if isinstance(c.tag, str)), None)
        op = _local(first) if first is not None else "?"
        with self._cond:
            self.requests.append(op)
        try:
            pre_auth = op in PRE_AUTH and not self.clock_needs_auth
            if not pre_auth or _find(root, "UsernameToken") is not None:
                self._check_auth(root)
            header, inner = self._dispatch(path, op, first)
        except _FaultError as fault:
            return fault.status, self._envelope(fault.xml())
        return 200, self._envelope(inner, header)

    def _envelope(self, inner: str, header: str = "") -> str:
        head = f"<env:Header>{header}</env:Header>" if header else ""
        return f"{ENVELOPE_OPEN}{head}<env:Body>{inner}</env:Body></env:Envelope>"

    def _check_auth(self, root: Any) -> None:
        token = _find(root, "UsernameToken")
        if token is None:
            raise not_authorized()
        user = _findtext(token, "Username")
        password = _find(token, "Password")
        nonce, created = _findtext(token, "Nonce") or "", _findtext(token, "Created") or ""
        if password is None or user != self.username or not self._fresh(created):
            raise not_authorized()
        kind = (password.get("Type") or "").rsplit("#", 1)[-1]
        given = (password.text or "").strip()
        if kind == "PasswordDigest":
            try:
                nonce_bytes = base64.b64decode(nonce, validate=True)
            except ValueError as err:
                raise not_authorized() from err
            want = base64.b64encode(hashlib.sha1(
                nonce_bytes + created.encode() + self.password.encode()).digest()).decode()
        else:
            want = self.password
        if not secrets.compare_digest(given.encode(), want.encode()):
            raise not_authorized()

    def _fresh(self, created: str) -> bool:
        """Whether a token's Created is within max_token_age_s of the camera's clock (when
        that is set), as cameras that check WS-Security timestamps require."""
        if self.max_token_age_s is None:
            return True
        try:
            when = dt.datetime.fromisoformat(created.replace("Z", "+00:00"))
        except ValueError:
            return False
        if when.tzinfo is None:
            return False
        return abs((self.now() - when).total_seconds()) <= self.max_token_age_s

    def _dispatch(self, path: str, op: str, request: Any) -> tuple[str, str]:
        route = path.split("?", 1)[0]
        if route.startswith("/onvif/Events/PullSubManager_"):
            return self._subscription_op(route.rsplit("/", 1)[-1], op, request)
        handlers: dict[str, dict[str, Any]] = {
            "/onvif/device_service": {
                "GetSystemDateAndTime": self._system_date_and_time,
                "GetDeviceInformation": self._device_information,
                "GetServices": self._services, "GetCapabilities": self._capabilities},
            "/onvif/Media": {"GetProfiles": self._get_profiles, "GetStreamUri": self._stream_uri,
                             "GetSnapshotUri": self._snapshot_uri},
            "/onvif/Events": {"CreatePullPointSubscription": self._create_pull_point},
            "/onvif/DeviceIO": {"GetDigitalInputs": self._digital_inputs},
            "/onvif/PTZ": {"GotoPreset": self._goto_preset,
                           "GotoHomePosition": self._goto_home,
                           "GetPresets": self._get_presets} if self.ptz else {},
        }
        handler = handlers.get(route, {}).get(op)
        if handler is None:
            raise not_supported()
        result = handler(request)
        return result if isinstance(result, tuple) else ("", result)

    # --- device ---

    def _system_date_and_time(self, _request: Any) -> str:
        now = self.now()

        def stamp(tag: str) -> str:
            return (f"<tt:{tag}><tt:Time><tt:Hour>{now.hour}</tt:Hour>"
                    f"<tt:Minute>{now.minute}</tt:Minute><tt:Second>{now.second}</tt:Second>"
                    f"</tt:Time><tt:Date><tt:Year>{now.year}</tt:Year>"
                    f"<tt:Month>{now.month}</tt:Month><tt:Day>{now.day}</tt:Day></tt:Date>"
                    f"</tt:{tag}>")

        return ("<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime>"
                "<tt:DateTimeType>NTP</tt:DateTimeType><tt:DaylightSavings>false"
                "</tt:DaylightSavings><tt:TimeZone><tt:TZ>CST-8:00:00</tt:TZ></tt:TimeZone>"
                f"{stamp('UTCDateTime')}{stamp('LocalDateTime')}"
                "</tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>")

    def _device_information(self, _request: Any) -> str:
        fields = "".join(f"<tds:{k}>{escape(v)}</tds:{k}>" for k, v in self.identity.items())
        return f"<tds:GetDeviceInformationResponse>{fields}</tds:GetDeviceInformationResponse>"

    def _service_list(self) -> list[tuple[str, str, str]]:
        services = [(NS_DEVICE, "/onvif/device_service", "17.12"),
                    (NS_MEDIA, "/onvif/Media", "17.12"),
                    (NS_EVENTS, "/onvif/Events", "17.12"),
                    (NS_DEVICEIO, "/onvif/DeviceIO", "17.12")]
        if self.ptz:
            services.append((NS_PTZ, "/onvif/PTZ", "17.12"))
        return services

    def _services(self, _request: Any) -> str:
        if not self.supports_get_services:
            raise not_supported()
        entries = "".join(
            f"<tds:Service><tds:Namespace>{ns}</tds:Namespace>"
            f"<tds:XAddr>{self.base}{path}</tds:XAddr><tds:Version>"
            f"<tt:Major>{version.split('.')[0]}</tt:Major>"
            f"<tt:Minor>{version.split('.')[1]}</tt:Minor></tds:Version></tds:Service>"
            for ns, path, version in self._service_list())
        return f"<tds:GetServicesResponse>{entries}</tds:GetServicesResponse>"

    def _capabilities(self, _request: Any) -> str:
        ptz = f"<tt:PTZ><tt:XAddr>{self.base}/onvif/PTZ</tt:XAddr></tt:PTZ>" if self.ptz else ""
        return (
            "<tds:GetCapabilitiesResponse><tds:Capabilities>"
            f"<tt:Device><tt:XAddr>{self.xaddr}</tt:XAddr></tt:Device>"
            f"<tt:Events><tt:XAddr>{self.base}/onvif/Events</tt:XAddr>"
            "<tt:WSSubscriptionPolicySupport>true</tt:WSSubscriptionPolicySupport>"
            "<tt:WSPullPointSupport>true</tt:WSPullPointSupport>"
            "<tt:WSPausableSubscriptionManagerInterfaceSupport>false"
            "</tt:WSPausableSubscriptionManagerInterfaceSupport></tt:Events>"
            f"<tt:Media><tt:XAddr>{self.base}/onvif/Media</tt:XAddr>"
            "<tt:StreamingCapabilities><tt:RTPMulticast>true</tt:RTPMulticast>"
            "<tt:RTP_TCP>true</tt:RTP_TCP><tt:RTP_RTSP_TCP>true</tt:RTP_RTSP_TCP>"
            f"</tt:StreamingCapabilities></tt:Media>{ptz}"
            f"<tt:Extension><tt:DeviceIO><tt:XAddr>{self.base}/onvif/DeviceIO</tt:XAddr>"
            "<tt:VideoSources>1</tt:VideoSources><tt:VideoOutputs>0</tt:VideoOutputs>"
            "<tt:AudioSources>1</tt:AudioSources><tt:AudioOutputs>1</tt:AudioOutputs>"
            f"<tt:RelayOutputs>0</tt:RelayOutputs></tt:DeviceIO></tt:Extension>"
            "</tds:Capabilities></tds:GetCapabilitiesResponse>")

    # --- media ---

    def _profile_xml(self, p: FakeProfile) -> str:
        ptz = ('<tt:PTZConfiguration token="PTZToken"><tt:Name>PTZ</tt:Name>'
               "<tt:UseCount>2</tt:UseCount><tt:NodeToken>PTZNODETOKEN</tt:NodeToken>"
               "<tt:DefaultAbsolutePantTiltPositionSpace>http://www.onvif.org/ver10/tptz/"
               "PanTiltSpaces/PositionGenericSpace</tt:DefaultAbsolutePantTiltPositionSpace>"
               "<tt:DefaultPTZTimeout>PT5S</tt:DefaultPTZTimeout></tt:PTZConfiguration>"
               if self.ptz else "")
        big = max(self.profiles, key=lambda q: q.width * q.height)
        return (
            f'<trt:Profiles token={quoteattr(p.token)} fixed="true">'
            f"<tt:Name>{escape(p.name)}</tt:Name>"
            '<tt:VideoSourceConfiguration token="VideoSourceToken">'
            "<tt:Name>VideoSourceConfig</tt:Name>"
            f"<tt:UseCount>{len(self.profiles)}</tt:UseCount>"
            "<tt:SourceToken>VideoSource_1</tt:SourceToken>"
            f'<tt:Bounds x="0" y="0" width="{big.width}" height="{big.height}"/>'
            "</tt:VideoSourceConfiguration>"
            f'<tt:VideoEncoderConfiguration token="VideoEncoderToken_{escape(p.token)}">'
            f"<tt:Name>VideoEncoder_{escape(p.key)}</tt:Name><tt:UseCount>1</tt:UseCount>"
            f"<tt:Encoding>{escape(p.encoding)}</tt:Encoding>"
            f"<tt:Resolution><tt:Width>{p.width}</tt:Width><tt:Height>{p.height}</tt:Height>"
            "</tt:Resolution><tt:Quality>3.000000</tt:Quality>"
            f"<tt:RateControl><tt:FrameRateLimit>{p.fps}</tt:FrameRateLimit>"
            "<tt:EncodingInterval>1</tt:EncodingInterval>"
            f"<tt:BitrateLimit>{p.bitrate_kbps}</tt:BitrateLimit></tt:RateControl>"
            f"<tt:H264><tt:GovLength>{p.fps * 2}</tt:GovLength>"
            "<tt:H264Profile>Main</tt:H264Profile></tt:H264>"
            "<tt:Multicast><tt:Address><tt:Type>IPv4</tt:Type>"
            "<tt:IPv4Address>0.0.0.0</tt:IPv4Address></tt:Address><tt:Port>8860</tt:Port>"
            "<tt:TTL>128</tt:TTL><tt:AutoStart>false</tt:AutoStart></tt:Multicast>"
            "<tt:SessionTimeout>PT5S</tt:SessionTimeout></tt:VideoEncoderConfiguration>"
            f"{ptz}</trt:Profiles>")

    def _get_profiles(self, _request: Any) -> str:
        inner = "".join(self._profile_xml(p) for p in self.profiles)
        return f"<trt:GetProfilesResponse>{inner}</trt:GetProfilesResponse>"

    def _profile(self, request: Any) -> FakeProfile:
        token = _findtext(request, "ProfileToken")
        for profile in self.profiles:
            if profile.token == token:
                return profile
        raise no_profile()

    @staticmethod
    def _media_uri(tag: str, uri: str) -> str:
        return (f"<trt:{tag}><trt:MediaUri><tt:Uri>{escape(uri)}</tt:Uri>"
                "<tt:InvalidAfterConnect>false</tt:InvalidAfterConnect>"
                "<tt:InvalidAfterReboot>false</tt:InvalidAfterReboot>"
                f"<tt:Timeout>PT60S</tt:Timeout></trt:MediaUri></trt:{tag}>")

    def _stream_uri(self, request: Any) -> str:
        p = self._profile(request)
        channel = 101 + self.profiles.index(p)
        default = f"rtsp://{self.host}:554/Streaming/Channels/{channel}?transportmode=unicast"
        uri = self.stream_uris.get(p.key) or self.stream_uris.get(p.token) or default
        return self._media_uri("GetStreamUriResponse", uri)

    def _snapshot_uri(self, request: Any) -> str:
        p = self._profile(request)
        return self._media_uri("GetSnapshotUriResponse",
                               f"{self.base}/onvif-http/snapshot?{p.token}")

    def _digital_inputs(self, _request: Any) -> str:
        inner = "".join(f'<tmd:DigitalInputs token={quoteattr(t)} IdleState="open"/>'
                        for t in self.inputs)
        return f"<tmd:GetDigitalInputsResponse>{inner}</tmd:GetDigitalInputsResponse>"

    # --- PTZ ---

    def _goto_preset(self, request: Any) -> str:
        profile, preset = self._profile(request), _findtext(request, "PresetToken") or ""
        if preset not in self.presets:
            raise _FaultError(400, "env:Sender", ["ter:InvalidArgVal", "ter:NoToken"],
                         "The requested preset token does not exist")
        with self._cond:
            self.ptz_calls.append(("GotoPreset", profile.token, preset))
        return "<tptz:GotoPresetResponse/>"

    def _goto_home(self, request: Any) -> str:
        profile = self._profile(request)
        with self._cond:
            self.ptz_calls.append(("GotoHomePosition", profile.token))
        return "<tptz:GotoHomePositionResponse/>"

    def _get_presets(self, request: Any) -> str:
        self._profile(request)
        inner = "".join(f"<tptz:Preset token={quoteattr(t)}><tt:Name>{escape(n)}</tt:Name>"
                        "</tptz:Preset>" for t, n in self.presets.items())
        return f"<tptz:GetPresetsResponse>{inner}</tptz:GetPresetsResponse>"

    # --- events ---

    def _expire(self) -> None:
        now = time.monotonic()
        for sid in [s for s, sub in self._subs.items() if sub.deadline <= now]:
            del self._subs[sid]

    def _lifetime(self, text: str | None, default: float) -> float:
        """A requested termination, relative (xs:duration) or absolute (camera clock)."""
        if not text:
            return default
        relative = parse_duration(text)
        if relative is None:
            try:
                absolute = dt.datetime.fromisoformat(text.strip())
            except ValueError as err:
                raise _FaultError(400, "env:Sender", ["ter:InvalidArgVal"],
                             "Invalid termination time") from err
            if absolute.tzinfo is None:
                absolute = absolute.replace(tzinfo=dt.UTC)
            relative = (absolute - self.now()).total_seconds()
        if relative <= 0:
            raise _FaultError(400, "env:Sender", ["wsnt:UnacceptableTerminationTimeFault"],
                         "Termination time in the past")
        return min(relative, self.max_termination_s)

    @staticmethod
    def _action(name: str) -> str:
        return f"<wsa:Action>{NS_EVENTS}/{name}</wsa:Action>"

    def _create_pull_point(self, request: Any) -> tuple[str, str]:
        lifetime = self._lifetime(_findtext(request, "InitialTerminationTime"), 60.0)
        with self._cond:
            self._expire()
            self._sub_counter += 1
            now = self.now()
            sid = f"PullSubManager_{now.strftime('%Y%m%dT%H%M%SZ')}_{self._sub_counter}"
            sub = _Subscription(sid, time.monotonic() + lifetime)
            sub.queue.extend(self._initial_state())
            self._subs[sid] = sub
        return (self._action("EventPortType/CreatePullPointSubscriptionResponse"),
                "<tev:CreatePullPointSubscriptionResponse><tev:SubscriptionReference>"
                f"<wsa:Address>{self.base}/onvif/Events/{sid}</wsa:Address>"
                f"</tev:SubscriptionReference><wsnt:CurrentTime>{iso(now)}</wsnt:CurrentTime>"
                f"<wsnt:TerminationTime>{iso(now + dt.timedelta(seconds=lifetime))}"
                "</wsnt:TerminationTime></tev:CreatePullPointSubscriptionResponse>")

    def _live(self, sid: str) -> _Subscription:
        self._expire()
        sub = self._subs.get(sid)
        if sub is None:
            raise resource_unknown()
        return sub

    def _termination(self, sub: _Subscription) -> str:
        return iso(self.now() + dt.timedelta(seconds=sub.deadline - time.monotonic()))

    def _subscription_op(self, sid: str, op: str, request: Any) -> tuple[str, str]:
        if op == "PullMessages":
            return self._pull_messages(sid, request)
        with self._cond:
            sub = self._live(sid)
            if op == "Renew":
                lifetime = self._lifetime(_findtext(request, "TerminationTime"), 60.0)
                sub.deadline = time.monotonic() + lifetime
                return ("<wsa:Action>http://docs.oasis-open.org/wsn/bw-2/SubscriptionManager/"
                        "RenewResponse</wsa:Action>",
                        f"<wsnt:RenewResponse><wsnt:TerminationTime>{self._termination(sub)}"
                        f"</wsnt:TerminationTime><wsnt:CurrentTime>{iso(self.now())}"
                        "</wsnt:CurrentTime></wsnt:RenewResponse>")
            if op == "Unsubscribe":
                del self._subs[sid]
                self._cond.notify_all()
                return ("<wsa:Action>http://docs.oasis-open.org/wsn/bw-2/SubscriptionManager/"
                        "UnsubscribeResponse</wsa:Action>", "<wsnt:UnsubscribeResponse/>")
            if op == "SetSynchronizationPoint":
                sub.queue.extend(self._initial_state())
                self._cond.notify_all()
                return "", "<tev:SetSynchronizationPointResponse/>"
        raise not_supported()

    def _pull_messages(self, sid: str, request: Any) -> tuple[str, str]:
        wait = parse_duration(_findtext(request, "Timeout") or "PT0S")
        limit_text = _findtext(request, "MessageLimit") or "1"
        limit = int(limit_text) if limit_text.isdigit() else 1
        if wait is None:
            raise _FaultError(400, "env:Sender", ["ter:InvalidArgVal"], "Invalid Timeout")
        deadline = time.monotonic() + min(wait, MAX_PULL_WAIT_S)
        with self._cond:
            while True:
                if self._corrupt_pull is not None:
                    raise _CorruptAnswerError(self._take_corrupt())
                sub = self._live(sid)
                remaining = deadline - time.monotonic()
                if sub.queue or remaining <= 0 or self._stopping:
                    break
                self._cond.wait(min(remaining, 0.5))
            taken = [sub.queue.popleft() for _ in range(min(limit, len(sub.queue)))]
            header = self._action("PullPointSubscription/PullMessagesResponse")
            return header, (
                f"<tev:PullMessagesResponse><tev:CurrentTime>{iso(self.now())}</tev:CurrentTime>"
                f"<tev:TerminationTime>{self._termination(sub)}</tev:TerminationTime>"
                + "".join(self._notification(m) for m in taken)
                + "</tev:PullMessagesResponse>")

    def _take_corrupt(self) -> bytes:
        body, self._corrupt_pull = self._corrupt_pull or b"", None
        return body

    @staticmethod
    def _notification(m: Mapping[str, Any]) -> str:
        source = "".join(_item(k, v) for k, v in m["source"].items())
        data = "".join(_item(k, v) for k, v in m["data"].items())
        return (f'<wsnt:NotificationMessage><wsnt:Topic Dialect="{CONCRETE_SET}">'
                f"{escape(m['topic'])}</wsnt:Topic><wsnt:Message>"
                f'<tt:Message UtcTime="{iso(m["at"])}" PropertyOperation='
                f'{quoteattr(m["operation"])}>'
                f"<tt:Source>{source}</tt:Source><tt:Data>{data}</tt:Data></tt:Message>"
                "</wsnt:Message></wsnt:NotificationMessage>")

    # --- snapshot (HTTP Digest, RFC 7616 with MD5 and qop=auth) ---

    def handle_snapshot(self, path: str, authorization: str | None) -> tuple[int, dict[str, str]]:
        scheme = (authorization or "").split(" ", 1)[0]
        with self._cond:
            self.snapshot_requests.append(scheme)
        if self.snapshot_auth == "basic" and self._basic_ok(authorization):
            return 200, {}
        if self.snapshot_auth == "digest" and self._digest_ok(path, authorization):
            return 200, {}
        if self.snapshot_auth == "basic":
            return 401, {"WWW-Authenticate": f'Basic realm="{REALM}"'}
        nonce = secrets.token_hex(16)
        with self._cond:
            self._nonces.append(nonce)
        return 401, {"WWW-Authenticate": f'Digest qop="auth", realm="{REALM}", nonce="{nonce}", '
                     'algorithm=MD5, stale="FALSE"'}

    def _basic_ok(self, authorization: str | None) -> bool:
        if not authorization or not authorization.startswith("Basic "):
            return False
        want = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return secrets.compare_digest(authorization[6:].strip(), want)

    def _digest_ok(self, path: str, authorization: str | None) -> bool:
        if not authorization or not authorization.startswith("Digest "):
            return False
        fields = {key: quoted or bare for key, quoted, bare in _DIGEST_FIELD.findall(
            authorization[7:])}
        with self._cond:
            known = fields.get("nonce") in self._nonces
        if not known or fields.get("username") != self.username or fields.get("uri") != path:
            return False
        if fields.get("realm") != REALM or fields.get("qop") != "auth":
            return False
        if fields.get("algorithm", "MD5").upper() != "MD5":
            return False

        def md5(text: str) -> str:
            return hashlib.md5(text.encode()).hexdigest()

        ha1 = md5(f"{self.username}:{REALM}:{self.password}")
        ha2 = md5(f"GET:{path}")
        want = md5(f"{ha1}:{fields['nonce']}:{fields.get('nc', '')}:{fields.get('cnonce', '')}"
                   f":auth:{ha2}")
        return secrets.compare_digest(fields.get("response", ""), want)

    # --- WS-Discovery (SOAP-over-UDP 1.2, WS-Discovery 2005/04) ---

    def _discovery_loop(self) -> None:
        udp = self._udp
        while udp is not None and not self._stopping:
            try:
                datagram, sender = udp.recvfrom(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._cond:
                if self._unresponsive:
                    continue
            answer = self.probe_matches(datagram)
            if answer is not None:
                with contextlib.suppress(OSError):
                    udp.sendto(answer, sender)

    def probe_matches(self, datagram: bytes) -> bytes | None:
        """The ProbeMatches answering a Probe for our types, else None."""
        try:
            root = _parse(datagram)
        except (etree.XMLSyntaxError, ValueError):
            return None
        probe = _find(root, "Probe")
        if probe is None or _local(root) != "Envelope":
            return None
        types = _find(probe, "Types")
        if types is not None and not self._types_match(types):
            return None
        relates = _findtext(root, "MessageID") or ""
        with self._cond:
            instance = self._instance_id
        scopes = " ".join([
            "onvif://www.onvif.org/type/video_encoder", "onvif://www.onvif.org/Profile/Streaming",
            "onvif://www.onvif.org/Profile/G", "onvif://www.onvif.org/Profile/T",
            f"onvif://www.onvif.org/hardware/{quote(self.identity['Model'])}",
            f"onvif://www.onvif.org/name/{quote(self.name)}",
            "onvif://www.onvif.org/location/city/lab"])
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" '
            f'xmlns:wsadis="{WSA_2004}" xmlns:d="{WSD}" '
            'xmlns:dn="http://www.onvif.org/ver10/network/wsdl" '
            f'xmlns:tds="{NS_DEVICE}"><env:Header>'
            f"<wsadis:MessageID>urn:uuid:{uuid.uuid4()}</wsadis:MessageID>"
            f"<wsadis:RelatesTo>{escape(relates)}</wsadis:RelatesTo>"
            f"<wsadis:To>{WSA_2004}/role/anonymous</wsadis:To>"
            f"<wsadis:Action>{WSD}/ProbeMatches</wsadis:Action>"
            f'<d:AppSequence InstanceId="{instance}" MessageNumber="1"/></env:Header>'
            "<env:Body><d:ProbeMatches><d:ProbeMatch><wsadis:EndpointReference>"
            f"<wsadis:Address>{self.endpoint_reference}</wsadis:Address>"
            "</wsadis:EndpointReference><d:Types>dn:NetworkVideoTransmitter tds:Device</d:Types>"
            f"<d:Scopes>{escape(scopes)}</d:Scopes><d:XAddrs>{self.xaddr}</d:XAddrs>"
            "<d:MetadataVersion>1</d:MetadataVersion></d:ProbeMatch></d:ProbeMatches>"
            "</env:Body></env:Envelope>").encode()

    @staticmethod
    def _types_match(types: Any) -> bool:
        """WS-Discovery: every requested type (a QName) must be one of ours."""
        ours = {("http://www.onvif.org/ver10/network/wsdl", "NetworkVideoTransmitter"),
                (NS_DEVICE, "Device")}
        for qname in (types.text or "").split():
            prefix, _, local = qname.rpartition(":")
            namespace = types.nsmap.get(prefix or None)
            if namespace is None:
                if local not in {name for _, name in ours}:
                    return False
            elif (namespace, local) not in ours:
                return False
        return True


class _CorruptAnswerError(Exception):
    def __init__(self, body: bytes) -> None:
        super().__init__("corrupt answer")
        self.body = body


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        pass

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The Date header, from the camera's clock as a real camera's would be."""
        when = self.server.camera.now().timestamp() if timestamp is None else timestamp
        return email.utils.formatdate(when, usegmt=True)

    def do_POST(self) -> None:
        camera = self.server.camera
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(min(length, 1 << 20))
        if camera.hang_if_unresponsive():
            self.close_connection = True
            return
        try:
            status, text = camera.handle_soap(self.path, raw)
            body = text.encode()
        except _CorruptAnswerError as corrupt:
            status, body = 200, corrupt.body
        if camera.hang_if_unresponsive():
            self.close_connection = True
            return
        self._send(status, body, {"Content-Type": "application/soap+xml; charset=utf-8"})

    def do_GET(self) -> None:
        camera = self.server.camera
        if camera.hang_if_unresponsive():
            self.close_connection = True
            return
        if not self.path.startswith("/onvif-http/snapshot"):
            self._send(404, b"", {})
            return
        status, headers = camera.handle_snapshot(self.path, self.headers.get("Authorization"))
        if status == 200:
            self._send(200, camera.snapshot_jpeg, {"Content-Type": "image/jpeg"})
        else:
            self._send(status, b"<html><body>401 Unauthorized</body></html>",
                       {"Content-Type": "text/html", **headers})

    def _send(self, status: int, body: bytes, headers: Mapping[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(OSError):
            self.wfile.write(body)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A fake ONVIF camera on loopback.")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--discovery-port", type=int, default=None)
    parser.add_argument("--username", default="admin")
    parser.add_argument("--password", default="pw")
    parser.add_argument("--stream", action="append", default=[], metavar="KEY=RTSP_URL",
                        help="stream URI of a profile (main, sub); repeatable")
    args = parser.parse_args(argv)
    uris = dict(s.split("=", 1) for s in args.stream)
    with FakeOnvifCamera(args.username, args.password, stream_uris=uris, port=args.port,
                         discovery_port=args.discovery_port) as camera:
        print(f"fake ONVIF camera at {camera.xaddr}"  # noqa: T201
              + (f", WS-Discovery on udp/{camera.discovery_port}"
                 if camera.discovery_port is not None else ""), flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)


if __name__ == "__main__":
    main()
