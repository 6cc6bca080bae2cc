"""The published JSON Schemas (docs/schema/) against real payloads: a daemon runs a full alarm
lifecycle against a lab broker over TLS and everything the police side receives must match."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from edgeguard.alarm_model import DeviceState, DeviceStatus
from edgeguard.control import call
from edgeguard.lab.harness import InProcessDaemon, PoliceSubscriber, Site, lab_broker, make_site
from edgeguard.payloads import PoliceAck

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "docs" / "schema"
SCHEMA_NAMES = ("alarm", "status", "heartbeat", "device", "ack", "receipt")
SITE_TO_POLICE = ("alarm", "status", "heartbeat", "device")

ACK = {
    "event_id": "",  # filled in with the real alarm's id
    "state": "acknowledged",
    "by": "110 指挥中心 王",
    "at": "2026-11-23T01:00:00.000Z",
}


def _schema(name: str) -> dict[str, Any]:
    return json.loads((SCHEMA_DIR / f"{name}.json").read_text("utf-8"))


def _validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(_schema(name), format_checker=FormatChecker())


def _errors(name: str, payload: Any) -> list[str]:
    return [error.message for error in _validator(name).iter_errors(payload)]


# --- the schemas themselves ------------------------------------------------------------------
def test_schema_folder_holds_exactly_the_contract() -> None:
    assert sorted(p.stem for p in SCHEMA_DIR.glob("*.json")) == sorted(SCHEMA_NAMES)


@pytest.mark.parametrize("path", sorted(SCHEMA_DIR.glob("*.json")), ids=lambda p: p.name)
def test_every_schema_is_a_valid_draft_2020_12_schema(path: Path) -> None:
    schema = json.loads(path.read_text("utf-8"))
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"https://edgeguard.example/schema/{path.stem}.v1.json"


# --- a real run --------------------------------------------------------------------------------
@dataclass
class Capture:
    """What the police subscriber received in one full run, verified, plus the ack sent."""

    messages: list[tuple[str, str, dict[str, Any]]]  # (topic, kind, payload)
    ack: dict[str, Any]
    ack_state_on_site: str

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [payload for _, k, payload in self.messages if k == kind]


def _wait(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def _control(site: Site, request: dict[str, Any]) -> dict[str, Any]:
    answer = call(site.socket, request)
    assert answer["ok"], answer
    return answer


def _open_state(site: Site, event_id: str) -> str | None:
    for alarm in _control(site, {"cmd": "status"})["open_alarms"]:
        if alarm["event_id"] == event_id:
            return str(alarm["state"])
    return None


def _statuses(police: PoliceSubscriber) -> list[str]:
    return [str(r.payload["state"]) for _, r in police.received if r.kind == "status" and r.payload]


def _has(police: PoliceSubscriber, kind: str) -> bool:
    return any(r.kind == kind and r.payload for _, r in police.received)


def _panic_lifecycle(site: Site, police: PoliceSubscriber) -> tuple[dict[str, Any], str]:
    """Press, press again, release, police ack, reset by a person; return the ack and the
    alarm's state on the site once the ack was applied."""
    _control(site, {"cmd": "press", "input": "er-button"})
    event_id = police.wait_alarms(1)[0]["event_id"]
    _control(site, {"cmd": "press", "input": "er-button"})
    _control(site, {"cmd": "release", "input": "er-button"})
    assert len(police.wait_alarms(3)) == 3
    ack = {**ACK, "event_id": event_id}
    police.client.publish(
        f"edgeguard/{site.site_id}/ack", json.dumps(ack, ensure_ascii=False), qos=1
    )
    _wait(lambda: _open_state(site, event_id) == "acknowledged")
    state_after_ack = _open_state(site, event_id)
    _control(site, {"cmd": "reset", "event_id": event_id, "by": "李保安"})
    assert len(police.wait_alarms(4)) == 4
    return ack, str(state_after_ack)


