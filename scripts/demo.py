"""`make demo`: the whole thing on this machine.

Starts a local mosquitto on loopback (TLS with client certificates and the per-site ACL), a
real RTSP server looping real footage (intel-iot-devkit sample video, CC-BY-4.0; fetched and
checked by sha256 when ../shared is absent) as the ER's two cameras, the daemon on
config/demo.yaml with its control-room console (http://127.0.0.1:18080/), the police receiver
and dashboard on config/demo-police.yaml (http://127.0.0.1:18090/), and a police-side
subscriber that prints each alarm as a dispatcher reads it, with its signature verified, and
saves the snapshots that follow it (.demo/police-snapshots/). Keys on the keyboard press the
simulated buttons, let the police acknowledge, and reset alarms in the control room; the same
can be done in the two web pages. Ctrl-C (or q) stops everything.

    .venv/bin/python scripts/demo.py            interactive
    .venv/bin/python scripts/demo.py --smoke    press, acknowledge, reset, check, exit (for tests)
    .venv/bin/python scripts/demo.py --free-ports   every port chosen by the OS (tests)

The ports named in the two configs (18883, 18554, 18080, 18090) are used when free; a port that
is taken is replaced by one the OS picks, and the demo runs on copies of the configs with the
ports it chose (.demo/demo.yaml, .demo/demo-police.yaml). It prints every address.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import termios
import threading
import time
import tty
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / ".demo"
CONFIG_SOURCE = REPO / "config" / "demo.yaml"
POLICE_CONFIG_SOURCE = REPO / "config" / "demo-police.yaml"
CONFIG = DEMO / "demo.yaml"  # the sources with the ports chosen (write_configs)
POLICE_CONFIG = DEMO / "demo-police.yaml"
DEMO_PASSWORD = "edgeguard-demo"
# (login, role, display name): the control room's and the police's demo users
CONSOLE_USERS: list[tuple[str, Role, str]] = [
    ("admin", "admin", "值班长 王"),
    ("operator", "operator", "值班员 李"),
]
POLICE_USERS: list[tuple[str, Role, str]] = [("police", "admin", "110 指挥中心 王警官")]
BIN = Path(sys.executable).parent
EDGEGUARD = str(BIN / "edgeguard")

sys.path.insert(0, str(REPO))

from edgeguard.analytics.model_files import ModelError, find_person_model  # noqa: E402
from edgeguard.config_loader import load_config  # noqa: E402
from edgeguard.control import call  # noqa: E402
from edgeguard.lab.broker import Mosquitto, free_port  # noqa: E402
from edgeguard.lab.consoles import add_user  # noqa: E402
from edgeguard.lab.consoles import wait_http as wait_for_page  # noqa: E402
from edgeguard.lab.footage import FootageError, locate  # noqa: E402
from edgeguard.lab.pki import DevPKI  # noqa: E402
from edgeguard.lab.rtsp_server import RtspServer, RtspServerError, available  # noqa: E402
from edgeguard.lab.web_client import ConsoleClient  # noqa: E402
from edgeguard.police.config import load_police_config  # noqa: E402
from edgeguard.signing import generate_keypair  # noqa: E402
from edgeguard.web.users import Role  # noqa: E402

HELP = """
  Keys:  p  press the ER panic button        r  release it
         d  press the cashier duress button  u  release it
         a  police acknowledge the newest open alarm
         x  control room resets the newest open alarm (a latched alarm ends only so)
         s  status of the daemon             q  quit (or Ctrl-C)
"""


@dataclass(frozen=True)
class Ports:
    """The demo's ports. The defaults are those named in config/demo.yaml and
    config/demo-police.yaml."""

    mqtt: int = 18883  # the broker's only listener: TLS, client certificates, site ACL
    rtsp: int = 18554
    console: int = 18080
    dashboard: int = 18090

    @property
    def console_url(self) -> str:
        return f"http://127.0.0.1:{self.console}"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard}"


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no owner
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def choose_ports(defaults: Ports, *, all_free: bool = False) -> Ports:
    """Each default port if it is free (and ``all_free`` is off), else one the OS picks."""
    chosen: dict[str, int] = {}
    for name, default in vars(defaults).items():
        port = default
        while (all_free and port == default) or port in chosen.values() or not port_is_free(port):
            port = free_port()
        chosen[name] = port
    return Ports(**chosen)


def with_ports(text: str, ports: Ports) -> str:
    """A demo config's text with the default ports replaced by ``ports``."""
    for name, default in vars(Ports()).items():
        text = re.sub(rf"(?<![0-9]){default}(?![0-9])", str(getattr(ports, name)), text)
    return text


