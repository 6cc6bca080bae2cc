"""Fuzz every parser of outside input: mutated valid frames and random bytes, no exception but
the parser's documented error, and each parser's invariant.

    .venv/bin/python bench/fuzz.py --inputs 1000000 --seed 1      # `make fuzz`
    .venv/bin/python bench/fuzz.py --inputs 2000 --seed 7 --http 200   # tests/test_fuzz.py

Pure parsers (no sockets): the serial box lines and replies (EGB1), Contact ID lines (plain and
Sur-Gard), SIA DC-09 frames through the receiver driver, the police acks a site receives, the
signed messages the police receiver handles, config files and control-socket requests. Inputs are
valid frames mutated (bit flips, byte insert/delete, interesting values, splicing, one field
replaced), mutated *inside* and sealed again with a valid checksum, CRC or signature (so that the
inner parser is reached), and random bytes. Then a lighter run of raw HTTP requests against a
real police console. Prints per-parser counts, outcomes, unexpected errors by type and the first
failing input; the last line is one JSON object; the exit code is 1 if anything failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import re
import shutil
import socket
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CHUNK = 20_000  # inputs per task: a fresh parser state (and a fresh corpus) per task
CORPUS_REFRESH = 2_000  # DC-09 frames carry timestamps: rebuild them this often

INTERESTING: tuple[bytes, ...] = (
    b"", b"\x00", b"\xff", b"\x7f", b"\r", b"\n", b"\r\n", b"\t", b" ", b"-", b"-1", b"0",
    b"00", b"65535", b"65536", b"99999999999999999999", b"9" * 5000, b"[" * 3000, b"{" * 3000,
    b'"', b"\\", b"*", b"|", b",", b"#", b"[", b"]", b"_", b":", b"%s%n", b"null", b"true",
    b"1e999", b"NaN", b"-0", b" " * 200, b"A" * 300, "é".encode(), "急诊".encode(),
    b"\xc3", b"\xed\xa0\x80", b"\xef\xbb\xbf",
)  # fmt: skip


class ViolationError(Exception):
    """A parser broke its own contract (not an exception it may raise)."""


# -- mutations ------------------------------------------------------------------------------


def mutate(rng: random.Random, data: bytes) -> bytes:
    """1-4 byte-level edits."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(out) + 1)
        op = rng.randrange(8)
        if op == 0 and out:
            out[min(at, len(out) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1:
            out[at:at] = bytes([rng.randrange(256)])
        elif op == 2 and out:
            del out[at : at + rng.randint(1, 4)]
        elif op == 3:
            out[at : at + rng.randint(0, 3)] = rng.choice(INTERESTING)
        elif op == 4:
            out[at:at] = rng.choice(INTERESTING)
        elif op == 5 and out:
            start = rng.randrange(len(out))
            out[at:at] = out[start : start + rng.randint(1, 16)]
        elif op == 6:
            del out[at:]
        elif out:
            out[min(at, len(out) - 1)] = rng.choice(b"0123456789ABCDEFabcdef,|[]#\"*$ .:-_")
    return bytes(out)


def field_mutate(rng: random.Random, data: bytes, separators: bytes) -> bytes:
    """Replace, drop or repeat one field (fields split on a separator the data contains)."""
    present = [s for s in separators if s in data]
    if not present:
        return mutate(rng, data)
    sep = bytes([rng.choice(present)])
    fields = data.split(sep)
    index = rng.randrange(len(fields))
    op = rng.randrange(4)
    if op == 0:
        fields[index] = rng.choice(INTERESTING)
    elif op == 1:
        fields[index] = mutate(rng, fields[index])
    elif op == 2:
        del fields[index]
    else:
        fields.insert(index, fields[index])
    return sep.join(fields)


def splice(rng: random.Random, first: bytes, second: bytes) -> bytes:
    return first[: rng.randint(0, len(first))] + second[rng.randint(0, len(second)) :]


def random_bytes(rng: random.Random, alphabet: bytes) -> bytes:
    size = rng.choice((rng.randint(0, 40), rng.randint(0, 300), rng.randint(0, 5000)))
    if rng.random() < 0.5:
        return rng.randbytes(size)
    return bytes(rng.choice(alphabet) for _ in range(min(size, 400)))


# -- targets ---------------------------------------------------------------------------------


class Target:
    """One parser: its valid inputs, how to seal a mutated payload, and its check."""

    name = ""
    separators = b","
    alphabet = b"0123456789ABCDEF"

    def corpus(self) -> list[bytes]:
        """Valid whole inputs."""
        raise NotImplementedError

    def payloads(self) -> list[bytes]:
        """The sealed part of each valid input, mutated and sealed again by :meth:`seal`."""
        return []

    def seal(self, payload: bytes) -> bytes:
        return payload

    def check(self, data: bytes) -> str:
        """Feed one input; return an outcome label; raise ViolationError or let a bug escape."""
        raise NotImplementedError

    def refresh(self) -> None:
        """Called every CORPUS_REFRESH inputs."""

    def close(self) -> None:
        pass

    def generate(self, rng: random.Random) -> bytes:
        corpus, payloads = self.corpus(), self.payloads()
        pick = rng.random()
        if payloads and pick < 0.35:
            return self.seal(mutate(rng, rng.choice(payloads)))
        if payloads and pick < 0.55:
            return self.seal(field_mutate(rng, rng.choice(payloads), self.separators))
        if pick < 0.75:
            return mutate(rng, rng.choice(corpus))
        if pick < 0.83:
            return field_mutate(rng, rng.choice(corpus), self.separators)
        if pick < 0.9:
            return splice(rng, rng.choice(corpus), rng.choice(corpus))
        return random_bytes(rng, self.alphabet)


class Egb1Box(Target):
    """Serial button box → daemon lines (docs/serial-protocol.md), through the line splitter."""

    name = "egb1_box"
    alphabet = b"$EGB1,*0123456789ABCDEFPRESLHb-_\r\n"

    def __init__(self) -> None:
        from edgeguard_drivers import serial_protocol as sp

        self.sp = sp
        self._corpus = [
            sp.encode_frame(dev, seq, event)
            for dev in ("b1", "er-1", "A_very-long-id15")
            for seq in (0, 1, 65535)
            for event in sp.Event
        ]
        self._payloads = [line[1:].split(b"*")[0] for line in self._corpus]

    def corpus(self) -> list[bytes]:
        return self._corpus

    def payloads(self) -> list[bytes]:
        return self._payloads

    def seal(self, payload: bytes) -> bytes:
        crc = self.sp.crc16(payload)
        return b"$" + payload + b"*" + f"{crc:04X}".encode() + b"\r\n"

    def check(self, data: bytes) -> str:
        sp = self.sp
        splitter = sp.LineSplitter()
        outcome = "no line"
        for item in [*splitter.feed(data), *splitter.feed(b"\n")]:
            if isinstance(item, sp.Overlong):
                outcome = "overlong"
                continue
            try:
                frame = sp.parse_box_line(item)
            except sp.FrameError as exc:
                outcome = f"refused {exc.reason.value}"
                continue
            if not sp.is_dev_id(frame.dev) or not 0 <= frame.seq < sp.SEQ_MODULUS:
                raise ViolationError(f"accepted an invalid frame: {frame}")
            outcome = "accepted"
        return outcome


class Egb1Reply(Egb1Box):
    """Daemon → box replies ($ACK/$NAK), as the box simulator and tests read them."""

    name = "egb1_reply"

    def __init__(self) -> None:
        super().__init__()
        sp = self.sp
        self._corpus = [sp.encode_ack("b1", 7), sp.encode_ack("er-1", 65535)] + [
            sp.encode_nak(dev, seq, reason)
            for dev, seq in (("b1", 3), (None, None))
            for reason in sp.NAK_REASONS
        ]
        self._payloads = [line[1:].split(b"*")[0] for line in self._corpus]

    def check(self, data: bytes) -> str:
        try:
            reply = self.sp.parse_reply(data)
        except self.sp.FrameError as exc:
            return f"refused {exc.reason.value}"
        return f"accepted {reply.kind}" if hasattr(reply, "kind") else "accepted"


class ContactId(Target):
    """Alarm panel receiver lines: plain 16-digit Contact ID and Sur-Gard automation output."""

    name = "contact_id"
    separators = b" "
    alphabet = b"0123456789ABCDEF @\x14\r\n"

    def __init__(self) -> None:
        from edgeguard_drivers import contact_id_codes
        from edgeguard_drivers import contact_id_protocol as cid

        self.cid = cid
        self.lookup = contact_id_codes.lookup
        plain = [
            cid.make_message(account, code, zone, qualifier=q, spaces=spaces).encode()
            for account, code, zone in ((1234, 130, 5), ("BCDE", 602, 0), (9999, 401, 17))
            for q in cid.Qualifier
            for spaces in (False, True)
        ]
        surgard = [
            cid.make_surgard_message(1234, code, 3, qualifier=q)
            for code in (130, 110, 602)
            for q in cid.Qualifier
        ]
        self._corpus = [*plain, *surgard, b"1011           @    "]
        self._payloads = [line for line in plain if b" " not in line]

    def corpus(self) -> list[bytes]:
        return self._corpus

    def payloads(self) -> list[bytes]:
        return self._payloads

    def seal(self, payload: bytes) -> bytes:
        """Give a mutated 16-digit message a valid check digit when it still is digits."""
        text = payload.decode("latin-1").upper()
        try:
            return (text[:15] + self.cid.check_digit(text[:15])).encode("latin-1")
        except ValueError:
            return payload

    def check(self, data: bytes) -> str:
        cid = self.cid
        outcomes = []
        for parse in (cid.parse_line, cid.parse_surgard_line):
            try:
                message = parse(data)
            except cid.ContactIdError as exc:
                outcomes.append(f"refused {exc.reason.value}")
                continue
            if isinstance(message, cid.ContactIdMessage):
                self.lookup(message.event_code)
                if message.checksum_ok and not cid.checksum_ok(message.digits + message.raw[-1]):
                    raise ViolationError(f"accepted a bad checksum: {message}")
            outcomes.append("accepted")
        return " / ".join(outcomes)


class SiaDc09(Target):
    """SIA DC-09 frames through the receiver driver: every frame gets one ACK, NAK or DUH."""

    name = "sia_dc09"
    separators = b'"[]|#_,:'
    alphabet = b'0123456789ABCDEF"#[]|_:,-*SIADCLRNU\n\r'

    def __init__(self) -> None:
        from edgeguard.lab.dc09 import RecordingPeer
        from edgeguard.lab.sinks import RecordingSink
        from edgeguard_drivers import sia_dc09_protocol as dc
        from edgeguard_drivers.sia_dc09 import SiaDc09Input
        from edgeguard_drivers.sia_dc09_config import SiaDc09InputConfig
        from edgeguard_drivers.sia_dc09_server import Listener

        class InlineListener(Listener):
            """Runs ``call_soon`` callbacks at once: the durable write's answer, no loop."""

            def call_soon(self, callback: Callable[..., None], *args: Any) -> None:
                callback(*args)

        self.dc = dc
        self.key = bytes(range(16))
        config = SiaDc09InputConfig.model_validate({
            "type": "sia_dc09", "name": "fuzz", "host": "127.0.0.1", "port": 0,
            "accounts": {"1234": {"location": "er"}, "5678": {"location": "er",
                                                           "key": self.key.hex()}},
        })  # fmt: skip
        self.driver = SiaDc09Input(config, RecordingSink())
        self.driver._listener = InlineListener(
            "fuzz", "127.0.0.1", 0, tcp=False, udp=False, max_connections=1, idle_timeout=1,
            handler=lambda *_: None, tick=lambda: None,
        )  # fmt: skip
        self.peer = RecordingPeer()
        self._corpus: list[bytes] = []
        self._payloads: list[bytes] = []
        self.refresh()

    def _contents(self) -> list[str]:
        stamp = self.dc.format_time(datetime.now(UTC))
        stale = self.dc.format_time(datetime.now(UTC) - timedelta(hours=2))
        return [
            "#1234|Nri1/BA001]" + stamp, "#1234|NBA5]", "#1234|Nri2/PA1^kitchen^]" + stamp,
            "#1234|1130 01 005]" + stamp, "#1234|3130 01 005]", "]" + stamp,
            "#1234|NFA129]" + stale,
            "#1234|NBA1]" + "[X1234][Kabc]" + stamp, "#5678|Nri1/PA2]" + stamp, "]" + stamp,
        ]  # fmt: skip

    def refresh(self) -> None:
        dc = self.dc
        clear = [
            ('"SIA-DCS"0001L0#1234[', 0), ('"SIA-DCS"0002R1L2#1234[', 1),
            ('"ADM-CID"0003L0#1234[', 3), ('"ADM-CID"0004L0#1234[', 4), ('"NULL"0005L0#1234[', 5),
            ('"SIA-DCS"0006L0#1234[', 6), ('"SIA-DCS"0007L0#1234[', 7),
        ]  # fmt: skip
        contents = self._contents()
        bodies = [head + contents[index] for head, index in clear]
        for head, index in (('"*SIA-DCS"0008L0#5678[', 8), ('"*NULL"0009L0#5678[', 9)):
            bodies.append(head + dc.encrypt(contents[index], self.key))
        self._payloads = [body.encode() for body in bodies]
        self._plain = [(head + contents[8]).encode() for head in ('"*SIA-DCS"0008L0#5678[',)]
        self._corpus = [self.seal(body) for body in self._payloads]

    def corpus(self) -> list[bytes]:
        return self._corpus

    def payloads(self) -> list[bytes]:
        return self._payloads + self._plain

    def generate(self, rng: random.Random) -> bytes:
        if rng.random() < 0.15:  # inside an encrypted frame: mutate the clear text, encrypt again
            head, _, content = rng.choice(self._plain).partition(b"[")
            mutated = mutate(rng, content).decode("latin-1")
            if mutated.isascii():
                return self.seal(head + b"[" + self.dc.encrypt(mutated, self.key).encode())
        return super().generate(rng)

    def seal(self, payload: bytes) -> bytes:
        return b"\n%04X%04X%s\r" % (self.dc.crc16(payload), len(payload), payload)

    def check(self, data: bytes) -> str:
        dc = self.dc
        outcome = "no frame"
        splitter = dc.FrameSplitter()
        for item in splitter.feed(data):
            self.peer.sent.clear()
            self.driver._on_item(item, self.peer)  # an exception here is a failure
            if len(self.peer.sent) != 1:
                raise ViolationError(f"{len(self.peer.sent)} answers to {item!r}: {self.peer.sent}")
            outcome = self._word(self.peer.sent[0])
        return outcome

    def _word(self, answer: bytes) -> str:
        """The word of our answer, which must itself be a frame with a valid CRC and length."""
        body = answer.strip(b"\r\n")[8:]
        head = answer.strip(b"\r\n")[:8]
        if head != b"%04X%04X" % (self.dc.crc16(body), len(body)):
            raise ViolationError(f"answer with a bad CRC or length: {answer!r}")
        match = re.match(rb'"\*?(ACK|NAK|DUH)"', body)
        if match is None:
            raise ViolationError(f"answer {answer!r}")
        return match[1].decode()


class PoliceAckTarget(Target):
    """The police acknowledgements a site receives on edgeguard/{site}/ack."""

    name = "police_ack"
    separators = b',:"'
    alphabet = b'{}[]",:0123456789abcdef-truefalsn '

    def __init__(self) -> None:
        from edgeguard.payloads import AckError, parse_police_ack

        self.parse, self.error = parse_police_ack, AckError
        self._corpus = [
            json.dumps({"event_id": "0190c0de-7b1a-7cc0-8a55-0123456789ab", "state": state,
                        "by": by, "at": "2026-11-23T10:00:00.123Z", "receiver": "r1"},
                       ensure_ascii=False).encode()
            for state in ("received", "dispatched", "closed")
            for by in ("王警官", "desk-2")
        ]  # fmt: skip

    def corpus(self) -> list[bytes]:
        return self._corpus

    def generate(self, rng: random.Random) -> bytes:
        if rng.random() < 0.3:
            return json_mutate(rng, json.loads(rng.choice(self._corpus)))
        return super().generate(rng)

    def check(self, data: bytes) -> str:
        try:
            ack = self.parse(data)
        except self.error:
            return "refused"
        return f"accepted {ack.state.value}"


def _interesting_json(rng: random.Random) -> Any:
    return rng.choice([
        None, True, 0, -1, 2**63, 1e308, "", "x" * 1000, "\x00", "\u202e", "2026-13-45T99:00:00Z",
        [], {}, [[[]]], {"a": {"b": None}}, "0190c0de-7b1a-7cc0-8a55-0123456789ab", "alarm",
    ])  # fmt: skip


def json_mutate(rng: random.Random, payload: Any) -> bytes:
    """Set one (possibly nested) field to an odd value, or add one, then serialise."""
    target = payload
    while isinstance(target, dict) and target and rng.random() < 0.5:
        key = rng.choice(list(target))
        if isinstance(target[key], dict | list) and target[key]:
            target = target[key] if isinstance(target[key], dict) else target[key][0]
        else:
            break
    if isinstance(target, dict):
        key = rng.choice([*target, "extra"]) if target else "extra"
        target[key] = _interesting_json(rng)
    text = json.dumps(payload, ensure_ascii=False)
    if rng.random() < 0.1:  # values json.dumps never writes
        text = text.replace("0", rng.choice(["9" * 5000, "[" * 3000 + "]" * 3000, "1e999"]), 1)
    return text.encode()


class PoliceReceiverTarget(Target):
    """Messages the police receiver handles (topic, body): verify, then store; never raises."""

    name = "police_receiver"
    separators = b',:"/'
    alphabet = b'{}[]",:0123456789abcdefedgeguard/alarm '

    def __init__(self) -> None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        from edgeguard.signing import Signer

        self.signer = Signer(Ed25519PrivateKey.from_private_bytes(bytes(32)))
        self.dir = Path(tempfile.mkdtemp(prefix="fuzz-police-", dir=_fast_tmp()))
        self._handler: Any = None
        self._count = 0
        self._messages = _police_messages()
        self._corpus = [t.encode() + b"\n" + self.signer.encode(p) for t, p in self._messages]

    def _new_handler(self) -> Any:
        from edgeguard.police.handler import MessageHandler
        from edgeguard.police.store import PoliceStore
        from edgeguard.police.tracker import Tracker
        from edgeguard.receiver import Receiver

        if self._handler is not None:
            self._handler.store.close()
        for path in self.dir.iterdir():
            path.unlink() if path.is_file() else shutil.rmtree(path)
        store = PoliceStore(self.dir / "police.db", receiver="fuzz")
        receiver = Receiver({"hosp-01": self.signer.public_key})
        return MessageHandler(store, Tracker(lambda _s: 15.0), receiver, self.dir / "snaps", {})

    def corpus(self) -> list[bytes]:
        return self._corpus

    def generate(self, rng: random.Random) -> bytes:
        pick = rng.random()
        topic, payload = rng.choice(self._messages)
        if pick < 0.4:  # a mutated payload, signed again: past the signature check
            body = json_mutate(rng, json.loads(json.dumps(payload)))
            return topic.encode() + b"\n" + self._resign(body)
        if pick < 0.5:
            body = mutate(rng, json.dumps(payload).encode())
            return topic.encode() + b"\n" + self._resign(body)
        if pick < 0.6:
            return mutate(rng, topic.encode()) + b"\n" + self.signer.encode(payload)
        return super().generate(rng)

    def _resign(self, body: bytes) -> bytes:
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):
            return body
        if not isinstance(payload, dict):
            return body
        try:
            return self.signer.encode(payload)
        except (ValueError, TypeError):  # not canonical JSON (NaN, huge floats): unsigned
            return body

    def check(self, data: bytes) -> str:
        if self._count % CHUNK == 0:
            self._handler = self._new_handler()
        self._count += 1
        raw_topic, _, body = data.partition(b"\n")
        topic = raw_topic.decode("utf-8", errors="replace")  # MQTT topics are UTF-8
        self._handler.handle(topic, body, False, time.monotonic())
        return "handled"

    def close(self) -> None:
        if self._handler is not None:
            self._handler.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def _police_messages() -> list[tuple[str, dict[str, Any]]]:
    now = "2026-11-23T10:00:00.123Z"
    alarm = {
        "v": 1, "type": "alarm", "message": "raised", "site": "hosp-01", "site_name": "市一院",
        "event_id": "0190c0de-7b1a-7cc0-8a55-0123456789ab", "seq": 1, "kind": "panic",
        "state": "active", "priority": 1, "source": "er-button",
        "location": {"id": "er", "label": "急诊", "building": "A", "floor": "1"},
        "occurred_at": now, "updated_at": now, "input_active": True, "trigger_count": 1,
        "restored_at": None, "reset_at": None, "reset_by": None, "detail": {"input": "gpio"},
        "cameras": ["cam-er"],
        "evidence": [{"kind": "snapshot", "camera": "cam-er", "sha256": "ab" * 32, "bytes": 10}],
    }  # fmt: skip
    return [
        ("edgeguard/hosp-01/alarm/er-button", alarm),
        ("edgeguard/hosp-01/alarm/er-button", {**alarm, "message": "evidence", "seq": 2}),
        ("edgeguard/hosp-01/status", {"v": 1, "type": "status", "site": "hosp-01",
                                      "state": "online", "version": "1", "at": now,
                                      "started_at": now, "uptime_s": 3.5}),
        ("edgeguard/hosp-01/heartbeat", {"v": 1, "type": "heartbeat", "site": "hosp-01",
                                         "counter": 3, "at": now, "uptime_s": 9.0,
                                         "open_alarms": 1, "outbox_pending": 0,
                                         "log_head": {"id": 4, "hash": "cd" * 32}}),
        ("edgeguard/hosp-01/device/cam-er", {"v": 1, "type": "device", "site": "hosp-01",
                                             "device": "cam-er", "state": "offline", "at": now,
                                             "detail": {"error": "timeout"}}),
    ]  # fmt: skip


class ConfigTarget(Target):
    """Site config files through the loader `edgeguard check-config` uses."""

    name = "config"
    separators = b"\n:"
    alphabet = b"abcdefgh:-[]{}&*!|>#'\" \n0123456789"

    def __init__(self) -> None:
        from edgeguard.config_loader import ConfigError, load_config

        self.load, self.error = load_config, ConfigError
        self.dir = Path(tempfile.mkdtemp(prefix="fuzz-config-", dir=_fast_tmp()))
        self.path = self.dir / "edgeguard.yaml"
        self._corpus = [_SMALL_CONFIG.encode(), (REPO / "config" / "demo.yaml").read_bytes()]

    def corpus(self) -> list[bytes]:
        return self._corpus

    def check(self, data: bytes) -> str:
        self.path.write_bytes(data)
        try:
            self.load(self.path)
        except self.error:
            return "refused"
        return "accepted"

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


_SMALL_CONFIG = """\
site:
  id: hosp-01
  name: 市第一人民医院
mqtt:
  host: broker.example
  username: hosp-01
  password: pw
signing:
  private_key: /etc/edgeguard/site.key
locations:
  er: {label: 急诊分诊台, floor: "1"}
inputs:
  - type: gpio
    name: er-button
    pin: 17
    location: er
  - type: serial_box
    name: box
    port: /dev/ttyUSB0
    devices: {b1: {location: er}}
"""


class ControlTarget(Target):
    """Control-socket request lines (edgeguard/control.py): every line gets a JSON answer."""

    name = "control"
    separators = b',:"'
    alphabet = b'{}[]",:0123456789abcdef-cmdstatuspresreby '

    def __init__(self) -> None:
        from edgeguard.control import ControlServer

        async def handler(_request: Any) -> dict[str, Any]:
            return {}

        self.server = ControlServer(Path("/nonexistent"), handler)
        self.loop = asyncio.new_event_loop()
        self._corpus = [
            b'{"cmd": "status"}', b'{"cmd": "press", "input": "er-button"}',
            b'{"cmd": "release", "input": "er-button"}',
            '{"cmd": "reset", "event_id": "0190c0de-7b1a", "by": "王护士"}'.encode(),
        ]  # fmt: skip

    def corpus(self) -> list[bytes]:
        return self._corpus

    def generate(self, rng: random.Random) -> bytes:
        if rng.random() < 0.3:
            return json_mutate(rng, json.loads(rng.choice(self._corpus)))
        return super().generate(rng)

    def check(self, data: bytes) -> str:
        answer = self.loop.run_until_complete(self.server._answer(data + b"\n"))
        json.dumps(answer, ensure_ascii=False).encode()  # as _serve writes it back
        if not isinstance(answer.get("ok"), bool):
            raise ViolationError(f"answer without ok: {answer!r}")
        return "ok" if answer["ok"] else "refused"

    def close(self) -> None:
        self.loop.close()


TARGETS: dict[str, Callable[[], Target]] = {
    cls.name: cls
    for cls in (Egb1Box, Egb1Reply, ContactId, SiaDc09, PoliceAckTarget, PoliceReceiverTarget,
                ConfigTarget, ControlTarget)
}  # fmt: skip


def _fast_tmp() -> str | None:
    """tmpfs if there is one: the police store and the config file are written per input."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


# -- running ---------------------------------------------------------------------------------


def run_chunk(name: str, seed: int, chunk: int, count: int) -> dict[str, Any]:
    """``count`` inputs of one target, reproducibly from (seed, name, chunk)."""
    import logging

    logging.disable(logging.CRITICAL)  # the parsers log every refusal: not the point here
    rng = random.Random(f"{seed}:{name}:{chunk}")
    target = TARGETS[name]()
    outcomes: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    first: dict[str, str] | None = None
    try:
        for index in range(count):
            if index and index % CORPUS_REFRESH == 0:
                target.refresh()
            data = target.generate(rng)
            try:
                outcomes[target.check(data)] += 1
            except Exception as exc:  # any escape is a finding
                kind = type(exc).__name__
                errors[kind] += 1
                if first is None:
                    first = {"error": f"{kind}: {str(exc)[:300]}", "input": repr(data)[:2000]}
    finally:
        target.close()
    return {"outcomes": dict(outcomes), "errors": dict(errors), "first": first}


def _chunks(inputs: int) -> Iterator[tuple[int, int]]:
    for index, start in enumerate(range(0, inputs, CHUNK)):
        yield index, min(CHUNK, inputs - start)


def fuzz_parsers(names: list[str], inputs: int, seed: int, workers: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {
            name: [pool.submit(run_chunk, name, seed, index, count)
                   for index, count in _chunks(inputs)]
            for name in names
        }  # fmt: skip
        for name, parts in futures.items():
            outcomes: Counter[str] = Counter()
            errors: Counter[str] = Counter()
            first = None
            for future in parts:
                part = future.result()
                outcomes.update(part["outcomes"])
                errors.update(part["errors"])
                first = first or part["first"]
            results[name] = {
                "inputs": inputs, "errors": dict(errors), "first_failure": first,
                "outcomes": dict(outcomes.most_common(12)),
            }  # fmt: skip
            _print_target(name, results[name])
    return results


def _print_target(name: str, result: dict[str, Any]) -> None:
    failed = sum(result["errors"].values())
    print(f"{name}: {result['inputs']} inputs, {failed} failed", flush=True)
    for outcome, count in result["outcomes"].items():
        print(f"    {count:>9}  {outcome}")
    for kind, count in result["errors"].items():
        print(f"  ERROR {count:>7}  {kind}")
    if result["first_failure"]:
        print(f"  first failing input: {result['first_failure']['input']}")
        print(f"    -> {result['first_failure']['error']}")


# -- HTTP: raw requests to a real police console --------------------------------------------

_HTTP_TEMPLATES = (
    b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded"
    b"\r\nContent-Length: 27\r\nConnection: close\r\n\r\nusername=duty&password=pw12",
    b"GET /api/alarms?limit=10&offset=0&site=hosp-01 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    b"Cookie: session=abc\r\nConnection: close\r\n\r\n",
    b"POST /api/alarms/0190c0de/ack HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/"
    b'json\r\nContent-Length: 22\r\nConnection: close\r\n\r\n{"state": "dispatched"}',
    b"GET /static/app.js HTTP/1.1\r\nHost: 127.0.0.1\r\nRange: bytes=0-10\r\n"
    b"Connection: close\r\n\r\n",
    b"GET /api/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
    b"Connection: close\r\n\r\n",
)


def _http_once(port: int, request: bytes) -> int | None:
    """The status code of the answer; None if the server closed, or gave no answer within a
    short wait (a mutated request may promise a body it never sends)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        sock.settimeout(1.0)
        head = b""
        try:
            while b"\r\n" not in head:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                head += chunk
        except TimeoutError:
            return None
    match = re.match(rb"HTTP/1\.[01] (\d{3})", head)
    return int(match[1]) if match else None


def _console_answers(port: int) -> bool:
    import httpx

    try:
        return httpx.get(f"http://127.0.0.1:{port}/login", timeout=30).status_code == 200
    except httpx.HTTPError:
        return False


def _http_request(rng: random.Random) -> bytes:
    template = rng.choice(_HTTP_TEMPLATES)
    pick = rng.random()
    if pick < 0.3:
        return mutate(rng, template)
    if pick < 0.6:  # the head still ends, so that the server answers at once
        return mutate(rng, template).split(b"\r\n\r\n")[0] + b"\r\n\r\n"
    if pick < 0.9:
        return field_mutate(rng, template, b"\r\n /?&=:")
    return random_bytes(rng, b"GET /HTP1.\r\n:")


def fuzz_http(requests: int, seed: int) -> dict[str, Any]:
    """Raw mutated requests to `edgeguard police`'s dashboard: never a 5xx, never a traceback,
    and the console still answers afterwards."""
    from edgeguard.lab.broker import Mosquitto
    from edgeguard.lab.consoles import PoliceReceiver

    rng = random.Random(f"{seed}:http")
    statuses: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    first = None
    with (
        tempfile.TemporaryDirectory(prefix="fuzz-http-") as tmp,
        Mosquitto(Path(tmp) / "broker", log_to_file=False) as broker,
    ):
        police = PoliceReceiver(Path(tmp) / "police", broker, {})
        police.start(timeout=60)
        try:
            for _ in range(requests):
                request = _http_request(rng)
                status = _http_once(police.port, request)
                statuses[str(status)] += 1
                if status is not None and status >= 500:
                    errors[f"HTTP {status}"] += 1
                    first = first or {"error": f"HTTP {status}", "input": repr(request)}
            if not _console_answers(police.port):
                errors["console stopped answering"] += 1
        finally:
            police.stop()
        log = police.log_text()
    ours = [block for block in log.split("Traceback")[1:] if "aiohttp.http_exceptions" not in block]
    if ours:
        errors["traceback in the console's log"] += len(ours)
        first = first or {"error": "traceback", "input": "Traceback" + ours[0][:2000]}
    result = {"inputs": requests, "errors": dict(errors), "first_failure": first,
              "outcomes": dict(statuses.most_common(12)),
              # aiohttp logs each malformed request with a traceback at ERROR (reported, not
              # ours to fix here: edgeguard/web/server.py)
              "bad_request_tracebacks": log.count("aiohttp.http_exceptions")}  # fmt: skip
    _print_target("http", result)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=1_000_000, help="inputs per pure parser")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--http", type=int, default=3000, help="raw HTTP requests (0: none)")
    parser.add_argument("--only", default="", help="comma-separated parsers (default: all)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or list(TARGETS)
    unknown = set(names) - set(TARGETS) - {"http"}
    if unknown:
        parser.error(f"unknown parser(s) {sorted(unknown)}; known: {sorted(TARGETS)}")
    started = time.monotonic()
    results = fuzz_parsers([n for n in names if n in TARGETS], args.inputs, args.seed,
                           args.workers)  # fmt: skip
    if args.http and (not args.only or "http" in names):
        results["http"] = fuzz_http(args.http, args.seed)
    failed = {name: sum(r["errors"].values()) for name, r in results.items()}
    summary = {
        "bench": "fuzz", "seed": args.seed, "inputs_per_parser": args.inputs,
        "seconds": round(time.monotonic() - started, 1), "ok": not any(failed.values()),
        "failures": failed, "parsers": results,
    }  # fmt: skip
    print(json.dumps(summary, ensure_ascii=False))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