def _device_fault_cycle(running: InProcessDaemon, police: PoliceSubscriber) -> None:
    """The button's driver reports a fault (device_fault alarm), then comes back (auto reset)."""
    bridge = running.daemon.bridge
    assert bridge is not None
    bridge.device_status(DeviceStatus("er-button", DeviceState.FAULT, {"error": "no answer"}))
    assert len(police.wait_alarms(5)) == 5
    bridge.device_status(DeviceStatus("er-button", DeviceState.ONLINE, {"driver": "simulated"}))
    assert len(police.wait_alarms(6)) == 6


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Capture]:
    base = tmp_path_factory.mktemp("schemas")
    broker = lab_broker(base / "lab")
    try:
        site = make_site(base / "site", broker)
        with PoliceSubscriber(broker, {site.site_id: site.public_key}) as police:
            with InProcessDaemon(site.config()) as running:
                running.wait_connected()
                ack, state = _panic_lifecycle(site, police)
                _device_fault_cycle(running, police)
                assert police.wait_for(lambda p: _has(p, "heartbeat"), timeout=5)
            assert police.wait_for(lambda p: _statuses(p)[-1:] == ["offline"], timeout=5)
            assert not police.warnings(), police.warnings()
            messages = [
                (r.topic, r.kind, r.payload) for _, r in police.received if r.payload is not None
            ]
        yield Capture(messages, ack, state)
    finally:
        broker.stop()


def test_run_produced_every_kind_of_message(capture: Capture) -> None:
    alarms = capture.of("alarm")
    assert [(a["kind"], a["message"]) for a in alarms] == [
        ("panic", "new"),
        ("panic", "update"),
        ("panic", "restored"),
        ("panic", "reset"),
        ("device_fault", "new"),
        ("device_fault", "reset"),
    ]
    assert {s["state"] for s in capture.of("status")} == {"online", "offline"}
    assert {d["state"] for d in capture.of("device")} == {"online", "fault"}
    assert capture.of("heartbeat")


@pytest.mark.parametrize("kind", SITE_TO_POLICE)
def test_real_payloads_match_their_schema(capture: Capture, kind: str) -> None:
    payloads = capture.of(kind)
    assert payloads
    for payload in payloads:
        assert _errors(kind, payload) == [], payload


def test_topic_levels_match_payload(capture: Capture) -> None:
    for topic, kind, payload in capture.messages:
        parts = topic.split("/")
        assert parts[1] == payload["site"]
        assert payload["type"] == kind
        if kind == "alarm":
            assert parts[3] == payload["source"]
        if kind == "device":
            assert parts[3] == payload["device"]


def test_alarm_carries_at_least_the_design_brief_fields(capture: Capture) -> None:
    brief = {"v", "event_id", "site", "seq", "kind", "state", "priority", "source"}
    brief |= {"location", "occurred_at", "detail", "cameras", "sig"}
    required = set(_schema("alarm")["required"])
    assert brief <= required
    for alarm in capture.of("alarm"):
        assert brief <= set(alarm)


def test_police_ack_matches_schema_and_is_accepted_by_the_site(capture: Capture) -> None:
    assert _errors("ack", capture.ack) == []
    assert capture.ack_state_on_site == "acknowledged"


def test_ack_schema_and_site_agree_on_extra_members(capture: Capture) -> None:
    extended = {**capture.ack, "v": 1, "console": "desk 3"}
    assert _errors("ack", extended) == []
    PoliceAck.model_validate(extended)  # the site ignores them too


# --- malformed payloads are rejected -----------------------------------------------------------
def _first(capture: Capture, kind: str, message: str | None = None) -> dict[str, Any]:
    for payload in capture.of(kind):
        if message is None or payload.get("message") == message:
            return copy.deepcopy(payload)
    raise AssertionError(f"no {kind} {message or ''} captured")


Mutation = Callable[[dict[str, Any]], None]


