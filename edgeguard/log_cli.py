"""`edgeguard verify-log` and `edgeguard events`: the event log read from a read-only store."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from edgeguard.cli_common import EXIT_FAIL, EXIT_OK, config_arg, config_setting
from edgeguard.ledger_csv import EVENT_COLUMNS, write_events_csv

Subparsers = Any  # argparse's _SubParsersAction is private


def _open_store(args: argparse.Namespace) -> Any:
    from edgeguard.config import StoreConfig
    from edgeguard.store import Store

    db = (
        args.db
        if args.db is not None
        else config_setting(args, "store", "path", StoreConfig().path)
    )
    return Store(Path(db), readonly=True)


def cmd_verify_log(args: argparse.Namespace) -> int:
    store = _open_store(args)
    try:
        checked, problems = store.verify_chain()
        head = store.head()
    finally:
        store.close()
    for problem in problems:
        print(f"TAMPERED: {problem}")
    if problems:
        print(f"{checked} row(s) checked, {len(problems)} problem(s)")
        return EXIT_FAIL
    print(f"OK: {checked} row(s), hash chain intact; head row {head[0]} {head[1]}")
    return EXIT_OK


def cmd_events(args: argparse.Namespace) -> int:
    store = _open_store(args)
    try:
        rows = list(
            store.query_events(
                since=args.since,
                until=args.until,
                kinds=args.kind,
                types=args.type,
                source=args.source,
                location=args.location,
                event_id=args.event_id,
                limit=args.limit,
            )
        )
    finally:
        store.close()
    if args.csv is not None:
        _write_csv(rows, args.csv)
    elif args.json:
        for row in rows:
            print(json.dumps({k: row.get(k) for k in EVENT_COLUMNS}, ensure_ascii=False))
    else:
        for row in rows:
            print(
                f"{row['id']:>6} {row['recorded_at']} {row['type']:<20} "
                f"{row['kind'] or '':<14} {row['state'] or '':<12} {row['source'] or '':<20} "
                f"{row['location'] or ''} {row['event_id'] or ''}"
            )
    return EXIT_OK


def _write_csv(rows: list[dict[str, Any]], target: str) -> None:
    """UTF-8 with a BOM so that Excel shows Chinese text correctly."""
    if target == "-":
        handle = open(  # noqa: SIM115 - stdout's fd, not a path
            sys.stdout.fileno(), "w", encoding="utf-8-sig", newline="", closefd=False
        )
    else:
        handle = Path(target).open("w", encoding="utf-8-sig", newline="")  # noqa: SIM115
    with handle:
        write_events_csv(rows, handle)


def _store_args(parser: argparse.ArgumentParser) -> None:
    config_arg(parser)
    parser.add_argument("--db", type=Path, help="read this database instead of the config's")


def add_log_commands(sub: Subparsers) -> None:
    p = sub.add_parser("verify-log", help="check the event log's hash chain")
    _store_args(p)
    p.set_defaults(func=cmd_verify_log)

    p = sub.add_parser("events", help="list or export events (the ledger)")
    _store_args(p)
    p.add_argument("--since", help="from this UTC time (ISO 8601, e.g. 2026-11-01)")
    p.add_argument("--until", help="before this UTC time")
    p.add_argument("--kind", action="append", help="alarm kind (repeatable)")
    p.add_argument("--type", action="append", help="event type, e.g. alarm.new (repeatable)")
    p.add_argument("--source", help="alarm source (input name)")
    p.add_argument("--location", help="location key")
    p.add_argument("--event-id", help="one alarm's events")
    p.add_argument("--limit", type=int, help="at most this many rows")
    p.add_argument("--csv", metavar="FILE", help="write CSV (UTF-8 with BOM for Excel); - = stdout")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=cmd_events)
