"""`edgeguard report`: the site's monthly security report (docs/reports.md)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from edgeguard.cli_common import EXIT_FAIL, EXIT_OK, config_arg
from edgeguard.config_check import apply_credentials, credentials_args


def add_report_command(sub: Any) -> None:
    p = sub.add_parser("report", help="the month's security report: PDF, HTML or JSON")
    config_arg(p)
    credentials_args(p)
    p.add_argument("--month", required=True, help="the calendar month, YYYY-MM (e.g. 2026-11)")
    p.add_argument("--pdf", type=Path, metavar="FILE", help="write the report as a PDF")
    p.add_argument("--html", type=Path, metavar="DIR", help="write index.html and a PNG a page")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    p.add_argument(
        "--language", choices=("zh", "en"), default="zh", help="report language (default zh)"
    )
    p.add_argument(
        "--tz", metavar="ZONE", help="the month's time zone, IANA (default: the machine's)"
    )
    p.add_argument("--db", type=Path, help="read this database instead of the config's")
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from edgeguard.config_loader import load_config

    apply_credentials(args)
    config = load_config(args.config)
    try:
        from edgeguard.reports.build import build_report, write_outputs
        from edgeguard.reports.fonts import FontError
    except ImportError as exc:
        print(
            f"edgeguard report needs matplotlib ({exc}): pip install 'edgeguard[reports]'",
            file=sys.stderr,
        )
        return EXIT_FAIL
    try:
        figures = build_report(config, args.month, args.tz, args.db)
        written = write_outputs(figures, args.language, args.pdf, args.html)
    except FontError as exc:
        print(f"edgeguard: {exc}", file=sys.stderr)
        return EXIT_FAIL
    if args.json:
        from edgeguard.reports.summary import figures_json

        print(json.dumps(figures_json(figures), ensure_ascii=False))
        return EXIT_OK
    from edgeguard.reports.summary import summary_lines

    for line in [*summary_lines(figures), *(f"wrote {path}" for path in written)]:
        print(line)
    return EXIT_OK
