"""Migrations from an empty database to head, and the SQLite settings several processes rely on."""

from __future__ import annotations

from pathlib import Path
from threading import Thread

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from koppel.store import Store, make_engine, upgrade
from koppel.store.database import alembic_config
from koppel.store.tables import Base


def assert_migrated_to_head(url: str) -> None:
    """Every table exists, the version is head, and the models match what migrations built."""
    engine = make_engine(url)
    try:
        assert set(inspect(engine).get_table_names()) >= set(Base.metadata.tables)
        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert context.get_current_revision() == head
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def test_sqlite_migrates_from_empty_to_head_and_again_is_a_no_op(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    upgrade(url)
    upgrade(url)
    assert_migrated_to_head(url)


def test_processes_starting_at_once_migrate_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'race.db'}"
    errors: list[BaseException] = []

    def start() -> None:
        try:
            upgrade(url)
        except BaseException as error:  # collected and asserted below
            errors.append(error)

    threads = [Thread(target=start) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert_migrated_to_head(url)


def test_sqlite_runs_in_wal_mode_with_foreign_keys_and_busy_timeout(store: Store) -> None:
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
