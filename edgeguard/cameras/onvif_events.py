"""ONVIF events as edgeguard reads them: a PullMessages answer parsed (bounded, hardened XML)
and each notification's topic normalised to motion, tamper, digital input or other. Pure code
(docs/cameras-onvif.md)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from edgeguard.cameras.onvif_answers import MAX_TEXT, OnvifError

log = logging.getLogger(__name__)

EventKind = Literal["motion", "tamper", "digital_input", "other"]
MAX_MESSAGES_PER_PULL = 64
MAX_ITEMS_PER_MESSAGE = 32


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
    _TopicRule(
        ("device", "trigger", "digitalinput"), "digital_input", ("LogicalState",), ("InputToken",)
    ),
    _TopicRule(
        ("device", "trigger", "alarmin"),
        "digital_input",
        ("State",),
        ("AlarmInToken", "InputToken"),
    ),
    _TopicRule(("device", "io", "port"), "digital_input", ("state",), ("port",)),
    _TopicRule(
        ("ruleengine", "cellmotiondetector", "motion"), "motion", ("IsMotion",), _VIDEO_SOURCE_KEYS
    ),
    _TopicRule(
        ("ruleengine", "motionregiondetector", "motion"), "motion", ("State",), _VIDEO_SOURCE_KEYS
    ),
    _TopicRule(("videosource", "motionalarm"), "motion", ("State",), _VIDEO_SOURCE_KEYS),
    _TopicRule(("videoanalytics", "motionalarm"), "motion", ("State",), _VIDEO_SOURCE_KEYS),
    _TopicRule(
        ("ruleengine", "tamperdetector", "tamper"),
        "tamper",
        ("IsTamper", "State"),
        _VIDEO_SOURCE_KEYS,
    ),
    _TopicRule(
        ("videosource", "globalscenechange"),
        "tamper",
        ("State",),
        _VIDEO_SOURCE_KEYS,
        any_tail=True,
    ),
    _TopicRule(("videosource", "tampering"), "tamper", ("tampering",), ("channel",)),
    _TopicRule(("useralarm", "videocover"), "tamper", ("State",), _VIDEO_SOURCE_KEYS),
)
_FALLBACK_SOURCE_KEYS = (
    "InputToken",
    "VideoSourceToken",
    "VideoSourceConfigurationToken",
    "Source",
)


def _segments(topic: str) -> tuple[str, ...]:
    """'tns1:Device/tnsaxis:IO/Port' -> ('device', 'io', 'port')."""
    return tuple(s.rsplit(":", 1)[-1].strip().lower() for s in topic.split("/") if s.strip())


def _match(rule: _TopicRule, segments: tuple[str, ...]) -> bool:
    n = len(rule.path)
    if segments[-n:] == rule.path:
        return True
    return rule.any_tail and len(segments) > n and segments[-n - 1 : -1] == rule.path


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
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
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
