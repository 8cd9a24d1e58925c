"""Opening the database: engine settings per backend, and migrations run from code.

SQLite is shared by several processes (worker, web, CLI), so it runs in WAL mode with a busy
timeout, and every writing transaction starts with BEGIN IMMEDIATE: a deferred transaction that
reads first and writes later can fail at once with "database is locked" when another process
committed in between, whatever the timeout. Reads start a plain (deferred) transaction.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, inspect, make_url, text
from sqlalchemy.engine import URL, Connection
from sqlalchemy.pool import StaticPool

from koppel.errors import ErrorCategory, KoppelError
from koppel.files import private_file
from koppel.store.tables import dump_json

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SCHEMA_HEAD = "0012"
"""The revision of the newest migration, the schema this version of Koppel reads and writes.
A store already there is opened without Alembic (its import and its reading of every migration
script were a fifth of a short command's time); tests/unit/test_store_migrations.py fails if a
new migration does not move it."""
SQLITE_BUSY_TIMEOUT_MS = 30_000
WRITE_OPTION = "koppel_write"
# Any constant works; it names "the migration lock" among PostgreSQL advisory locks.
_MIGRATION_LOCK_ID = 0x6B6F7070656C


class DatabaseURLError(KoppelError, ValueError):
    """KOPPEL_DATABASE_URL (or the engine's) names no database Koppel can use."""

    category = ErrorCategory.CONFIGURATION


def normalize_url(url: str | URL) -> URL:
    """Pick our drivers: plain `postgresql://` means psycopg 3, the one we ship."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise DatabaseURLError(
            f"unsupported database {parsed.get_backend_name()!r} in KOPPEL_DATABASE_URL; "
            "use sqlite:///path/to/koppel.db or postgresql+psycopg://user@host/db"
        )
    return parsed


def make_engine(url: str | URL, *, silent_transaction_seconds: float | None = None) -> Engine:
    """`silent_transaction_seconds` (PostgreSQL): the server ends a session of ours whose
    transaction waits that long for its next statement. Only a process that stopped in the
    middle of one does that (paused, or its host suspended), and until it wakes up its row
    locks would hold up every other worker that writes the same rows, such as the shared pace
    of a connection: the taker of its runs among them. Ended, the transaction is rolled back
    and the woken process's next statement fails."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "postgresql":
        connect_args = {}
        if silent_transaction_seconds is not None:
            timeout = (
                f"-c idle_in_transaction_session_timeout={silent_transaction_seconds * 1000:.0f}ms"
            )
            given = parsed.query.get("options")  # the URL's own, kept
            connect_args["options"] = f"{given} {timeout}" if isinstance(given, str) else timeout
        return create_engine(
            parsed, pool_pre_ping=True, json_serializer=dump_json, connect_args=connect_args
        )
    in_memory = parsed.database in (None, "", ":memory:")
    if not in_memory and parsed.database is not None:
        private_file(Path(parsed.database))
    engine = create_engine(
        parsed,
        json_serializer=dump_json,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        # One shared connection is the only way several threads see one in-memory database.
        **({"poolclass": StaticPool} if in_memory else {}),
    )
    _configure_sqlite(engine, wal=not in_memory)
    return engine


def _enable_wal(cursor: Any) -> None:
    """Switch a new database file to WAL. The switch needs the file to itself and SQLite does
    not always wait for that (processes starting at once); it is tried again for a while."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def use_wal(path: Path) -> None:
    """Put the SQLite database at `path` in WAL mode, which the file keeps: every connection
    that opens it later, in any process, writes ahead too. A commit then syncs one file once;
    in the rollback-journal mode SQLite starts in, it syncs the journal twice, the database and
    the directory (DBOS's system database was in it: 52 syncs of an idle sync's 63, 2.5 to 4 ms
    each on the development machine). Commits stay as durable (SQLite's `synchronous` is FULL
    in both modes); WAL needs what the store already needs, every process on one host."""
    connection = sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
    try:
        _enable_wal(connection.cursor())
    finally:
        connection.close()


def _configure_sqlite(engine: Engine, *, wal: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below decide when and how transactions start.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        if wal:
            _enable_wal(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        writing = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")


def upgrade(
    engine_or_url: Engine | str | URL,
    revision: str = "head",
    *,
    keyed_hash: Callable[[str], str] | None = None,
) -> None:
    """Bring the schema to `revision`; safe when several processes start at once.

    `keyed_hash` (the application key's `SecretBox.keyed_hash`) lets a migration turn personal
    data into keyed hashes in place; without it such data is deleted and built again."""
    from alembic import command

    engine = engine_or_url if isinstance(engine_or_url, Engine) else make_engine(engine_or_url)
    try:
        with engine.execution_options(**{WRITE_OPTION: True}).begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID}
                )
            config = alembic_config()
            config.attributes["connection"] = connection
            config.attributes["keyed_hash"] = keyed_hash
            command.upgrade(config, revision)
    finally:
        if engine is not engine_or_url:
            engine.dispose()


def at_head(engine: Engine) -> bool:
    """Whether the store's schema is at `SCHEMA_HEAD`: one read, no write lock, no Alembic.
    The revision only ever moves forward, so a store at head needs no migration; anything
    else (a new database, an older or a newer schema) is `upgrade()`'s to handle or refuse."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return False
        revisions = connection.execute(text("SELECT version_num FROM alembic_version"))
        return revisions.scalars().all() == [SCHEMA_HEAD]


def alembic_config() -> Config:
    """An Alembic config without alembic.ini: users never need one."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


__all__ = [
    "MIGRATIONS_DIR",
    "SCHEMA_HEAD",
    "DatabaseURLError",
    "alembic_config",
    "at_head",
    "make_engine",
    "normalize_url",
    "upgrade",
    "use_wal",
]
