"""The demo's broker (scripts/demo.py): no port of it lets an anonymous client in, so no one on
the machine can read the sites' traffic or forge a police ack through it."""

from __future__ import annotations

import contextlib
import importlib.util
import socket
import ssl
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgeguard.lab.broker import Mosquitto, free_port
from edgeguard.lab.pki import DevPKI

REPO = Path(__file__).resolve().parent.parent
WAIT = 10.0
# MQTT 3.1.1 CONNECT (clean session, empty client id, no username) and SUBSCRIBE '#' QoS 0
CONNECT = bytes.fromhex("100c00044d5154540402000a0000")
SUBSCRIBE_ALL = bytes.fromhex("8206000100012300")


def _demo_module() -> Any:
    spec = importlib.util.spec_from_file_location("demo_script", REPO / "scripts" / "demo.py")
    assert spec is not None
    assert spec.loader is not None
    module = sys.modules.get(spec.name) or importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def demo_broker(tmp_path: Path) -> Iterator[tuple[Mosquitto, DevPKI]]:
    pki = DevPKI(tmp_path / "pki")
    broker: Mosquitto = _demo_module().make_broker(pki, tmp_path / "broker", free_port())
    with broker:
        yield broker, pki


def _read(sock: socket.socket, size: int) -> bytes:
    data = b""
    with contextlib.suppress(OSError):  # refused: reset, TLS alert, closed
        while len(data) < size:
            chunk = sock.recv(size - len(data))
            if not chunk:
                break
            data += chunk
    return data


def _anonymous_can_subscribe_all(sock: socket.socket) -> bool:
    """CONNECT without credentials, then SUBSCRIBE '#': True if both are granted."""
    try:
        sock.sendall(CONNECT)
    except OSError:
        return False
    connack = _read(sock, 4)
    if connack != bytes.fromhex("20020000"):
        return False
    sock.sendall(SUBSCRIBE_ALL)
    suback = _read(sock, 5)
    return len(suback) == 5 and suback[4] in (0, 1, 2)


def test_no_demo_broker_port_admits_an_anonymous_client(
    demo_broker: tuple[Mosquitto, DevPKI],
) -> None:
    broker, pki = demo_broker
    assert broker.listener_ports
    for port in broker.listener_ports:
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
            assert not _anonymous_can_subscribe_all(sock), f"plain MQTT on {port}"
        context = ssl.create_default_context(cafile=str(pki.ca_file))
        context.check_hostname = False
        with (
            socket.create_connection(("127.0.0.1", port), timeout=WAIT) as raw,
            contextlib.suppress(ssl.SSLError, OSError),
            context.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            assert not _anonymous_can_subscribe_all(tls), f"TLS without a certificate on {port}"