def write_configs(ports: Ports) -> None:
    DEMO.mkdir(exist_ok=True)
    for source, target in ((CONFIG_SOURCE, CONFIG), (POLICE_CONFIG_SOURCE, POLICE_CONFIG)):
        header = f"# written by scripts/demo.py: {source.relative_to(REPO)} on the ports it chose\n"
        target.write_text(header + with_ports(source.read_text("utf-8"), ports), "utf-8")


def prepare() -> DevPKI:
    """Keys and certificates for the demo site and the police, made once under .demo/."""
    for folder in ("keys", "police-keys", "data", "run"):
        (DEMO / folder).mkdir(parents=True, exist_ok=True)
    pki = DevPKI(DEMO / "pki")
    pki.client("demo-hospital")  # .demo/pki/client-demo-hospital.crt/.key, named in demo.yaml
    pki.client("police")
    key = DEMO / "keys" / "demo-hospital.key"
    if not key.exists():
        generate_keypair(key)
    shutil.copyfile(key.with_suffix(".pub"), DEMO / "police-keys" / "demo-hospital.pub")
    receipts = DEMO / "keys" / "police-receipts.key"  # the police platform's receipt key
    if not receipts.exists():
        generate_keypair(receipts)  # its .pub beside it is what the site trusts
    site = load_config(CONFIG)  # fail early, with file:line, if the demo config is broken
    police = load_police_config(POLICE_CONFIG)
    for login, role, display in CONSOLE_USERS:
        add_user(site.console.users_path(site.store.path), login, DEMO_PASSWORD, role, display)
    for login, role, display in POLICE_USERS:
        add_user(police.web.users_path(police.database), login, DEMO_PASSWORD, role, display)
    return pki


def make_broker(pki: DevPKI, workdir: Path, tls_port: int) -> Mosquitto:
    """The demo's mosquitto, as docs/mqtt-api.md advises: one TLS listener, a client
    certificate for everyone, the per-site ACL; no plain listener (nothing of the demo needs
    one, and through it anyone on this machine could read every site and forge police acks)."""
    return Mosquitto(workdir, pki=pki, acl=True, plain=False, tls_port=tls_port)


def police_args(pki: DevPKI, mqtt_port: int) -> list[str]:
    police = pki.client("police")
    return [
        "--host",
        "localhost",
        "--port",
        str(mqtt_port),
        "--ca",
        str(pki.ca_file),
        "--cert",
        str(police.cert),
        "--key",
        str(police.key),
    ]


