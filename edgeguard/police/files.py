"""The receiver's files: private to its user whatever the umask (outside systemd's UMask=
the default 022 would make alarms, snapshots and site state world-readable), and made durable
where a rename or a new folder must survive a power cut."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

logger = logging.getLogger(__name__)

FILE_MODE = 0o600
FOLDER_MODE = 0o700


def make_private_folders(folder: Path) -> None:
    """Create ``folder`` and what is missing above it, mode 0700, each fsynced in its parent.
    Folders that already exist are left as they are (e.g. systemd's StateDirectory=)."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    for created in reversed(missing):
        created.mkdir(mode=FOLDER_MODE, exist_ok=True)
        created.chmod(FOLDER_MODE)  # mkdir's mode is masked by the umask
        fsync_folder(created.parent)


def private_file(path: Path) -> None:
    """Make sure ``path`` exists with mode 0600: created so, or tightened (logged) if it was
    created earlier with a looser mode."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    os.close(fd)
    tighten(path)


def tighten(path: Path) -> None:
    """Set an existing file to mode 0600 (a missing one is skipped)."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    if mode != FILE_MODE:
        path.chmod(FILE_MODE)
        logger.info("%s was mode %04o: now %04o (private to this user)", path, mode, FILE_MODE)


def open_private(path: Path) -> int:
    """A new file for writing, mode 0600 (replacing a leftover one); its descriptor."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    os.fchmod(fd, FILE_MODE)  # a leftover file keeps its own mode through O_TRUNC
    return fd


def fsync_folder(folder: Path) -> None:
    """As edgeguard.cameras.evidence does after its renames: fsync the folder itself."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
