"""One live process per executor id.

DBOS recovers, at launch, every run left pending under its executor id, assuming the process
that owned them is dead. A second live process with the same id would therefore run the first
one's runs a second time. The lock makes that a clear error instead: a file lock beside a SQLite
system database, a session advisory lock on PostgreSQL. Both vanish with the process, even on
SIGKILL, so a restart after a crash is never locked out.
"""

from __future__ import annotations

import fcntl
import hashlib
from pathlib import Path
from typing import IO

import sqlalchemy as sa

from koppel.engine.errors import ExecutorInUse
from koppel.files import private_file

__all__ = ["ExecutorLock"]


class ExecutorLock:
    def __init__(self, file: IO[bytes] | None, connection: sa.Connection | None) -> None:
        self._file = file
        self._connection = connection

    @classmethod
    def acquire(cls, database_url: str, executor_id: str) -> ExecutorLock:
        url = sa.make_url(database_url)
        taken = ExecutorInUse(
            f"executor id {executor_id!r} is in use by another running Koppel process on "
            f"{url.render_as_string(hide_password=True)}; stop it, or give this process its "
            "own executor id"
        )
        if url.get_backend_name() == "sqlite":
            path = Path(f"{url.database}.{executor_id}.lock")
            private_file(path)
            file = path.open("ab")
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                file.close()
                raise taken from None
            return cls(file, None)
        key = int.from_bytes(
            hashlib.sha256(f"koppel-executor:{executor_id}".encode()).digest()[:8],
            "big",
            signed=True,
        )
        engine = sa.create_engine(
            url.set(drivername="postgresql+psycopg"), poolclass=sa.pool.NullPool
        )
        connection = engine.connect()
        engine.dispose()
        got = connection.execute(sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": key})
        if not got.scalar_one():
            connection.close()
            raise taken
        connection.commit()
        return cls(None, connection)

    def release(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._connection is not None:
            self._connection.close()
