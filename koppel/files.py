"""Files and directories Koppel makes for itself are its owner's only.

KOPPEL_HOME holds the databases (payload excerpts, the activity log, encrypted credentials), the
key file and the debug log: readable by every user of the machine they would leak all of it, so
they are made 0700 (directories) and 0600 (files) whatever the umask.
"""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_DIRECTORY_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def private_directory(path: Path) -> None:
    """Make `path` (and missing parents) owner-only; one that exists is left as it is."""
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        directory.mkdir(mode=PRIVATE_DIRECTORY_MODE, exist_ok=True)
        os.chmod(directory, PRIVATE_DIRECTORY_MODE)  # mkdir's mode is cut by the umask
    path.mkdir(exist_ok=True)  # FileExistsError, as mkdir says, when `path` is a file


def private_file(path: Path) -> None:
    """Create `path` empty and owner-only (its directory too) unless it exists: a database
    file SQLite then opens keeps the mode, and so do the journal files SQLite makes beside it."""
    private_directory(path.parent)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        return
    os.close(descriptor)
    os.chmod(path, PRIVATE_FILE_MODE)


__all__ = ["PRIVATE_DIRECTORY_MODE", "PRIVATE_FILE_MODE", "private_directory", "private_file"]
