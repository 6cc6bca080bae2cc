"""ONVIF client for one camera: identity, profiles and stream URIs, PullPoint events, PTZ
presets and snapshots, over onvif-zeep-async (docs/cameras-onvif.md).

It runs in the camera child process, never in the daemon: importing `onvif` configures the
root logger if nothing did before (`logging.basicConfig`) and `ONVIFCamera` removes
`http_proxy`/`https_proxy` from the process environment. Everything a camera sends is
untrusted: malformed or hostile answers end in `OnvifError` (or an event of kind "other"),
never in another exception.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import email.utils
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import aiohttp

log = logging.getLogger(__name__)

EventKind = Literal["motion", "tamper", "digital_input", "other"]
MAX_SNAPSHOT_BYTES = 10 * 1024 * 1024
MAX_PULL_RESPONSE_BYTES = 4 * 1024 * 1024
MAX_MESSAGES_PER_PULL = 64
MAX_ITEMS_PER_MESSAGE = 32
MAX_TEXT = 256
RENEW_FRACTION = 0.8
NS_DEVICEIO = "http://www.onvif.org/ver10/deviceIO/wsdl"
NS_EVENTS = "http://www.onvif.org/ver10/events/wsdl"
NS_PTZ = "http://www.onvif.org/ver20/ptz/wsdl"
NS_PULLPOINT = "http://www.onvif.org/ver10/events/wsdl/PullPointSubscription"
T = TypeVar("T")


class OnvifError(Exception):
    """A camera call failed. `auth` is True when the camera refused the credentials (ask for
    new ones, do not hammer the camera: it may lock the account); False when it was
    unreachable, timed out, faulted or answered nonsense (retry with back-off).
    `clock_drift_s` is set on a refusal by a camera whose clock is off (the likely cause)."""

    def __init__(self, message: str, *, auth: bool = False) -> None:
        super().__init__(message)
        self.auth = auth
        self.clock_drift_s: float | None = None


@dataclass(frozen=True)
class OnvifProfile:
    token: str
    name: str
    encoding: str | None
    width: int | None
    height: int | None
    fps: float | None
    has_ptz: bool


@dataclass(frozen=True)
class OnvifCameraInfo:
    manufacturer: str
    model: str
    firmware: str
    serial: str
    hardware_id: str
    profiles: tuple[OnvifProfile, ...]
    analysis_profile: str
    stream_uri: str
    snapshot_uri: str | None
    clock_drift_s: float | None
    has_events: bool
    has_ptz: bool
    digital_inputs: tuple[str, ...]


@dataclass(frozen=True)
class OnvifEvent:
    kind: EventKind
    topic: str
    source: str | None
    active: bool | None
    at: dt.datetime
    initialized: bool


# --- topic normalisation (pure) -----------------------------------------------------------


@dataclass(frozen=True)
class _TopicRule:
    path: tuple[str, ...]  # topic segments without namespace prefixes, lower case
    kind: EventKind
    data_keys: tuple[str, ...]
    source_keys: tuple[str, ...]
    any_tail: bool = False  # one more segment may follow (GlobalSceneChange/ImagingService)


_VIDEO_SOURCE_KEYS = ("VideoSourceToken", "VideoSourceConfigurationToken", "Source")
# Every rule is documented with its source in docs/cameras-onvif.md ("Event topics").
_RULES: tuple[_TopicRule, ...] = (
    _TopicRule(("device", "trigger", "digitalinput"), "digital_input",
               ("LogicalState",), ("InputToken",)),
    _TopicRule(("device", "trigger", "alarmin"), "digital_input",
               ("State",), ("AlarmInToken", "InputToken")),
    _TopicRule(("device", "io", "port"), "digital_input", ("state",), ("port",)),
    _TopicRule(("ruleengine", "cellmotiondetector", "motion"), "motion",
               ("IsMotion",), _VIDEO_SOURCE_KEYS),
    _TopicRule(("ruleengine", "motionregiondetector", "motion"), "motion",
               ("State",), _VIDEO_SOURCE_KEYS),
    _TopicRule(("videosource", "motionalarm"), "motion", ("State",), _VIDEO_SOURCE_KEYS),
    _TopicRule(("videoanalytics", "motionalarm"), "motion", ("State",), _VIDEO_SOURCE_KEYS),
    _TopicRule(("ruleengine", "tamperdetector", "tamper"), "tamper",
               ("IsTamper", "State"), _VIDEO_SOURCE_KEYS),
    _TopicRule(("videosource", "globalscenechange"), "tamper",
               ("State",), _VIDEO_SOURCE_KEYS, any_tail=True),
    _TopicRule(("videosource", "tampering"), "tamper", ("tampering",), ("channel",)),
    _TopicRule(("useralarm", "videocover"), "tamper", ("State",), _VIDEO_SOURCE_KEYS),
)
_FALLBACK_SOURCE_KEYS = ("InputToken", "VideoSourceToken", "VideoSourceConfigurationToken",
                         "Source")


def _segments(topic: str) -> tuple[str, ...]:
    """'tns1:Device/tnsaxis:IO/Port' -> ('device', 'io', 'port')."""
    return tuple(s.rsplit(":", 1)[-1].strip().lower() for s in topic.split("/") if s.strip())


def _match(rule: _TopicRule, segments: tuple[str, ...]) -> bool:
    n = len(rule.path)
    if segments[-n:] == rule.path:
        return True
    return rule.any_tail and len(segments) > n and segments[-n - 1:-1] == rule.path


def _lookup(items: Mapping[str, str], keys: Iterable[str]) -> str | None:
    lowered = {k.lower(): v for k, v in items.items()}
    for key in keys:
        if key.lower() in lowered:
            return lowered[key.lower()]
    return None


def parse_bool(value: str | None) -> bool | None:
    """ONVIF xs:boolean as cameras write it: true/false/1/0 in any case; else None."""
    if value is None:
        return None
    text = value.strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    return None


def _clip(text: str | None) -> str | None:
    return None if text is None else text[:MAX_TEXT]


def classify_topic(
    topic: str,
    data: Mapping[str, str],
    source: Mapping[str, str],
    *,
    at: dt.datetime | None = None,
    initialized: bool = False,
) -> OnvifEvent:
    """Normalise one ONVIF notification (topic, Data and Source SimpleItems) into an event.
    Unknown topics give kind "other"; unreadable values give active None; never raises."""
    when = at if at is not None else dt.datetime.now(dt.UTC)
    topic = (topic or "").strip()[:MAX_TEXT]
    segments = _segments(topic)
    for rule in _RULES:
        if segments and _match(rule, segments):
            value = _lookup(data, rule.data_keys)
            if value is None:
                value = _lookup(data, ("State", "Value"))
            src = _lookup(source, rule.source_keys) or _lookup(source, _FALLBACK_SOURCE_KEYS)
            return OnvifEvent(rule.kind, topic, _clip(src), parse_bool(value), when, initialized)
    only = next(iter(data.values())) if len(data) == 1 else None
    src = _lookup(source, _FALLBACK_SOURCE_KEYS)
    if src is None and len(source) == 1:
        src = next(iter(source.values()))
    return OnvifEvent("other", topic, _clip(src), parse_bool(only), when, initialized)


# --- PullMessages response parsing (pure) --------------------------------------------------


def _xml_parser() -> Any:
    from lxml import etree

    return etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
        remove_comments=True, remove_pis=True,
    )


def parse_xml(content: bytes) -> Any:
    """Parse untrusted XML: no DTDs, no entities, no network, libxml2's size limits."""
    from lxml import etree

    if b"<!DOCTYPE" in content[:4096] or b"<!ENTITY" in content:
        raise OnvifError("refused XML with a DTD")
    try:
        return etree.fromstring(content, _xml_parser())
    except (etree.XMLSyntaxError, ValueError) as err:
        raise OnvifError(f"malformed XML from the camera: {str(err)[:120]}") from err


