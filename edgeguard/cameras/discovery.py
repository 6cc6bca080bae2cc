"""Finding ONVIF cameras: a WS-Discovery 1.0 Probe for dn:NetworkVideoTransmitter (SOAP over
UDP, multicast out of one interface, or unicast to one address for labs and tests), and the
`edgeguard discover` command that turns what answers into `cameras:` config snippets
(docs/cameras-onvif.md, "Discovery").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import os
import re
import socket
import struct
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import yaml

from edgeguard.cameras.discover_args import DEFAULT_PASSWORD_ENV
from edgeguard.cameras.onvif_answers import OnvifError
from edgeguard.cameras.onvif_client import OnvifDevice
from edgeguard.cameras.onvif_events import parse_xml

log = logging.getLogger(__name__)

MULTICAST = ("239.255.255.250", 3702)
MAX_DATAGRAM = 65535
MAX_MATCHES = 16
MAX_XADDRS = 8
MAX_SCOPES = 64
MAX_TYPES = 16
MAX_FIELD = 512
MAX_DEVICES = 256
REPEAT_GAP_S = 0.1  # SOAP-over-UDP: each Probe is sent twice (UDP_REPEAT = 1)
WSA_2004 = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
WSD_2005 = "http://schemas.xmlsoap.org/ws/2005/04/discovery"
SIOCGIFADDR = 0x8915
CHANGE_ME = "CHANGE-ME"


@dataclass(frozen=True)
class DiscoveredDevice:
    """One ProbeMatch. `host`/`port` come from the first usable XAddr (IPv4 or a name
    preferred over IPv6); `name`/`hardware` from the onvif://www.onvif.org/ scopes."""

    epr: str
    xaddrs: tuple[str, ...]
    scopes: tuple[str, ...]
    types: tuple[str, ...]
    name: str | None
    hardware: str | None
    location: str | None
    host: str | None
    port: int | None
    sender: str


