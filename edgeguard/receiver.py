"""The police side of the contract, minimal: verify each message's signature against the
site's public key, drop duplicates by (event_id, seq), and render alarms as a dispatcher reads
them. `edgeguard listen` (the demo's police subscriber) and the tests use it."""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edgeguard.ids import parse_iso
from edgeguard.signing import SignatureError, load_public_key, verify_bytes

logger = logging.getLogger(__name__)

MAX_REMEMBERED = 100_000
MAX_SNAPSHOTS = 1_000
MAX_SNAPSHOT_BYTES = 10 << 20


POLICE_TO_SITE = frozenset({"ack", "receipt"})  # topics the police write and every site reads

@dataclass(frozen=True)
class Received:
    """One verified message, or why it was rejected (``warning``)."""

    topic: str
    site: str
    kind: str  # alarm, status, heartbeat, device, ack, receipt, other
    payload: dict[str, Any] | None
    duplicate: bool = False
    warning: str | None = None
    blob: bytes | None = None  # a snapshot's JPEG bytes


def load_site_keys(directory: Path) -> dict[str, Ed25519PublicKey]:
    """Public keys named ``{site id}.pub`` in ``directory``."""
    return {path.stem: load_public_key(path) for path in sorted(directory.glob("*.pub"))}


class Receiver:
    def __init__(
        self, keys: dict[str, Ed25519PublicKey], *, remember: int = MAX_REMEMBERED
    ) -> None:
        """``remember``: how many (site, event_id, seq) are kept to flag duplicates; 0 for a
        caller that dedupes elsewhere (the police store does, in its database), which then
        holds no memory per message."""
        self.keys = keys
        self.remember = remember
        self._seen: dict[tuple[str, str, int], None] = {}
        # sha256 of snapshots received, by (site, event_id, camera): checked against the
        # signed `evidence` message that follows them
        self.snapshots: OrderedDict[tuple[str, str, str], str] = OrderedDict()

    def handle(self, topic: str, body: bytes) -> Received:
        parts = topic.split("/")
        if len(parts) < 3 or parts[0] != "edgeguard":
            return Received(topic, "?", "other", None, warning="not an edgeguard topic")
        site, kind = parts[1], parts[2]
        if kind in POLICE_TO_SITE:  # the police's own messages: nothing to verify here
            return Received(topic, site, kind, None)
        key = self.keys.get(site)
        if key is None:
            return Received(topic, site, kind, None, warning=f"unknown site {site!r}: no key")
        if kind == "snapshot":
            return self._snapshot(topic, parts, body)
        try:
            payload = verify_bytes(body, key)
        except SignatureError as exc:
            return Received(topic, site, kind, None, warning=f"rejected: {exc}")
        if payload.get("site") != site:
            return Received(
                topic,
                site,
                kind,
                None,
                warning=f"site {payload.get('site')!r} published under {site!r}",
            )
        if kind == "alarm" and payload.get("message") == "evidence":
            problem = self.check_evidence(site, payload)
            if problem:
                return Received(topic, site, kind, payload, warning=problem)
        return Received(topic, site, kind, payload, duplicate=self._is_duplicate(kind, payload))

    def _snapshot(self, topic: str, parts: list[str], body: bytes) -> Received:
        """A JPEG published before the signed `evidence` message that vouches for it."""
        site = parts[1]
        if len(parts) != 5 or not body or len(body) > MAX_SNAPSHOT_BYTES:
            return Received(topic, site, "snapshot", None, warning="malformed snapshot message")
        digest = hashlib.sha256(body).hexdigest()
        self.snapshots[(site, parts[3], parts[4])] = digest
        while len(self.snapshots) > MAX_SNAPSHOTS:
            self.snapshots.popitem(last=False)
        info = {"event_id": parts[3], "camera": parts[4], "sha256": digest, "bytes": len(body)}
        return Received(topic, site, "snapshot", info, blob=body)

    def check_evidence(self, site: str, payload: dict[str, Any]) -> str | None:
        """A listed snapshot whose bytes arrived with another hash was altered on the way."""
        for item in payload.get("evidence") or []:
            if not isinstance(item, dict) or "sha256" not in item or item.get("kind") != "snapshot":
                continue  # clips stay at the site: nothing received to check
            got = self.snapshots.get((site, str(payload.get("event_id")), str(item.get("camera"))))
            if got is not None and got != item["sha256"]:
                return f"snapshot of {item.get('camera')} does not match its signed sha256"
        return None

    @property
    def remembered(self) -> int:
        """How many alarm messages are remembered for duplicate detection."""
        return len(self._seen)

    def _is_duplicate(self, kind: str, payload: dict[str, Any]) -> bool:
        if kind != "alarm" or self.remember <= 0:
            return False
        key = (str(payload.get("site")), str(payload.get("event_id")), int(payload.get("seq", -1)))
        if key in self._seen:
            return True
        self._seen[key] = None
        if len(self._seen) > self.remember:
            self._seen.pop(next(iter(self._seen)))
        return False


