"""The SMS path (docs/transmission-paths.md): an alarm that no police broker has PUBACKed in
time (edgeguard/uplink/failover.py declares it overdue) is texted through the GSM modem, if its
priority is one of ``sms.priorities``, once per alarm. The outbox keeps the message until a
broker takes it: the SMS is an extra, not a delivery."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from edgeguard.gsm_modem import GsmModem
from edgeguard.gsm_modem_config import SmsConfig
from edgeguard.store import Store
from edgeguard.store_outbox import OutboxRow

logger = logging.getLogger(__name__)

KIND_NAMES = {
    "panic": "紧急求助",
    "duress": "胁迫报警",
    "intrusion": "入侵报警",
    "crowd": "人员聚集",
    "loitering": "异常徘徊",
    "camera_tamper": "摄像机遮挡",
    "camera_offline": "摄像机离线",
    "device_fault": "设备故障",
    "test": "测试",
}
MAX_TEXTED = 10_000  # event ids remembered (one SMS per alarm)
SMS_SENT, SMS_FAILED = "sms.sent", "sms.failed"  # ledger event types, one per recipient


def mask_number(number: str) -> str:
    """A phone number as the ledger keeps it: enough to tell duty phones apart."""
    digits = number.strip()
    return digits if len(digits) <= 7 else f"{digits[:3]}****{digits[-4:]}"


def texted_alarms(store: Store, limit: int = MAX_TEXTED) -> list[str]:
    """Event ids of the alarms texted (successfully, to anyone) before, oldest first."""
    rows = store.conn.execute(
        "SELECT DISTINCT event_id FROM events WHERE type = ? ORDER BY id DESC LIMIT ?",
        (SMS_SENT, limit),
    ).fetchall()
    return [str(row[0]) for row in reversed(rows) if row[0]]


def sms_text(payload: dict[str, Any]) -> str:
    """E.g. ``【紧急求助】市第一人民医院 门诊楼1F 急诊分诊台 08:15:02 事件01a2…`` (local time)."""
    kind = str(payload.get("kind", ""))
    location = payload.get("location") if isinstance(payload.get("location"), dict) else {}
    assert isinstance(location, dict)
    place = "".join(str(location.get(part) or "") for part in ("building", "floor"))
    parts = [
        f"【{KIND_NAMES.get(kind, kind)}】{payload.get('site_name') or payload.get('site', '')}",
        place,
        str(location.get("room") or ""),
        str(location.get("label") or location.get("id") or ""),
        _local_time(payload.get("occurred_at")),
        f"事件{str(payload.get('event_id', ''))[:4]}…",
    ]
    return " ".join(part for part in parts if part)


def _local_time(value: Any) -> str:
    try:
        return datetime.fromisoformat(str(value)).astimezone().strftime("%H:%M:%S")
    except ValueError:
        return ""


class SmsNotifier:
    def __init__(self, config: SmsConfig, modem: GsmModem, texted: list[str] | None = None) -> None:
        self.config = config
        self.modem = modem
        self._texted: dict[str, None] = dict.fromkeys(texted or [])  # event ids, oldest first

    def on_overdue(self, rows: list[OutboxRow]) -> None:
        """Rows no broker took in time (on the loop; only queues work for the modem)."""
        for row in rows:
            payload = _alarm_payload(row)
            if payload is None or payload.get("message") != "new":
                continue
            if payload.get("priority") not in self.config.priorities:
                continue
            event_id = str(payload.get("event_id"))
            if event_id in self._texted:
                continue
            self._remember(event_id)
            logger.critical("sms: alarm %s reached no broker in time; texting it", event_id)
            self.modem.send(sms_text(payload), event_id)

    def _remember(self, event_id: str) -> None:
        self._texted[event_id] = None
        if len(self._texted) > MAX_TEXTED:
            del self._texted[next(iter(self._texted))]


def _alarm_payload(row: OutboxRow) -> dict[str, Any] | None:
    if "/alarm/" not in row.topic:
        return None
    try:
        payload = json.loads(row.payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return payload if isinstance(payload, dict) else None
