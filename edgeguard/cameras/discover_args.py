"""The options of `edgeguard discover`, kept apart from discovery.py so that building the
CLI parser does not import the ONVIF stack (aiohttp, zeep) into every edgeguard command."""

from __future__ import annotations

import argparse
import ipaddress
from typing import Any

DEFAULT_PASSWORD_ENV = "CAMERA_PASSWORD"  # noqa: S105 - the name of a variable


def _target(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    try:
        address = str(ipaddress.IPv4Address(host))
        number = int(port)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not IPv4:PORT") from err
    if not 0 < number < 65536:
        raise argparse.ArgumentTypeError(f"{text!r}: port out of range")
    return address, number


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from err
    if not 0 < value <= 60:
        raise argparse.ArgumentTypeError("the timeout is between 0 and 60 seconds")
    return value


def add_discover_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `edgeguard discover`."""
    parser.add_argument("--interface", metavar="NAME_OR_IP",
                        help="send the multicast probe out of this interface (name or its IPv4 "
                             "address); default: the system's choice")
    parser.add_argument("--timeout", type=_seconds, default=3.0, metavar="SECONDS",
                        help="how long to collect answers (default 3)")
    parser.add_argument("--username", help="ONVIF user to query each camera with")
    parser.add_argument("--password-env", metavar="VAR",
                        help="environment variable holding that user's password (also the "
                             f"variable named in the snippets; default {DEFAULT_PASSWORD_ENV})")
    parser.add_argument("--target", type=_target, metavar="HOST:PORT",
                        help="probe this address by unicast instead of multicast (labs, tests)")
    # without this, argparse would take "--password X" as an abbreviation of --password-env
    parser.add_argument("--password", action=_RefusePassword, help=argparse.SUPPRESS)


class _RefusePassword(argparse.Action):
    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        parser.error("a password is never taken on the command line: "
                     "use --password-env VAR")
