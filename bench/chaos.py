"""Chaos: a real daemon (`edgeguard run`) and a real mosquitto (TLS, ACL), buttons pressed all
the time through the control socket, the daemon killed with SIGKILL at random moments and the
broker too; an independent subscriber counts what arrives.

Checked at the end (after one clean run that drains the outbox):
- lost: alarm messages the store recorded (seq 1..N) that never reached the subscriber, and
  acknowledged presses (the control socket answered "recorded") with no message. A message
  the broker had PUBACKed within a few seconds before a SIGKILL of the broker is counted apart
  (`lost_at_broker_crash`): mosquitto held it only in memory, which no site can see until the
  end-to-end receipt exists (docs/mqtt-api.md); every other loss fails the run;
- out of order: a message whose first copy arrived after a newer one (repeats after a kill are
  at-least-once and allowed; the subscriber drops them by (event_id, seq));
- `edgeguard verify-log`: the hash chain intact after every unclean stop.

    .venv/bin/python bench/chaos.py [--daemon-kills 200] [--broker-kills 30] [--seed N]

Prints figures, then one JSON object on the last line; exits 1 when anything was lost, out of
order or tampered.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from common import emit, machine

from edgeguard.ids import parse_iso
from edgeguard.lab.broker import Mosquitto
from edgeguard.lab.harness import DaemonProcess, PoliceSubscriber, Site, lab_broker, make_site
from edgeguard.store import Store

BROKER_SAVE_S = 3.0  # autosave_interval 1 (docs/mqtt-api.md): a save within about this long

INPUTS = ("er-1", "er-2", "er-3", "er-4")


class Presser(threading.Thread):
    """Presses and releases the simulated buttons in turn, as fast as the daemon answers;
    counts the presses the daemon acknowledged as recorded."""

    def __init__(self, daemon: DaemonProcess) -> None:
        super().__init__(name="presser", daemon=True)
        self.target = daemon
        self.acked_presses = 0
        self.refused = 0
        self._halt = threading.Event()

    def run(self) -> None:
        turn = 0
        while not self._halt.is_set():
            name, press = INPUTS[turn % len(INPUTS)], turn // len(INPUTS) % 2 == 0
            try:
                answer = self.target.control({"cmd": "press" if press else "release",
                                              "input": name})
            except (OSError, ValueError, TimeoutError):
                self.refused += 1  # the daemon is down or was killed mid-call: try again
                time.sleep(0.02)
                continue
            if answer.get("ok"):
                self.acked_presses += press
                turn += 1

    def stop(self) -> None:
        self._halt.set()
        self.join(30)


class Watch:
    """What the independent subscriber saw of one site's alarm messages."""

    def __init__(self, police: PoliceSubscriber) -> None:
        self.police = police

    def seqs(self) -> list[int]:
        return [int(p["seq"]) for p in self.police.alarms(unique=True)]

    def presses(self) -> int:
        return sum(1 for p in self.police.alarms(unique=True)
                   if p["message"] in ("new", "update") and p["input_active"])


def _site(work: Path, broker: Mosquitto) -> Site:
    inputs = [{"type": "simulated", "name": name, "location": "er"} for name in INPUTS]
    return make_site(work / "site", broker, inputs=inputs)