def wait_ready(socket_path: Path, daemon: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            raise SystemExit(f"the daemon exited; its log:\n{log.read_text(errors='replace')}")
        with contextlib.suppress(OSError, ValueError, ConnectionError):
            if call(socket_path, {"cmd": "status"}, timeout=2).get("ok"):
                return
        time.sleep(0.1)
    raise SystemExit("the daemon did not become ready; see .demo/daemon.log")


class Demo:
    def __init__(self, pki: DevPKI, ports: Ports) -> None:
        self.pki = pki
        self.ports = ports
        self.socket = DEMO / "run" / "control.sock"
        self.broker = make_broker(pki, DEMO / "broker", ports.mqtt)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.listen_log = DEMO / "police.log"
        self.camera: RtspServer | None = None

    def start_camera(self) -> None:
        """The footage as a live RTSP camera; without it the demo runs on, cameras offline."""
        missing = available()
        if missing is not None:
            print(f"camera:  none ({missing}); the ER cameras will be reported offline")
            return
        try:
            self.camera = RtspServer(locate(), port=self.ports.rtsp)
            self.camera.start()
        except (FootageError, RtspServerError) as exc:
            print(f"camera:  none ({exc}); the ER cameras will be reported offline")
            self.camera = None
            return
        print(f"camera:  {self.camera.url} (real footage, looped) as cam-er-1 and cam-er-2")
        try:
            model = find_person_model()
        except ModelError as exc:
            print(f"analytics: no person detector ({exc}); loitering detection is off")
        else:
            print(f"analytics: people at the triage desk counted ({model.name}); over 15 s there")
            print("           raises a `loitering` alarm, with snapshots and a 40 s clip")

    def start(self, *, listener_to_terminal: bool) -> None:
        self.broker.start()
        print(
            f"broker:  mosquitto on localhost:{self.ports.mqtt} (TLS, client certificates, "
            "site ACL; no plain listener)"
        )
        self.start_camera()
        listener = subprocess.Popen(
            [
                EDGEGUARD,
                "listen",
                *police_args(self.pki, self.ports.mqtt),
                "--keys",
                str(DEMO / "police-keys"),
                "--client-id",
                "demo-police",
                "--snapshots",
                str(DEMO / "police-snapshots"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.procs.append(listener)
        listening = threading.Event()
        threading.Thread(
            target=self._relay, args=(listener, listening, listener_to_terminal), daemon=True
        ).start()
        if not listening.wait(20):
            raise SystemExit(f"the police subscriber did not subscribe; see {self.listen_log}")
        print("police:  edgeguard listen — prints each verified alarm below (persistent session)")
        self.start_police_receiver()
        log = DEMO / "daemon.log"
        daemon = self.launch(["run", "-c", str(CONFIG)], log)
        wait_ready(self.socket, daemon, log)
        where = CONFIG.relative_to(REPO)
        print(f"daemon:  edgeguard run -c {where} (log: {log.relative_to(REPO)})")
        wait_http(self.ports.console_url, daemon, log)
        logins = ", ".join(f"{u} / {DEMO_PASSWORD} ({d})" for u, _, d in CONSOLE_USERS)
        print(f"console: control room  {self.ports.console_url}/   log in as {logins}")
        logins = ", ".join(f"{u} / {DEMO_PASSWORD} ({d})" for u, _, d in POLICE_USERS)
        print(f"console: police desk   {self.ports.dashboard_url}/   log in as {logins}\n")

    def launch(self, args: list[str], log: Path) -> subprocess.Popen[bytes]:
        """`edgeguard ARGS` in the repository, its output appended to ``log``."""
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [EDGEGUARD, *args], cwd=REPO, stdout=out, stderr=subprocess.STDOUT
            )
        self.procs.append(proc)
        return proc

    def start_police_receiver(self) -> None:
        """`edgeguard police`: the receiver with its own database and the dashboard."""
        log = DEMO / "police-receiver.log"
        receiver = self.launch(["police", "-c", str(POLICE_CONFIG)], log)
        wait_http(self.ports.dashboard_url, receiver, log)
        where = POLICE_CONFIG.relative_to(REPO)
        print(f"police:  edgeguard police -c {where} (log: {log.relative_to(REPO)})")

    def _relay(
        self, listener: subprocess.Popen[bytes], listening: threading.Event, to_terminal: bool
    ) -> None:
        """Copy the police subscriber's output to .demo/police.log (and the terminal)."""
        assert listener.stdout is not None
        with self.listen_log.open("wb") as log:
            for raw in listener.stdout:
                log.write(raw)
                log.flush()
                if raw.startswith(b"-- listening"):
                    listening.set()
                if to_terminal:
                    sys.stdout.write(raw.decode("utf-8", errors="replace"))
                    sys.stdout.flush()

    def control(self, request: dict[str, Any]) -> dict[str, Any]:
        answer = call(self.socket, request)
        if not answer.get("ok"):
            print(f"  !! {answer.get('error')}")
        return answer

    def newest_open(self) -> dict[str, Any] | None:
        """The newest open button alarm (panic, duress), else the newest of any kind: the
        camera's loitering alarms come and go on their own."""
        alarms = self.control({"cmd": "status"}).get("open_alarms", [])
        buttons = [a for a in alarms if a["kind"] in ("panic", "duress")]
        return max(buttons or alarms, key=lambda a: a["occurred_at"]) if alarms else None

    def police_ack(self) -> None:
        """What the dispatcher's 确认接警 button does: through the police dashboard, which
        records it and publishes the ack to the site."""
        alarm = self.newest_open()
        if alarm is None:
            print("  (no open alarm)")
            return
        with ConsoleClient(self.ports.dashboard_url) as desk:
            desk.login(POLICE_USERS[0][0], DEMO_PASSWORD)
            answer = desk.post(f"/api/alarms/{alarm['event_id']}/ack")
        if answer.status_code != 200:
            print(f"  !! police ack: {answer.status_code} {answer.text[:200]}")
            return
        print(f"  police acknowledged {alarm['event_id']} ({POLICE_USERS[0][2]})")

    def reset(self) -> None:
        alarm = self.newest_open()
        if alarm is None:
            print("  (no open alarm)")
            return
        answer = self.control({"cmd": "reset", "event_id": alarm["event_id"], "by": "值班员 李"})
        if answer.get("ok"):
            print(f"  reset {alarm['event_id']} by 值班员 李")

    def status(self) -> None:
        subprocess.run([EDGEGUARD, "status", "-c", str(CONFIG)], cwd=REPO, check=False)

    def key(self, char: str) -> bool:
        actions = {
            "p": lambda: self.control({"cmd": "press", "input": "er-panic-button"}),
            "r": lambda: self.control({"cmd": "release", "input": "er-panic-button"}),
            "d": lambda: self.control({"cmd": "press", "input": "cashier-duress"}),
            "u": lambda: self.control({"cmd": "release", "input": "cashier-duress"}),
            "a": self.police_ack,
            "x": self.reset,
            "s": self.status,
        }
        if char in ("q", "\x03", "\x04"):
            return False
        action = actions.get(char)
        if action is not None:
            action()
        elif char.strip():
            print(HELP)
        return True

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
        if self.camera is not None:
            self.camera.kill()
        self.broker.stop()


class StopFlag:
    """Set by the SIGINT/SIGTERM handler. A plain attribute: a handler must not take locks
    (threading.Event would deadlock when a second signal lands inside Event.set)."""

    def __init__(self) -> None:
        self.stopped = False

    def set(self, *_args: object) -> None:
        self.stopped = True


def interactive(demo: Demo, stop: StopFlag) -> None:
    print(HELP)
    if not sys.stdin.isatty():
        print(
            "(no terminal: running until Ctrl-C or SIGTERM; "
            "use `.venv/bin/edgeguard simulate press er-panic-button -c config/demo.yaml`)"
        )
        while not stop.stopped:
            time.sleep(0.2)
        return
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        while not stop.stopped:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready and not demo.key(os.read(fd, 1).decode(errors="ignore")):
                return
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def smoke(demo: Demo) -> int:
    """Press, acknowledge, release, reset; the police log must show the verified alarm (and,
    with the camera running, its snapshots)."""
    if demo.camera is not None:
        wait_cameras_live(demo)
    demo.control({"cmd": "press", "input": "er-panic-button"})
    time.sleep(0.5)
    if demo.camera is not None:
        wait_for_text(demo.listen_log, "snapshot cam-er-2:", 15)
    demo.police_ack()
    demo.control({"cmd": "release", "input": "er-panic-button"})
    time.sleep(0.5)
    demo.reset()
    time.sleep(1.0)
    log = demo.listen_log.read_text(encoding="utf-8", errors="replace")
    expected = ["NEW", "RESTORED", "RESET", "signature OK", "急诊分诊台"]
    if demo.camera is not None:
        expected += ["snapshot cam-er-1: ", "snapshot cam-er-2: ", "EVIDENCE"]
    ok = all(text in log for text in expected) and "SECURITY WARNING" not in log
    print(log)
    ok = consoles_ok(demo.ports) and ok
    print(json.dumps({"demo_smoke": "ok" if ok else "failed"}))
    return 0 if ok else 1


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    try:
        wait_for_page(url, proc, log)
    except (RuntimeError, TimeoutError) as exc:
        raise SystemExit(str(exc)) from exc


def consoles_ok(ports: Ports) -> bool:
    """The smoke run's check of both web consoles, through their HTTP APIs."""
    with ConsoleClient(ports.console_url) as room, ConsoleClient(ports.dashboard_url) as desk:
        room.login(CONSOLE_USERS[0][0], DEMO_PASSWORD)
        desk.login(POLICE_USERS[0][0], DEMO_PASSWORD)
        reset = [a for a in room.get("/api/alarms", kind="panic").json()["alarms"]
                 if a["state"] == "reset"]  # fmt: skip
        acked = [a for a in desk.get("/api/alarms").json()["alarms"]
                 if a["police_state"] == "acknowledged"]  # fmt: skip
    print(f"consoles: control room shows {len(reset)} reset panic alarm(s), the police "
          f"dashboard {len(acked)} acknowledged")  # fmt: skip
    return bool(reset) and bool(acked) and reset[0]["reset_by"] == "值班员 李"


def wait_cameras_live(demo: Demo, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cameras = demo.control({"cmd": "status"}).get("cameras", {})
        if cameras and all(c.get("state") == "online" for c in cameras.values()):
            return
        time.sleep(0.2)


def wait_for_text(path: Path, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(encoding="utf-8", errors="replace"):
            return
        time.sleep(0.1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="run a scripted check and exit")
    parser.add_argument(
        "--free-ports", action="store_true", help="let the OS pick every port (tests)"
    )
    args = parser.parse_args()
    os.chdir(REPO)
    if args.smoke:  # a scripted check starts from an empty log and broker, not the last demo's
        for leftover in ("data", "broker"):
            shutil.rmtree(DEMO / leftover, ignore_errors=True)
    ports = choose_ports(Ports(), all_free=args.free_ports)
    write_configs(ports)
    demo = Demo(prepare(), ports)
    stop = StopFlag()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stop.set)
    try:
        demo.start(listener_to_terminal=not args.smoke)
        if args.smoke:
            return smoke(demo)
        interactive(demo, stop)
        return 0
    finally:
        print("\nstopping the demo ...")
        demo.stop()


if __name__ == "__main__":
    sys.exit(main())