def _local(text: str | None) -> str:
    if not text:
        return "-"
    moment: datetime = parse_iso(text).astimezone()
    return (
        moment.strftime("%Y-%m-%d %H:%M:%S.")
        + f"{moment.microsecond // 1000:03d} "
        + moment.strftime("(UTC%z)")
    )


def render_alarm(p: dict[str, Any]) -> str:
    """An alarm as a dispatcher reads it: who, where, what, when, and that it is genuine."""
    loc = p.get("location") or {}
    where = " ".join(str(loc[k]) for k in ("building", "floor", "room") if loc.get(k))
    where = f"{where} {loc.get('label', '')}".strip() + (
        f" ({loc['zone']})" if loc.get("zone") else ""
    )
    head = (
        f"[P{p.get('priority')} {str(p.get('kind', '')).upper()}] {p.get('site_name')} "
        f"({p.get('site')})  {str(p.get('message', '')).upper()}  state={p.get('state')}"
    )
    lines = [
        head,
        f"  where: {where}",
        f"  what:  {p.get('kind')} from {p.get('source')}"
        + ("  (input still active)" if p.get("input_active") else "  (input restored)"),
        f"  when:  {_local(p.get('occurred_at'))}",
        f"  event: {p.get('event_id')}  seq {p.get('seq')}  signature OK",
    ]
    if p.get("reset_by"):
        lines.append(f"  reset: by {p['reset_by']} at {_local(p.get('reset_at'))}")
    if p.get("cameras"):
        lines.append(f"  cameras: {', '.join(p['cameras'])}")
    for item in p.get("evidence") or []:
        kind = "clip" if item.get("kind") == "clip" else "snapshot"
        lines.append(f"  {kind} {item.get('camera')}: {_evidence_text(item)}")
    return "\n".join(lines)


def _evidence_text(item: dict[str, Any]) -> str:
    if item.get("error"):
        return str(item["error"])
    size = f"{item.get('bytes')} bytes, sha256 {str(item.get('sha256'))[:12]}"
    if item.get("kind") == "clip":
        return f"{item.get('duration_s')} s kept at the site, {size}"
    return size


def render(received: Received) -> str | None:
    """A line (or block) for the console, or None for messages not worth a line."""
    if received.warning:
        return f"!! SECURITY WARNING on {received.topic}: {received.warning}"
    p = received.payload or {}
    if received.kind == "alarm":
        return (
            ("(duplicate ignored) " + str(p.get("event_id")))
            if received.duplicate
            else render_alarm(p)
        )
    if received.kind == "status":
        return f"-- site {received.site} is {p.get('state')} (version {p.get('version')})"
    if received.kind == "snapshot":
        return f"-- snapshot {p.get('camera')} for {p.get('event_id')}: {p.get('bytes')} bytes"
    if received.kind == "device":
        return f"-- device {p.get('device')} at {received.site}: {p.get('state')}"
    return None