def _local(tag: Any) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _child(element: Any, name: str) -> Any:
    for child in element:
        if _local(child.tag) == name:
            return child
    return None


def _children(element: Any, name: str) -> list[Any]:
    return [child for child in element if _local(child.tag) == name]


def _simple_items(element: Any) -> dict[str, str]:
    items: dict[str, str] = {}
    if element is None:
        return items
    for item in _children(element, "SimpleItem")[:MAX_ITEMS_PER_MESSAGE]:
        name, value = item.get("Name"), item.get("Value")
        if name is not None and value is not None:
            items[name[:MAX_TEXT]] = value[:MAX_TEXT]
    return items


def parse_onvif_time(text: str | None) -> dt.datetime | None:
    """xs:dateTime as cameras write it; naive times are taken as UTC; garbage gives None."""
    if not text:
        return None
    value = text.strip()[:64].replace(" ", "T")
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


def soap_fault(body: Any) -> OnvifError | None:
    """The SOAP 1.2 (or 1.1) Fault in a Body as an OnvifError, or None."""
    fault = _child(body, "Fault")
    if fault is None:
        return None
    codes = [(el.text or "").strip() for el in fault.iter() if _local(el.tag) == "Value"]
    codes += [(el.text or "").strip() for el in fault.iter() if _local(el.tag) == "faultcode"]
    reason = " ".join(
        (el.text or "").strip() for el in fault.iter() if _local(el.tag) in ("Text", "faultstring")
    )
    auth = any("NotAuthorized" in c for c in codes) or "auth" in reason.lower()
    summary = ",".join(c for c in codes if c)[:200]
    return OnvifError(f"camera fault {summary}: {reason[:200]}", auth=auth)


