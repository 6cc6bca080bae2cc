"""What the police receiver and its dashboard's live view hold while alarms keep coming: the
receiver's memory does not grow with each alarm, and the live view shows a bounded number of
cards, rebuilding only the card whose alarm changed."""

from __future__ import annotations

import shutil
from pathlib import Path

from edgeguard.lab.harness import Site
from edgeguard.police.config import PoliceConfig
from edgeguard.police.service import PoliceService
from edgeguard.signing import Signer

TOPIC = "edgeguard/hosp-01/alarm/er-button"


def event_id(number: int) -> str:
    return f"01a20614-{number:04d}-70e4-b533-6874e06fb7a0"


def signed(site: Site, number: int, seq: int = 1, message: str = "new") -> bytes:
    payload = {
        "v": 1, "type": "alarm", "message": message, "event_id": event_id(number),
        "site": site.site_id, "site_name": "市第一人民医院", "seq": seq, "kind": "panic",
        "state": "active", "priority": 1, "source": "er-button",
        "location": {"id": "er", "label": "急诊分诊台"},
        "occurred_at": f"2026-11-23T01:{number // 60 % 60:02d}:{number % 60:02d}.000Z",
    }  # fmt: skip
    return Signer.from_file(site.directory / f"{site.site_id}.key").encode(payload)


def test_the_receiver_keeps_nothing_per_alarm_message(tmp_path: Path, site: Site) -> None:
    """Duplicates are the database's business (UNIQUE (site, event_id, seq)): the receiver's
    verifier must not also remember every message it ever saw (100,000 of them, ~30 MB)."""
    keys = tmp_path / "keys"
    keys.mkdir()
    shutil.copy(site.public_key, keys / f"{site.site_id}.pub")
    config = PoliceConfig.model_validate(
        {"receiver_id": "r1", "keys_dir": str(keys), "database": str(tmp_path / "police.db")}
    )
    service = PoliceService(config)
    try:
        for number in range(300):
            for seq, message in ((2 * number + 1, "new"), (2 * number + 2, "reset")):
                assert service.on_message(TOPIC, signed(site, number, seq, message), False, 0.0)
        assert service.on_message(TOPIC, signed(site, 0), False, 0.0)  # a resent message
        count = service.store.conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
        assert count == 600  # each stored once
        assert service.receiver.remembered == 0
    finally:
        service.close()