def _assert_rejected(kind: str, payload: dict[str, Any], mutate: Mutation) -> None:
    """``payload`` is valid as captured; after ``mutate`` the schema must reject it."""
    assert _errors(kind, payload) == []
    mutate(payload)
    assert _errors(kind, payload), payload


def _without(key: str) -> Mutation:
    return lambda p: p.pop(key)


def _setting(key: str, value: Any) -> Mutation:
    return lambda p: p.__setitem__(key, value)


def _in_location(key: str, value: Any) -> Mutation:
    return lambda p: p["location"].__setitem__(key, value)


BAD_ALARMS: dict[str, Mutation] = {
    "missing event_id": _without("event_id"),
    "missing sig": _without("sig"),
    "missing cameras": _without("cameras"),
    "priority 0": _setting("priority", 0),
    "priority 5": _setting("priority", 5),
    "priority as string": _setting("priority", "1"),
    "extra field": _setting("colour", "red"),
    "unknown kind": _setting("kind", "fire"),
    "unknown state": _setting("state", "closed"),
    "unknown message": _setting("message", "ack"),
    "version 2": _setting("v", 2),
    "time without ms": _setting("occurred_at", "2026-11-23T01:00:00Z"),
    "time with offset": _setting("occurred_at", "2026-11-23T01:00:00.000+00:00"),
    "event_id not uuid7": _setting("event_id", "4f9d2c1e-8b7a-4c3d-9e2f-1a2b3c4d5e6f"),
    "sig of 63 bytes": _setting("sig", "A" * 84),
    "sig not base64": _setting("sig", "!" * 86 + "=="),
    "seq 0": _setting("seq", 0),
    "source with slash": _setting("source", "er/button"),
    "location without label": lambda p: p["location"].pop("label"),
    "location null floor": _in_location("floor", None),
    "location extra part": _in_location("gps", "31.2,121.5"),
    "detail not an object": _setting("detail", "pressed"),
}


@pytest.mark.parametrize("mutate", BAD_ALARMS.values(), ids=BAD_ALARMS.keys())
def test_malformed_alarm_rejected(capture: Capture, mutate: Mutation) -> None:
    _assert_rejected("alarm", _first(capture, "alarm", "new"), mutate)


LIFECYCLE_LIES: dict[str, tuple[str, Mutation]] = {
    "new but reset": ("new", _setting("state", "reset")),
    "new but restored": ("new", _setting("input_active", False)),
    "restored but still active input": ("restored", _setting("input_active", True)),
    "restored without restored_at": ("restored", _setting("restored_at", None)),
    "reset without reset_by": ("reset", _setting("reset_by", None)),
    "reset but state delivered": ("reset", _setting("state", "delivered")),
    "update with trigger_count 1": ("update", _setting("trigger_count", 1)),
}


@pytest.mark.parametrize("case", LIFECYCLE_LIES.values(), ids=LIFECYCLE_LIES.keys())
def test_inconsistent_lifecycle_rejected(capture: Capture, case: tuple[str, Mutation]) -> None:
    message, mutate = case
    _assert_rejected("alarm", _first(capture, "alarm", message), mutate)


BAD_OTHERS: dict[str, tuple[str, Mutation]] = {
    "status unknown state": ("status", _setting("state", "sleeping")),
    "status extra field": ("status", _setting("ip", "10.0.0.1")),
    "status missing version": ("status", _without("version")),
    "heartbeat counter 0": ("heartbeat", _setting("counter", 0)),
    "heartbeat short log hash": ("heartbeat", lambda p: p["log_head"].__setitem__("hash", "ab")),
    "heartbeat extra field": ("heartbeat", _setting("load", 0.5)),
    "device unknown state": ("device", _setting("state", "broken")),
    "device missing detail": ("device", _without("detail")),
    "device extra field": ("device", _setting("ip", "10.0.0.1")),
}