def parse_pull_messages(content: bytes) -> list[OnvifEvent]:
    """Events in a PullMessagesResponse envelope; a Fault or anything else raises OnvifError."""
    root = parse_xml(content)
    body = _child(root, "Body")
    if body is None:
        raise OnvifError("no SOAP Body in the PullMessages answer")
    fault = soap_fault(body)
    if fault is not None:
        raise fault
    response = _child(body, "PullMessagesResponse")
    if response is None:
        raise OnvifError("no PullMessagesResponse in the PullMessages answer")
    events = []
    for holder in _children(response, "NotificationMessage")[:MAX_MESSAGES_PER_PULL]:
        event = _notification(holder)
        if event is not None:
            events.append(event)
    return events


def _notification(holder: Any) -> OnvifEvent | None:
    topic_el = _child(holder, "Topic")
    wrapper = _child(holder, "Message")
    if topic_el is None or wrapper is None:
        log.debug("notification without Topic or Message ignored")
        return None
    message = next((c for c in wrapper if isinstance(c.tag, str)), None)
    if message is None:
        return None
    at = parse_onvif_time(message.get("UtcTime")) or dt.datetime.now(dt.UTC)
    return classify_topic(
        "".join(topic_el.itertext()),
        _simple_items(_child(message, "Data")),
        _simple_items(_child(message, "Source")),
        at=at,
        initialized=(message.get("PropertyOperation") or "").strip() == "Initialized",
    )


# --- the device -----------------------------------------------------------------------------


def _attr(obj: Any, *names: str) -> Any:
    """obj.a.b.c, None when any step is missing (zeep objects from a camera are untrusted)."""
    for name in names:
        if obj is None:
            return None
        try:
            obj = getattr(obj, name)
        except (AttributeError, KeyError, TypeError):
            return None
    return obj


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()[:MAX_TEXT]


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if 0 <= number < 1e6 else None  # also refuses NaN


def _profile(raw: Any) -> OnvifProfile | None:
    token = _attr(raw, "token")
    if not token:
        return None
    vec = _attr(raw, "VideoEncoderConfiguration")
    width, height = _number(_attr(vec, "Resolution", "Width")), _number(
        _attr(vec, "Resolution", "Height")
    )
    return OnvifProfile(
        token=_text(token),
        name=_text(_attr(raw, "Name")),
        encoding=_text(_attr(vec, "Encoding")) or None,
        width=None if width is None else int(width),
        height=None if height is None else int(height),
        fps=_number(_attr(vec, "RateControl", "FrameRateLimit")),
        has_ptz=_attr(raw, "PTZConfiguration") is not None,
    )


