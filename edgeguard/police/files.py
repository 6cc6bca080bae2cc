"""The receiver's files: private to its user whatever the umask (outside systemd's UMask=
the default 022 would make alarms, snapshots and site state world-readable), and made durable
where a rename or a new folder must survive a power cut (edgeguard.filemodes)."""

from __future__ import annotations

from pathlib import Path

from edgeguard import filemodes
from edgeguard.filemodes import PRIVATE_DIR as FOLDER_MODE
from edgeguard.filemodes import PRIVATE_FILE as FILE_MODE
from edgeguard.filemodes import fsync_folder

__all__ = [
    "FILE_MODE",
    "FOLDER_MODE",
    "fsync_folder",
    "make_private_folders",
    "open_private",
    "private_file",
    "tighten",
]


def make_private_folders(folder: Path) -> None:
    """Create ``folder`` and what is missing above it, mode 0700, each fsynced in its parent."""
    filemodes.make_dir(folder, FOLDER_MODE, durable=True)


def private_file(path: Path) -> None:
    """Make sure ``path`` exists with mode 0600 (tightened, logged, if it was looser)."""
    filemodes.private_file(path, FILE_MODE)


def tighten(path: Path) -> None:
    filemodes.tighten(path, FILE_MODE)


def open_private(path: Path) -> int:
    """A new file for writing, mode 0600 (replacing a leftover one); its descriptor."""
    return filemodes.open_new(path, FILE_MODE)
