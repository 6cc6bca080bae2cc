"""What the police receiver and its dashboard's live view hold while alarms keep coming: the
receiver's memory does not grow with each alarm, and the live view shows a bounded number of
cards, rebuilding only the card whose alarm changed."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from test_police_service import RawClient

from edgeguard.lab.broker import Mosquitto
from edgeguard.lab.consoles import PoliceReceiver, add_user
from edgeguard.lab.harness import Site
from edgeguard.police.config import PoliceConfig
from edgeguard.police.service import PoliceService
from edgeguard.police.web import LIVE_ALARMS
from edgeguard.signing import Signer

TOPIC = "edgeguard/hosp-01/alarm/er-button"
CHROMIUM = Path("/usr/bin/chromium")


def event_id(number: int) -> str:
    return f"01a20614-{number:04d}-70e4-b533-6874e06fb7a0"


def signed(
    site: Site, number: int, seq: int = 1, message: str = "new", state: str = "active"
) -> bytes:
    payload = {
        "v": 1, "type": "alarm", "message": message, "event_id": event_id(number),
        "site": site.site_id, "site_name": "市第一人民医院", "seq": seq, "kind": "panic",
        "state": state, "priority": 1, "source": "er-button",
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


# --- the dashboard's live view, in a real Chromium --------------------------------------------
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (scripts/system-deps.sh installs it)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield chromium
        chromium.close()


def stored(receiver: PoliceReceiver) -> int:
    with contextlib.closing(sqlite3.connect(receiver.directory / "police.db", timeout=30)) as db:
        return int(db.execute("SELECT COUNT(*) FROM alarms").fetchone()[0])


def publish_alarms(raw: RawClient, site: Site, numbers: range, receiver: PoliceReceiver) -> None:
    for number in numbers:
        raw.publish(TOPIC, signed(site, number))
    deadline = time.monotonic() + 120
    while stored(receiver) < numbers.stop:
        assert time.monotonic() < deadline, f"alarms not stored:\n{receiver.log_text()}"
        time.sleep(0.2)


def cards(page: Page) -> int:
    return int(page.locator(".card").count())


def test_live_view_is_bounded_and_updates_only_the_changed_card(
    tmp_path: Path, broker: Mosquitto, site: Site, browser: Browser
) -> None:
    receiver = PoliceReceiver(tmp_path / "police", broker, {site.site_id: site.public_key})
    add_user(receiver.users_db, "zhang", "police desk pw", "admin", "110 张警官")
    receiver.start()
    raw = RawClient(broker)
    try:
        publish_alarms(raw, site, range(120), receiver)  # the subscription is up: HTTP answers
        page = browser.new_page(locale="zh-CN")
        page.goto(f"{receiver.url}/login")
        page.fill("input[name=user]", "zhang")
        page.fill("input[name=password]", "police desk pw")
        page.click("button[type=submit]")
        more = page.locator("#more-alarms")
        expect(more).to_contain_text("另有 20 条", timeout=30_000)
        assert cards(page) == LIVE_ALARMS
        nodes_at_100 = page.evaluate("document.getElementsByTagName('*').length")

        # one alarm changes: its card is rebuilt, every other card stays the same node
        first, changed = event_id(0), event_id(5)
        page.evaluate(f"window.probe = document.querySelector('.card[data-event-id=\"{first}\"]')")
        raw.publish(TOPIC, signed(site, 5, seq=1000, message="reset", state="reset"))
        expect(page.locator(f'.card[data-event-id="{changed}"] .state').first).to_have_text(
            "已复位"
        )
        same = f"window.probe === document.querySelector('.card[data-event-id=\"{first}\"]')"
        assert page.evaluate(same)

        # 200 more: still 100 cards, the page no bigger
        publish_alarms(raw, site, range(120, 320), receiver)
        expect(more).to_contain_text("另有 220 条", timeout=60_000)
        assert cards(page) == LIVE_ALARMS
        assert page.evaluate("document.getElementsByTagName('*').length") <= nodes_at_100 + 20

        # a shown alarm resolved: the next one takes its place
        page.evaluate(f"EG.api('/api/alarms/{first}/resolve', {{method: 'POST'}})")
        expect(more).to_contain_text("另有 219 条", timeout=30_000)
        expect(page.locator(f'.card[data-event-id="{event_id(100)}"]')).to_have_count(
            1, timeout=30_000
        )
        assert cards(page) == LIVE_ALARMS
    finally:
        raw.close()
        receiver.stop()
