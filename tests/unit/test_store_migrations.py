"""Migrations from an empty database to head, and the SQLite settings several processes rely on."""

from __future__ import annotations

import stat
from pathlib import Path
from threading import Thread

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from koppel.secrets import SecretBox
from koppel.settings import Settings
from koppel.store import Store, make_engine, open_store, upgrade
from koppel.store.database import SCHEMA_HEAD, alembic_config, at_head
from koppel.store.tables import Base, utc_now
from tests.fixtures_store import seed_integration


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


def test_schema_head_names_the_newest_migration() -> None:
    """A store at SCHEMA_HEAD is opened without running Alembic: a new migration moves it."""
    assert ScriptDirectory.from_config(alembic_config()).get_heads() == [SCHEMA_HEAD]


def test_a_store_behind_head_is_migrated_when_opened(tmp_path: Path) -> None:
    home = tmp_path / "home"
    settings = Settings(home=home, database_url=f"sqlite:///{home / 'koppel.db'}", secret_key=None)
    open_store(settings).close()
    engine = make_engine(settings.store_url)
    try:
        assert at_head(engine)
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.downgrade(config, "-1")
        assert not at_head(engine)
    finally:
        engine.dispose()
    open_store(settings).close()
    assert_migrated_to_head(str(settings.store_url))


def test_a_new_database_is_not_at_head(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'new.db'}")
    try:
        assert not at_head(engine)
    finally:
        engine.dispose()


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


def _index_before_0006(store: Store, secret_box: SecretBox) -> tuple[int, str]:
    """The store moved back to the revision before 0006, with an e-mail index of plain
    addresses as it kept them."""
    integration_id = seed_integration(store).integration.id
    with store.engine.begin() as connection:
        config = alembic_config()
        config.attributes["connection"] = connection
        before = ScriptDirectory.from_config(config).get_revision("0006").down_revision
        assert isinstance(before, str)
        command.downgrade(config, before)
        connection.execute(
            text(
                "INSERT INTO links (integration_id, entity, source_key, target_key, extra, "
                "created_at, updated_at) VALUES (:i, :e, :s, '50001', '{}', :now, :now)"
            ),
            [
                {"i": integration_id, "e": e, "s": s, "now": utc_now()}
                for e, s in (
                    ("accountview:debtor-emails", "inkoop@garage-jansen.nl"),
                    ("accountview:debtor-emails-refreshed", "refreshed"),
                )
            ],
        )
    return integration_id, secret_box.keyed_hash("inkoop@garage-jansen.nl")


def test_0006_turns_the_e_mail_index_into_keyed_hashes(store: Store, secret_box: SecretBox) -> None:
    integration_id, digest = _index_before_0006(store, secret_box)
    upgrade(store.engine, keyed_hash=secret_box.keyed_hash)
    index = store.links.get_many(integration_id, "accountview:debtor-emails", [digest])
    assert index[digest].target_key == "50001"
    with store.engine.connect() as connection:
        keys = connection.execute(text("SELECT source_key FROM links")).scalars().all()
    assert not [key for key in keys if "@" in key]


def test_0006_without_the_key_drops_the_index_to_be_built_again(
    store: Store, secret_box: SecretBox
) -> None:
    _index_before_0006(store, secret_box)
    upgrade(store.engine)
    with store.engine.connect() as connection:
        entities = connection.execute(text("SELECT entity FROM links")).scalars().all()
    assert not [e for e in entities if e.startswith("accountview:debtor-emails")]


def test_a_new_home_and_its_database_are_the_owners_only(tmp_path: Path) -> None:
    home = tmp_path / "new" / "home"
    database = f"sqlite:///{home / 'koppel.db'}"
    store = open_store(Settings(home=home, database_url=database, secret_key=None))
    store.close()
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "koppel.db").stat().st_mode) == 0o600
    assert stat.S_IMODE((home / "secret.key").stat().st_mode) == 0o600