def choose_profile(profiles: Iterable[OnvifProfile], wanted: str | None) -> OnvifProfile:
    """`wanted` by token, else the lowest-resolution H264 profile (the substream), else the
    lowest-resolution profile with a video encoder."""
    profiles = list(profiles)
    if wanted is not None:
        for profile in profiles:
            if profile.token == wanted:
                return profile
        raise OnvifError(f"profile {wanted!r} is not on the camera "
                         f"(it has {', '.join(p.token for p in profiles) or 'none'})")
    video = [p for p in profiles if p.width and p.height]
    h264 = [p for p in video if (p.encoding or "").upper() == "H264"]
    candidates = h264 or video
    if not candidates:
        raise OnvifError("the camera has no video profile")
    return min(candidates, key=lambda p: (p.width or 0) * (p.height or 0))


def _system_time(answer: Any) -> dt.datetime | None:
    utc = _attr(answer, "UTCDateTime")
    try:
        return dt.datetime(
            int(_attr(utc, "Date", "Year")), int(_attr(utc, "Date", "Month")),
            int(_attr(utc, "Date", "Day")), int(_attr(utc, "Time", "Hour")),
            int(_attr(utc, "Time", "Minute")), int(_attr(utc, "Time", "Second")),
            tzinfo=dt.UTC,
        )
    except (TypeError, ValueError):
        return None


def _drift(camera_time: dt.datetime, before: float, after: float) -> float:
    """Camera time minus ours at the middle of the request; the camera gives whole seconds,
    so ours is truncated the same way."""
    ours = dt.datetime.fromtimestamp((before + after) / 2, dt.UTC)
    return (camera_time - ours.replace(microsecond=0)).total_seconds()


