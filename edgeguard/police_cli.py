"""`edgeguard listen` and `edgeguard police-ack`: the police side of the MQTT contract for
commissioning, the demo and tests (the police receiver with its store, supervision and
dashboard is `edgeguard police`: edgeguard/police/)."""

from __future__ import annotations

import argparse
import json
import os
import ssl
import sys
import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edgeguard.ids import iso_ms, utc_now
from edgeguard.payloads import ack_topic
from edgeguard.receiver import Received, Receiver, load_site_keys, render
from edgeguard.uplink.paho_link import no_delay

SESSION_EXPIRY_S = 86400


def make_client(args: argparse.Namespace, default_id: str) -> tuple[mqtt.Client, int]:
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=args.client_id or default_id,
        protocol=MQTTProtocolVersion.MQTTv5,
    )
    if args.ca is not None:
        client.tls_set(
            ca_certs=str(args.ca),
            certfile=str(args.cert) if args.cert else None,
            keyfile=str(args.key) if args.key else None,
            cert_reqs=ssl.CERT_REQUIRED,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
    if args.username:
        password = os.environ.get(args.password_env) if args.password_env else None
        client.username_pw_set(args.username, password)
    client.on_socket_open = no_delay
    port = args.port or (8883 if args.ca is not None else 1883)
    return client, port


def listen(args: argparse.Namespace) -> int:
    receiver = Receiver(load_site_keys(args.keys))
    if not receiver.keys:
        print(f"edgeguard: no *.pub keys in {args.keys}", file=sys.stderr)
        return 1
    client, port = make_client(args, "edgeguard-listen")

    def on_connect(c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            print(f"-- broker refused: {reason}", flush=True)
            return
        c.subscribe("edgeguard/+/#", qos=1)
        print(
            f"-- listening on {args.host}:{port} for sites: {', '.join(receiver.keys)}", flush=True
        )

    def on_message(_c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        received = receiver.handle(message.topic, bytes(message.payload))
        if args.snapshots is not None:
            save_snapshot(args.snapshots, received)
        if args.json and received.payload is not None and not received.duplicate:
            print(
                json.dumps(
                    {"topic": message.topic, "payload": received.payload}, ensure_ascii=False
                ),
                flush=True,
            )
            return
        line = render(received)
        if line:
            print(line, flush=True)

    client.on_connect = on_connect
    client.on_message = on_message
    # A persistent session: alarms published while this receiver is away wait at the broker.
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = SESSION_EXPIRY_S
    client.connect(args.host, port, keepalive=10, clean_start=False, properties=properties)
    try:
        client.loop_forever(retry_first_connection=True)
    except KeyboardInterrupt:
        client.disconnect()
    return 0


def save_snapshot(folder: Path, received: Received) -> Path | None:
    """Keep a received snapshot as FOLDER/{site}/{event_id}/{camera}.jpg."""
    info = received.payload
    if received.kind != "snapshot" or received.blob is None or info is None:
        return None
    target = folder / received.site / str(info["event_id"]) / f"{info['camera']}.jpg"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(received.blob)
    except OSError as exc:
        print(f"-- snapshot not saved: {exc}", flush=True)
        return None
    return target


def send_ack(args: argparse.Namespace) -> int:
    client, port = make_client(args, f"edgeguard-police-ack-{os.getpid()}")
    done = threading.Event()
    payload = {
        "event_id": args.event_id,
        "state": args.state,
        "by": args.by,
        "at": iso_ms(utc_now()),
    }
    client.on_publish = lambda *_a: done.set()
    client.connect(args.host, port, keepalive=10)
    client.loop_start()
    client.publish(ack_topic(args.site), json.dumps(payload, ensure_ascii=False), qos=1)
    ok = done.wait(10)
    client.disconnect()
    client.loop_stop()
    print(f"{args.state} sent for {args.event_id}" if ok else "edgeguard: no PUBACK from broker")
    return 0 if ok else 1
