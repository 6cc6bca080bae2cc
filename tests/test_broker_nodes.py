"""`mqtt.nodes`: a site given several addresses of one broker (a cluster's nodes) moves to the
next node when the one it is on dies. The config is checked here; the moves run a real daemon
against two real mosquitto brokers (one dev PKI, TLS client certificates, the ACL), one of them
dead or killed with SIGKILL. The RabbitMQ cluster version is tests/test_city_nodes.py."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edgeguard.broker_nodes import split_node
from edgeguard.config_loader import ConfigError, load_config
from edgeguard.lab.broker import Mosquitto, free_port
from edgeguard.lab.harness import DaemonProcess, PoliceSubscriber, Site, make_site
from edgeguard.lab.pki import DevPKI

TIMEOUT = 30.0  # bounds every wait; a move itself takes about a second (reconnect_min 0.2 s)

CONFIG = """\
site: {{id: hosp-01, name: 市第一人民医院}}
mqtt:
  host: eg1.police.example
  tls: {{ca_file: /etc/edgeguard/ca.crt}}
  nodes:
{nodes}
signing: {{private_key: /etc/edgeguard/site.key}}
"""


def _load(tmp_path: Path, *nodes: str) -> Any:
    path = tmp_path / "edgeguard.yaml"
    lines = "\n".join(f"    - {node!r}" for node in nodes) or "    []"
    path.write_text(CONFIG.format(nodes=lines), encoding="utf-8")
    return load_config(path)


def _issues(tmp_path: Path, *nodes: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, *nodes)
    return [str(issue).split(": ", 1)[1] for issue in info.value.issues]


def test_nodes_are_tried_after_host_and_port_with_its_port(tmp_path: Path) -> None:
    config = _load(tmp_path, "eg2.police.example", "10.0.0.3:8884", "[fd00::4]", "[fd00::5]:1")
    assert config.mqtt.addresses() == [
        ("eg1.police.example", 8883),  # host:port first, port 8883 by TLS
        ("eg2.police.example", 8883),  # a node without port: the endpoint's
        ("10.0.0.3", 8884),
        ("fd00::4", 8883),
        ("fd00::5", 1),
    ]
    assert _load(tmp_path).mqtt.addresses() == [("eg1.police.example", 8883)]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("eg 2", "not a host name or IP address"),
        ("", "not a host name or IP address"),
        ("eg2:", "the port must be a number from 1 to 65535"),
        ("eg2:0", "the port must be a number from 1 to 65535"),
        ("eg2:65536", "the port must be a number from 1 to 65535"),
        ("eg2:http", "the port must be a number from 1 to 65535"),
        ("fd00::4", "write an IPv6 address in brackets"),
        ("[eg2]:8883", "not an IPv6 address in brackets"),
        ("eg2/mqtt", "not a host name or IP address"),
    ],
)
def test_a_bad_entry_is_named_with_its_path(tmp_path: Path, entry: str, message: str) -> None:
    (issue,) = _issues(tmp_path, "eg3", entry)
    assert issue.startswith(f"mqtt.nodes[1]: {entry!r}: {message}"), issue


def test_check_config_names_the_line_of_a_bad_entry(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, "eg2", "eg3:x")
    assert [str(i) for i in info.value.issues] == [
        f"{tmp_path / 'edgeguard.yaml'}:7: mqtt.nodes[1]: 'eg3:x': the port must be a number "
        "from 1 to 65535"
    ]


def test_duplicates_and_too_many_are_refused(tmp_path: Path) -> None:
    assert _issues(tmp_path, "eg2", "EG2:8883") == [
        "mqtt.nodes: entry 1 ('EG2:8883') is EG2:8883 again, as entry 0"
    ]
    assert _issues(tmp_path, "eg1.police.example:8883") == [
        "mqtt.nodes: entry 0 ('eg1.police.example:8883') is "
        "eg1.police.example:8883 again, as `host`:`port`"
    ]
    (issue,) = _issues(tmp_path, *(f"eg{i}" for i in range(2, 19)))
    assert issue == "mqtt.nodes: List should have at most 16 items after validation, not 17"
    assert len(_load(tmp_path, *(f"eg{i}" for i in range(2, 18))).mqtt.addresses()) == 17


def test_split_node() -> None:
    assert split_node("eg2") == ("eg2", None)
    assert split_node("eg2.:1883") == ("eg2.", 1883)
    assert split_node("[::1]:8883") == ("::1", 8883)
    with pytest.raises(ValueError, match="IPv6"):
        split_node("::1:8883")


# -- the moves, with real brokers and a real daemon ------------------------------------------


@pytest.fixture
def brokers(tmp_path: Path) -> Iterator[tuple[Mosquitto, Mosquitto]]:
    """Two mosquitto brokers of one dev PKI (their certificates name `localhost`)."""
    pki = DevPKI(tmp_path / "pki")
    pair = (
        Mosquitto(tmp_path / "a", pki=pki, acl=True),
        Mosquitto(tmp_path / "b", pki=pki, acl=True),
    )
    for broker in pair:
        broker.start()
    yield pair
    for broker in pair:
        if broker.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(broker.pid, signal.SIGCONT)
        broker.stop()


def _node(broker: Mosquitto) -> str:
    return f"localhost:{broker.tls_port}"


def _site(tmp_path: Path, first: Mosquitto, port: int, *others: str) -> Site:
    inputs = [{"type": "simulated", "name": name, "location": "er"} for name in ("b1", "b2")]
    extra = {"port": port, "nodes": list(others)}
    return make_site(tmp_path / "site", first, inputs=inputs, mqtt_extra=extra)


def _until(predicate: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _on(daemon: DaemonProcess, node: str) -> bool:
    link = daemon.status()["link"]
    return bool(link["connected"] and link["broker"] == node)


def _alarm(police: PoliceSubscriber, source: str, message: str) -> dict[str, Any] | None:
    found = [a for a in police.alarms() if (a["source"], a["message"]) == (source, message)]
    return found[0] if found else None


def test_a_dead_first_node_is_passed_over(
    tmp_path: Path,
    brokers: tuple[Mosquitto, Mosquitto],
    daemons: Callable[..., DaemonProcess],
) -> None:
    live = brokers[0]
    dead = f"localhost:{free_port()}"  # nothing listens there
    site = _site(tmp_path, live, int(dead.rsplit(":", 1)[1]), _node(live))
    with PoliceSubscriber(live, {site.site_id: site.public_key}) as police:
        daemon = daemons(site)
        _until(lambda: _on(daemon, _node(live)), "the link up on the live node")
        link = daemon.status()["link"]
        assert (link["nodes"], link["node"]) == ([dead, _node(live)], 2)
        daemon.press("b1")
        assert _until(lambda: _alarm(police, "b1", "new"), "the alarm via the live node")
    log = daemon.log_text()
    assert f"connecting to {dead} as edgeguard-hosp-01 (MQTT 5, TLS); nodes {dead}, " in log
    assert f"cannot reach the police broker: connect to {dead} failed; next: {_node(live)}" in log
    assert f"police link up ({_node(live)}, node 2 of 2)" in log


def test_kill_9_of_its_node_moves_the_site_on_with_what_was_in_flight(
    tmp_path: Path,
    brokers: tuple[Mosquitto, Mosquitto],
    daemons: Callable[..., DaemonProcess],
    cleanup: list[Callable[[], None]],
) -> None:
    a, b = brokers
    site = _site(tmp_path, a, a.tls_port or 0, _node(b))
    keys = {site.site_id: site.public_key}
    on_a = PoliceSubscriber(a, keys, client_id="police-a").__enter__()
    cleanup.append(lambda: on_a.__exit__(None, None, None))
    on_b = PoliceSubscriber(b, keys, client_id="police-b").__enter__()
    cleanup.append(lambda: on_b.__exit__(None, None, None))
    daemon = daemons(site)
    _until(lambda: _on(daemon, _node(a)), "the link up on node a")
    daemon.press("b1")
    new = _until(lambda: _alarm(on_a, "b1", "new"), "the alarm via node a")

    # node a hangs: the next message goes out on it and gets no PUBACK ...
    assert a.pid is not None
    os.kill(a.pid, signal.SIGSTOP)
    daemon.release("b1")
    _until(lambda: daemon.status()["outbox"]["inflight"] == 1, "a message in flight on node a")
    # ... then dies: the site moves to node b and publishes it there (the outbox's resend)
    a.kill()
    _until(lambda: _on(daemon, _node(b)), "the link up on node b")
    restored = _until(lambda: _alarm(on_b, "b1", "restored"), "the in-flight message via b")
    assert (restored["event_id"], restored["seq"]) == (new["event_id"], new["seq"] + 1)
    assert _alarm(on_a, "b1", "restored") is None  # node a never read it
    _until(lambda: daemon.status()["outbox"]["pending"] == 0, "the outbox empty")
    status = daemon.status()["link"]
    assert (status["node"], status["nodes"]) == (2, [_node(a), _node(b)])

    # round robin: node a is back, node b dies, the site goes round to node a
    a.start()
    again = PoliceSubscriber(a, keys, client_id="police-a2").__enter__()
    cleanup.append(lambda: again.__exit__(None, None, None))
    b.kill()
    _until(lambda: _on(daemon, _node(a)), "the link up on node a again")
    daemon.press("b2")
    assert _until(lambda: _alarm(again, "b2", "new"), "the next alarm via node a")
    log = daemon.log_text()
    assert f"police link DOWN on {_node(a)}: " in log
    assert f"; next: {_node(b)}" in log
    assert f"police link up ({_node(b)}, node 2 of 2)" in log
    assert f"police link DOWN on {_node(b)}: " in log
    assert f"police link up ({_node(a)}, node 1 of 2)" in log
