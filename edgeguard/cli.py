"""The `edgeguard` command. Every command and option is documented in docs/cli.md
(a test fails when one is not)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from edgeguard import __version__
from edgeguard.cli_common import EXIT_FAIL, EXIT_OK, config_arg, config_setting
from edgeguard.config_check import credentials_args
from edgeguard.log_cli import add_log_commands
from edgeguard.reload_cli import add_reload_command
from edgeguard.report_cli import add_report_command
from edgeguard.user_cli import add_user_commands

DEFAULT_POLICE_CONFIG = Path(
    os.environ.get("EDGEGUARD_POLICE_CONFIG", "/etc/edgeguard/police.yaml")
)


def _err(message: str) -> None:
    print(f"edgeguard: {message}", file=sys.stderr)


def _load(path: Path) -> Any:
    from edgeguard.config_loader import load_config

    return load_config(path)


# --- configuration ---------------------------------------------------------------------------
def cmd_check_config(args: argparse.Namespace) -> int:
    from edgeguard.config_check import apply_credentials, file_errors
    from edgeguard.config_loader import ConfigError

    path = args.file or args.config
    try:
        apply_credentials(args)
        config = _load(path)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        print(f"{path}: {len(exc.issues)} error(s)", file=sys.stderr)
        return EXIT_FAIL
    errors = file_errors(config)
    for error in errors:
        print(f"{path}: {error}", file=sys.stderr)
    if errors:
        return EXIT_FAIL
    if config.receipts is not None:  # read as the daemon will at start
        from edgeguard.receipts import load_receipt_keys

        load_receipt_keys(config.receipts.police_keys)  # ReceiptKeyError: a ValueError
    points = config.points()
    print(
        f"{path}: OK — site {config.site.id} ({config.site.name}), {len(config.inputs)} "
        f"input(s), {len(points)} alarm point(s), {len(config.locations)} location(s)"
    )
    return EXIT_OK


def cmd_print_config(args: argparse.Namespace) -> int:
    from edgeguard.config_loader import masked_dump

    config = _load(args.config)
    yaml.safe_dump(masked_dump(config), sys.stdout, allow_unicode=True, sort_keys=False)
    return EXIT_OK


def cmd_config_reference(_args: argparse.Namespace) -> int:
    from edgeguard.config_docs import config_reference

    sys.stdout.write(config_reference())
    return EXIT_OK


# --- keys and signatures ---------------------------------------------------------------------
def cmd_keygen(args: argparse.Namespace) -> int:
    from edgeguard.signing import generate_keypair

    try:
        public = generate_keypair(args.out, overwrite=args.force)
    except FileExistsError as exc:
        _err(str(exc))
        return EXIT_FAIL
    print(f"private key: {args.out} (keep it on this appliance only)")
    print(f"public key:  {public} (give it to the police station; name it {{site id}}.pub)")
    return EXIT_OK


def cmd_verify_message(args: argparse.Namespace) -> int:
    from edgeguard.signing import SignatureError, load_public_key, verify_bytes

    data = sys.stdin.buffer.read() if str(args.message) == "-" else Path(args.message).read_bytes()
    try:
        payload = verify_bytes(data.strip(), load_public_key(args.key))
    except SignatureError as exc:
        print(f"INVALID: {exc}")
        return EXIT_FAIL
    print(
        f"OK: signed by the key in {args.key} (site {payload.get('site')}, "
        f"{payload.get('type')} {payload.get('event_id', '')})".rstrip()
    )
    return EXIT_OK


# --- the running daemon ----------------------------------------------------------------------
def _control(args: argparse.Namespace, request: dict[str, Any]) -> dict[str, Any] | None:
    from edgeguard.config import ControlConfig
    from edgeguard.control import call

    default = ControlConfig().socket
    socket_path = args.socket
    if socket_path is None:
        socket_path = config_setting(args, "control", "socket", default)
    try:
        answer = call(Path(socket_path), request)
    except (ConnectionError, OSError) as exc:
        _err(str(exc))
        return None
    if not answer.get("ok"):
        _err(str(answer.get("error")))
        return None
    return answer


def cmd_run(args: argparse.Namespace) -> int:
    from edgeguard.daemon import run_daemon

    return run_daemon(args.config)


def cmd_reset(args: argparse.Namespace) -> int:
    answer = _control(args, {"cmd": "reset", "event_id": args.event_id, "by": args.by})
    if answer is None:
        return EXIT_FAIL
    alarm = answer["alarm"]
    print(
        f"alarm {alarm['event_id']} ({alarm['kind']} at {alarm['location'].get('label')}) "
        f"reset by {alarm['reset_by']} at {alarm['reset_at']}"
    )
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    answer = _control(args, {"cmd": "status"})
    if answer is None:
        return EXIT_FAIL
    if args.json:
        print(json.dumps(answer, ensure_ascii=False, indent=2))
        return EXIT_OK
    link = answer["link"]
    print(f"site {answer['site']}  edgeguard {answer['version']}  up {answer['uptime_s']} s")
    where = link["broker"]
    if "nodes" in link:
        where += f", node {link['node']} of {len(link['nodes'])}"
    print(
        f"police link: {'UP' if link['connected'] else 'DOWN'} ({where}) since "
        f"{link['since']}" + (f"  last error: {link['last_error']}" if link["last_error"] else "")
    )
    print(
        f"outbox: {answer['outbox']['pending']} pending, {answer['outbox']['acked']} delivered "
        "since start"
    )
    print(f"open alarms: {len(answer['open_alarms'])}")
    for alarm in answer["open_alarms"]:
        print(
            f"  P{alarm['priority']} {alarm['kind']:<10} {alarm['state']:<12} "
            f"{alarm['location'].get('label')}  {alarm['event_id']}"
            + ("  (input active)" if alarm["input_active"] else "")
        )
    for device in answer["devices"]:
        print(f"device {device['device']}: {device['state']}")
    _render_cameras(answer.get("cameras", {}), answer.get("coverage", []))
    return EXIT_OK


def _render_cameras(cameras: dict[str, Any], coverage: list[dict[str, Any]]) -> None:
    for name, cam in cameras.items():
        size = f"{cam.get('width')}x{cam.get('height')}" if cam.get("width") else "-"
        print(
            f"camera {name}: {cam.get('state')}  {size}  fps in {cam.get('fps_in')} "
            f"out {cam.get('fps_out')}  last frame {cam.get('last_frame_age_s')} s ago  "
            f"reconnects/h {cam.get('reconnects_1h')}"
            + (f"  error: {cam['last_error']}" if cam.get("last_error") else "")
        )
    for area in coverage:
        names = ", ".join(f"{c['name']} ({c['state']})" for c in area["cameras"]) or "no camera"
        verdict = "covered" if area["covered"] else "NOT COVERED"
        print(f"key area {area['key_area']}: {verdict}  {names}")


def cmd_simulate(args: argparse.Namespace) -> int:
    answer = _control(args, {"cmd": args.action, "input": args.input})
    if answer is None:
        return EXIT_FAIL
    print(f"{args.action}: {args.input}")
    return EXIT_OK


def cmd_analyze(args: argparse.Namespace) -> int:
    from edgeguard.analytics.analyze import run

    return run(args)


def cmd_discover(args: argparse.Namespace) -> int:
    from edgeguard import sysd
    from edgeguard.cameras.discovery import run_discover

    sysd.setup_logging("WARNING", "no")  # before `onvif` is imported: it configures logging
    return run_discover(args)


# --- the police side (demo and commissioning) ------------------------------------------------
def cmd_listen(args: argparse.Namespace) -> int:
    from edgeguard.police_cli import listen

    return listen(args)


def cmd_police_ack(args: argparse.Namespace) -> int:
    from edgeguard.police_cli import send_ack

    return send_ack(args)


def cmd_police(args: argparse.Namespace) -> int:
    from edgeguard.police.run import run_police

    return run_police(args.config)


# --- parser ----------------------------------------------------------------------------------
def _socket_args(parser: argparse.ArgumentParser) -> None:
    config_arg(parser)
    parser.add_argument("--socket", type=Path, help="control socket instead of the config's")


def _broker_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="localhost", help="broker host")
    parser.add_argument("--port", type=int, help="broker port (default 8883 with --ca, else 1883)")
    parser.add_argument("--ca", type=Path, help="CA file: connect with TLS")
    parser.add_argument("--cert", type=Path, help="client certificate (TLS)")
    parser.add_argument("--key", type=Path, help="client private key (TLS)")
    parser.add_argument("--username", help="username")
    parser.add_argument("--password-env", metavar="VAR", help="read the password from $VAR")
    parser.add_argument("--client-id", help="MQTT client id")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgeguard",
        description="edgeguard: hospital panic alarms, durably and signed, to the police over "
        "MQTT. Every command is described in docs/cli.md.",
    )
    parser.add_argument("--version", action="version", version=f"edgeguard {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_config_commands(sub)
    add_log_commands(sub)
    add_report_command(sub)
    _add_daemon_commands(sub)
    _add_police_commands(sub)
    add_user_commands(sub, config_arg)
    return parser


Subparsers = Any


def _add_config_commands(sub: Subparsers) -> None:
    p = sub.add_parser("check-config", help="validate a config file; errors name file:line")
    p.add_argument("file", nargs="?", type=Path, help="config file (default: -c)")
    config_arg(p)
    credentials_args(p)
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("print-config", help="print the effective config, secrets masked")
    config_arg(p)
    p.set_defaults(func=cmd_print_config)

    p = sub.add_parser("config-reference", help="print the config reference (Markdown)")
    p.set_defaults(func=cmd_config_reference)

    p = sub.add_parser("keygen", help="make the site's Ed25519 signing key pair")
    p.add_argument("--out", type=Path, required=True, help="private key file; .pub beside it")
    p.add_argument("--force", action="store_true", help="overwrite an existing key")
    p.set_defaults(func=cmd_keygen)

    p = sub.add_parser("verify-message", help="verify a message's signature (police side)")
    p.add_argument("--key", type=Path, required=True, help="the site's public key (.pub)")
    p.add_argument(
        "message", nargs="?", default="-", help="file with the JSON message, - for stdin"
    )
    p.set_defaults(func=cmd_verify_message)


def _add_daemon_commands(sub: Subparsers) -> None:
    p = sub.add_parser("run", help="run the daemon")
    config_arg(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("reset", help="reset a latched alarm (recorded with your name)")
    p.add_argument("event_id", help="the alarm's event id")
    p.add_argument("--by", required=True, help="name of the person resetting")
    _socket_args(p)
    p.set_defaults(func=cmd_reset)

    p = sub.add_parser("status", help="link, outbox, open alarms and devices of the daemon")
    _socket_args(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_status)

    add_reload_command(sub, _socket_args)

    p = sub.add_parser(
        "analyze", help="run a camera's analysis pipeline over a video file (tune zones)"
    )
    p.add_argument("video", type=Path, help="video file (anything FFmpeg reads)")
    p.add_argument("--camera", required=True, help="the configured camera whose analysis runs")
    config_arg(p)
    p.add_argument(
        "--json", action="store_true", help="one JSON line per analysed frame and per event"
    )
    p.add_argument(
        "--start",
        type=datetime.fromisoformat,
        metavar="TIME",
        help="wall time of the video's first frame, for night windows (ISO 8601; default now)",
    )
    p.add_argument("--model", type=Path, help="person detector model (default: config, search)")
    p.add_argument(
        "--overlay",
        type=Path,
        metavar="OUT",
        help="also write the frames with zones, boxes, scores, counts and events drawn: "
        "a video (.mp4, .avi) or a directory of PNGs",
    )
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser(
        "discover", help="find ONVIF cameras (WS-Discovery) and print config entries for them"
    )
    from edgeguard.cameras.discover_args import add_discover_arguments

    add_discover_arguments(p)
    p.set_defaults(func=cmd_discover)

    p = sub.add_parser("simulate", help="press or release a simulated button")
    p.add_argument("action", choices=["press", "release"], help="what to do")
    p.add_argument("input", help="name of a `type: simulated` input")
    _socket_args(p)
    p.set_defaults(func=cmd_simulate)


def _add_police_commands(sub: Subparsers) -> None:
    p = sub.add_parser("listen", help="police side: print verified alarms as they arrive")
    _broker_args(p)
    p.add_argument("--keys", type=Path, required=True, help="folder of {site}.pub public keys")
    p.add_argument("--json", action="store_true", help="print each verified message as JSON")
    p.add_argument(
        "--snapshots",
        type=Path,
        metavar="DIR",
        help="save received snapshots as DIR/{site}/{event_id}/{camera}.jpg",
    )
    p.set_defaults(func=cmd_listen)

    p = sub.add_parser("police-ack", help="police side: acknowledge/dispatch/resolve an alarm")
    _broker_args(p)
    p.add_argument("event_id", help="the alarm's event id")
    p.add_argument("--site", required=True, help="site id")
    p.add_argument(
        "--state",
        choices=["acknowledged", "dispatched", "resolved"],
        default="acknowledged",
        help="what the police did",
    )
    p.add_argument("--by", required=True, help="dispatcher's name or id")
    p.set_defaults(func=cmd_police_ack)

    p = sub.add_parser(
        "police", help="police receiver: store, supervise and acknowledge every site's alarms"
    )
    p.add_argument(
        "-c",
        "--config",
        type=Path,
        default=DEFAULT_POLICE_CONFIG,
        help="police config file (default: $EDGEGUARD_POLICE_CONFIG or /etc/edgeguard/police.yaml)",
    )
    p.set_defaults(func=cmd_police)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from edgeguard.config_loader import ConfigError
    from edgeguard.store_error import StoreError
    try:
        return int(args.func(args))
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return EXIT_FAIL
    except (StoreError, OSError, ValueError) as exc:
        _err(str(exc))
        return EXIT_FAIL
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