def probe_message(message_id: str) -> bytes:
    """A WS-Discovery 1.0 (2005/04) Probe for dn:NetworkVideoTransmitter, as ONVIF clients send."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
        f'xmlns:a="{WSA_2004}" xmlns:d="{WSD_2005}" '
        'xmlns:dn="http://www.onvif.org/ver10/network/wsdl"><s:Header>'
        f'<a:Action s:mustUnderstand="1">{WSD_2005}/Probe</a:Action>'
        f"<a:MessageID>{message_id}</a:MessageID>"
        f"<a:ReplyTo><a:Address>{WSA_2004}/role/anonymous</a:Address></a:ReplyTo>"
        '<a:To s:mustUnderstand="1">urn:schemas-xmlsoap-org:ws:2005:04:discovery</a:To>'
        "</s:Header><s:Body><d:Probe><d:Types>dn:NetworkVideoTransmitter</d:Types></d:Probe>"
        "</s:Body></s:Envelope>"
    ).encode()


# --- parsing ProbeMatches (pure, for untrusted datagrams) ---------------------------------


def _local(tag: Any) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _first(element: Any, name: str) -> Any:
    return next((el for el in element.iter() if _local(el.tag) == name), None)


def _text(element: Any) -> str:
    return "" if element is None else "".join(element.itertext()).strip()


def _tokens(text: str, limit: int) -> tuple[str, ...]:
    return tuple(t for t in text.split()[:limit] if len(t) <= MAX_FIELD)


def _printable(text: str) -> str:
    """Camera-given text made safe for one line of output (no control characters)."""
    return re.sub(r"[\x00-\x1f\x7f]+", " ", text).strip()


def _host_port(xaddr: str) -> tuple[str, int] | None:
    try:
        parts = urlsplit(xaddr)
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not host:
        return None
    return host, port or (443 if parts.scheme == "https" else 80)


def _scope_value(scopes: Iterable[str], kind: str) -> str | None:
    prefix = f"onvif://www.onvif.org/{kind}/"
    for scope in scopes:
        if scope.lower().startswith(prefix):
            value = _printable(unquote(scope[len(prefix):]))
            if value:
                return value[:128]
    return None


def _device(match: Any, sender: str) -> DiscoveredDevice:
    xaddrs = tuple(x for x in _tokens(_text(_first(match, "XAddrs")), MAX_XADDRS)
                   if _host_port(x) is not None)
    scopes = _tokens(_text(_first(match, "Scopes")), MAX_SCOPES)
    endpoints = [(x, _host_port(x)) for x in xaddrs]
    usable = [hp for _, hp in endpoints if hp is not None and ":" not in hp[0]]
    host_port = usable[0] if usable else next((hp for _, hp in endpoints if hp), None)
    reference = _first(match, "EndpointReference")
    address = _text(_first(match if reference is None else reference, "Address"))[:MAX_FIELD]
    return DiscoveredDevice(
        epr=address or (xaddrs[0] if xaddrs else f"udp:{sender}"),
        xaddrs=xaddrs,
        scopes=scopes,
        types=_tokens(_text(_first(match, "Types")), MAX_TYPES),
        name=_scope_value(scopes, "name"),
        hardware=_scope_value(scopes, "hardware"),
        location=_scope_value(scopes, "location"),
        host=host_port[0] if host_port else None,
        port=host_port[1] if host_port else None,
        sender=sender,
    )


@dataclass(frozen=True)
class ProbeReply:
    """What one datagram said: its devices, or why it was dropped (`dropped`, else None)."""

    devices: list[DiscoveredDevice]
    dropped: str | None = None


@dataclass(frozen=True)
class ProbeResult:
    """The devices a probe found, and (sender, reason) for senders whose every answer was
    dropped (the first reason each)."""

    devices: list[DiscoveredDevice]
    dropped: list[tuple[str, str]]


def _dropped(sender: str, reason: str) -> ProbeReply:
    log.debug("datagram from %s ignored: %s", sender, reason)
    return ProbeReply([], reason)


def _match_elements(root: Any) -> list[Any] | None:
    """The ProbeMatch elements: those of the ProbeMatches wrapper or, as some cameras send
    (ipycam), bare in the Body; None when there are none of either."""
    wrapper = _first(root, "ProbeMatches")
    if wrapper is not None:
        return [el for el in wrapper if _local(el.tag) == "ProbeMatch"][:MAX_MATCHES]
    body = next((el for el in root if _local(el.tag) == "Body"), None)
    bare = [] if body is None else [el for el in body if _local(el.tag) == "ProbeMatch"]
    return bare[:MAX_MATCHES] or None


def read_probe_reply(
    datagram: bytes, sender: str, *, relates_to: str | None = None
) -> ProbeReply:
    """The devices in a ProbeMatches datagram, or the reason it was dropped (logged at debug)."""
    if len(datagram) > MAX_DATAGRAM:
        return _dropped(sender, "oversized datagram")
    try:
        root = parse_xml(datagram)
    except OnvifError as err:
        return _dropped(sender, f"unreadable XML ({_printable(str(err))[:120]})")
    if _local(root.tag) != "Envelope":
        return _dropped(sender, "not a SOAP envelope")
    header = next((el for el in root if _local(el.tag) == "Header"), None)
    related = _text(_first(header, "RelatesTo")) if header is not None else ""
    if relates_to and related and related != relates_to:
        return _dropped(sender, "it answers another probe (RelatesTo)")
    matches = _match_elements(root)
    if matches is None:
        return _dropped(sender, "no ProbeMatches or ProbeMatch in the SOAP body")
    if not matches:
        return _dropped(sender, "a ProbeMatches without a ProbeMatch")
    return ProbeReply([_device(match, sender) for match in matches])


def parse_probe_matches(
    datagram: bytes, sender: str, *, relates_to: str | None = None
) -> list[DiscoveredDevice]:
    """The devices in a ProbeMatches datagram; [] for anything else (logged at debug)."""
    return read_probe_reply(datagram, sender, relates_to=relates_to).devices


# --- probing ------------------------------------------------------------------------------


def interface_ipv4(interface: str) -> str:
    """The IPv4 address of a network interface given by name (Linux), or the address itself."""
    with contextlib.suppress(ValueError):
        return str(ipaddress.IPv4Address(interface))
    import fcntl

    name = interface.encode()[:15]
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            packed = fcntl.ioctl(sock.fileno(), SIOCGIFADDR, struct.pack("256s", name))
    except OSError as err:
        raise ValueError(f"interface {interface!r} has no IPv4 address ({err.strerror})") from err
    return socket.inet_ntoa(packed[20:24])


def _probe_socket(target_ip: str, interface: str | None) -> socket.socket:
    local = interface_ipv4(interface) if interface else ""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        if ipaddress.IPv4Address(target_ip).is_multicast:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
            if local:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF,
                                socket.inet_aton(local))
        sock.bind((local, 0))
    except BaseException:
        sock.close()
        raise
    return sock


async def probe(
    *,
    interface: str | None = None,
    target: tuple[str, int] = MULTICAST,
    timeout_s: float = 3.0,
) -> list[DiscoveredDevice]:
    """Send a Probe (multicast out of `interface`'s IPv4 address, or unicast to `target`) and
    collect ProbeMatches until the timeout, de-duplicated by endpoint reference."""
    result = await probe_answers(interface=interface, target=target, timeout_s=timeout_s)
    return result.devices


async def probe_answers(
    *,
    interface: str | None = None,
    target: tuple[str, int] = MULTICAST,
    timeout_s: float = 3.0,
) -> ProbeResult:
    """As `probe`, also telling which senders' answers were dropped and why."""
    target_ip = str(ipaddress.IPv4Address(target[0]))
    message_id = f"urn:uuid:{uuid.uuid4()}"
    found: dict[str, DiscoveredDevice] = {}
    dropped: dict[str, str] = {}
    with _probe_socket(target_ip, interface) as sock:
        async for datagram, sender in _answers(sock, probe_message(message_id),
                                               (target_ip, target[1]), timeout_s):
            reply = read_probe_reply(datagram, sender, relates_to=message_id)
            if reply.dropped is not None and len(dropped) < MAX_DEVICES:
                dropped.setdefault(sender, reply.dropped)
            for device in reply.devices:
                if device.epr not in found and len(found) < MAX_DEVICES:
                    found[device.epr] = device
    answered = {device.sender for device in found.values()}
    return ProbeResult(list(found.values()),
                       [(ip, why) for ip, why in dropped.items() if ip not in answered])


async def _answers(
    sock: socket.socket, message: bytes, to: tuple[str, int], timeout_s: float
) -> AsyncIterator[tuple[bytes, str]]:
    """Send `message` twice (REPEAT_GAP_S apart) and yield (datagram, sender IP) until the
    timeout."""
    loop = asyncio.get_running_loop()
    await loop.sock_sendto(sock, message, to)
    deadline = time.monotonic() + timeout_s
    resend_at: float | None = time.monotonic() + REPEAT_GAP_S
    while (remaining := deadline - time.monotonic()) > 0:
        if resend_at is not None and time.monotonic() >= resend_at:
            await loop.sock_sendto(sock, message, to)
            resend_at = None
        wait = remaining if resend_at is None else min(remaining, REPEAT_GAP_S)
        try:
            async with asyncio.timeout(wait):
                datagram, sender = await loop.sock_recvfrom(sock, MAX_DATAGRAM + 1)
        except TimeoutError:
            continue
        except OSError as err:  # e.g. ICMP port unreachable on a unicast target
            log.debug("probe receive: %s", err)
            continue
        yield datagram, sender[0]


# --- config snippets ----------------------------------------------------------------------


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def camera_name(device: DiscoveredDevice, model: str | None = None) -> str:
    """A config name (letters, digits, '-'; at most 64) from the camera's name and address."""
    suffix = _slug(device.host or device.sender) or "camera"
    base = _slug(device.name or model or device.hardware or "camera") or "camera"
    return f"{base[:63 - len(suffix)].strip('-')}-{suffix}"[:64].strip("-")


def _without_userinfo(uri: str) -> str:
    try:
        parts = urlsplit(uri)
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        if parts.port:
            netloc += f":{parts.port}"
    except ValueError:
        return "(unreadable URI)"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def snippet_from_discovery(
    device: DiscoveredDevice, reason: str, *, username: str | None = None,
    password_env: str = DEFAULT_PASSWORD_ENV,
) -> dict[str, Any]:
    """A snippet from the ProbeMatch alone, with the reason nothing more is known."""
    what = " ".join(x for x in (device.name, device.hardware) if x) or "ONVIF device"
    xaddr = _without_userinfo(device.xaddrs[0]) if device.xaddrs else "no XAddrs"
    return {
        "name": camera_name(device),
        "location": CHANGE_ME,
        "onvif": {"host": device.host or device.sender, "port": device.port or 80,
                  "username": username or CHANGE_ME, "password": {"env": password_env}},
        "comment": f"{what} at {xaddr}; not verified: {reason}",
        "profiles": [],
    }


async def describe(
    device: DiscoveredDevice, username: str, password: str, *,
    password_env: str = DEFAULT_PASSWORD_ENV, timeout_s: float = 10.0,
) -> dict[str, Any]:
    """Connect to a discovered device and make its `cameras:` snippet: the keys of a
    camera's config (name, location, onvif) plus "comment" and "profiles", which
    render_snippets prints as YAML comments."""
    if device.host is None or device.port is None:
        raise OnvifError("the device gave no usable XAddr")
    camera = OnvifDevice(device.host, device.port, username, password, timeout_s=timeout_s)
    try:
        info = await camera.connect()
        profiles = []
        for profile in info.profiles[:16]:
            try:
                uri: str | None = await camera.stream_uri(profile.token)
            except OnvifError as err:
                log.debug("%s: %s", device.host, err)
                uri = None
            profiles.append({
                "token": profile.token, "name": profile.name, "encoding": profile.encoding,
                "resolution": f"{profile.width}x{profile.height}", "fps": profile.fps,
                "stream_uri": _without_userinfo(uri) if uri else None,
                "analysis": profile.token == info.analysis_profile,
            })
    finally:
        await camera.close()
    return {
        "name": camera_name(device, info.model),
        "location": CHANGE_ME,
        "onvif": {"host": device.host, "port": device.port, "username": username,
                  "password": {"env": password_env}, "profile": info.analysis_profile},
        "comment": f"{info.manufacturer} {info.model}, firmware {info.firmware}, "
                   f"serial {info.serial}" + _drift_note(info.clock_drift_s),
        "profiles": profiles,
    }


def _drift_note(drift: float | None) -> str:
    if drift is None or abs(drift) < 2:
        return ""
    return f"; camera clock {drift:+.0f} s off"


def _comment_lines(snippet: Mapping[str, Any]) -> list[str]:
    lines = [f"# {_printable(str(snippet.get('comment', '')))}"]
    profiles = snippet.get("profiles") or []
    if profiles:
        lines.append("# profiles:")
    for p in profiles:
        fps = f" {p['fps']:g} fps" if isinstance(p.get("fps"), float) else ""
        mark = "  <- analysis" if p.get("analysis") else ""
        text = (f"{p.get('token')} {p.get('name')} {p.get('encoding')} {p.get('resolution')}"
                f"{fps} {p.get('stream_uri') or '(no stream URI)'}")
        lines.append(f"#   {_printable(text)}{mark}")
    return lines


def render_snippets(snippets: Iterable[Mapping[str, Any]]) -> str:
    """YAML for the `cameras:` list; "comment" and "profiles" become comments."""
    snippets = list(snippets)
    out = [f"# edgeguard discover: {len(snippets)} camera(s). Paste under `cameras:`, set "
           f"each {CHANGE_ME}, and the password's environment variable."]
    for snippet in snippets:
        entry = {k: v for k, v in snippet.items() if k not in ("comment", "profiles")}
        out.extend(_comment_lines(snippet))
        out.append(yaml.safe_dump([entry], allow_unicode=True, sort_keys=False,
                                  default_flow_style=False).rstrip("\n"))
    return "\n".join(out) + "\n"


# --- the `discover` command ---------------------------------------------------------------


async def _discover(args: argparse.Namespace) -> tuple[ProbeResult, str]:
    env = args.password_env or DEFAULT_PASSWORD_ENV
    password = os.environ.get(args.password_env) if args.password_env else None
    result = await probe_answers(interface=args.interface, target=args.target or MULTICAST,
                                 timeout_s=args.timeout)
    snippets = []
    for device in result.devices:
        snippets.append(await _snippet(device, args.username, password, env))
    return result, render_snippets(snippets)


async def _snippet(device: DiscoveredDevice, username: str | None, password: str | None,
                   env: str) -> dict[str, Any]:
    if not username or password is None:
        return snippet_from_discovery(device, "no credentials given (--username and "
                                      "--password-env)", username=username, password_env=env)
    try:
        return await describe(device, username, password, password_env=env)
    except OnvifError as err:
        reason = _refusal(err) if err.auth else f"ONVIF failed: {err}"
        return snippet_from_discovery(device, reason, username=username, password_env=env)


def _refusal(err: OnvifError) -> str:
    if err.clock_drift_s is None:
        return "the camera refused the credentials"
    return (f"the camera refused the credentials, and its clock is {err.clock_drift_s:+.0f} s "
            "off: cameras that check WS-Security timestamps refuse good passwords then; set "
            "its time (NTP) first")


def run_discover(args: argparse.Namespace) -> int:
    """`edgeguard discover`: print a `cameras:` snippet per camera that answers, and on stderr
    each address whose answer was dropped and why; exit 1 when no camera is found."""
    if args.password_env and args.password_env not in os.environ:
        sys.stderr.write(f"edgeguard discover: environment variable {args.password_env} is not "
                         "set; cameras are not queried\n")
    try:
        result, text = asyncio.run(_discover(args))
    except (OSError, ValueError) as err:
        sys.stderr.write(f"edgeguard discover: {err}\n")
        return 1
    sys.stderr.write("".join(f"edgeguard discover: {sender} answered, but its answer was "
                             f"dropped: {reason}\n" for sender, reason in result.dropped))
    if not result.devices:
        if not result.dropped:
            sys.stderr.write("edgeguard discover: no ONVIF camera answered\n")
        return 1
    sys.stdout.write(text)
    return 0
