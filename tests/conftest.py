"""Shared fixtures: a real mosquitto (TLS client certs + site ACL) on loopback, lab sites,
daemons, a police subscriber, and a real PostgreSQL (one per session, a database per test)."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edgeguard.lab.broker import Mosquitto
from edgeguard.lab.harness import DaemonProcess, PoliceSubscriber, Site, lab_broker, make_site
from edgeguard.lab.postgres import PostgresServer

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


@pytest.fixture
def cleanup() -> Iterator[list[Callable[[], None]]]:
    """Closers a test registers; run in reverse order at teardown, even if the test failed."""
    closers: list[Callable[[], None]] = []
    yield closers
    for close in reversed(closers):
        close()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    server = lab_broker(tmp_path / "lab")
    yield server
    server.stop()


@pytest.fixture
def plain_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    server = lab_broker(tmp_path / "plain", tls=False)
    yield server
    server.stop()


@pytest.fixture
def site(tmp_path: Path, broker: Mosquitto) -> Site:
    return make_site(tmp_path / "site", broker)


@pytest.fixture
def daemons() -> Iterator[Callable[..., DaemonProcess]]:
    started: list[DaemonProcess] = []

    def start(site: Site, **kwargs: Any) -> DaemonProcess:
        proc = DaemonProcess(site, **kwargs)
        proc.start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def police(broker: Mosquitto, site: Site) -> Iterator[PoliceSubscriber]:
    with PoliceSubscriber(broker, {site.site_id: site.public_key}) as subscriber:
        yield subscriber


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB tmpfs, to fill (edgeguard.lab.harness.fill_disk) and see a full disk."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """One real PostgreSQL for the session (its own directory, a loopback port)."""
    with PostgresServer(tmp_path_factory.mktemp("pg")) as server:
        yield server


@pytest.fixture
def pg_dsn(postgres_server: PostgresServer) -> str:
    """A fresh database of this test's own on the session's PostgreSQL: its DSN."""
    return postgres_server.create_database(f"t{uuid.uuid4().hex[:16]}")
