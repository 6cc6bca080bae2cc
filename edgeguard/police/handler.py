"""What the receiver does with each message (on the event loop): verify it through
receiver.Receiver, then store it. Unknown sites, bad signatures and mismatches become security
warnings, never alarms; malformed input never raises."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from edgeguard.ids import iso_ms, utc_now
from edgeguard.police.shapes import shape_problem
from edgeguard.police.site_keys import SiteKeys
from edgeguard.police.snapshots import OrphanLimits, remove_snapshot_file, save_snapshot
from edgeguard.police.store import PoliceStore
from edgeguard.police.tracker import SiteUpdate, Tracker
from edgeguard.receipts import ID_PATTERN
from edgeguard.receiver import Received, Receiver
from edgeguard.safe_text import preview

logger = logging.getLogger(__name__)

# (site, the alarm message's payload, the link it came on): called once it is durably stored
StoredAlarm = Callable[[str, dict[str, Any], str], None]
AlarmItem = tuple[str, dict[str, Any], str]

ID = re.compile(ID_PATTERN)  # site, event and camera ids: path parts and keys
WARNING_REPEAT_S = 30.0  # the same warning for the same site at most this often
MAX_TEXT = 300


def _clip(text: str) -> str:
    """Outside text (a topic, a site id, a parser's complaint) safe for a log line and bounded."""
    return preview(text, MAX_TEXT)


def _int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


class MessageHandler:
    def __init__(
        self,
        store: PoliceStore,
        tracker: Tracker,
        receiver: Receiver,
        snapshots_dir: Path,
        names: dict[str, str],
        *,
        orphans: OrphanLimits | None = None,
        on_stored: StoredAlarm | None = None,
        site_keys: SiteKeys | None = None,
        heartbeat_delay: Callable[[str, float], None] | None = None,
    ) -> None:
        self.store = store
        self.on_stored = on_stored  # after the commit: the receipt (edgeguard/receipts.py)
        self.orphans = orphans or OrphanLimits()
        self.tracker = tracker
        self.receiver = receiver
        self.site_keys = site_keys  # re-read when a site without a key speaks
        self.heartbeat_delay = heartbeat_delay  # (site, s since its `at`): ingress_lag.py
        self.snapshots_dir = snapshots_dir
        self.names = names  # configured display names
        self._warned: dict[tuple[str, str, str], float] = {}
        self._last_counts: dict[str, tuple[int, int]] = {}
        self._named: dict[str, str] = {}
        self._naming: list[tuple[str, Any]] | None = None  # names seen in a batch

    def handle(
        self, topic: str, body: bytes, retained: bool, arrived: float, link: str = "primary"
    ) -> None:
        try:
            received = self._receive(topic, body)
        except Exception as exc:  # noqa: BLE001 - signed but malformed: a warning, not a crash
            self.warn(topic.split("/")[1] if "/" in topic else "?", topic, f"malformed: {exc!r}")
            return
        if received.warning and received.payload is None:
            self.warn(received.site, topic, received.warning)
            return
        kind = received.kind
        if kind == "snapshot":
            self._snapshot(received)
        elif kind in ("alarm", "status", "heartbeat", "device"):
            self._verified(received, retained, arrived, link)
        else:
            logger.debug("ignored %s message on %s", kind, topic)

    def _receive(self, topic: str, body: bytes) -> Received:
        if self.site_keys is not None and topic.count("/") >= 2:
            self.site_keys.ensure(topic.split("/")[1])
        return self.receiver.handle(topic, body)

    def _verified(
        self, received: Received, retained: bool, arrived: float, link: str = "primary"
    ) -> None:
        payload = received.payload or {}
        parts = received.topic.split("/")
        if payload.get("type") != received.kind:
            self.warn(received.site, received.topic, f"a {payload.get('type')!r} message here")
            return
        problem = shape_problem(received.kind, payload)
        if problem is not None:
            self.warn(received.site, received.topic, f"malformed {received.kind}: {problem}")
            return
        if received.kind == "alarm":
            self._alarm(received.site, parts, payload, link)
        elif received.kind == "status":
            self._status(received.site, payload, retained, arrived, link)
        elif received.kind == "heartbeat":
            self._heartbeat(received.site, payload, arrived, link)
        elif len(parts) == 4 and payload.get("device") == parts[3]:
            self.store.record_device(received.site, payload)
        else:
            self.warn(received.site, received.topic, "device message under another device")

    # --- alarms -----------------------------------------------------------------------------
    def handle_alarm_batch(self, messages: list[tuple[str, bytes, str]]) -> list[AlarmItem]:
        """Messages of the shared alarm queue (topic, body, link): the alarm messages among
        them are verified and stored in one transaction; anything else is handled one by
        one. Returns the alarm messages stored now or before, for their receipts (the caller
        sends them: ``on_stored`` is not called here, this may run off the loop)."""
        alarms: list[tuple[str, dict[str, Any], str | None]] = []
        links: list[str] = []
        for topic, body, link in messages:
            checked = self._verified_alarm(topic, body)
            if checked is None:
                self.handle(topic, body, False, time.monotonic(), link)
            elif checked is not False:
                alarms.append((checked[0], checked[1], None))
                links.append(link)
        if alarms:
            self._naming = []
            try:
                for (site, payload, _at), new in zip(
                    alarms, self.store.record_alarms(alarms), strict=True
                ):
                    self._after_alarm(site, payload, new=new)
                self._write_names(self._naming)
            finally:
                self._naming = None
        return [
            (site, payload, link) for (site, payload, _at), link in zip(alarms, links, strict=True)
        ]

    def _verified_alarm(
        self, topic: str, body: bytes
    ) -> tuple[str, dict[str, Any]] | Literal[False] | None:
        """An alarm message checked as _verified and _alarm do: (site, payload); False when it
        was rejected (and warned about); None when it is not an alarm message."""
        if topic.count("/") < 2 or topic.split("/")[2] != "alarm":
            return None
        try:
            received = self._receive(topic, body)
        except Exception as exc:  # noqa: BLE001 - as in handle()
            self.warn(topic.split("/")[1], topic, f"malformed: {exc!r}")
            return False
        payload = received.payload
        if payload is None:
            self.warn(received.site, topic, received.warning or "not verified")
            return False
        if payload.get("type") != "alarm":
            self.warn(received.site, topic, f"a {payload.get('type')!r} message here")
            return False
        problem = shape_problem("alarm", payload)
        if problem is not None:
            self.warn(received.site, topic, f"malformed alarm: {problem}")
            return False
        valid = self._valid_alarm(received.site, topic.split("/"), payload)
        return (received.site, payload) if valid else False

    def _alarm(self, site: str, parts: list[str], payload: dict[str, Any], link: str) -> None:
        if not self._valid_alarm(site, parts, payload):
            return
        self._after_alarm(site, payload, new=self.store.record_alarm(site, payload))
        if self.on_stored is not None:  # stored now or before: a receipt either way
            self.on_stored(site, payload, link)

    def _valid_alarm(self, site: str, parts: list[str], payload: dict[str, Any]) -> bool:
        topic = "/".join(parts)
        if len(parts) != 4 or payload.get("source") != parts[3]:
            self.warn(site, topic, f"alarm of source {payload.get('source')!r} published here")
            return False
        event_id, seq = payload.get("event_id"), payload.get("seq")
        if not isinstance(event_id, str) or not ID.match(event_id) or _int(seq, 0) < 1:
            self.warn(site, topic, "malformed alarm: no valid event_id or seq")
            return False
        return True

    def _after_alarm(self, site: str, payload: dict[str, Any], *, new: bool) -> None:
        event_id, seq = payload.get("event_id"), payload.get("seq")
        if not new:
            logger.info("duplicate alarm message %s seq %s ignored", event_id, seq)
            return
        logger.warning(
            "ALARM %s P%s %s at %s %s (%s, seq %s)",
            site,
            payload.get("priority"),
            payload.get("kind"),
            (payload.get("location") or {}).get("label"),
            payload.get("message"),
            event_id,
            seq,
        )
        self._name(site, payload.get("site_name"))
        topic = f"edgeguard/{site}/alarm/{payload.get('source')}"
        for camera in self.store.check_evidence(site, str(event_id), payload.get("evidence")):
            self.warn(site, topic, f"snapshot of {camera} does not match its sha256")

    def _name(self, site: str, site_name: Any) -> None:
        if self._naming is not None:  # a batch: written together at its end
            self._naming.append((site, site_name))
            return
        self._write_names([(site, site_name)])

    def _write_names(self, sites: list[tuple[str, Any]]) -> None:
        """Each site's display name, written once per run (the configured one first)."""
        updates: list[tuple[str, dict[str, Any], bool]] = []
        for site, site_name in sites:
            name = self.names.get(site) or (site_name if isinstance(site_name, str) else None)
            if name and self._named.get(site) != name:
                self._named[site] = name
                updates.append((site, {"name": name}, True))
        if updates:
            self.store.update_sites(updates)

    # --- snapshots --------------------------------------------------------------------------
    def _snapshot(self, received: Received) -> None:
        info, blob = received.payload or {}, received.blob
        site, event_id, camera = received.site, str(info.get("event_id")), str(info.get("camera"))
        if blob is None or not all(ID.match(p) for p in (site, event_id, camera)):
            self.warn(site, received.topic, "snapshot topic with an invalid name: not saved")
            return
        path = save_snapshot(self.snapshots_dir, site, event_id, camera, blob)
        if path is None:
            self.warn(site, received.topic, "snapshot could not be saved (see the log)")
            return
        digest = hashlib.sha256(blob).hexdigest()
        verified = self.store.record_snapshot(
            site, event_id, camera, path=path, sha256=digest, size=len(blob)
        )
        if verified is False:
            self.warn(site, received.topic, f"snapshot of {camera} does not match its sha256")
        if self.store.alarm_row(event_id) is None:  # an orphan, for now: within the limits?
            self.prune_orphans()

    def prune_orphans(self, now: datetime | None = None) -> None:
        """Drop the snapshots of alarms never received beyond the limits (OrphanLimits)."""
        dropped = self.orphans.to_drop(self.store.orphan_snapshots(), now)
        if not dropped:
            return
        self.store.forget_snapshots([int(o["id"]) for o in dropped])
        for orphan in dropped:
            remove_snapshot_file(Path(orphan["path"]))
        names = ", ".join(f"{o['site']}/{o['event_id']}/{o['camera']}" for o in dropped[:5])
        more = f" and {len(dropped) - 5} more" if len(dropped) > 5 else ""
        logger.warning(
            "dropped %d snapshot(s) whose alarm never arrived (older than %g s, or over %d "
            "snapshots / %d bytes of such): %s%s",
            len(dropped),
            self.orphans.window_s,
            self.orphans.max_count,
            self.orphans.max_bytes,
            names,
            more,
        )

    # --- supervision ------------------------------------------------------------------------
    def _status(
        self, site: str, payload: dict[str, Any], retained: bool, arrived: float, link: str
    ) -> None:
        state = payload.get("state")
        update = self.tracker.on_status(site, str(state), retained=retained, at=arrived, link=link)
        values: dict[str, Any] = {
            "version": payload.get("version"),
            "started_at": payload.get("started_at"),
            "last_status": state,
            "last_status_at": iso_ms(utc_now()),
        }
        self.store.update_site(site, {**values, **self.site_values(update)})

    def _heartbeat(self, site: str, payload: dict[str, Any], arrived: float, link: str) -> None:
        if self.heartbeat_delay is not None and isinstance(payload.get("at"), str):
            with contextlib.suppress(ValueError):
                sent = datetime.fromisoformat(payload["at"]).timestamp()
                self.heartbeat_delay(site, time.time() - sent)
        pending, open_alarms = _int(payload.get("outbox_pending")), _int(payload.get("open_alarms"))
        update = self.tracker.on_heartbeat(site, pending, at=arrived, link=link)
        head = payload.get("log_head")
        values: dict[str, Any] = {
            "last_heartbeat_at": iso_ms(utc_now()),
            "heartbeat_counter": _int(payload.get("counter")),
            "outbox_pending": pending,
            "open_alarms": open_alarms,
            "log_head": None if head is None else json.dumps(head, ensure_ascii=False),
        }
        # every heartbeat is written; only a change worth showing is announced
        announce = update is not None or self._last_counts.get(site) != (pending, open_alarms)
        self._last_counts[site] = (pending, open_alarms)
        self.store.update_site(site, {**values, **self.site_values(update)}, announce=announce)

    def apply(self, update: SiteUpdate) -> None:
        """A state change decided by the tracker (e.g. lost by silence)."""
        self.store.update_site(update.site, self.site_values(update))

    @staticmethod
    def site_values(update: SiteUpdate | None) -> dict[str, Any]:
        if update is None:
            return {}
        if update.state == "lost":
            logger.error("site %s LOST: %s", update.site, update.reason)
        else:
            alert = f": {update.alert}" if update.alert else ""
            logger.info("site %s %s%s", update.site, update.state, alert)
        return {
            "state": update.state,
            "reason": update.reason,
            "alert": update.alert,
            "state_since": iso_ms(utc_now()),
        }

    # --- warnings ---------------------------------------------------------------------------
    def warn(self, site: str, topic: str, text: str) -> None:
        """A security warning: stored (rate-limited per site and reason) and logged."""
        site, topic, text = _clip(site), _clip(topic), _clip(text)
        kind = topic.split("/")[2] if topic.count("/") >= 2 else ""
        key, now = (site, kind, ":".join(text.split(":")[:2])), time.monotonic()
        last = self._warned.get(key)
        if last is not None and now - last < WARNING_REPEAT_S:
            logger.debug("repeated warning on %s: %s", topic, text)
            return
        logger.warning("SECURITY WARNING on %s: %s", topic, text)
        self.store.add_warning(site, topic, text)
        if len(self._warned) >= 10_000:
            self._warned.clear()
        self._warned[key] = now  # once stored: a message retried after a failure stores it
