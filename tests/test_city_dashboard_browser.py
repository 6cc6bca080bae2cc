"""The city dashboard in a real headless Chromium (Debian's /usr/bin/chromium driven by
Playwright) on a REAL PostgreSQL holding 2,100 hospitals: the summary, the search, the state
filter and the pager, a hospital lost while the page is open (a delta), and both languages.
The dashboard runs in this process on a loop of its own thread (Playwright's sync API has
the test's); screenshots go to test-artifacts/."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from test_city_dashboard import ADMIN, ADMIN_PW, SITES, fill, in_alarm_ids, listening, site_id
from test_police_users_pg import police_config

from edgeguard.police.config import PoliceConfig
from edgeguard.police.service import PoliceService
from edgeguard.police.web import accounts, police_app
from edgeguard.web.server import WebServer

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


class Dashboard:
    """One dashboard instance on a loop in its own thread."""

    def __init__(self, config: PoliceConfig) -> None:
        self.config = config
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.service: PoliceService | None = None
        self.server: WebServer | None = None
        self.feed: asyncio.Task[None] | None = None
        self.url = f"http://127.0.0.1:{config.web.port}"

    def start(self) -> None:
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(120)

    async def _start(self) -> None:
        self.service = service = await asyncio.to_thread(PoliceService, self.config)
        await asyncio.to_thread(fill, service.store)
        users, sessions = await asyncio.to_thread(accounts, service, self.config)
        await asyncio.to_thread(
            users.add, ADMIN, ADMIN_PW, "admin", display_name="110 张警官", language="zh"
        )
        self.feed = asyncio.create_task(service.feed.run())  # LISTEN/NOTIFY, as in a receiver
        app = police_app(service, self.config, users, sessions)
        self.server = WebServer(app, self.config.web, "police")
        assert await self.server.start()
        await listening(service)

    def change_site(self, site: str, values: dict[str, Any]) -> None:
        """A receiver's write: the NOTIFY brings the change to the dashboard."""
        assert self.service is not None
        self.service.store.update_site(site, values)

    def stop(self) -> None:
        async def stop() -> None:
            if self.server is not None:
                await self.server.stop()
            if self.feed is not None:
                self.feed.cancel()
            if self.service is not None:
                self.service.close()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (scripts/system-deps.sh installs it)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def dashboard(tmp_path: Path, pg_dsn: str) -> Iterator[Dashboard]:
    running = Dashboard(police_config(tmp_path, pg_dsn))
    running.start()
    yield running
    running.stop()


def shot(page: Page, name: str, at: str | None = None) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    if at is not None:
        page.locator(at).scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=False)


def count(page: Page, key: str) -> Any:
    return page.locator(f'#summary [data-count="{key}"]')


def test_summary_search_filter_pages_and_a_live_change(
    browser: Browser, dashboard: Dashboard
) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 900}, locale="zh-CN")
    page.goto(f"{dashboard.url}/login")
    page.fill("input[name=user]", ADMIN)
    page.fill("input[name=password]", ADMIN_PW)
    page.click("button[type=submit]")
    expect(page.locator("header.bar")).to_contain_text("110 张警官")

    # the summary: every hospital counted, the first page of them, those in alarm first
    expect(count(page, "total")).to_have_text(str(SITES))
    expect(count(page, "lost")).to_have_text("105")
    expect(count(page, "alarm")).to_have_text(str(len(in_alarm_ids())))
    expect(page.locator("#summary")).to_contain_text("家医院")
    tiles = page.locator("#sites .site")
    expect(tiles).to_have_count(50)
    expect(tiles.first).to_have_attribute("data-site", site_id(20))
    expect(tiles.first).to_have_attribute("data-in-alarm", "true")
    expect(page.locator("#sites-page")).to_have_text("第 1 / 42 页 · 共 2100 家")
    expect(page.locator(".card")).to_have_count(46)  # every open alarm has a card (≤ 100)
    assert page.evaluate("document.querySelectorAll('.site').length") == 50  # not 2,100
    shot(page, "city-dashboard")

    # search by name, then by id
    page.fill("#site-search", "妇幼")
    expect(tiles).to_have_count(1)
    expect(tiles.first).to_have_attribute("data-site", site_id(7))
    expect(page.locator("#sites-page")).to_contain_text("共 1 家")
    page.fill("#site-search", "hosp-204")
    expect(tiles).to_have_count(10)
    expect(tiles.first).to_have_attribute("data-site", site_id(2040))  # lost: first
    shot(page, "city-dashboard-search", "#site-pager")
    page.fill("#site-search", "")
    expect(tiles).to_have_count(50)

    # the lost hospitals, three pages of them
    page.click('#summary [data-filter="lost"]')
    expect(page.locator("#sites-page")).to_have_text("第 1 / 3 页 · 共 105 家")
    expect(page.locator('#sites .site[data-state="lost"]')).to_have_count(50)
    page.click("#sites-next")
    expect(page.locator("#sites-page")).to_have_text("第 2 / 3 页 · 共 105 家")
    expect(page.locator("#site-state")).to_have_value("lost")
    page.click('#summary [data-filter=""]')
    expect(page.locator("#sites-page")).to_have_text("第 1 / 42 页 · 共 2100 家")

    # a hospital is lost while the page is open: the count moves, and it joins the lost
    dashboard.change_site(site_id(5), {"state": "lost", "reason": "no heartbeat for 15 s"})
    expect(count(page, "lost")).to_have_text("106", timeout=5_000)
    lost_tile = page.locator(f'#sites .site[data-site="{site_id(5)}"]')
    expect(lost_tile).to_have_attribute("data-state", "lost", timeout=5_000)
    expect(lost_tile).to_contain_text("失去联系")
    expect(lost_tile).to_contain_text("no heartbeat for 15 s")

    # the open alarms, paged: not acknowledged first
    page.click("[data-tab=open]")
    rows = page.locator("#open-alarms tr[data-event-id]")
    expect(rows).to_have_count(46)
    expect(rows.first).to_have_attribute("data-police-state", "new")
    expect(page.locator("#open-page")).to_have_text("第 1 / 1 页 · 共 46 条")

    # English
    page.click("#language")
    page.click("[data-tab=live]")
    expect(page.locator("#summary")).to_contain_text("hospitals")
    expect(page.locator("#summary")).to_contain_text("In alarm")
    expect(page.locator("#sites-page")).to_have_text("Page 1 of 42 · 2100 hospitals")
    expect(page.locator(f'#sites .site[data-site="{site_id(5)}"]')).to_contain_text("Site lost")
    page.fill("#site-search", "HOSP-0042")
    expect(tiles).to_have_count(1)
    shot(page, "city-dashboard-en", "#site-pager")
    page.close()
