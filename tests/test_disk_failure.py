"""A full disk must not silence a panic button. The store lives on a small tmpfs that is then
filled up: SQLite's write fails for real (disk full), the alarm still reaches the police from
memory, flagged as unrecorded, and once space is back alarms are recorded again."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from edgeguard.lab.broker import Mosquitto
from edgeguard.lab.harness import DaemonProcess, PoliceSubscriber, Site, fill_disk, make_site

BUTTONS = 40


def _site_on_small_disk(directory: Path, broker: Mosquitto, small_disk: Path) -> Site:
    inputs = [{"type": "simulated", "name": f"b{i}", "location": "er"} for i in range(BUTTONS)]
    site = make_site(directory, broker, inputs=inputs)
    site.data["store"]["path"] = str(small_disk / "edgeguard.db")
    site.write()
    return site


def _press_until_a_write_fails(daemon: DaemonProcess) -> str:
    """SQLite reuses the space its WAL file already has, so the first writes after the disk
    filled up may still succeed; press buttons until one cannot be recorded."""
    for i in range(BUTTONS):
        answer = daemon.control({"cmd": "press", "input": f"b{i}"})
        if not answer["ok"]:
            assert "sent to the police from memory" in answer["error"]
            return f"b{i}"
    raise AssertionError("the full disk never made a write fail")


def test_full_disk_alarm_still_reaches_police(
    tmp_path: Path, broker: Mosquitto, small_disk: Path, daemons: Callable[..., DaemonProcess]
) -> None:
    site = _site_on_small_disk(tmp_path / "site", broker, small_disk)
    with PoliceSubscriber(broker, {site.site_id: site.public_key}) as police:
        daemon = daemons(site)
        ballast = fill_disk(small_disk)
        failed = _press_until_a_write_fails(daemon)
        assert police.wait_for(lambda p: any(a["source"] == failed for a in p.alarms()))
        alarm = next(a for a in police.alarms() if a["source"] == failed)
        assert alarm["detail"]["unrecorded"] is True
        assert alarm["kind"] == "panic"
        status = daemon.status()
        assert status["store"]["failed_writes"] >= 1
        assert status["store"]["unrecorded_alarms"] == [alarm["event_id"]]
        assert "WITHOUT a durable record" in daemon.log_text()

        ballast.unlink()  # space again: the alarm is recorded late and goes on as usual
        daemon.release(failed)
        assert police.wait_for(lambda p: len([a for a in p.alarms() if a["source"] == failed]) == 2)
        restored = [a for a in police.alarms() if a["source"] == failed][-1]
        assert (restored["message"], restored["event_id"]) == ("restored", alarm["event_id"])
        assert restored["detail"]["recorded_late"] is True
        assert restored["seq"] > alarm["seq"]
        status = daemon.status()
        assert status["store"]["unrecorded_alarms"] == []
        assert alarm["event_id"] in [a["event_id"] for a in status["open_alarms"]]
        reset = daemon.control({"cmd": "reset", "event_id": alarm["event_id"], "by": "李保安"})
        assert reset["ok"], reset


def test_alarm_pressed_and_released_while_disk_full_is_recorded_later(
    tmp_path: Path, broker: Mosquitto, small_disk: Path, daemons: Callable[..., DaemonProcess]
) -> None:
    """Press and release both happen while the disk is full; once space is back, the daemon
    records the alarm by itself, and the control room can reset it."""
    site = _site_on_small_disk(tmp_path / "site2", broker, small_disk)
    with PoliceSubscriber(broker, {site.site_id: site.public_key}) as police:
        daemon = daemons(site)
        ballast = fill_disk(small_disk)
        failed = _press_until_a_write_fails(daemon)
        assert not daemon.control({"cmd": "release", "input": failed})["ok"]
        assert police.wait_for(
            lambda p: (
                [a["message"] for a in p.alarms() if a["source"] == failed] == ["new", "restored"]
            )
        )
        event_id = police.alarms()[-1]["event_id"]
        ballast.unlink()
        deadline = time.monotonic() + 15
        while daemon.status()["store"]["unrecorded_alarms"] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert daemon.status()["store"]["unrecorded_alarms"] == []
        answer = daemon.control({"cmd": "reset", "event_id": event_id, "by": "李保安"})
        assert answer["ok"], answer
        assert police.wait_for(lambda p: p.alarms()[-1]["message"] == "reset")
