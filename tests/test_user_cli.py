"""`edgeguard user`: the first admin is made on the appliance; the password comes from stdin
(never argv); the console's and the police dashboard's users are kept apart."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from edgeguard.lab.broker import Mosquitto
from edgeguard.lab.consoles import PoliceReceiver
from edgeguard.lab.harness import make_site
from edgeguard.web.users import UserStore

EXE = str(Path(sys.executable).with_name("edgeguard"))


def user(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EXE, "user", *args], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )


def test_add_list_role_password_delete(tmp_path: Path, plain_broker: Mosquitto) -> None:
    site = make_site(tmp_path / "site", plain_broker)
    config = ("-c", str(site.config_path))
    added = user("add", "wang", "--role", "admin", "--display-name", "王主任", *config,
                 stdin="correct horse\n")  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert user("add", "li", *config, stdin="operator pw\n").returncode == 0
    listed = user("list", *config).stdout
    assert "王主任" in listed
    assert "operator" in listed
    store = UserStore(site.directory / "users.db")
    assert store.authenticate("wang", "correct horse") is not None
    short = user("add", "zhao", *config, stdin="short\n")
    assert short.returncode == 1
    assert "8 to 256" in short.stderr
    last = user("delete", "wang", *config)
    assert last.returncode == 1
    assert "last admin" in last.stderr
    assert user("role", "li", "admin", *config).returncode == 0
    assert user("password", "li", *config, stdin="a new password\n").returncode == 0
    assert store.authenticate("li", "a new password") is not None
    assert user("delete", "wang", *config).returncode == 0
    assert [u.name for u in store.all()] == ["li"]


def test_police_users_are_the_dashboards(tmp_path: Path, plain_broker: Mosquitto) -> None:
    site = make_site(tmp_path / "site", plain_broker)
    police = PoliceReceiver(tmp_path / "police", plain_broker, {site.site_id: site.public_key})
    added = user("add", "zhang", "--police", "-c", str(police.config_path), stdin="police pw!\n")
    assert added.returncode == 0, added.stderr
    assert UserStore(police.users_db).get("zhang") is not None
    assert not (site.directory / "users.db").exists()
