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
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Mapping
from typing import Any, TypeVar

import aiohttp

from edgeguard.cameras.onvif_answers import (
    OnvifCameraInfo,
    OnvifError,
    OnvifProfile,
    attr,
    choose_profile,
    classify_error,
    clock_drift,
    describe_error,
    http_date,
    http_url,
    read_profile,
    system_time,
    text_of,
)
from edgeguard.cameras.onvif_events import (
    MAX_MESSAGES_PER_PULL,
    OnvifEvent,
    parse_pull_messages,
)

log = logging.getLogger(__name__)

MAX_SNAPSHOT_BYTES = 10 * 1024 * 1024
MAX_PULL_RESPONSE_BYTES = 4 * 1024 * 1024
RENEW_FRACTION = 0.8
NS_DEVICEIO = "http://www.onvif.org/ver10/deviceIO/wsdl"
NS_EVENTS = "http://www.onvif.org/ver10/events/wsdl"
NS_PTZ = "http://www.onvif.org/ver20/ptz/wsdl"
NS_PULLPOINT = "http://www.onvif.org/ver10/events/wsdl/PullPointSubscription"
T = TypeVar("T")


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
        return classify_error(self.host, what, err)

    def _new_camera(self) -> Any:
        from onvif import ONVIFCamera

        return ONVIFCamera(
            self.host,
            self.port,
            self._username,
            self._password,
            encrypt=self._digest,
            no_cache=True,
            adjust_time=False,
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
                err.args = (
                    f"{err.args[0]} (the camera clock is {drift:+.0f} s off: cameras "
                    "that check WS-Security timestamps refuse such requests)",
                )
                err.clock_drift_s = drift
            raise
        if drift is None:
            drift = await self._clock_drift(devicemgmt, authless=False)
        profiles, chosen, stream_uri, snapshot_uri = await self._media()
        xaddrs = dict(camera.xaddrs)
        self._info = OnvifCameraInfo(
            manufacturer=text_of(attr(raw_info, "Manufacturer")),
            model=text_of(attr(raw_info, "Model")),
            firmware=text_of(attr(raw_info, "FirmwareVersion")),
            serial=text_of(attr(raw_info, "SerialNumber")),
            hardware_id=text_of(attr(raw_info, "HardwareId")),
            profiles=profiles,
            analysis_profile=chosen.token,
            stream_uri=stream_uri,
            snapshot_uri=snapshot_uri,
            clock_drift_s=drift,
            has_events=NS_EVENTS in xaddrs,
            has_ptz=NS_PTZ in xaddrs and any(p.has_ptz for p in profiles),
            digital_inputs=await self._digital_inputs(xaddrs),
        )
        log.info(
            "%s: %s %s, analysis profile %s (%sx%s)",
            self.host,
            self._info.manufacturer,
            self._info.model,
            chosen.token,
            chosen.width,
            chosen.height,
        )
        return self._info

    async def _clock_drift(self, devicemgmt: Any, *, authless: bool) -> float | None:
        """Camera UTC minus ours, from GetSystemDateAndTime (a PRE_AUTH operation; some
        cameras want credentials anyway, so it is asked again with them, and when those are
        refused too, the camera's clock is read from the Date header of its refusal)."""
        call = (
            devicemgmt.authless_GetSystemDateAndTime
            if authless
            else (devicemgmt.GetSystemDateAndTime)
        )
        before = time.time()
        try:
            answer = await self._call("GetSystemDateAndTime", call())
        except OnvifError as err:
            if authless and isinstance(
                err.__cause__, (TimeoutError, aiohttp.ClientConnectionError, OSError)
            ):
                raise  # unreachable or hung: no point in going on
            log.debug("%s", err)
            if authless and err.auth:
                return await self._clock_drift_with_credentials(devicemgmt)
            return None
        camera_time = system_time(answer)
        return None if camera_time is None else clock_drift(camera_time, before, time.time())

    async def _clock_drift_with_credentials(self, devicemgmt: Any) -> float | None:
        drift = await self._clock_drift(devicemgmt, authless=False)
        if drift is not None:
            return drift
        before = time.time()
        try:
            status, headers = await self._call(
                "GetSystemDateAndTime", _post_authless_headers(devicemgmt, "GetSystemDateAndTime")
            )
        except OnvifError as err:
            log.debug("%s", err)
            return None
        camera_time = http_date(headers.get("Date"))
        log.debug("%s: clock read from the Date header of an HTTP %s answer", self.host, status)
        return None if camera_time is None else clock_drift(camera_time, before, time.time())

    async def _media(self) -> tuple[tuple[OnvifProfile, ...], OnvifProfile, str, str | None]:
        camera = self._require_camera()
        media = await self._call("media setup", camera.create_media_service(), 60.0)
        raw = await self._call("GetProfiles", media.GetProfiles())
        profiles = tuple(
            p for p in (read_profile(r) for r in list(raw or [])[:64]) if p is not None
        )
        chosen = choose_profile(profiles, self._wanted_profile)
        stream_uri = await self.stream_uri(chosen.token)
        snapshot_uri = await self._snapshot_uri(media, chosen.token)
        return profiles, chosen, stream_uri, snapshot_uri

    async def stream_uri(self, profile: str) -> str:
        """The RTSP (RTP-Unicast over RTSP) URI of a profile."""
        camera = self._require_camera()
        media = await self._call("media setup", camera.create_media_service(), 60.0)
        answer = await self._call(
            "GetStreamUri",
            media.GetStreamUri(
                {
                    "ProfileToken": profile,
                    "StreamSetup": {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}},
                }
            ),
        )
        uri = str(attr(answer, "Uri") or "").strip()
        if not uri.lower().startswith(("rtsp://", "rtsps://")) or len(uri) > 2048:
            raise OnvifError(f"{self.host}: GetStreamUri gave no RTSP URI for {profile}")
        return uri

    async def _snapshot_uri(self, media: Any, profile: str) -> str | None:
        try:
            answer = await self._call(
                "GetSnapshotUri", media.GetSnapshotUri({"ProfileToken": profile})
            )
        except OnvifError as err:
            if err.auth:
                raise
            log.info("%s: no snapshot URI (%s)", self.host, err)
            return None
        return http_url(attr(answer, "Uri"))

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
        tokens = (text_of(attr(item, "token")) for item in list(answer or [])[:64])
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
        answer = await self._call(
            "CreatePullPointSubscription",
            events.CreatePullPointSubscription({"InitialTerminationTime": requested}),
        )
        raw_address = attr(answer, "SubscriptionReference", "Address", "_value_1")
        address = http_url(normalize_url(raw_address) if isinstance(raw_address, str) else None)
        if address is None:
            raise OnvifError(f"{self.host}: CreatePullPointSubscription gave no address")
        camera.xaddrs[NS_PULLPOINT] = address
        await self._call("pullpoint setup", camera.create_pullpoint_service(), 60.0)
        await self._call(
            "subscription setup", camera.create_subscription_service("PullPointSubscription"), 60.0
        )
        self._subscribed = True
        log.info("%s: subscribed to events", self.host)
        self._schedule_renewal(answer)
        if self._renew_at - time.monotonic() < self.subscription_s * RENEW_FRACTION / 2:
            # the camera does not honour relative times: switch to absolute ones, as
            # onvif-zeep-async does, and renew at once
            camera.has_broken_relative_time(
                dt.timedelta(seconds=self.subscription_s),
                attr(answer, "CurrentTime"),
                attr(answer, "TerminationTime"),
            )
            await self._renew()

    def _schedule_renewal(self, answer: Any) -> None:
        current, until = attr(answer, "CurrentTime"), attr(answer, "TerminationTime")
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
        service = await self._call(
            "subscription setup", camera.create_subscription_service("PullPointSubscription"), 60.0
        )
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
            _post_raw(
                service,
                "PullMessages",
                {
                    "Timeout": dt.timedelta(seconds=timeout_s),
                    "MessageLimit": MAX_MESSAGES_PER_PULL,
                },
            ),
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
                self._camera.create_subscription_service("PullPointSubscription"),
                60.0,
            )
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
        chosen = next(
            (p for p in info.profiles if p.token == info.analysis_profile and p.has_ptz), None
        ) or next((p for p in info.profiles if p.has_ptz), None)
        if chosen is None:
            raise OnvifError(f"{self.host}: no profile with PTZ")
        return chosen.token

    async def goto_preset(self, preset: str, profile: str | None = None) -> None:
        camera = self._require_camera()
        token = self._ptz_profile(profile)
        ptz = await self._call("ptz setup", camera.create_ptz_service(), 60.0)
        await self._call(
            "GotoPreset", ptz.GotoPreset({"ProfileToken": token, "PresetToken": preset})
        )

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
            raise OnvifError(f"{self.host}: snapshot failed: {describe_error(err)}") from err

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
                log.debug("%s: close: %s", self.host, describe_error(err))


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
