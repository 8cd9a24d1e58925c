"""Database fixtures: a migrated store on SQLite (tmp_path) or on a throwaway PostgreSQL database.

`store` is SQLite unless a test module overrides `store_url` (tests/integration/
test_store_postgres.py points it at `postgres_store_url`). `store_factory()` opens further stores
on the same database, as separate processes would (own engine, own connections).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import make_url
from sqlalchemy.engine import URL

from koppel.secrets import SecretBox
from koppel.settings import Settings
from koppel.store import (
    Application,
    Connection,
    Flow,
    Integration,
    Store,
    Tenant,
    open_store,
)

POSTGRES_URL = os.environ.get(
    "KOPPEL_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)

StoreFactory = Callable[..., Store]


@pytest.fixture
def secret_key() -> str:
    return Fernet.generate_key().decode()


@pytest.fixture
def secret_box(secret_key: str) -> SecretBox:
    return SecretBox([secret_key])


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'koppel.db'}"


@pytest.fixture
def store_factory(store_url: str, secret_key: str, tmp_path: Path) -> Iterator[StoreFactory]:
    """Opens stores on the test database; keyword arguments override Settings fields."""
    opened: list[Store] = []

    def factory(**overrides: object) -> Store:
        fields: dict[str, object] = {
            "home": tmp_path / "home",
            "database_url": store_url,
            "secret_key": secret_key,
        }
        fields.update(overrides)
        store = open_store(Settings.model_validate(fields))
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


@pytest.fixture
def store(store_factory: StoreFactory) -> Store:
    return store_factory()


class PostgresDatabases:
    """Creates databases with random names on the test server and drops them all at the end."""

    def __init__(self, server_url: URL) -> None:
        self._server_url = server_url
        self._created: list[str] = []

    def _admin(self) -> psycopg.Connection[tuple[object, ...]]:
        url = self._server_url
        return psycopg.connect(
            host=url.host,
            port=url.port or 5432,
            user=url.username,
            password=url.password,
            dbname=url.database,
            autocommit=True,
            connect_timeout=3,
        )

    def create(self) -> str:
        name = f"koppel_test_{uuid.uuid4().hex[:12]}"
        with self._admin() as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        self._created.append(name)
        return self._server_url.set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        with self._admin() as admin:
            for name in self._created:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_databases() -> Iterator[PostgresDatabases]:
    databases = PostgresDatabases(make_url(POSTGRES_URL))
    try:
        databases._admin().close()
    except psycopg.OperationalError as error:
        pytest.skip(f"PostgreSQL not reachable at {make_url(POSTGRES_URL)!r}: {error}")
    yield databases
    databases.drop_all()


@pytest.fixture(scope="session")
def postgres_store_url(postgres_databases: PostgresDatabases) -> str:
    """One database for the session; tests empty it before use (see tests/integration)."""
    return postgres_databases.create()


@dataclass(frozen=True)
class SeededIntegration:
    tenant: Tenant
    pim: Connection
    av: Connection
    integration: Integration
    flow: Flow


def seed_integration(
    store: Store, tenant: str = "acme", *, credentials: dict[str, str] | None = None
) -> SeededIntegration:
    """A tenant with a PIM and an AV connection, an integration and a products flow PIM -> AV."""
    owner = store.tenants.ensure(tenant)
    pim = store.connections.put(
        owner.id,
        "pim",
        application=Application.PARTSPIM,
        base_url="http://127.0.0.1:1/api/v1",
        credentials=credentials or {"api_key": f"pim-key-of-{tenant}"},
        options={},
    ).value
    av = store.connections.put(
        owner.id,
        "av",
        application=Application.ACCOUNTVIEW,
        base_url="http://127.0.0.1:2/api/v3",
        credentials={"client_id": "x", "refresh_token": f"refresh-of-{tenant}"},
        options={},
    ).value
    integration = store.integrations.put(
        owner.id, f"{tenant}-pim-av", connection_a_id=pim.id, connection_b_id=av.id, settings={}
    ).value
    flow = store.flows.put(
        integration.id,
        "products",
        entity="products",
        source_connection_id=pim.id,
        target_connection_id=av.id,
        enabled=True,
        schedule_seconds=60,
        settings={},
        mapping={"name": "$.title"},
        mapping_note="seeded",
    ).value
    return SeededIntegration(tenant=owner, pim=pim, av=av, integration=integration, flow=flow)
