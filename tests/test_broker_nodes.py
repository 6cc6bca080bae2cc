"""`mqtt.nodes`: a site given several addresses of one broker (a cluster's nodes) moves to the
next node when the one it is on dies. The config is checked here; the moves run a real daemon
against two real mosquitto brokers (one dev PKI, TLS client certificates, the ACL), one of them
dead or killed with SIGKILL. The RabbitMQ cluster version is tests/test_city_nodes.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edgeguard.broker_nodes import split_node
from edgeguard.config_loader import ConfigError, load_config

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
