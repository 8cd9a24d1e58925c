"""One live process per executor id, and a way to tell that another executor's process is gone.

DBOS recovers, at launch, every run left pending under its executor id, assuming the process
that owned them is dead. A second live process with the same id would therefore run the first
one's runs a second time. The lock makes that a clear error instead: a file lock beside a SQLite
system database, a session advisory lock on PostgreSQL. Both vanish with the process, even on
SIGKILL, so a restart after a crash is never locked out, and a live process that can take
another executor's lock for a moment (`holder_gone`) knows that executor's process has ended.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import time
from pathlib import Path
from typing import IO

import sqlalchemy as sa

from koppel.engine.errors import ExecutorInUse
from koppel.files import private_file

__all__ = ["ExecutorLock"]

_ACQUIRE_TRIES = 5
"""A peer probing this id (`holder_gone`) holds its lock for a moment: try a few times."""
_ACQUIRE_PAUSE_S = 0.1


def _advisory_key(executor_id: str) -> int:
    digest = hashlib.sha256(f"koppel-executor:{executor_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class ExecutorLock:
    def __init__(
        self,
        database: str,
        file: IO[bytes] | None,
        connection: sa.Connection | None,
        url: sa.URL | None = None,
        executor_id: str = "",
    ) -> None:
        self._database = database
        self._file = file
        self._connection = connection
        self._url = url
        self._executor_id = executor_id
        self.held_since = time.monotonic()
        """Since when this lock has been held without a break (PostgreSQL: a lost connection
        loses it; it is taken again at the next probe)."""

    @classmethod
    def acquire(cls, database_url: str, executor_id: str) -> ExecutorLock:
        url = sa.make_url(database_url)
        for attempt in range(_ACQUIRE_TRIES):
            lock = cls._try(url, executor_id)
            if lock is not None:
                return lock
            if attempt + 1 < _ACQUIRE_TRIES:
                time.sleep(_ACQUIRE_PAUSE_S)
        raise ExecutorInUse(
            f"executor id {executor_id!r} is in use by another running Koppel process on "
            f"{url.render_as_string(hide_password=True)}; stop it, or give this process its "
            "own executor id"
        )

    @classmethod
    def _try(cls, url: sa.URL, executor_id: str) -> ExecutorLock | None:
        if url.get_backend_name() == "sqlite":
            database = str(url.database)
            file = _lock_file(database, executor_id)
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                file.close()
                return None
            return cls(database, file, None)
        engine = sa.create_engine(
            url.set(drivername="postgresql+psycopg"), poolclass=sa.pool.NullPool
        )
        connection = engine.connect()
        engine.dispose()
        got = connection.execute(
            sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": _advisory_key(executor_id)}
        )
        if not got.scalar_one():
            connection.close()
            return None
        connection.commit()
        return cls("", None, connection, url, executor_id)

    def holder_gone(self, executor_id: str) -> bool:
        """Whether no live process holds `executor_id`'s lock (its process died or stopped):
        taken and released at once. Never ask about this lock's own id (a session advisory
        lock is re-entrant, so it would look free)."""
        if self._connection is None:
            file = _lock_file(self._database, executor_id)
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            finally:
                file.close()  # closing releases the lock
            return True
        key = {"key": _advisory_key(executor_id)}
        try:
            got = self._connection.execute(sa.text("SELECT pg_try_advisory_lock(:key)"), key)
            free = bool(got.scalar_one())
            if free:
                self._connection.execute(sa.text("SELECT pg_advisory_unlock(:key)"), key)
            self._connection.commit()
        except sa.exc.DBAPIError as error:
            if not error.connection_invalidated:
                raise
            self._take_again()
            return False  # every lock went with the server: peers take theirs again too
        return free

    def _take_again(self) -> None:
        """PostgreSQL restarted (or cut the session): this lock is gone; take it again, or
        raise ExecutorInUse if another process took this id meanwhile."""
        assert self._url is not None and self._connection is not None
        with contextlib.suppress(sa.exc.DBAPIError):
            self._connection.close()
        lock = self._try(self._url, self._executor_id)
        if lock is None:
            raise ExecutorInUse(
                f"executor id {self._executor_id!r} was taken by another process while the "
                "connection to PostgreSQL was lost; this process stops"
            )
        self._connection = lock._connection
        self.held_since = lock.held_since

    def release(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._connection is not None:
            self._connection.close()


def _lock_file(database: str, executor_id: str) -> IO[bytes]:
    path = Path(f"{database}.{executor_id}.lock")
    private_file(path)
    return path.open("ab")
