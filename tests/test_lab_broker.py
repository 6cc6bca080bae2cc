"""The lab broker and dev PKI against a REAL mosquitto on loopback, driven by paho-mqtt 2.x.

Negative checks ("X is not received") never sleep: after the forbidden publish the same
publisher sends an allowed "fence" message on the same connection, and MQTT's per-client
ordering guarantees the forbidden one would have been delivered before the fence.
"""

from __future__ import annotations

import queue
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edgeguard.lab.broker import Mosquitto, free_port
from edgeguard.lab.pki import CertPair, DevPKI

TIMEOUT = 5.0
HOST = "127.0.0.1"
NOT_AUTHORIZED = 0x87


class LabClient:
    """One paho connection with blocking helpers: connect, subscribe, publish (returning the ack).

    Connect each instance once: paho 2.2 leaks the socketpair of a previous ``loop_start()``
    when ``loop_start()`` is called again (a ResourceWarning, i.e. an error under ``-W error``),
    so a reconnect uses a new instance with the same client id.
    """

    def __init__(
        self,
        client_id: str,
        port: int,
        *,
        pki: DevPKI | None = None,
        cert: CertPair | None = None,
        protocol: MQTTProtocolVersion = mqtt.MQTTv5,
    ) -> None:
        self.port = port
        self.protocol = protocol
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=protocol,
        )
        if pki is not None:
            self.client.tls_set(
                ca_certs=str(pki.ca_file),
                certfile=str(cert.cert) if cert else None,
                keyfile=str(cert.key) if cert else None,
            )
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.connacks: queue.Queue[tuple[ReasonCode, bool]] = queue.Queue()
        self.disconnected = threading.Event()
        self._acks: dict[int, ReasonCode] = {}
        self._subacks: dict[int, list[ReasonCode]] = {}
        self._acked = threading.Condition()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = lambda _c, _u, msg: self.messages.put(msg)
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe

    # callbacks (network thread)
    def _on_connect(self, _c: Any, _u: Any, flags: Any, rc: ReasonCode, _p: Any) -> None:
        self.connacks.put((rc, bool(flags.session_present)))

    def _on_disconnect(self, *_args: Any) -> None:
        self.disconnected.set()

    def _on_publish(self, _c: Any, _u: Any, mid: int, rc: ReasonCode, _p: Any) -> None:
        with self._acked:
            self._acks[mid] = rc
            self._acked.notify_all()

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, rcs: list[ReasonCode], _p: Any) -> None:
        with self._acked:
            self._subacks[mid] = rcs
            self._acked.notify_all()

    # blocking helpers (test thread)
    def connect(self, *, clean_start: bool = True, session_expiry: int = 0) -> bool:
        """Connect and wait for a successful CONNACK; return its session-present flag."""
        if self.protocol == mqtt.MQTTv5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = session_expiry
            self.client.connect(HOST, self.port, 10, clean_start=clean_start, properties=props)
        else:
            self.client.connect(HOST, self.port, 10)
        self.client.loop_start()
        rc, session_present = self.connacks.get(timeout=TIMEOUT)
        assert not rc.is_failure, f"CONNACK {rc}"
        return session_present

    def subscribe(self, topic: str, qos: int = 1) -> ReasonCode:
        """Subscribe and return the SUBACK reason code (the granted QoS on success)."""
        _, mid = self.client.subscribe(topic, qos)
        assert mid is not None
        reason_codes: list[ReasonCode] = self._wait(self._subacks, mid)
        return reason_codes[0]

    def publish(self, topic: str, payload: bytes = b"x", qos: int = 1) -> ReasonCode:
        """Publish at QoS 1 and return the PUBACK reason code (paho fakes Success for v3.1.1)."""
        info = self.client.publish(topic, payload, qos)
        reason_code: ReasonCode = self._wait(self._acks, info.mid)
        return reason_code

    def next_message(self) -> mqtt.MQTTMessage:
        return self.messages.get(timeout=TIMEOUT)

    def disconnect(self) -> None:
        self.client.disconnect()
        assert self.disconnected.wait(TIMEOUT), "no disconnect"
        self.client.loop_stop()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _wait(self, acks: dict[int, Any], mid: int) -> Any:
        with self._acked:
            assert self._acked.wait_for(lambda: mid in acks, TIMEOUT), f"no ack for mid {mid}"
            return acks.pop(mid)


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPKI:
    return DevPKI(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def broker(tmp_path: Path, pki: DevPKI) -> Iterator[Mosquitto]:
    mosq = Mosquitto(tmp_path / "broker", pki=pki, acl=True)
    mosq.start()
    try:
        yield mosq
    finally:
        mosq.stop()
        print(mosq.log_tail(40))  # shown by pytest only when the test failed


@pytest.fixture
def connect(broker: Mosquitto, pki: DevPKI) -> Iterator[Any]:
    """Factory for connected TLS clients whose certificate CN is ``name``; closes them all."""
    clients: list[LabClient] = []

    def _connect(name: str, protocol: MQTTProtocolVersion = mqtt.MQTTv5) -> LabClient:
        assert broker.tls_port is not None
        client = LabClient(
            f"{name}-{len(clients)}",
            broker.tls_port,
            pki=pki,
            cert=pki.client(name),
            protocol=protocol,
        )
        clients.append(client)
        client.connect()
        return client

    yield _connect
    for client in clients:
        client.close()


# -- PKI ----------------------------------------------------------------------------------------


def test_pki_files_reused_and_keys_private(tmp_path: Path) -> None:
    first = DevPKI(tmp_path)
    pair = first.client("hosp-01")
    cert_bytes = pair.cert.read_bytes()
    again = DevPKI(tmp_path)
    assert again.ca_file.read_bytes() == first.ca_file.read_bytes()
    assert again.client("hosp-01").cert.read_bytes() == cert_bytes
    for key in (tmp_path / "ca.key", pair.key, again.server().key):
        assert key.stat().st_mode & 0o777 == 0o600
    with pytest.raises(ValueError, match="common name"):
        again.client("../evil")


# -- TLS + ACL ----------------------------------------------------------------------------------


def test_site_alarm_reaches_police_over_mutual_tls(connect: Any) -> None:
    police = connect("police")
    assert police.subscribe("edgeguard/#").value == 1  # granted QoS 1
    site = connect("hosp-01")
    assert site.publish("edgeguard/hosp-01/alarm/x", b"panic").value == 0
    msg = police.next_message()
    assert (msg.topic, msg.payload, msg.qos) == ("edgeguard/hosp-01/alarm/x", b"panic", 1)


@pytest.mark.parametrize(
    ("protocol", "expected_puback"),
    [
        # mosquitto 2.0.11 answers a denied QoS 1 PUBLISH from an MQTT 5 client with a PUBACK
        # carrying 0x87 "Not authorized", and keeps the connection open.
        (mqtt.MQTTv5, NOT_AUTHORIZED),
        # MQTT 3.1.1 PUBACKs have no reason code: the denied publish is acked like a success
        # and silently dropped. A 3.1.1 publisher cannot tell it was refused.
        (mqtt.MQTTv311, 0),
    ],
    ids=["mqtt5", "mqtt311"],
)
def test_site_cannot_publish_as_another_site(
    connect: Any, protocol: MQTTProtocolVersion, expected_puback: int
) -> None:
    police = connect("police")
    police.subscribe("edgeguard/#")
    site = connect("hosp-01", protocol)
    assert site.publish("edgeguard/hosp-02/alarm/x", b"forged").value == expected_puback
    assert site.publish("edgeguard/hosp-01/alarm/fence").value == 0
    assert police.next_message().topic == "edgeguard/hosp-01/alarm/fence"
    assert police.messages.empty()
    assert not site.disconnected.is_set()


def test_police_cannot_publish_alarms(connect: Any) -> None:
    police = connect("police")
    police.subscribe("edgeguard/#")
    assert police.publish("edgeguard/hosp-01/alarm/x").value == NOT_AUTHORIZED
    assert police.publish("edgeguard/hosp-01/ack").value == 0
    assert police.next_message().topic == "edgeguard/hosp-01/ack"


def test_police_ack_reaches_only_its_site(connect: Any) -> None:
    site1 = connect("hosp-01")
    assert site1.subscribe("edgeguard/hosp-01/ack").value == 1
    site2 = connect("hosp-02")
    # mosquitto 2.0.11 grants subscriptions regardless of read access (SUBACK = granted QoS);
    # read access is checked per message at delivery time.
    assert site2.subscribe("edgeguard/hosp-01/ack").value == 1
    assert site2.subscribe("edgeguard/#").value == 1
    police = connect("police")
    assert police.publish("edgeguard/hosp-01/ack", b"ack-1").value == 0
    assert police.publish("edgeguard/hosp-02/ack", b"fence").value == 0
    assert site1.next_message().payload == b"ack-1"
    fence = site2.next_message()
    assert (fence.topic, fence.payload) == ("edgeguard/hosp-02/ack", b"fence")
    assert site2.messages.empty()


def test_site_cannot_forge_its_own_ack(connect: Any) -> None:
    """Only the police write acks: a site's write rights stop short of ``edgeguard/<site>/ack``."""
    police = connect("police")
    police.subscribe("edgeguard/+/ack")
    site = connect("hosp-01")
    assert site.publish("edgeguard/hosp-01/ack", b"self-made").value == NOT_AUTHORIZED
    assert site.publish("edgeguard/hosp-01/status").value < 0x80  # 0x10: no subscribers
    assert police.messages.empty()


# -- TLS handshake ------------------------------------------------------------------------------


def _assert_rejected(client: LabClient) -> None:
    """The connection must fail before any CONNACK. With TLS 1.3 (what mosquitto 2.0.11 and
    Python negotiate) the client-side handshake succeeds and the broker drops the connection
    right after it ("peer did not return a certificate"), so drive the loop by hand: the
    threaded loop would sleep 1 s in its reconnect back-off before ``loop_stop()`` returns."""
    try:
        client.client.connect(HOST, client.port, 10)
    except (ssl.SSLError, OSError):
        return
    deadline = time.monotonic() + TIMEOUT
    while not client.disconnected.is_set() and time.monotonic() < deadline:
        client.client.loop(0.05)
    assert client.disconnected.is_set(), "connection was not dropped"
    assert client.connacks.empty()


def test_tls_port_requires_client_certificate(broker: Mosquitto, pki: DevPKI) -> None:
    assert broker.tls_port is not None
    _assert_rejected(LabClient("nocert", broker.tls_port, pki=pki))


def test_tls_port_rejects_certificate_from_foreign_ca(
    broker: Mosquitto, pki: DevPKI, tmp_path: Path
) -> None:
    assert broker.tls_port is not None
    foreign = DevPKI(tmp_path / "foreign").client("hosp-01")
    _assert_rejected(LabClient("foreign", broker.tls_port, pki=pki, cert=foreign))


# -- persistence --------------------------------------------------------------------------------


def test_restart_keeps_persistent_session_and_queued_message(
    broker: Mosquitto, pki: DevPKI
) -> None:
    tls_port = broker.tls_port
    assert tls_port is not None
    plain_port = broker.port
    clients: list[LabClient] = []

    def client(client_id: str, name: str) -> LabClient:
        clients.append(LabClient(client_id, tls_port, pki=pki, cert=pki.client(name)))
        return clients[-1]

    try:
        police = client("police-durable", "police")
        assert police.connect(clean_start=False, session_expiry=300) is False
        police.subscribe("edgeguard/#")
        police.disconnect()
        site = client("hosp-01-pub", "hosp-01")
        site.connect()
        assert site.publish("edgeguard/hosp-01/alarm/queued", b"while-away").value == 0
        site.disconnect()

        broker.restart()
        assert (broker.port, broker.tls_port) == (plain_port, tls_port)

        police = client("police-durable", "police")
        assert police.connect(clean_start=False, session_expiry=300) is True
        msg = police.next_message()
        assert (msg.topic, msg.payload, msg.qos) == (
            "edgeguard/hosp-01/alarm/queued",
            b"while-away",
            1,
        )
    finally:
        for each in clients:
            each.close()


def test_storm_of_qos1_alarms_is_queued_for_offline_subscriber(tmp_path: Path) -> None:
    """2,000 QoS 1 messages exceed mosquitto's default max_queued_messages (1000)."""
    count = 2000
    with Mosquitto(tmp_path / "plain", log_to_file=False) as mosq:
        police = LabClient("police-storm", mosq.port)
        site = LabClient("hosp-01-storm", mosq.port)
        try:
            police.connect(clean_start=False, session_expiry=300)
            police.subscribe("edgeguard/#")
            police.disconnect()
            police = LabClient("police-storm", mosq.port)
            site.connect()
            infos = [
                site.client.publish(f"edgeguard/hosp-01/alarm/{i}", str(i), 1) for i in range(count)
            ]
            for info in infos:
                info.wait_for_publish(TIMEOUT)
            police.connect(clean_start=False, session_expiry=300)
            got = [int(police.next_message().payload) for _ in range(count)]
            assert got == list(range(count))
        finally:
            police.close()
            site.close()


# -- broker lifecycle ---------------------------------------------------------------------------


@pytest.mark.parametrize("log_to_file", [True, False])
def test_start_failure_reports_log_tail(tmp_path: Path, log_to_file: bool) -> None:
    pki = DevPKI(tmp_path / "pki")
    pki.server().key.write_text("not a key\n")
    mosq = Mosquitto(tmp_path / "broken", pki=pki, log_to_file=log_to_file)
    with pytest.raises(RuntimeError, match="exited with code") as excinfo:
        mosq.start()
    assert "Unable to load server key file" in str(excinfo.value)
    assert not mosq.running


def test_start_refuses_busy_port(tmp_path: Path) -> None:
    with Mosquitto(tmp_path / "first") as first:
        clash = Mosquitto(tmp_path / "second", port=first.port)
        with pytest.raises(RuntimeError, match="already in use"):
            clash.start()
        assert not clash.running


def test_kill_then_start_on_same_port(tmp_path: Path) -> None:
    port = free_port()
    mosq = Mosquitto(tmp_path / "b", port=port, persistence=False)
    try:
        mosq.start()
        pid = mosq.pid
        mosq.kill()
        assert not mosq.running
        mosq.start()
        assert mosq.running
        assert mosq.pid != pid
        assert mosq.port == port
        assert "mosquitto version" in mosq.log_tail()
    finally:
        mosq.stop()