@pytest.mark.parametrize("case", BAD_OTHERS.values(), ids=BAD_OTHERS.keys())
def test_malformed_status_heartbeat_device_rejected(
    capture: Capture, case: tuple[str, Mutation]
) -> None:
    kind, mutate = case
    _assert_rejected(kind, _first(capture, kind), mutate)


BAD_ACKS: dict[str, Mutation] = {
    "missing by": _without("by"),
    "missing at": _without("at"),
    "empty by": _setting("by", ""),
    "unknown state": _setting("state", "reset"),
    "unix time": _setting("at", 1795000000),
    "time without zone": _setting("at", "2026-11-23T09:00:00"),
    "date only": _setting("at", "2026-11-23"),
    "uppercase event_id": lambda p: p.__setitem__("event_id", p["event_id"].upper()),
    "version 2": _setting("v", 2),
}


@pytest.mark.parametrize("mutate", BAD_ACKS.values(), ids=BAD_ACKS.keys())
def test_malformed_ack_rejected(capture: Capture, mutate: Mutation) -> None:
    _assert_rejected("ack", copy.deepcopy(capture.ack), mutate)


@pytest.mark.parametrize(
    "at", ["2026-11-23T09:00:00+08:00", "2026-11-23T01:00:00Z", "2026-11-23T01:00:00.123456Z"]
)
def test_ack_times_with_an_offset_are_valid(capture: Capture, at: str) -> None:
    assert _errors("ack", {**capture.ack, "at": at}) == []



_TYPED_KEYWORDS = {
    "minimum": {"number", "integer"}, "maximum": {"number", "integer"},
    "exclusiveMinimum": {"number", "integer"}, "exclusiveMaximum": {"number", "integer"},
    "multipleOf": {"number", "integer"}, "minLength": {"string"}, "maxLength": {"string"},
    "pattern": {"string"}, "minItems": {"array"}, "maxItems": {"array"}, "items": {"array"},
    "minProperties": {"object"}, "required": {"object"}, "properties": {"object"},
    "additionalProperties": {"object"},
}
_SAME_INSTANCE = ("allOf", "anyOf", "oneOf", "if", "then", "else", "not")
_CHILD_MAPS = ("properties", "$defs", "patternProperties")
_CHILD = ("items", "additionalProperties", "contains", "propertyNames")


def _types(node: dict[str, Any], inherited: frozenset[str]) -> frozenset[str]:
    declared = node.get("type")
    if isinstance(declared, str):
        return frozenset({declared})
    if isinstance(declared, list):
        return frozenset(declared)
    return inherited


def _untyped(node: Any, where: str, inherited: frozenset[str] = frozenset()) -> Iterator[str]:
    """ajv's strict mode (strictTypes): a keyword that applies to one type needs that type
    named for the same instance (here or in a schema around it at the same level), or the
    schema does not compile."""
    if isinstance(node, list):
        for i, item in enumerate(node):
            yield from _untyped(item, f"{where}[{i}]", inherited)
        return
    if not isinstance(node, dict):
        return
    types = _types(node, inherited)
    for keyword, needs in _TYPED_KEYWORDS.items():
        if keyword in node and not types & needs:
            yield f"{where}: {keyword} without a type of {sorted(needs)}"
    for key in _SAME_INSTANCE:
        if key in node:
            yield from _untyped(node[key], f"{where}/{key}", types)
    for key in _CHILD_MAPS:
        for name, child in node.get(key, {}).items():
            yield from _untyped(child, f"{where}/{key}/{name}")
    for key in _CHILD:
        if isinstance(node.get(key), dict):
            yield from _untyped(node[key], f"{where}/{key}")


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_schema_compiles_under_ajv_strict_types(name: str) -> None:
    schema = json.loads((SCHEMA_DIR / f"{name}.json").read_text(encoding="utf-8"))
    assert list(_untyped(schema, name)) == []
