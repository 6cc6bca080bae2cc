"""`edgeguard user ...`: the web consoles' users, managed on the appliance itself (the first
admin has to come from somewhere). `-c` names the site config (the control-room console's
users) or, with `--police`, the police receiver's config (the dashboard's users: in users.db,
or in the police PostgreSQL database when the config has `postgres`)."""

from __future__ import annotations

import argparse
import contextlib
import getpass
import sys
from collections.abc import Iterator
from typing import Any, cast

from edgeguard.config_check import apply_credentials, credentials_args
from edgeguard.web.config import LANGUAGES, Language
from edgeguard.web.users import ROLES, Role, UserError, UserStore

EXIT_OK, EXIT_FAIL = 0, 1


def add_user_commands(sub: Any, config_arg: Any) -> None:
    p = sub.add_parser("user", help="web console users: add, list, delete, password, role")
    actions = p.add_subparsers(dest="user_action", required=True, metavar="ACTION")

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        q: argparse.ArgumentParser = actions.add_parser(name, help=help_text)
        config_arg(q)
        q.add_argument(
            "--police", action="store_true", help="the config is the police receiver's (-c)"
        )
        credentials_args(q)
        q.set_defaults(func=cmd_user)
        return q

    q = action("add", "add a user (the password is asked for, or read from stdin)")
    q.add_argument("name", help="login name: letters, digits, . _ @ -")
    q.add_argument("--role", choices=ROLES, default="operator", help="admin or operator")
    q.add_argument("--display-name", default="", help="the name shown and logged, e.g. 王伟")
    q.add_argument("--language", choices=LANGUAGES, help="zh or en (default: the console's)")
    action("list", "list the users")
    q = action("delete", "delete a user")
    q.add_argument("name")
    q = action("password", "set a user's password (asked for, or read from stdin)")
    q.add_argument("name")
    q = action("role", "make a user admin or operator")
    q.add_argument("name")
    q.add_argument("role", choices=ROLES)


@contextlib.contextmanager
def _store(args: argparse.Namespace) -> Iterator[tuple[UserStore, Language]]:
    if args.police:
        from edgeguard.police.config import load_police_config

        police = load_police_config(args.config)
        if police.postgres is None:
            yield UserStore(police.web.users_path(police.database)), police.web.language
            return
        from edgeguard.police.store import open_store  # migrates: the tables exist after

        store = open_store(police)
        try:
            yield UserStore(store.db), police.web.language
        finally:
            store.close()
        return
    from edgeguard.config_loader import load_config

    apply_credentials(args)  # {credential: …} as the service resolves it
    site = load_config(args.config)
    yield UserStore(site.console.users_path(site.store.path)), site.console.language


def read_password() -> str:
    """Twice at a terminal; one line from stdin otherwise (scripts, the demo)."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise UserError("the two passwords differ")
    return first


def cmd_user(args: argparse.Namespace) -> int:
    try:
        with _store(args) as (store, language):
            _run(args, store, language)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAIL
    return EXIT_OK


def _run(args: argparse.Namespace, store: UserStore, language: Language) -> None:
    action = args.user_action
    if action == "add":
        user = store.add(
            args.name, read_password(), cast(Role, args.role),
            display_name=args.display_name, language=args.language or language,
        )  # fmt: skip
        print(f"added {user.name} ({user.role}) to {store.where}")
    elif action == "list":
        for user in store.all():
            print(f"{user.name:<20} {user.role:<9} {user.language}  {user.display_name}")
    elif action == "delete":
        store.delete(args.name)
        print(f"deleted {args.name}")
    elif action == "password":
        store.set_password(args.name, read_password())
        print(f"password of {args.name} set; their open sessions end at their next request")
    elif action == "role":
        print(f"{store.set_role(args.name, cast(Role, args.role)).name} is now {args.role}")

