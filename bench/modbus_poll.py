"""Modbus poll rate: how many discrete-input polls per second one module allows.

Against pymodbus' own server (the same stack the tests use):
  * back-to-back ``read_discrete_inputs`` with the synchronous client, over TCP on loopback,
    over RTU through a plain pty pair (no wire time), and over RTU through a pty pair whose
    relay holds every byte for its time on a 9600 bd 8N1 line (10 bits a character);
  * the edgeguard driver polling one module at its default 20 Hz over the 9600 bd link: the
    poll rate it keeps, and the delay from an input change to the signal.

Prints one line per case and, last, one JSON object. Usage: python bench/modbus_poll.py
[--seconds 3] [--inputs 16].
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import emit, line, machine, percentiles
from pymodbus import __version__ as pymodbus_version
from pymodbus.client import ModbusSerialClient, ModbusTcpClient

from edgeguard.alarm_model import DeviceStatus, InputSignal
from edgeguard.lab.modbus_sim import UNIT, ModbusSlave, PtyLink
from edgeguard_drivers.modbus import ModbusInput
from edgeguard_drivers.modbus_config import ModbusInputConfig

BAUD = 9600
SIZE = 2000


def back_to_back(
    client: ModbusTcpClient | ModbusSerialClient, count: int, seconds: float
) -> dict[str, Any]:
    """Polls as fast as the client and server allow, one after the other."""
    client.read_discrete_inputs(0, count=count, device_id=UNIT)  # connect, warm up
    samples: list[float] = []
    errors = 0
    started = time.perf_counter()
    while (now := time.perf_counter()) - started < seconds:
        response = client.read_discrete_inputs(0, count=count, device_id=UNIT)
        if response.isError():
            errors += 1
        samples.append(time.perf_counter() - now)
    elapsed = time.perf_counter() - started
    client.close()  # type: ignore[no-untyped-call]
    return {
        "polls_per_s": round(len(samples) / elapsed, 1),
        "errors": errors,
        "request": percentiles(samples),
    }


def rtu_wire_limit(count: int, baud: int) -> float:
    """Polls/s the line itself allows: request (8 bytes) + answer (5 + ceil(count/8) bytes),
    each followed by the 3.5-character silence that ends an RTU frame, at 10 bits a character
    (the standard fixes the silence at 1.75 ms above 19200 bd)."""
    char = 10 / baud
    gap = 3.5 * char if baud <= 19200 else 0.00175
    answer = 5 + (count + 7) // 8
    return 1 / ((8 + answer) * char + 2 * gap)


class Sink:
    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.signals: list[tuple[float, InputSignal]] = []

    def submit(self, signal: InputSignal) -> None:
        with self.cond:
            self.signals.append((time.perf_counter(), signal))
            self.cond.notify_all()

    def device_status(self, status: DeviceStatus) -> None:
        pass

    def wait_count(self, count: int, timeout: float = 5.0) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: len(self.signals) >= count, timeout)


def driver_at_20hz(count: int, seconds: float) -> dict[str, Any]:
    """The driver at its default poll interval over the paced 9600 bd link."""
    link = PtyLink(BAUD)
    slave = ModbusSlave(size=SIZE, baudrate=BAUD, serial_port=link.paths[0])
    sink = Sink()
    config = ModbusInputConfig.model_validate(
        {
            "type": "modbus",
            "name": "bench",
            "transport": "rtu",
            "port": link.paths[1],
            "baudrate": BAUD,
            "location": "lab",
            "inputs": {a: {"location": "lab"} for a in range(count)},
        }
    )
    driver = ModbusInput(config, sink)
    try:
        driver.start()
        if not sink.wait_count(count):
            raise RuntimeError("the driver reported no initial state")
        polls, started = driver.polls, time.perf_counter()
        latencies: list[float] = []
        value = False
        while time.perf_counter() - started < seconds:
            value = not value
            expected = len(sink.signals) + 1
            changed = time.perf_counter()
            slave.set_input(0, value)
            if not sink.wait_count(expected):
                raise RuntimeError("an input change was not reported")
            latencies.append(sink.signals[expected - 1][0] - changed)
            time.sleep(random.uniform(0.0, 0.05))  # the next change at a random poll phase
        rate = (driver.polls - polls) / (time.perf_counter() - started)
    finally:
        driver.stop()
        slave.close()
        link.close()
    return {"polls_per_s": round(rate, 1), "change_to_signal": percentiles(latencies)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=3.0, help="per case")
    parser.add_argument("--inputs", type=int, default=16, help="discrete inputs per poll")
    args = parser.parse_args()
    count: int = args.inputs
    result: dict[str, Any] = {
        "bench": "modbus_poll",
        "machine": machine(),
        "pymodbus": pymodbus_version,
        "inputs_per_poll": count,
        "target_polls_per_s": 20,
    }

    slave = ModbusSlave(size=SIZE)
    try:
        tcp = ModbusTcpClient("127.0.0.1", port=slave.port, timeout=1.0, retries=0)
        result["tcp"] = back_to_back(tcp, count, args.seconds)
    finally:
        slave.close()
    print(f"{'tcp loopback':<40} {result['tcp']['polls_per_s']:>8.1f} polls/s")
    line("  request", result["tcp"]["request"])

    for label, key, baud in (
        ("rtu pty (no wire time)", "rtu_pty", None),
        (f"rtu pty paced at {BAUD} bd", "rtu_9600", BAUD),
    ):
        link = PtyLink(baud)
        slave = ModbusSlave(size=SIZE, baudrate=BAUD, serial_port=link.paths[0])
        try:
            client = ModbusSerialClient(link.paths[1], baudrate=BAUD, timeout=1.0, retries=0)
            result[key] = back_to_back(client, count, args.seconds)
        finally:
            slave.close()
            link.close()
        print(f"{label:<40} {result[key]['polls_per_s']:>8.1f} polls/s")
        line("  request", result[key]["request"])

    result["rtu_9600_wire_limit_polls_per_s"] = round(rtu_wire_limit(count, BAUD), 1)
    print(
        f"{'rtu 9600 bd wire limit (theory)':<40} {result['rtu_9600_wire_limit_polls_per_s']:>8.1f}"
    )

    result["driver_rtu_9600_default"] = driver_at_20hz(count, args.seconds)
    driver = result["driver_rtu_9600_default"]
    print(f"{'driver, 9600 bd, poll_interval 0.05':<40} {driver['polls_per_s']:>8.1f} polls/s")
    line("  input change -> signal", driver["change_to_signal"])
    result["meets_target"] = (
        result["rtu_9600"]["polls_per_s"] >= 20 and driver["polls_per_s"] >= 19.0
    )
    emit(result)


if __name__ == "__main__":
    main()
