"""A broker's further addresses, `mqtt.nodes` (the nodes of a cluster, or other addresses of one
broker): each entry ``host``, ``host:port``, ``[v6]`` or ``[v6]:port``, checked for the config
and resolved against the endpoint's own ``host`` and effective port. Light: no paho here."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from typing import Annotated

from pydantic import AfterValidator, ValidationInfo

MAX_NODES = 16

_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*\.?$")
_BRACKETED = re.compile(r"^\[([^\]]+)\](?::(.*))?$")


def split_node(text: str) -> tuple[str, int | None]:
    """``(host, port)`` of one entry, the port None when the entry gives none; ValueError with
    what is wrong."""
    bracketed = _BRACKETED.match(text)
    if bracketed:
        host, port_text = bracketed.group(1), bracketed.group(2)
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{text!r}: not an IPv6 address in brackets") from None
    elif text.count(":") > 1:
        raise ValueError(f"{text!r}: write an IPv6 address in brackets: [::1] or [::1]:8883")
    else:
        host, _, port_text = text.partition(":")
        if ":" not in text:
            port_text = None
        if not _HOSTNAME.match(host):
            raise ValueError(f"{text!r}: not a host name or IP address")
    if port_text is None:
        return host, None
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"{text!r}: the port must be a number from 1 to 65535")
    return host, int(port_text)


def check_node(text: str) -> str:
    """The config's validator of one entry: it must parse (see ``split_node``)."""
    split_node(text)
    return text


NodeEntry = Annotated[str, AfterValidator(check_node)]


def distinct_nodes(nodes: list[str], info: ValidationInfo) -> list[str]:
    """The config's validator of the whole list: no address twice, `host:port` included
    (skipped when `host`, `port` or `tls` failed: their own errors are reported)."""
    if {"host", "port", "tls"} <= info.data.keys():
        port = info.data["port"] or (8883 if info.data["tls"] is not None else 1883)
        node_addresses(info.data["host"], port, nodes)
    return nodes


def node_addresses(host: str, port: int, nodes: Sequence[str]) -> list[tuple[str, int]]:
    """``(host, port)`` first, then each of ``nodes`` (its port defaulting to ``port``), in
    order; ValueError when an address comes twice."""
    found = [(host, port)]
    seen = {_key(host, port): "`host`:`port`"}
    for index, entry in enumerate(nodes):
        node_host, node_port = split_node(entry)
        address = (node_host, node_port if node_port is not None else port)
        first = seen.setdefault(_key(*address), f"entry {index}")
        if first != f"entry {index}":
            raise ValueError(
                f"entry {index} ({entry!r}) is {format_address(address)} again, as {first}"
            )
        found.append(address)
    return found


def format_address(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _key(host: str, port: int) -> tuple[str, int]:
    return host.lower().rstrip("."), port