def _http_date(value: Any) -> dt.datetime | None:
    """An HTTP Date header (RFC 9110 IMF-fixdate, GMT), or None."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


def _http_url(value: Any) -> str | None:
    """An http(s) URL with a host, or None."""
    text = str(value).strip() if isinstance(value, str) else ""
    if not text or len(text) > 2048:
        return None
    try:
        parts = urlsplit(text)
        host = parts.hostname
    except ValueError:
        return None
    return text if parts.scheme in ("http", "https") and host else None


def _describe_error(err: BaseException) -> str:
    text = re.sub(r"\s+", " ", str(err))[:200]
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


class OnvifDevice:
    """One ONVIF camera. `connect` first; `events` is a long-lived async iterator; `close`
    at the end (it also ends the event subscription on the camera)."""

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        password: str,
        *,
        profile: str | None = None,
        timeout_s: float = 10.0,
        subscription_s: float = 60.0,
        password_digest: bool = True,
    ) -> None:
        self.host = host
        self.port = port
        self.timeout_s = timeout_s
        self.subscription_s = subscription_s
        self._username = username
        self._password = password
        self._wanted_profile = profile
        self._digest = password_digest
        self._camera: Any = None
        self._info: OnvifCameraInfo | None = None
        self._subscribed = False
        self._renew_at = 0.0
        self._http: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:  # never the password
        return f"OnvifDevice({self.host}:{self.port}, user={self._username!r})"

    @property
    def info(self) -> OnvifCameraInfo | None:
        return self._info

    # -- plumbing --

    async def _call(self, what: str, awaitable: Awaitable[T], timeout_s: float | None = None) -> T:
        """Await one camera call within the timeout; every failure becomes an OnvifError."""
        try:
            async with asyncio.timeout(timeout_s if timeout_s is not None else self.timeout_s):
                return await awaitable
        except OnvifError:
            raise
        except TimeoutError as err:
            raise OnvifError(f"{self.host}: {what} timed out") from err
        except Exception as err:
            raise self._classify(what, err) from err

    def _classify(self, what: str, err: Exception) -> OnvifError:
        from onvif.exceptions import ONVIFAuthError
        from onvif.util import is_auth_error, stringify_onvif_error
        from zeep.exceptions import Fault, TransportError

        auth = isinstance(err, ONVIFAuthError) or is_auth_error(err)
        if isinstance(err, TransportError) and err.status_code in (401, 403):
            auth = True
        detail = stringify_onvif_error(err) if isinstance(err, Fault) else _describe_error(err)
        detail = re.sub(r"\s+", " ", detail)[:240]
        message = f"{self.host}: {what} failed: {detail}"
        log.debug("%s (auth=%s)", message, auth)
        return OnvifError(message, auth=auth)

    def _new_camera(self) -> Any:
        from onvif import ONVIFCamera

        return ONVIFCamera(
            self.host, self.port, self._username, self._password,
            encrypt=self._digest, no_cache=True, adjust_time=False,
        )

    def _require_camera(self) -> Any:
        if self._camera is None:
            raise OnvifError(f"{self.host}: not connected")
        return self._camera

    # -- connect --

    async def connect(self) -> OnvifCameraInfo:
        """Identity, clock drift, profiles, the analysis profile's stream and snapshot URIs."""
        await self._close_camera()
        self._camera = camera = self._new_camera()
        devicemgmt = await self._call("setup", camera.create_devicemgmt_service(), 60.0)
        drift = await self._clock_drift(devicemgmt, authless=True)
        try:
            await self._call("GetServices", camera.update_xaddrs())
            raw_info = await self._call("GetDeviceInformation", devicemgmt.GetDeviceInformation())
        except OnvifError as err:
            if err.auth and drift is not None and abs(drift) > 5:
                err.args = (f"{err.args[0]} (the camera clock is {drift:+.0f} s off: cameras "
                            "that check WS-Security timestamps refuse such requests)",)
                err.clock_drift_s = drift
            raise
        if drift is None:
            drift = await self._clock_drift(devicemgmt, authless=False)
        profiles, chosen, stream_uri, snapshot_uri = await self._media()
        xaddrs = dict(camera.xaddrs)
        self._info = OnvifCameraInfo(
            manufacturer=_text(_attr(raw_info, "Manufacturer")),
            model=_text(_attr(raw_info, "Model")),
            firmware=_text(_attr(raw_info, "FirmwareVersion")),
            serial=_text(_attr(raw_info, "SerialNumber")),
            hardware_id=_text(_attr(raw_info, "HardwareId")),
            profiles=profiles,
            analysis_profile=chosen.token,
            stream_uri=stream_uri,
            snapshot_uri=snapshot_uri,
            clock_drift_s=drift,
            has_events=NS_EVENTS in xaddrs,
            has_ptz=NS_PTZ in xaddrs and any(p.has_ptz for p in profiles),
            digital_inputs=await self._digital_inputs(xaddrs),
        )
        log.info("%s: %s %s, analysis profile %s (%sx%s)", self.host, self._info.manufacturer,
                 self._info.model, chosen.token, chosen.width, chosen.height)
        return self._info

    async def _clock_drift(self, devicemgmt: Any, *, authless: bool) -> float | None:
        """Camera UTC minus ours, from GetSystemDateAndTime (a PRE_AUTH operation; some
        cameras want credentials anyway, so it is asked again with them, and when those are
        refused too, the camera's clock is read from the Date header of its refusal)."""
        call = devicemgmt.authless_GetSystemDateAndTime if authless else (
            devicemgmt.GetSystemDateAndTime)
        before = time.time()
        try:
            answer = await self._call("GetSystemDateAndTime", call())
        except OnvifError as err:
            if authless and isinstance(err.__cause__, (TimeoutError, aiohttp.ClientConnectionError,
                                                       OSError)):
                raise  # unreachable or hung: no point in going on
            log.debug("%s", err)
            if authless and err.auth:
                return await self._clock_drift_with_credentials(devicemgmt)
            return None
        camera_time = _system_time(answer)
        return None if camera_time is None else _drift(camera_time, before, time.time())

    async def _clock_drift_with_credentials(self, devicemgmt: Any) -> float | None:
        drift = await self._clock_drift(devicemgmt, authless=False)
        if drift is not None:
            return drift
        before = time.time()
        try:
            status, headers = await self._call(
                "GetSystemDateAndTime", _post_authless_headers(devicemgmt, "GetSystemDateAndTime"))
        except OnvifError as err:
            log.debug("%s", err)
            return None
        camera_time = _http_date(headers.get("Date"))
        log.debug("%s: clock read from the Date header of an HTTP %s answer", self.host, status)
        return None if camera_time is None else _drift(camera_time, before, time.time())

    async def _media(self) -> tuple[tuple[OnvifProfile, ...], OnvifProfile, str, str | None]:
        camera = self._require_camera()
        media = await self._call("media setup", camera.create_media_service(), 60.0)
        raw = await self._call("GetProfiles", media.GetProfiles())
        profiles = tuple(p for p in (_profile(r) for r in list(raw or [])[:64]) if p is not None)
        chosen = choose_profile(profiles, self._wanted_profile)
        stream_uri = await self.stream_uri(chosen.token)
        snapshot_uri = await self._snapshot_uri(media, chosen.token)
        return profiles, chosen, stream_uri, snapshot_uri

    async def stream_uri(self, profile: str) -> str:
        """The RTSP (RTP-Unicast over RTSP) URI of a profile."""
        camera = self._require_camera()
        media = await self._call("media setup", camera.create_media_service(), 60.0)
        answer = await self._call("GetStreamUri", media.GetStreamUri({
            "ProfileToken": profile,
            "StreamSetup": {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}},
        }))
        uri = str(_attr(answer, "Uri") or "").strip()
        if not uri.lower().startswith(("rtsp://", "rtsps://")) or len(uri) > 2048:
            raise OnvifError(f"{self.host}: GetStreamUri gave no RTSP URI for {profile}")
        return uri

    async def _snapshot_uri(self, media: Any, profile: str) -> str | None:
        try:
            answer = await self._call("GetSnapshotUri", media.GetSnapshotUri(
                {"ProfileToken": profile}))
        except OnvifError as err:
            if err.auth:
                raise
            log.info("%s: no snapshot URI (%s)", self.host, err)
            return None
        return _http_url(_attr(answer, "Uri"))

    async def _digital_inputs(self, xaddrs: Mapping[str, str]) -> tuple[str, ...]:
        if NS_DEVICEIO not in xaddrs:
            return ()
        camera = self._require_camera()
        try:
            deviceio = await self._call("deviceio setup", camera.create_deviceio_service(), 60.0)
            answer = await self._call("GetDigitalInputs", deviceio.GetDigitalInputs())
        except OnvifError as err:
            log.info("%s: digital inputs not listed (%s)", self.host, err)
            return ()
        tokens = (_text(_attr(item, "token")) for item in list(answer or [])[:64])
        return tuple(t for t in tokens if t)

    # -- events --

    async def events(self, pull_timeout_s: float = 5.0) -> AsyncIterator[OnvifEvent]:
        """Normalised events from a PullPoint subscription, renewed before it expires,
        forever. Raises OnvifError when the subscription or the camera is lost. One
        iterator at a time: a new one replaces the previous subscription."""
        await self._unsubscribe()
        await self._subscribe()
        while True:
            if self._renew_at - time.monotonic() < 1.0:
                await self._renew()
            wait = min(pull_timeout_s, self._renew_at - time.monotonic())
            for event in await self._pull(max(1, int(wait))):
                yield event

    async def _subscribe(self) -> None:
        camera = self._require_camera()
        from onvif.util import normalize_url

        events = await self._call("events setup", camera.create_events_service(), 60.0)
        requested = f"PT{int(self.subscription_s)}S"
        answer = await self._call("CreatePullPointSubscription",
                                  events.CreatePullPointSubscription(
                                      {"InitialTerminationTime": requested}))
        raw_address = _attr(answer, "SubscriptionReference", "Address", "_value_1")
        address = _http_url(normalize_url(raw_address) if isinstance(raw_address, str) else None)
        if address is None:
            raise OnvifError(f"{self.host}: CreatePullPointSubscription gave no address")
        camera.xaddrs[NS_PULLPOINT] = address
        await self._call("pullpoint setup", camera.create_pullpoint_service(), 60.0)
        await self._call("subscription setup",
                         camera.create_subscription_service("PullPointSubscription"), 60.0)
        self._subscribed = True
        log.info("%s: subscribed to events", self.host)
        self._schedule_renewal(answer)
        if self._renew_at - time.monotonic() < self.subscription_s * RENEW_FRACTION / 2:
            # the camera does not honour relative times: switch to absolute ones, as
            # onvif-zeep-async does, and renew at once
            camera.has_broken_relative_time(dt.timedelta(seconds=self.subscription_s),
                                            _attr(answer, "CurrentTime"),
                                            _attr(answer, "TerminationTime"))
            await self._renew()

    def _schedule_renewal(self, answer: Any) -> None:
        current, until = _attr(answer, "CurrentTime"), _attr(answer, "TerminationTime")
        lifetime = self.subscription_s
        if isinstance(current, dt.datetime) and isinstance(until, dt.datetime):
            try:
                lifetime = (until - current).total_seconds()
            except TypeError:  # one naive, one aware
                lifetime = self.subscription_s
        lifetime = min(max(lifetime, 1.0), self.subscription_s * 10)
        self._renew_at = time.monotonic() + lifetime * RENEW_FRACTION

    async def _renew(self) -> None:
        camera = self._require_camera()
        service = await self._call("subscription setup",
                                   camera.create_subscription_service("PullPointSubscription"),
                                   60.0)
        termination = camera.get_next_termination_time(dt.timedelta(seconds=self.subscription_s))
        answer = await self._call("Renew", service.Renew({"TerminationTime": termination}))
        self._schedule_renewal(answer)
        log.debug("%s: subscription renewed", self.host)

    async def _pull(self, timeout_s: int) -> list[OnvifEvent]:
        """One long poll; the answer is parsed by us (parse_pull_messages), not by zeep, so
        that one odd message from the camera cannot lose the whole batch."""
        camera = self._require_camera()
        service = await self._call("pullpoint setup", camera.create_pullpoint_service(), 60.0)
        response = await self._call(
            "PullMessages",
            _post_raw(service, "PullMessages", {
                "Timeout": dt.timedelta(seconds=timeout_s),
                "MessageLimit": MAX_MESSAGES_PER_PULL,
            }),
            timeout_s + self.timeout_s,
        )
        status, content = response
        if status in (401, 403) and not content:
            raise OnvifError(f"{self.host}: PullMessages refused (HTTP {status})", auth=True)
        if len(content) > MAX_PULL_RESPONSE_BYTES:
            raise OnvifError(f"{self.host}: PullMessages answer too large ({len(content)} bytes)")
        try:
            return parse_pull_messages(content)
        except OnvifError as err:
            raise OnvifError(f"{self.host}: PullMessages: {err}", auth=err.auth) from err

    async def _unsubscribe(self) -> None:
        if not self._subscribed or self._camera is None:
            return
        self._subscribed = False
        try:
            service = await self._call(
                "subscription setup",
                self._camera.create_subscription_service("PullPointSubscription"), 60.0)
            await self._call("Unsubscribe", service.Unsubscribe(), min(self.timeout_s, 5.0))
        except OnvifError as err:
            log.debug("%s: Unsubscribe failed: %s", self.host, err)

    # -- PTZ --

    def _ptz_profile(self, profile: str | None) -> str:
        if profile is not None:
            return profile
        info = self._info
        if info is None:
            raise OnvifError(f"{self.host}: not connected")
        chosen = next((p for p in info.profiles if p.token == info.analysis_profile and p.has_ptz),
                      None) or next((p for p in info.profiles if p.has_ptz), None)
        if chosen is None:
            raise OnvifError(f"{self.host}: no profile with PTZ")
        return chosen.token

    async def goto_preset(self, preset: str, profile: str | None = None) -> None:
        camera = self._require_camera()
        token = self._ptz_profile(profile)
        ptz = await self._call("ptz setup", camera.create_ptz_service(), 60.0)
        await self._call("GotoPreset", ptz.GotoPreset({"ProfileToken": token,
                                                       "PresetToken": preset}))

    async def goto_home(self, profile: str | None = None) -> None:
        camera = self._require_camera()
        token = self._ptz_profile(profile)
        ptz = await self._call("ptz setup", camera.create_ptz_service(), 60.0)
        await self._call("GotoHomePosition", ptz.GotoHomePosition({"ProfileToken": token}))

    # -- snapshot --

    async def snapshot(self) -> bytes:
        """The analysis profile's snapshot (JPEG), with HTTP Digest auth (Basic only when the
        camera offers nothing else); at most MAX_SNAPSHOT_BYTES, within the timeout."""
        info = self._info
        if info is None or info.snapshot_uri is None:
            raise OnvifError(f"{self.host}: no snapshot URI")
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self._fetch_snapshot(info.snapshot_uri)
        except OnvifError:
            raise
        except TimeoutError as err:
            raise OnvifError(f"{self.host}: snapshot timed out") from err
        except (aiohttp.ClientError, OSError, ValueError) as err:
            raise OnvifError(f"{self.host}: snapshot failed: {_describe_error(err)}") from err

    async def _fetch_snapshot(self, uri: str) -> bytes:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession()
        digest = aiohttp.DigestAuthMiddleware(self._username, self._password)
        async with self._http.get(uri, middlewares=(digest,), allow_redirects=False) as resp:
            offered = resp.headers.get("WWW-Authenticate", "")
            if resp.status != 401 or not offered.lower().startswith("basic"):
                return await self._read_snapshot(resp)
        token = base64.b64encode(f"{self._username}:{self._password}".encode()).decode()
        headers = {"Authorization": f"Basic {token}"}
        async with self._http.get(uri, headers=headers, allow_redirects=False) as resp:
            return await self._read_snapshot(resp)

    async def _read_snapshot(self, resp: aiohttp.ClientResponse) -> bytes:
        if resp.status in (401, 403):
            raise OnvifError(f"{self.host}: snapshot refused (HTTP {resp.status})", auth=True)
        if resp.status != 200:
            raise OnvifError(f"{self.host}: snapshot failed (HTTP {resp.status})")
        if (resp.content_length or 0) > MAX_SNAPSHOT_BYTES:
            raise OnvifError(f"{self.host}: snapshot too large ({resp.content_length} bytes)")
        chunks, size = [], 0
        async for chunk in resp.content.iter_chunked(65536):
            size += len(chunk)
            if size > MAX_SNAPSHOT_BYTES:
                raise OnvifError(f"{self.host}: snapshot larger than {MAX_SNAPSHOT_BYTES} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    # -- close --

    async def close(self) -> None:
        """End the event subscription on the camera and close every session."""
        await self._unsubscribe()
        await self._close_camera()
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def _close_camera(self) -> None:
        camera, self._camera = self._camera, None
        self._subscribed = False
        if camera is not None:
            try:
                await camera.close()
            except Exception as err:  # noqa: BLE001 - closing must not fail the caller
                log.debug("%s: close: %s", self.host, _describe_error(err))


async def _post_authless_headers(service: Any, operation: str) -> tuple[int, Mapping[str, str]]:
    """Send one operation without credentials; the HTTP status and headers of the answer,
    whatever it is (a fault included)."""
    proxy = service.ws_client_authless
    envelope, headers = proxy._binding._create(
        operation, (), {}, client=proxy._client, options=proxy._binding_options
    )
    response = await proxy._client.transport.post_xml(
        proxy._binding_options["address"], envelope, headers
    )
    return int(response.status_code), response.headers


async def _post_raw(service: Any, operation: str, params: dict[str, Any]) -> tuple[int, bytes]:
    """Send one operation through zeep (WS-Security and WS-Addressing headers included) but
    return the HTTP status and raw body instead of zeep's parse of it."""
    proxy = service.ws_client
    envelope, headers = proxy._binding._create(
        operation, (), params, client=proxy._client, options=proxy._binding_options
    )
    response = await proxy._client.transport.post_xml(
        proxy._binding_options["address"], envelope, headers
    )
    return int(response.status_code), bytes(response.content or b"")
