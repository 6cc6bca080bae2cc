"""A SIA DC-09 transmitter for tests and the bench that we did not write: the frames, their
encryption and the check of the receiver's answer come from ``my-dc09-spt`` (van Ovost
Automatisering, Apache-2.0, a receiver vendor's reference dialler; PyPI ``my-dc09-spt``). Only
the sockets are ours, so that a test can hold a TCP connection open and wait for an answer
with a deadline."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

from my_dc09_spt.msg.dc03_msg import dc03_msg  # type: ignore[import-untyped]
from my_dc09_spt.msg.dc05_msg import dc05_msg  # type: ignore[import-untyped]
from my_dc09_spt.msg.dc09_msg import dc09_msg  # type: ignore[import-untyped]


@dataclass(frozen=True)
class Answer:
    """The receiver's answer as my-dc09-spt reads it: the word and the receiver's clock offset
    (seconds, from the timestamp the answer carries, None without one)."""

    word: str
    offset: float | None
    raw: bytes


class Dc09Transmitter:
    """One communicator account talking to a receiver over TCP (one connection) or UDP."""

    def __init__(
        self,
        host: str,
        port: int,
        account: str,
        *,
        key: bytes | None = None,
        transport: str = "tcp",
        receiver: int | None = None,
        line: int | None = 0,
        timeout: float = 5.0,
    ) -> None:
        self.address = (host, port)
        self.account = account
        self.transport = transport
        self.timeout = timeout
        self.block = dc09_msg(account, key, receiver, line)
        self.seq = 0
        kind = socket.SOCK_STREAM if transport == "tcp" else socket.SOCK_DGRAM
        self.sock = socket.socket(socket.AF_INET, kind)
        self.sock.settimeout(timeout)
        if transport == "tcp":
            self.sock.connect(self.address)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Dc09Transmitter:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- frames built by my-dc09-spt -------------------------------------------------------------

    def sia_frame(self, code: str, zone: int | None = None, *, seq: int | None = None,
                  **params: Any) -> bytes:
        """A ``SIA-DCS`` frame (DC-03 event ``code`` at ``zone``)."""
        event = {"code": code, **({"zone": str(zone)} if zone is not None else {}), **params}
        return self._frame("SIA-DCS", dc03_msg.dc03event(self.account, event), seq)

    def cid_frame(self, code: int, zone: int = 0, *, qualifier: int = 1, area: int = 0,
                  seq: int | None = None) -> bytes:
        """An ``ADM-CID`` frame (Contact ID event)."""
        event = {"code": f"{code:03d}", "zone": str(zone), "q": str(qualifier), "area": str(area)}
        return self._frame("ADM-CID", dc05_msg.dc05event(self.account, event), seq)

    def null_frame(self, *, seq: int | None = None) -> bytes:
        return self._frame("NULL", "]", seq)

    def _frame(self, ident: str, message: str, seq: int | None) -> bytes:
        if seq is None:
            self.seq = self.seq % 9999 + 1
            seq = self.seq
        text: str = self.block.dc09block(seq, ident, message)
        return text.encode("ascii")

    # -- exchange -------------------------------------------------------------------------------

    def send(self, frame: bytes) -> None:
        if self.transport == "tcp":
            self.sock.sendall(frame)
        else:
            self.sock.sendto(frame, self.address)

    def receive(self, timeout: float | None = None) -> bytes:
        """One answer (raises TimeoutError when none comes in time)."""
        self.sock.settimeout(self.timeout if timeout is None else timeout)
        data = self.sock.recv(4096)
        if not data:
            raise ConnectionError("receiver closed the connection")
        return data

    def check(self, raw: bytes, seq: int) -> Answer:
        """The answer checked by my-dc09-spt (CRC, length, sequence number, decryption)."""
        word, offset = self.block.dc09answer(seq, raw.decode("ascii"))
        return Answer(str(word), offset, raw)

    def exchange(self, frame: bytes, timeout: float | None = None) -> Answer:
        """Send a frame and return its checked answer."""
        seq = int(frame[frame.index(b'"', 10) + 1 : frame.index(b'"', 10) + 5])
        self.send(frame)
        return self.check(self.receive(timeout), seq)


class RecordingPeer:
    """A DC-09 peer (``sia_dc09_server.Peer``) that keeps what the driver sends it, for
    feeding the driver frames without sockets (fuzzing, protocol tests)."""

    label = "fuzz"

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send(self, data: bytes) -> None:
        self.sent.append(data)

    def hold(self) -> None:
        pass

    def release(self) -> None:
        pass
