"""The SMS path: the AT dialogue (pure), the modem driver against a simulated modem on a pty
(edgeguard/lab/modem_sim.py), and end to end: both brokers down, a P1 press is texted."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeguard.alarm_model import DeviceState
from edgeguard.gsm_modem import GsmModem
from edgeguard.gsm_modem_at import (
    INIT_COMMANDS,
    ReplyParser,
    fit_sms,
    parse_cmgs,
    parse_creg,
    parse_csq,
    ucs2_decode,
    ucs2_hex,
)
from edgeguard.gsm_modem_config import SmsConfig
from edgeguard.lab.broker import Mosquitto
from edgeguard.lab.harness import DaemonProcess, make_site
from edgeguard.lab.modem_sim import ModemSim
from edgeguard.lab.pki import DevPKI
from edgeguard.store import Store
from edgeguard.uplink.sms import sms_text

NUMBER = "+8613800138000"
PAYLOAD = {
    "kind": "panic", "site": "hosp-01", "site_name": "市第一人民医院",
    "event_id": "01a20614-91ec-70e4-b533-6874e06fb7a0", "occurred_at": "2026-11-23T00:15:02.100Z",
    "location": {"id": "er", "label": "急诊分诊台", "building": "门诊楼", "floor": "1F"},
}  # fmt: skip


# --- pure ------------------------------------------------------------------------------------
def test_ucs2_round_trip_and_number_encoding() -> None:
    assert ucs2_hex("+86") == "002B00380036"
    assert ucs2_decode(ucs2_hex("急诊 😀")) == "急诊 😀"
    with pytest.raises(ValueError, match="4 digits"):
        ucs2_decode("00A")


def test_text_names_the_place_in_chinese_and_fits_one_sms() -> None:
    text = sms_text(PAYLOAD)
    assert text.startswith("【紧急求助】市第一人民医院 门诊楼1F 急诊分诊台 ")
    assert text.endswith(" 事件01a2…")
    assert len(text.encode("utf-16-be")) <= 140
    long = fit_sms("急" * 69 + "😀")  # the emoji takes two UTF-16 units: cut before it
    assert long == "急" * 69 + "…"
    assert len(long.encode("utf-16-be")) == 140
    assert fit_sms("短信") == "短信"


def test_parser_reads_answers_prompt_and_errors() -> None:
    parser = ReplyParser()
    assert parser.feed(b"\r\n+CREG: 0,") is None
    reply = parser.feed(b"5\r\n\r\nOK\r\n")
    assert reply is not None
    assert reply.ok
    assert parse_creg(reply.lines) == 5
    parser.reset()
    reply = parser.feed(b"\r\n> ")
    assert reply is not None
    assert reply.prompt
    parser.reset()
    reply = parser.feed(b"\r\n+CMS ERROR: 331\r\n")
    assert reply is not None
    assert reply.final == "+CMS ERROR: 331"
    assert not reply.ok
    assert parse_csq(["+CSQ: 20,99"]) == (20, 99)
    assert parse_cmgs(["+CMGS: 17"]) == 17


FUZZ_EXAMPLES = 2000


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=12), st.lists(st.text(max_size=40), max_size=5))
def test_parser_never_raises_on_garbage(chunks: list[bytes], lines: list[str]) -> None:
    """Whatever the line brings (noise, half answers, URCs), parsing never raises."""
    parser = ReplyParser()
    for chunk in chunks:
        reply = parser.feed(chunk)
        if reply is not None:
            parse_creg(reply.lines)
            parse_csq(reply.lines)
            parse_cmgs(reply.lines)
            parser.reset()
    parse_creg(lines)
    parse_csq(lines)
    parse_cmgs(lines)


# --- the driver against the simulated modem ---------------------------------------------------
class States:
    def __init__(self) -> None:
        self.seen: list[tuple[DeviceState, dict[str, Any]]] = []
        self._cond = threading.Condition()

    def __call__(self, state: DeviceState, detail: dict[str, Any]) -> None:
        with self._cond:
            self.seen.append((state, detail))
            self._cond.notify_all()

    def wait(self, predicate: Callable[[DeviceState], bool], timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(
                lambda: bool(self.seen) and predicate(self.seen[-1][0]), timeout
            )


def test_driver_initialises_sends_and_reports_a_silent_modem() -> None:
    with ModemSim() as sim:
        states = States()
        config = SmsConfig(port=sim.port, recipients=[NUMBER], supervision_interval_s=1,
                           command_timeout_s=0.5, reconnect_max=0.5)  # fmt: skip
        modem = GsmModem(config, states)
        modem.start()
        try:
            assert states.wait(lambda s: s is DeviceState.ONLINE, 5), states.seen
            assert sim.commands[: len(INIT_COMMANDS)] == list(INIT_COMMANDS)
            assert sim.csmp == "17,167,0,8"
            assert sim.ucs2
            assert sim.text_mode
            assert not sim.echo
            modem.send(sms_text(PAYLOAD), "e1")
            sent = sim.wait_sent(1, 5)
            assert [(s.number, s.text) for s in sent] == [(NUMBER, sms_text(PAYLOAD))]
            sim.registered = False
            assert states.wait(lambda s: s is DeviceState.FAULT, 5), states.seen
            assert states.seen[-1][1]["registration"] == "not registered, searching"
            sim.registered, sim.silent = True, True
            assert states.wait(lambda s: s is DeviceState.FAULT and "no answer" in str(
                states.seen[-1][1].get("error")), 5), states.seen  # fmt: skip
            sim.silent = False
            assert states.wait(lambda s: s is DeviceState.ONLINE, 10), states.seen
        finally:
            modem.stop()


def test_a_missing_port_is_offline() -> None:
    states = States()
    config = SmsConfig(port="/dev/nonexistent-modem", recipients=[NUMBER], reconnect_max=0.5)
    modem = GsmModem(config, states)
    modem.start()
    try:
        assert states.wait(lambda s: s is DeviceState.OFFLINE, 5)
    finally:
        modem.stop()


# --- end to end ------------------------------------------------------------------------------
@pytest.mark.slow
def test_p1_press_is_texted_when_both_brokers_are_down(tmp_path: Path) -> None:
    pki = DevPKI(tmp_path / "pki")
    primary = Mosquitto(tmp_path / "primary", pki=pki, acl=True)
    secondary = Mosquitto(tmp_path / "secondary", pki=pki, acl=True)
    sim = ModemSim()
    daemon: DaemonProcess | None = None
    try:
        primary.start()
        secondary.start()
        pair = pki.client("hosp-01")
        tls = {"ca_file": str(pki.ca_file), "cert_file": str(pair.cert), "key_file": str(pair.key)}
        second = {
            "host": "localhost",
            "port": secondary.tls_port,
            "tls": tls,
            "reconnect_min": 0.2,
            "reconnect_max": 1.0,
            "failover_after_s": 1.0,
        }
        site = make_site(tmp_path / "site", primary, mqtt_extra={"secondary": second})
        site.data["sms"] = {"port": sim.port, "recipients": [NUMBER], "supervision_interval_s": 1,
                            "command_timeout_s": 0.5, "reconnect_max": 0.5}  # fmt: skip
        site.write()
        daemon = DaemonProcess(site)
        daemon.start()
        _until(lambda: _path_state(daemon, "sms") == "online", 10, "modem online")
        _until(lambda: _path_state(daemon, "secondary") == "online", 10, "secondary online")
        primary.kill()
        secondary.kill()
        _until(lambda: not daemon.status()["paths"]["secondary"]["connected"], 10, "both down")
        daemon.press("er-button")
        sent = sim.wait_sent(1, 10)
        assert sent, "no SMS"
        assert sent[0].number == NUMBER
        assert "门诊楼1F 急诊分诊台" in sent[0].text
        assert sent[0].text.startswith("【紧急求助】")
        assert daemon.status()["outbox"]["pending"] >= 1  # the SMS is extra: still kept
        sim.silent = True  # the modem goes silent: its loss is a device fault
        _until(lambda: "sms-modem-fault" in _open_sources(daemon), 10, "sms-modem fault")
        time.sleep(1.5)
        assert len(sim.sent) == 1, "one SMS per alarm"
        # the SMS is in the ledger, and a restart (brokers still down) does not text it again
        event_id = daemon.status()["open_alarms"][0]["event_id"]
        _until(lambda: _sms_rows(site.db), 5, "the SMS in the ledger")
        row = _sms_rows(site.db)[0]
        assert row["event_id"] == event_id
        assert "****" in json.loads(row["data"])["to"]
        sim.silent = False
        daemon.stop()
        daemon.start()
        _until(lambda: _path_state(daemon, "sms") == "online", 10, "modem online again")
        time.sleep(3.0)  # > failover_after_s: the alarm, still undelivered, is overdue again
        assert len(sim.sent) == 1, "texted again after a restart"
    finally:
        if daemon is not None:
            daemon.stop()
        sim.close()
        primary.stop()
        secondary.stop()


def _sms_rows(db: Path) -> list[dict[str, Any]]:
    store = Store(db, readonly=True)
    try:
        return list(store.query_events(types=["sms.sent"]))
    finally:
        store.close()


def _path_state(daemon: DaemonProcess, path: str) -> str | None:
    supervision = daemon.status()["paths"]["supervision"]
    state = supervision.get(path, {}).get("state")
    return None if state is None else str(state)


def _open_sources(daemon: DaemonProcess) -> set[str]:
    return {alarm["source"] for alarm in daemon.status()["open_alarms"]}


def _until(predicate: Callable[[], Any], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)
