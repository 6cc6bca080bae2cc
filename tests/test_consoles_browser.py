"""Both consoles in a real headless Chromium (Debian's /usr/bin/chromium driven by Playwright),
on a real site: `edgeguard run` with two cameras reading a real RTSP server, a real mosquitto
over TLS, and `edgeguard police` with its dashboard.

One hospital shift, in order: log in on both pages, a press appears live in the control room
and on the police dashboard with its snapshots, the police acknowledge and the control room
shows it, the operator silences and resets it; a forged alarm shows only as a security
warning; a killed daemon shows "site lost" on the dashboard within 20 s. Screenshots of both
pages go to test-artifacts/."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from edgeguard.lab.broker import Mosquitto, free_port
from edgeguard.lab.consoles import PoliceReceiver, add_user, publish_forged_alarm
from edgeguard.lab.footage import locate, scaled
from edgeguard.lab.harness import DaemonProcess, make_site
from edgeguard.lab.rtsp_server import RtspServer, available

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
OPERATOR = ("wang", "control room pw", "王主任")
DISPATCHER = ("zhang", "police desk pw", "110 张警官")

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), "install Debian's chromium (scripts/system-deps.sh does)"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--autoplay-policy=no-user-gesture-required"],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def rtsp() -> Iterator[RtspServer]:
    server = RtspServer(scaled(locate(), 640, 360))
    server.start()
    yield server
    server.kill()


def login(browser: Browser, url: str, who: tuple[str, str, str]) -> Page:
    page = browser.new_page(viewport={"width": 1400, "height": 900}, locale="zh-CN")
    page.on("dialog", lambda dialog: dialog.accept())  # the reset confirmation
    page.goto(f"{url}/login")
    page.fill("input[name=user]", who[0])
    page.fill("input[name=password]", who[1])
    page.click("button[type=submit]")
    expect(page.locator("header.bar")).to_contain_text(who[2])
    return page


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def snapshots_loaded(page: Page, selector: str, count: int) -> None:
    page.wait_for_function(
        "([sel, n]) => [...document.querySelectorAll(sel)]"
        ".filter(i => i.complete && i.naturalWidth > 0).length >= n",
        arg=[selector, count],
        timeout=20_000,
    )


def test_a_shift_in_both_consoles(
    tmp_path: Path,
    broker: Mosquitto,
    rtsp: RtspServer,
    browser: Browser,
    daemons: Callable[..., DaemonProcess],
) -> None:
    console_port = free_port()
    inputs = [
        {"type": "simulated", "name": "er-button", "location": "er"},
        {"type": "simulated", "name": "cashier-door", "location": "cashier", "kind": "intrusion"},
    ]
    site = make_site(tmp_path / "site", broker, console_port=console_port, inputs=inputs)
    site.data["cameras"] = [_camera("cam-er-1", rtsp.url), _camera("cam-er-2", rtsp.url)]
    site.write()
    add_user(site.directory / "users.db", *OPERATOR[:2], "admin", OPERATOR[2])
    police = PoliceReceiver(tmp_path / "police", broker, {site.site_id: site.public_key})
    add_user(police.users_db, *DISPATCHER[:2], "admin", DISPATCHER[2])
    police.start()
    try:
        daemon = daemons(site)
        _wait_cameras_online(daemon)
        _shift(browser, daemon, f"http://127.0.0.1:{console_port}", police, broker, tmp_path)
    finally:
        police.stop()


def _shift(
    browser: Browser,
    daemon: DaemonProcess,
    console_url: str,
    police: PoliceReceiver,
    broker: Mosquitto,
    tmp_path: Path,
) -> None:
    room = login(browser, console_url, OPERATOR)
    desk = login(browser, police.url, DISPATCHER)
    expect(room.locator("#no-alarms")).to_be_visible()
    expect(desk.locator('[data-site="hosp-01"]')).to_have_attribute("data-state", "online")

    # an intrusion at the cashier (P2), then a guard presses the ER panic button (P1)
    daemon.press("cashier-door")
    expect(room.locator(".card[data-event-id]")).to_have_count(1)
    intrusion_id = room.locator(".card[data-event-id]").get_attribute("data-event-id")
    daemon.press("er-button")
    cards = room.locator(".card[data-event-id]")
    expect(cards).to_have_count(2)
    card = cards.first  # the most urgent first
    expect(card).to_contain_text("紧急求助")
    expect(card).to_contain_text("门诊楼 · 1F · 急诊分诊台")
    expect(cards.nth(1)).to_contain_text("入侵报警")
    event_id = card.get_attribute("data-event-id")
    assert event_id
    assert event_id != intrusion_id
    card = room.locator(f'.card[data-event-id="{event_id}"]')
    # both are shown in turn in the featured panel (GB 50394), every 5 s
    featured = room.locator("#featured")
    expect(featured).to_contain_text("/ 2 条")
    expect(featured).to_have_attribute("data-event-id", str(intrusion_id), timeout=12_000)
    expect(featured).to_have_attribute("data-event-id", event_id, timeout=12_000)
    assert room.evaluate("document.body.dataset.alerting") == "true"  # the alarm sounds
    police_card = desk.locator(f'.card[data-event-id="{event_id}"]')
    expect(police_card).to_contain_text("市第一人民医院")
    expect(police_card).to_contain_text("急诊分诊台")
    snapshots_loaded(desk, f'.card[data-event-id="{event_id}"] img', 2)  # both linked cameras
    snapshots_loaded(room, f'.card[data-event-id="{event_id}"] img', 2)
    shot(room, "control-room-alarm")
    shot(desk, "police-dashboard-alarm")

    # the police acknowledge: the control room sees it
    police_card.locator("[data-action=ack]").click()
    expect(police_card.locator("[data-role=police-state]")).to_contain_text("110 张警官")
    expect(card.locator("[data-role=state]")).to_contain_text("公安已确认", timeout=5_000)

    # the operator silences the sound, then resets once the button is released
    card.locator("[data-action=ack-local]").click()
    expect(card).to_contain_text("已本地确认")
    assert room.evaluate("document.body.dataset.alerting") == "true"  # the intrusion still sounds
    intrusion = room.locator(f'.card[data-event-id="{intrusion_id}"]')
    intrusion.locator("[data-action=ack-local]").click()
    room.wait_for_function("() => document.body.dataset.alerting === 'false'")
    daemon.release("er-button")
    expect(card.locator("[data-role=state]")).to_contain_text("已恢复，待复位")
    card.locator("[data-action=reset]").click()
    expect(card).to_have_count(0)
    daemon.release("cashier-door")
    daemon.control({"cmd": "reset", "event_id": intrusion_id, "by": "值班员 李"})
    expect(room.locator("#no-alarms")).to_be_visible()
    assert daemon.control({"cmd": "status"})["open_alarms"] == []

    # the history shows both, the timeline the operator's name; health shows link and cameras
    room.click("[data-tab=history]")
    expect(room.locator(f'#history tr[data-event-id="{event_id}"]')).to_contain_text("王主任")
    room.click(f'#history tr[data-event-id="{event_id}"]')
    expect(room.locator('#timeline tr[data-type="alarm.local_ack"]')).to_contain_text("本地确认")
    expect(room.locator("#timeline")).to_contain_text("王主任 (wang)")
    shot(room, "control-room-history")
    room.keyboard.press("Escape")
    room.click("[data-tab=health]")
    expect(room.locator("#police-link")).to_contain_text("正常")
    expect(room.locator('#cameras tr[data-camera="cam-er-1"]')).to_contain_text("在线")
    expect(room.locator("#coverage")).to_contain_text("已覆盖")
    shot(room, "control-room-health")

    # the dashboard's CSV export, with the page's session
    export = desk.request.get(f"{police.url}/api/alarms.csv")
    assert export.ok
    csv_text = export.body().decode("utf-8")
    assert csv_text.startswith("\ufeffevent_id,")
    assert event_id in csv_text
    assert "急诊分诊台" in csv_text

    # a forged alarm: a security warning on the dashboard, not an alarm
    forged = publish_forged_alarm(broker, "hosp-01", tmp_path)
    expect(desk.locator("#recent-warnings")).to_contain_text("安全警告")
    expect(desk.locator(f'.card[data-event-id="{forged}"]')).to_have_count(0)
    expect(room.locator(".card")).to_have_count(0)
    shot(desk, "police-dashboard-warning")

    # the hospital's daemon dies: "site lost" within 20 s
    daemon.kill()
    site_box = desk.locator('[data-site="hosp-01"]')
    expect(site_box).to_have_attribute("data-state", "lost", timeout=20_000)
    expect(site_box).to_contain_text("失去联系")
    shot(desk, "police-dashboard-site-lost")


def _camera(name: str, url: str) -> dict[str, Any]:
    return {"name": name, "location": "er", "stream_url": url, "offline_after": 5}


def _wait_cameras_online(daemon: DaemonProcess, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cameras = daemon.status()["cameras"]
        if cameras and all(c.get("state") == "online" for c in cameras.values()):
            return
        time.sleep(0.2)
    raise AssertionError(f"cameras not online: {daemon.status()['cameras']}")
