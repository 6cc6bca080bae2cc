"""The events of one broker link, on the loop: the ``UplinkHandler`` of the primary uplink and
of the secondary alike, each with its own lane of the outbox."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from edgeguard.service import AlarmService
from edgeguard.uplink.lane import Lane
from edgeguard.uplink.outbox import Outbox
from edgeguard.uplink.path_supervisor import PathSupervisor

Spawn = Callable[[Coroutine[Any, Any, None]], None]


class LinkEvents:
    def __init__(
        self,
        path: str,
        outbox: Outbox,
        lane: Lane,
        service: AlarmService,
        *,
        spawn: Spawn,
        supervisor: PathSupervisor | None = None,
    ) -> None:
        """``path``: the link's name (``primary``, ``secondary``) for the ``supervisor``, which
        only a site with several transmission paths has; ``spawn`` runs a police ack's
        handling as a task of its owner."""
        self.path = path
        self.outbox = outbox
        self.lane = lane
        self.service = service
        self.spawn = spawn
        self.supervisor = supervisor

    def on_connected(self, node: str) -> None:
        self.lane.on_connected()
        if self.supervisor is not None:
            self.supervisor.link_up(self.path, node)

    def on_disconnected(self, reason: str, node: str) -> None:
        """Nothing to undo: the lane resends its in-flight rows, in order, on reconnect.
        With a second path, what waits moves on to it now (edgeguard/uplink/failover.py)."""
        self.outbox.on_disconnected()
        if self.supervisor is not None:
            self.supervisor.link_down(self.path, reason, node)

    def on_puback(self, mid: int, ok: bool, reason: str) -> None:
        self.outbox.delivered_by(self.lane, mid, ok, reason)

    def on_ack_message(self, payload: bytes) -> None:
        self.spawn(self.service.handle_police_ack(payload))

    def on_receipt_message(self, payload: bytes) -> None:
        self.spawn(self.service.handle_receipt(payload))
