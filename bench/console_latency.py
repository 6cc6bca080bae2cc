"""Consoles, measured in the browser: recorded → visible in the control-room page, and
press → visible on the police dashboard.

A real site (`edgeguard run`, simulated button, real mosquitto over TLS) with its control-room
console, and `edgeguard police` with its dashboard; both pages open in headless Chromium
(Debian's /usr/bin/chromium via Playwright). A MutationObserver in each page notes Date.now()
the moment an alarm card with a new event id enters the page. The bench presses the button
N times (default 50; EDGEGUARD_BENCH_N), each press a new alarm (released, reset, and resolved
by the police between presses, so that the pages do not pile up cards).

- recorded → control room: the alarm's `recorded_at` (the daemon's clock, written with the
  durable record, ms) to the card in the control-room page;
- press → police dashboard: the bench's clock just before the press request to the card on
  the police dashboard (includes the control socket, the durable write, MQTT over TLS, the
  receiver's verification and store, and its live stream).
Same machine, same clock. Targets: live within 100 ms of recording (issue 5); the police
see it well within the 2 s the police expect.

Run: .venv/bin/python bench/console_latency.py   (last line: one JSON object)
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import emit, line, machine, percentiles

from edgeguard.lab.broker import free_port
from edgeguard.lab.consoles import PoliceReceiver, add_user
from edgeguard.lab.harness import DaemonProcess, lab_broker, make_site
from edgeguard.lab.web_client import ConsoleClient

N = int(os.environ.get("EDGEGUARD_BENCH_N", "50"))
WATCH = """() => {
  window.__seen = {};
  new MutationObserver(() => {
    for (const card of document.querySelectorAll('.card[data-event-id]')) {
      const id = card.dataset.eventId;
      if (!(id in window.__seen)) window.__seen[id] = Date.now();
    }
  }).observe(document.body, { childList: true, subtree: true });
}"""


def open_page(browser: object, url: str, user: str, password: str) -> Page:
    page: Page = browser.new_page()  # type: ignore[attr-defined]
    page.goto(f"{url}/login")
    page.fill("input[name=user]", user)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_selector("header.bar")
    page.wait_for_timeout(500)  # the live stream's first state
    page.evaluate(WATCH)
    return page


def seen(page: Page, event_id: str, timeout: float = 10.0) -> float:
    """Epoch ms at which the card appeared."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = page.evaluate("(id) => window.__seen[id]", event_id)
        if value is not None:
            return float(value)
        time.sleep(0.005)
    raise TimeoutError(f"{event_id} never appeared")


def epoch_ms(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="eg-console-bench-"))
    broker = lab_broker(tmp / "lab")
    port = free_port()
    site = make_site(tmp / "site", broker, console_port=port)
    add_user(site.directory / "users.db", "wang", "bench password", "admin", "王")
    police = PoliceReceiver(tmp / "police", broker, {site.site_id: site.public_key})
    add_user(police.users_db, "zhang", "bench password", "admin", "张")
    police.start()
    daemon = DaemonProcess(site)
    daemon.start()
    recorded_to_room: list[float] = []
    press_to_police: list[float] = []
    try:
        with sync_playwright() as pw, ConsoleClient(police.url) as desk_api:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
            room = open_page(browser, f"http://127.0.0.1:{port}", "wang", "bench password")
            desk = open_page(browser, police.url, "zhang", "bench password")
            desk_api.login("zhang", "bench password")
            for _ in range(N):
                pressed = time.time() * 1000
                daemon.press("er-button")
                alarm = daemon.status()["open_alarms"][-1]
                event_id = alarm["event_id"]
                recorded_to_room.append(seen(room, event_id) - epoch_ms(alarm["recorded_at"]))
                press_to_police.append(seen(desk, event_id) - pressed)
                daemon.release("er-button")
                daemon.control({"cmd": "reset", "event_id": event_id, "by": "bench"})
                desk_api.post(f"/api/alarms/{event_id}/resolve")
                time.sleep(0.05)
            browser.close()
    finally:
        daemon.stop()
        police.stop()
        broker.stop()
    room_stats = percentiles([ms / 1000 for ms in recorded_to_room])
    police_stats = percentiles([ms / 1000 for ms in press_to_police])
    line("recorded -> control-room page", room_stats)
    line("press -> police dashboard", police_stats)
    emit(
        {
            "bench": "console_latency",
            "machine": machine(),
            "n": N,
            "recorded_to_control_room_ms": room_stats,
            "press_to_police_dashboard_ms": police_stats,
            "note": "browser Date.now() has 1 ms resolution; recorded_at is stored in ms",
        }
    )


if __name__ == "__main__":
    main()
