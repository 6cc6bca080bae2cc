"""The SIA DC-09 driver on loopback sockets with a recording sink: ACK only after the durable
write, repeats, NAK/DUH, the time window, encryption, supervision, bounds and the config."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from edgeguard.alarm_model import Action, DeviceState
from edgeguard.lab.dc09 import Dc09Transmitter
from edgeguard.lab.sinks import RecordingSink
from edgeguard_drivers.sia_dc09 import SiaDc09Input
from edgeguard_drivers.sia_dc09_config import SiaDc09InputConfig
from edgeguard_drivers.sia_dc09_protocol import format_time, wrap

KEY = bytes.fromhex("00112233445566778899AABBCCDDEEFF")


def _config(**extra: Any) -> SiaDc09InputConfig:
    data: dict[str, Any] = {
        "type": "sia_dc09", "name": "ipr", "host": "127.0.0.1", "port": 0,
        "accounts": {
            "1234": {"location": "er", "zones": {"1": {"location": "cashier", "name": "till"}}},
            "5678": {"location": "er", "key": KEY.hex()},
        },
    }
    data.update(extra)
    return SiaDc09InputConfig.model_validate(data)


class Rig:
    def __init__(self, config: SiaDc09InputConfig, auto_record: bool) -> None:
        self.sink = RecordingSink(auto_record=auto_record)
        self.driver = SiaDc09Input(config, self.sink)
        self.driver.start()

    def tx(self, account: str = "1234", transport: str = "tcp", **kw: Any) -> Dc09Transmitter:
        port = self.driver.ports[transport]
        return Dc09Transmitter("127.0.0.1", port, account, transport=transport, **kw)


@pytest.fixture
def rig() -> Iterator[Rig]:
    rig = Rig(_config(), auto_record=False)
    yield rig
    rig.driver.stop()


def _record(rig: Rig, index: int) -> None:
    on_recorded = rig.sink.signals[index].on_recorded
    assert on_recorded is not None
    on_recorded()


def _answers(tx: Dc09Transmitter, count: int) -> list[bytes]:
    data = b""
    while data.count(b"\r") < count:
        data += tx.receive()
    return [part + b"\r" for part in data.split(b"\r")[:count]]


def test_ack_only_after_the_durable_write(rig: Rig) -> None:
    with rig.tx() as tx:
        frame = tx.sia_frame("BA", 1)
        tx.send(frame)
        assert rig.sink.wait_signals(1)
        signal = rig.sink.signals[0]
        assert (signal.source, signal.kind, signal.location, signal.action) == (
            "till", "intrusion", "cashier", Action.ACTIVE)
        assert signal.detail["sia_code"] == "BA"
        assert signal.detail["account"] == "1234"
        with pytest.raises(TimeoutError):
            tx.receive(0.3)  # not recorded yet: no ACK
        tx.send(frame)  # the communicator repeats while we write: still one alarm
        time.sleep(0.2)
        assert len(rig.sink.signals) == 1
        _record(rig, 0)
        answers = _answers(tx, 2)  # the frame's and the repeat's (maybe in one segment)
        assert [tx.check(a, 1).word for a in answers] == ["ACK", "ACK"]
        assert tx.exchange(frame).word == "ACK"  # a repeat of a recorded frame: ACK at once
        assert len(rig.sink.signals) == 1


def test_failed_write_sends_no_ack_and_the_repeat_is_new(rig: Rig) -> None:
    with rig.tx() as tx:
        frame = tx.sia_frame("PA", 9)
        tx.send(frame)
        assert rig.sink.wait_signals(1)
        on_failed = rig.sink.signals[0].on_failed
        assert on_failed is not None
        on_failed(OSError("disk full"))
        with pytest.raises(TimeoutError):
            tx.receive(0.3)
        tx.send(frame)
        assert rig.sink.wait_signals(2)
        _record(rig, 1)
        assert tx.check(tx.receive(), 1).word == "ACK"


def test_restore_contact_id_and_troubles() -> None:
    rig = Rig(_config(), auto_record=True)
    try:
        with rig.tx(transport="udp") as tx:
            assert tx.exchange(tx.sia_frame("BR", 1)).word == "ACK"
            assert tx.exchange(tx.sia_frame("TA", 4)).word == "ACK"
            assert tx.exchange(tx.sia_frame("TR", 4)).word == "ACK"
            assert tx.exchange(tx.cid_frame(121, 3)).word == "ACK"  # duress, CCC = user
            assert tx.exchange(tx.cid_frame(137, 5, qualifier=3)).word == "ACK"
            assert tx.exchange(tx.sia_frame("RP")).word == "ACK"  # test: nothing raised
            assert tx.exchange(tx.sia_frame("OP", user="2")).word == "ACK"  # logged only
        seen = [(s.source, s.action, s.kind, s.location) for s in rig.sink.signals]
        assert seen == [
            ("till", Action.NORMAL, "intrusion", "cashier"),
            ("ipr-1234-z4-TA", Action.ACTIVE, "device_fault", "er"),
            ("ipr-1234-z4-TA", Action.NORMAL, "device_fault", "er"),
            ("ipr-1234", Action.ACTIVE, "duress", "er"),
            ("ipr-1234-z5-137", Action.NORMAL, "device_fault", "er"),
        ]
        assert rig.sink.signals[1].detail["unknown_zone"] is True
    finally:
        rig.driver.stop()


def test_encrypted_account(rig: Rig) -> None:
    rig.sink.auto_record = True
    with rig.tx("5678", key=KEY, receiver=3, line=1) as tx:
        answer = tx.exchange(tx.sia_frame("HA", 2))
        assert answer.word == "ACK"
        assert answer.raw.startswith(b"\n")
        assert b'"*ACK"' in answer.raw
        assert answer.offset is not None
        assert abs(answer.offset) < 2
        assert tx.exchange(tx.null_frame()).word == "ACK"
    assert [s.kind for s in rig.sink.signals] == ["duress"]
    with rig.tx("5678") as clear:  # a clear frame for an encrypted account
        assert clear.exchange(clear.sia_frame("HA", 2)).word == "DUH"
    with rig.tx("5678", key=bytes(16)) as wrong_key:
        assert wrong_key.exchange(wrong_key.sia_frame("HA", 2)).word == "NAK"
    assert len(rig.sink.signals) == 1


def test_out_of_window_gets_nak_with_our_time(rig: Rig) -> None:
    with rig.tx() as tx:
        old = format_time(datetime.now(UTC) - timedelta(seconds=60))
        frame = wrap(f'"SIA-DCS"0042L0#1234[#1234|NBA1]{old}')
        answer = tx.exchange(frame)
        assert answer.word == "NAK"
        assert answer.offset is not None
        assert abs(answer.offset) < 2
        ahead = format_time(datetime.now(UTC) + timedelta(seconds=30))
        assert tx.exchange(wrap(f'"SIA-DCS"0043L0#1234[#1234|NBA1]{ahead}')).word == "NAK"
        fresh = format_time(datetime.now(UTC) - timedelta(seconds=5))
        tx.send(wrap(f'"SIA-DCS"0044L0#1234[#1234|NBA1]{fresh}'))
        assert rig.sink.wait_signals(1)
    assert len(rig.sink.signals) == 1


def test_duh_and_nak(rig: Rig) -> None:
    with rig.tx("9999") as tx:
        assert tx.exchange(tx.sia_frame("PA", 1)).word == "DUH"  # unknown account
        assert tx.exchange(wrap('"SIA-DCX"0002L0#1234[#1234|NPA1]')).word == "DUH"
        assert tx.exchange(wrap('"SIA-DCS"0003L0#1234[#1234|N$$]')).word == "DUH"
        bad_crc = bytearray(tx.sia_frame("PA", 1))
        bad_crc[1:5] = b"0000"
        assert tx.exchange(bytes(bad_crc)).word == "NAK"
    assert rig.sink.signals == []


def test_hex_contact_id_zone_raises_an_alarm_and_keeps_the_raw_zone() -> None:
    rig = Rig(_config(), auto_record=True)
    try:
        with rig.tx() as tx:
            frame = wrap('"ADM-CID"0004L0#1234[#1234|1130 01 01D]')  # hex zone: legal CID
            assert tx.exchange(frame).word == "ACK"
        (signal,) = rig.sink.signals
        assert (signal.source, signal.kind, signal.action, signal.location) == (
            "ipr-1234-z01D", "intrusion", Action.ACTIVE, "er")
        assert signal.detail["zone"] == "01D"
        assert signal.detail["unknown_zone"] is True
        assert signal.detail["event_code"] == "130"
    finally:
        rig.driver.stop()


def test_unknown_sia_alarm_code_still_raises_an_alarm() -> None:
    rig = Rig(_config(), auto_record=True)
    try:
        with rig.tx() as tx:
            assert tx.exchange(wrap('"SIA-DCS"0005L0#1234[#1234|NVA7]')).word == "ACK"
            assert tx.exchange(wrap('"SIA-DCS"0006L0#1234[#1234|NVR7]')).word == "ACK"
            assert tx.exchange(wrap('"SIA-DCS"0007L0#1234[#1234|NVZ7]')).word == "ACK"
        seen = [(s.source, s.kind, s.action) for s in rig.sink.signals]
        assert seen == [("ipr-1234-z7", "intrusion", Action.ACTIVE),
                        ("ipr-1234-z7", "intrusion", Action.NORMAL)]
        assert rig.sink.signals[0].detail["sia_code"] == "VA"
        assert rig.sink.signals[0].detail["category"] == "unknown_alarm"
    finally:
        rig.driver.stop()


def test_a_routing_failure_is_still_answered(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    import edgeguard_drivers.sia_dc09 as driver

    def broken(*_: Any) -> None:
        raise ValueError("a bug")

    monkeypatch.setattr(driver, "routes", broken)
    with rig.tx() as tx:
        assert tx.exchange(tx.sia_frame("PA", 1)).word == "DUH"


def test_supervision_raises_and_restores(rig: Rig) -> None:
    rig.driver.config.accounts["1234"].supervision = 10.0
    listener = rig.driver._listener
    assert listener is not None
    listener.call_soon(rig.driver._heard.__setitem__, "1234", time.monotonic() - 11)
    assert rig.sink.wait_signals(1, timeout=5)
    fault = rig.sink.signals[0]
    assert (fault.source, fault.kind, fault.action, fault.location) == (
        "ipr-1234-fault", "device_fault", Action.ACTIVE, "er")
    assert rig.sink.statuses[-1].device == "ipr-1234"
    assert rig.sink.statuses[-1].state is DeviceState.OFFLINE
    with rig.tx(transport="udp") as tx:
        assert tx.exchange(tx.null_frame()).word == "ACK"
    assert rig.sink.wait_signals(2)
    assert rig.sink.signals[1].action is Action.NORMAL
    assert rig.sink.states()[-1] is DeviceState.ONLINE


def test_connections_are_bounded() -> None:
    rig = Rig(_config(max_connections=2), auto_record=True)
    try:
        socks = [socket.create_connection(("127.0.0.1", rig.driver.ports["tcp"])) for _ in range(4)]
        time.sleep(0.3)
        assert len(rig.driver._listener.connections) == 2  # type: ignore[union-attr]
        for sock in socks:
            sock.close()
        with rig.tx() as tx:  # still serving
            assert tx.exchange(tx.null_frame()).word == "ACK"
    finally:
        rig.driver.stop()


def test_port_in_use_is_a_retryable_driver_error() -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    from edgeguard.driver_api import DriverError, SetupFailure

    driver = SiaDc09Input(_config(port=blocker.getsockname()[1]), RecordingSink())
    with pytest.raises(DriverError) as error:
        driver.start()
    assert error.value.failure is SetupFailure.RETRY
    driver.stop()
    blocker.close()


def test_config_checks_and_hides_keys() -> None:
    with pytest.raises(ValidationError) as short:
        _config(accounts={"1234": {"location": "er", "key": "00112233"}})
    assert "00112233" not in str(short.value).split("input_value")[0]
    with pytest.raises(ValidationError):
        _config(accounts={"12": {"location": "er"}})
    with pytest.raises(ValidationError):
        _config(tcp=False, udp=False)
    config = _config(accounts={"abc": {"location": "er", "key": "K" * 24,
                                       "key_encoding": "ascii"}})
    assert "abc".upper() in config.accounts
    assert "KKKK" not in repr(config)
    assert "KKKK" not in str(config.model_dump())
