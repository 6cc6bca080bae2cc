"""What an ONVIF camera answers, as plain data: its identity, profiles and the client's error,
and the helpers that read zeep's answers defensively (a field may be missing, of another type
or hostile). Pure code (docs/cameras-onvif.md)."""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

MAX_TEXT = 256


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


# --- reading the device's answers ------------------------------------------------------------


def attr(obj: Any, *names: str) -> Any:
    """obj.a.b.c, None when any step is missing (zeep objects from a camera are untrusted)."""
    for name in names:
        if obj is None:
            return None
        try:
            obj = getattr(obj, name)
        except (AttributeError, KeyError, TypeError):
            return None
    return obj


def text_of(value: Any) -> str:
    return "" if value is None else str(value).strip()[:MAX_TEXT]


def number_of(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if 0 <= number < 1e6 else None  # also refuses NaN


def read_profile(raw: Any) -> OnvifProfile | None:
    token = attr(raw, "token")
    if not token:
        return None
    vec = attr(raw, "VideoEncoderConfiguration")
    width, height = (
        number_of(attr(vec, "Resolution", "Width")),
        number_of(attr(vec, "Resolution", "Height")),
    )
    return OnvifProfile(
        token=text_of(token),
        name=text_of(attr(raw, "Name")),
        encoding=text_of(attr(vec, "Encoding")) or None,
        width=None if width is None else int(width),
        height=None if height is None else int(height),
        fps=number_of(attr(vec, "RateControl", "FrameRateLimit")),
        has_ptz=attr(raw, "PTZConfiguration") is not None,
    )


def choose_profile(profiles: Iterable[OnvifProfile], wanted: str | None) -> OnvifProfile:
    """`wanted` by token, else the lowest-resolution H264 profile (the substream), else the
    lowest-resolution profile with a video encoder."""
    profiles = list(profiles)
    if wanted is not None:
        for profile in profiles:
            if profile.token == wanted:
                return profile
        raise OnvifError(
            f"profile {wanted!r} is not on the camera "
            f"(it has {', '.join(p.token for p in profiles) or 'none'})"
        )
    video = [p for p in profiles if p.width and p.height]
    h264 = [p for p in video if (p.encoding or "").upper() == "H264"]
    candidates = h264 or video
    if not candidates:
        raise OnvifError("the camera has no video profile")
    return min(candidates, key=lambda p: (p.width or 0) * (p.height or 0))


def system_time(answer: Any) -> dt.datetime | None:
    utc = attr(answer, "UTCDateTime")
    try:
        return dt.datetime(
            int(attr(utc, "Date", "Year")),
            int(attr(utc, "Date", "Month")),
            int(attr(utc, "Date", "Day")),
            int(attr(utc, "Time", "Hour")),
            int(attr(utc, "Time", "Minute")),
            int(attr(utc, "Time", "Second")),
            tzinfo=dt.UTC,
        )
    except (TypeError, ValueError):
        return None


def clock_drift(camera_time: dt.datetime, before: float, after: float) -> float:
    """Camera time minus ours at the middle of the request; the camera gives whole seconds,
    so ours is truncated the same way."""
    ours = dt.datetime.fromtimestamp((before + after) / 2, dt.UTC)
    return (camera_time - ours.replace(microsecond=0)).total_seconds()


def http_date(value: Any) -> dt.datetime | None:
    """An HTTP Date header (RFC 9110 IMF-fixdate, GMT), or None."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


def http_url(value: Any) -> str | None:
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


def describe_error(err: BaseException) -> str:
    text = re.sub(r"\s+", " ", str(err))[:200]
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def classify_error(host: str, what: str, err: Exception) -> OnvifError:
    """A failed call as an OnvifError: a refusal of the credentials (auth) or anything else."""
    from onvif.exceptions import ONVIFAuthError
    from onvif.util import is_auth_error, stringify_onvif_error
    from zeep.exceptions import Fault, TransportError

    auth = isinstance(err, ONVIFAuthError) or is_auth_error(err)
    if isinstance(err, TransportError) and err.status_code in (401, 403):
        auth = True
    detail = stringify_onvif_error(err) if isinstance(err, Fault) else describe_error(err)
    detail = re.sub(r"\s+", " ", detail)[:240]
    message = f"{host}: {what} failed: {detail}"
    log.debug("%s (auth=%s)", message, auth)
    return OnvifError(message, auth=auth)
