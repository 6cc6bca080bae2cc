#!/usr/bin/env bash
# Regenerate requirements.lock: every package of the development environment pinned, for
# reproducible installs (`make venv` installs with `-c requirements.lock`; docs/install.md).
#
#   scripts/lock.sh              freeze .venv (or $VENV) as it is (`make lock`): after
#                                `pip install -U X` there, or a new dependency in pyproject.toml
#                                and `make venv`
#   scripts/lock.sh --resolve    resolve afresh: a throw-away venv, `pip install -e '.[E,...]'`
#                                with every extra of pyproject.toml, unconstrained (upgrades
#                                everything to the newest releases the index has), then freeze
#
# The editable edgeguard itself and anything installed from a local path are left out; pip is
# kept (make venv upgrades pip to the locked version). tests/test_lock.py checks that every
# requirement of pyproject.toml has a pin that satisfies it.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
LOCK=${LOCK:-requirements.lock}

freeze() {
    local python=$1
    {
        echo "# edgeguard's development environment, every package of its venv pinned (edgeguard[dev]"
        echo "# and the other extras of pyproject.toml, resolved; Python $("$python" -c \
            'import platform; print(platform.python_version(), platform.machine())'))."
        echo "# Used as a constraints file: pip install -c requirements.lock -e '.[dev]'"
        echo "# Regenerate with scripts/lock.sh (see the script); do not edit by hand."
        # the venv alone ($PYTHONPATH could show a checkout's edgeguard.egg-info)
        env -u PYTHONPATH "$python" -m pip freeze --all --exclude-editable \
            | grep -E '^[A-Za-z0-9._-]+==[^ ;@]+$' \
            | grep -v -i -E '^edgeguard==' \
            | LC_ALL=C sort -f -t= -k1,1
    } >"$LOCK.tmp"
    mv "$LOCK.tmp" "$LOCK"
    echo "wrote $LOCK ($(grep -c '==' "$LOCK") pins)"
}

case "${1:-}" in
"")
    [[ -x "$VENV/bin/python" ]] || { echo "no $VENV: run make venv first" >&2; exit 1; }
    freeze "$VENV/bin/python"
    ;;
--resolve)
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    "$PYTHON" -m venv "$tmp/venv"
    extras=$("$tmp/venv/bin/python" -c 'import tomllib
with open("pyproject.toml", "rb") as f:
    print(",".join(tomllib.load(f)["project"].get("optional-dependencies", {})))')
    "$tmp/venv/bin/python" -m pip install --quiet --upgrade pip
    "$tmp/venv/bin/python" -m pip install --quiet -e ".[$extras]"
    "$tmp/venv/bin/python" -m pip check
    freeze "$tmp/venv/bin/python"
    ;;
*)
    echo "usage: scripts/lock.sh [--resolve]" >&2
    exit 2
    ;;
esac