def _drain(daemon: DaemonProcess, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = daemon.status()
        if status["link"]["connected"] and status["outbox"]["pending"] == 0:
            return
        time.sleep(0.1)
    raise TimeoutError("the outbox did not drain")


def _settle(watch: Watch, timeout: float = 30.0) -> None:
    """Wait until nothing new arrives for a second."""
    deadline, last, quiet_since = time.monotonic() + timeout, -1, time.monotonic()
    while time.monotonic() < deadline:
        count = len(watch.seqs())
        if count != last:
            last, quiet_since = count, time.monotonic()
        elif time.monotonic() - quiet_since > 1.0:
            return
        time.sleep(0.1)


def _verify_log(site: Site) -> bool:
    exe = Path(sys.executable).with_name("edgeguard")
    done = subprocess.run([str(exe), "verify-log", "-c", str(site.config_path)],
                          capture_output=True, text=True, check=False)
    return done.returncode == 0


def _out_of_order(seqs: list[int]) -> list[int]:
    return [b for a, b in itertools.pairwise(seqs) if b < a]


def _kill_cycles(site: Site, broker: Mosquitto, args: argparse.Namespace,
                 rng: random.Random) -> dict[str, Any]:
    daemon = DaemonProcess(site)
    broker_every = max(1, args.daemon_kills // max(1, args.broker_kills))
    acked = daemon_kills = unclean_chain = 0
    broker_kills: list[float] = []  # wall-clock times of the broker's SIGKILLs
    for cycle in range(args.daemon_kills):
        daemon.start(timeout=60)
        presser = Presser(daemon)
        presser.start()
        time.sleep(rng.uniform(0.1, args.max_run_s))
        if len(broker_kills) < args.broker_kills and cycle % broker_every == broker_every - 1:
            broker.kill()
            broker_kills.append(time.time())
            time.sleep(rng.uniform(0.0, 0.5))
            broker.start()
            time.sleep(rng.uniform(0.0, args.max_run_s))
        daemon.kill()
        daemon_kills += 1
        presser.stop()
        acked += presser.acked_presses
        unclean_chain += not _verify_log(site)
    daemon.start(timeout=60)
    _drain(daemon)
    daemon.stop()
    return {"daemon_kills": daemon_kills, "broker_kills": broker_kills, "acked_presses": acked,
            "chain_broken_after_kills": unclean_chain}


def _delivered_at(store: Store, seqs: set[int]) -> dict[int, float | None]:
    """When the broker PUBACKed the alarm messages ``seqs`` (epoch s; None: never)."""
    found: dict[int, float | None] = {}
    rows = store.conn.execute(
        "SELECT payload, delivered_at FROM outbox WHERE message != 'snapshot'")
    for payload, delivered_at in rows:
        seq = json.loads(payload).get("seq")
        if seq in seqs:
            found[seq] = parse_iso(delivered_at).timestamp() if delivered_at else None
    return found


def _lost_at_broker(delivered: dict[int, float | None], kills: list[float]) -> list[int]:
    """Missing messages the broker had PUBACKed shortly before it was killed: held only in its
    memory, not yet saved (docs/mqtt-api.md, 'What a broker crash can still lose')."""
    return sorted(seq for seq, at in delivered.items() if at is not None
                  and any(0 <= kill - at <= BROKER_SAVE_S for kill in kills))


def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="edgeguard-chaos-") as tmp:
        work = Path(tmp)
        broker = lab_broker(work / "lab")
        try:
            site = _site(work, broker)
            police = PoliceSubscriber(broker, {site.site_id: site.public_key},
                                      client_id="chaos-watch", clean=False)
            with police:
                watch = Watch(police)
                started = time.monotonic()
                figures = _kill_cycles(site, broker, args, rng)
                _settle(watch)
                elapsed = time.monotonic() - started
                seqs = watch.seqs()
                presses = watch.presses()
                warnings = [w.warning for w in police.warnings()]
            store = Store(site.db, readonly=True)
            try:
                recorded = store.current_seq()
                missing = sorted(set(range(1, recorded + 1)) - set(seqs))
                delivered = _delivered_at(store, set(missing))
            finally:
                store.close()
            chain_ok = _verify_log(site) and figures["chain_broken_after_kills"] == 0
        finally:
            broker.stop()
        at_broker = _lost_at_broker(delivered, figures["broker_kills"])
        kills = figures["broker_kills"]
        lost_detail = [
            {"seq": seq, "delivered_at": at,
             "s_to_next_broker_kill": min((k - at for k in kills if k >= at), default=None)
             if at is not None else None}
            for seq, at in sorted(delivered.items())[:10]
        ]  # fmt: skip
        return {
            **figures,
            "broker_kills": len(figures["broker_kills"]),
            "seconds": round(elapsed, 1),
            "messages_recorded": recorded,
            "messages_received": len(seqs),
            "lost_messages": len(missing),
            "lost_at_broker_crash": len(at_broker),
            "lost_first": missing[:10],
            "lost_detail": lost_detail,
            "subscriber_warnings": len(warnings),
            "subscriber_warnings_first": warnings[:5],
            "lost_presses": max(0, figures["acked_presses"] - presses),
            "out_of_order": len(_out_of_order(seqs)),
            "verify_log_ok": chain_ok,
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--daemon-kills", type=int, default=200)
    parser.add_argument("--broker-kills", type=int, default=30)
    parser.add_argument("--max-run-s", type=float, default=1.5,
                        help="longest run between two kills (s)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    result = run(args)
    for key, value in result.items():
        print(f"{key:<28} {value}")
    lost_here = result["lost_messages"] - result["lost_at_broker_crash"]
    ok = (lost_here == 0 and result["lost_presses"] == 0
          and result["out_of_order"] == 0 and result["verify_log_ok"])
    emit({"bench": "chaos", "ok": ok, **result, "args": vars(args), "machine": machine()})
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
