"""DESIGN guarantee 6: no credential and no database password in any log record, exception,
output or database, through every failure path of both connectors and every command.

Everything is captured at DEBUG level (every logger, the HTTP client's included); the tokens in
play are all of them, read from the answers of AccountView's token endpoint as they are issued.
"""

from __future__ import annotations

import json
import logging
import secrets
import traceback
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
import yaml
from click.testing import Result
from cryptography.fernet import Fernet
from sqlalchemy import make_url
from typer.testing import CliRunner

from koppel.cli import app
from koppel.connectors.accountview import AccountViewConnector
from koppel.connectors.base import ClientLimits
from koppel.connectors.credentials import MemoryCredentials
from koppel.connectors.errors import AuthenticationError, ConnectorError
from koppel.connectors.partspim import PartsPimConnector
from koppel.sandbox.common import FaultConfig
from tests.e2e.conftest import Platform
from tests.e2e.gates import token_requests
from tests.e2e.processes import start_worker
from tests.fixtures_store import POSTGRES_URL, PostgresDatabases

FAST = ClientLimits(backoff_base_s=0.001, backoff_max_s=0.01, max_attempts=12, timeout_s=10)
FAULTS = FaultConfig(error_rate=0.15, rate_429=0.15, drop_rate=0.1, retry_after_s=0.001, seed=2)
IMPATIENT = {"max_attempts": 4, "backoff_base_seconds": 0.001, "backoff_max_seconds": 0.01}


@dataclass
class Secrets:
    """Every secret in play by name, and every text that must hold none of them."""

    values: dict[str, str] = field(default_factory=dict)
    texts: list[str] = field(default_factory=list)

    def add(self, name: str, value: Any) -> None:
        if value:
            self.values[f"{name} #{len(self.values)}"] = str(value)

    def add_token_answers(self, bodies: Iterable[bytes]) -> None:
        for body in bodies:
            try:
                answer = json.loads(body)
            except ValueError:
                continue
            if isinstance(answer, dict):
                self.add("access token", answer.get("access_token"))
                self.add("refresh token", answer.get("refresh_token"))

    def keep_error(self, error: BaseException) -> None:
        self.texts.append("".join(traceback.format_exception(error)))

    def keep_result(self, result: Result) -> None:
        self.texts += [result.output, result.stderr]
        if result.exc_info is not None and not isinstance(result.exception, SystemExit):
            self.texts.append("".join(traceback.format_exception(*result.exc_info)))

    def assert_none_leaked(self) -> None:
        assert len(self.values) >= 4 and self.texts
        leaks = [
            (name, text[max(0, text.index(value) - 200) : text.index(value) + 50])
            for text in self.texts
            for name, value in self.values.items()
            if value in text
        ]
        assert not leaks, leaks


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every log record of every logger, at DEBUG; the level is put back afterwards."""
    root = logging.getLogger()
    level = root.level
    caplog.set_level(logging.DEBUG)
    yield caplog
    root.setLevel(level)


# -- the connectors ------------------------------------------------------------------------------


async def test_connectors_leak_no_credential_through_their_failure_paths(
    platform_factory: Any, debug_logs: pytest.LogCaptureFixture
) -> None:
    platform: Platform = platform_factory(20, gated=True)
    assert platform.gates is not None
    pim, av = platform.sandboxes.partspim, platform.sandboxes.accountview
    issued = platform.gates.accountview.tap(token_requests)
    found = Secrets()
    pim_credentials = pim.credentials(platform.sandboxes.partspim_url)
    av_credentials = av.credentials(platform.sandboxes.accountview_url)
    wrong_key, wrong_secret = f"ppk_wrong-{uuid.uuid4().hex}", f"wrong-{uuid.uuid4().hex}"
    for name, value in (
        ("Parts Pim API key", pim_credentials["api_key"]),
        ("wrong Parts Pim API key", wrong_key),
        ("AccountView client secret", av_credentials["client_secret"]),
        ("wrong client secret", wrong_secret),
        ("access token", av_credentials["access_token"]),
        ("refresh token", av_credentials["refresh_token"]),
    ):
        found.add(name, value)

    # Parts Pim: retries, a refused key, a record it rejects, writes whose answer is lost.
    connector = PartsPimConnector(**pim_credentials, limits=FAST)
    try:
        pim.faults.configure(FAULTS.model_copy(update={"drop_rate": 0}))
        assert [r async for page in connector.read("products", page_size=5) for r in page]
        [rejected] = await connector.write("products", [{"sku": "AB-12", "name": "Fout"}])
        assert rejected.error is not None
        found.keep_error(rejected.error)
        pim.faults.configure(FaultConfig(drop_rate=0.6, seed=3))
        for n in range(3):
            try:
                await connector.write("products", [{"sku": f"5550{n}", "name": f"Nieuw {n}"}])
            except ConnectorError as error:
                found.keep_error(error)
    finally:
        pim.faults.configure(FaultConfig())
        await connector.aclose()
    refused = PartsPimConnector(pim_credentials["base_url"], wrong_key, limits=FAST)
    try:
        with pytest.raises(AuthenticationError) as pim_refusal:
            await refused.check()
        found.keep_error(pim_refusal.value)
    finally:
        await refused.aclose()

    # AccountView: retries, a 401 and a refresh, a rejected row, lost answers, a spent refresh
    # token after rotation, a wrong client secret.
    saved: list[dict[str, Any]] = []

    async def on_tokens(credentials: dict[str, Any]) -> None:
        saved.append(credentials)

    connector_av = AccountViewConnector(
        av_credentials,
        credential_store=MemoryCredentials(av_credentials, on_save=on_tokens),
        limits=FAST,
    )
    try:
        av.faults.configure(FAULTS.model_copy(update={"drop_rate": 0}))
        assert [r async for page in connector_av.read("vat_codes") for r in page]
        av.expire_access_tokens()
        assert [r async for page in connector_av.read("vat_codes", page_size=2) for r in page]
        [bad_row] = await connector_av.write(
            "articles", [{"ART_CODE": "SECRET1", "ART_DESC1": "x" * 41}]
        )
        assert bad_row.error is not None
        found.keep_error(bad_row.error)
        av.faults.configure(FaultConfig(drop_rate=0.6, seed=4))
        debtors = [
            {"MAIL_BUS": f"geheim{n}@example.nl", "ACCT_NAME": f"Klant {n}", "SRC_CODE": f"K{n}"}
            for n in range(3)
        ]
        try:
            for result in await connector_av.write("debtors", debtors):
                if result.error is not None:
                    found.keep_error(result.error)
        except ConnectorError as error:
            found.keep_error(error)
    finally:
        av.faults.configure(FaultConfig())
        await connector_av.aclose()
    assert saved, "the expired access token was refreshed"
    for _what, credentials in (
        ("stale refresh token", {**av_credentials, "access_token": None}),
        ("wrong client secret", {**saved[-1], "client_secret": wrong_secret, "access_token": None}),
    ):
        spent = AccountViewConnector(credentials, limits=FAST)
        try:
            with pytest.raises(AuthenticationError) as refusal:
                await spent.check()
            found.keep_error(refusal.value)
        finally:
            await spent.aclose()

    # Every failure path was taken: retries, lost answers, 401s, refreshes.
    assert any("retry in" in r.getMessage() for r in debug_logs.records)
    for sandbox in (pim, av):
        statuses = {entry.status for entry in sandbox.faults.log.entries()}
        assert {-1, 401} <= statuses and statuses & {429, 500, 502, 503}, statuses
    assert saved and any(b"refresh_token" in answer for answer in issued), "a refresh over HTTP"
    found.add_token_answers(issued)
    found.texts.append(debug_logs.text)
    found.texts += [repr(record.__dict__) for record in debug_logs.records]
    found.assert_none_leaked()


# -- the commands --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PasswordDatabases:
    store_url: str
    engine_url: str
    password: str


@pytest.fixture
def password_databases(postgres_databases: PostgresDatabases) -> Iterator[PasswordDatabases]:
    """A PostgreSQL role with a password, owning a store and an engine database; all dropped
    afterwards. (The test server trusts local connections: the password is only in the URL.)"""
    server = make_url(POSTGRES_URL)
    role = f"koppel_secret_{uuid.uuid4().hex[:10]}"
    password = f"pg-{secrets.token_urlsafe(18)}"
    names = [f"koppel_test_{uuid.uuid4().hex[:12]}" for _ in range(2)]

    def admin() -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host=server.host,
            port=server.port or 5432,
            user=server.username,
            dbname=server.database,
            autocommit=True,
        )

    with admin() as connection:
        connection.execute(f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{password}'")
        for name in names:
            connection.execute(f'CREATE DATABASE "{name}" OWNER "{role}"')
    urls = [
        server.set(username=role, password=password, database=name).render_as_string(
            hide_password=False
        )
        for name in names
    ]
    try:
        yield PasswordDatabases(urls[0], urls[1], password)
    finally:
        with admin() as connection:
            for name in names:
                connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            connection.execute(f'DROP ROLE IF EXISTS "{role}"')


def dump(url: str) -> str:
    """Every row of every table of the database, as text."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            tables = connection.execute(
                sa.text(
                    "SELECT table_schema, table_name FROM information_schema.tables "
                    "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') "
                    "AND table_type = 'BASE TABLE'"
                )
            ).all()
            assert tables
            rows = [
                str(row)
                for schema, table in tables
                for row in connection.execute(
                    sa.text(f'SELECT t::text FROM "{schema}"."{table}" t')
                )
            ]
    finally:
        engine.dispose()
    return "\n".join(rows)


def test_commands_at_debug_level_leak_no_credential_nor_database_password(
    platform_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
    password_databases: PasswordDatabases,
    tmp_path: Path,
) -> None:
    platform: Platform = platform_factory(20, gated=True)
    assert platform.gates is not None
    pim, av = platform.sandboxes.partspim, platform.sandboxes.accountview
    issued = platform.gates.accountview.tap(token_requests)
    secret_key = Fernet.generate_key().decode()
    env = {
        "KOPPEL_HOME": str(platform.settings.home),
        "KOPPEL_DATABASE_URL": password_databases.store_url,
        "KOPPEL_ENGINE_DATABASE_URL": password_databases.engine_url,
        "KOPPEL_SECRET_KEY": secret_key,
        "KOPPEL_LOG_LEVEL": "DEBUG",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    flows = {
        "products": {"from": "pim", "to": "av", "entity": "products", "schedule": "manual"},
        "stock": {"from": "pim", "to": "av", "entity": "stock", "schedule": "manual"},
    }
    document = platform.sandboxes.integration(flows, options=IMPATIENT)
    config = tmp_path / "acme.yaml"
    config.write_text(yaml.safe_dump(document, sort_keys=False))
    found = Secrets()
    found.add("KOPPEL_SECRET_KEY", secret_key)
    found.add("database password", password_databases.password)
    found.add("Parts Pim API key", document["connections"]["pim"]["credentials"]["api_key"])
    av_credentials = document["connections"]["av"]["credentials"]
    for name in ("client_secret", "refresh_token", "access_token"):
        found.add(name, av_credentials[name])

    def koppel(*args: str, **extra_env: str) -> Result:
        result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200", **extra_env})
        found.keep_result(result)
        return result

    try:
        pim.store.create(
            "products", {"sku": "12345678901234567", "name": "Te lang"}, over_api=False
        )
        assert koppel("config", "apply", str(config)).exit_code == 0
        assert koppel("connection", "test", "pim", "--config", str(config)).exit_code == 0
        assert koppel("connection", "test", "av", "--config", str(config)).exit_code == 0
        av.expire_access_tokens()
        av.faults.configure(FAULTS)
        faulty = koppel("sync", "--config", str(config))
        av.faults.configure(FaultConfig())
        assert faulty.exit_code == 1, faulty.output  # the SKU too long for AccountView
        assert "retry in" in faulty.stderr and "HTTP Request" in faulty.stderr
        run_id = json.loads(koppel("runs", "--json").stdout)[0]["run_id"]
        for args in (
            ("runs",),
            ("log", run_id, "--payload"),
            ("log", run_id, "--json"),
            ("dead-letters",),
            ("dead-letters", "--json"),
            ("replay",),
            ("mapping", "show", "--config", str(config), "--flow", "products"),
            ("mapping", "validate", "--config", str(config), "--flow", "products"),
            ("mapping", "preview", "--config", str(config), "--flow", "products", "--sample"),
            ("mapping", "versions", "--flow", "products"),
        ):
            koppel(*args)
        wrong = json.loads(json.dumps(document))
        wrong_key = f"ppk_wrong-{uuid.uuid4().hex}"
        wrong["connections"]["pim"]["credentials"]["api_key"] = wrong_key
        found.add("wrong API key", wrong_key)
        wrong_file = tmp_path / "wrong.yaml"
        wrong_file.write_text(yaml.safe_dump(wrong, sort_keys=False))
        assert koppel("connection", "test", "pim", "--config", str(wrong_file)).exit_code == 1
        assert koppel("config", "apply", str(config)).exit_code == 0
        missing = make_url(password_databases.store_url).set(database="koppel_no_such_db")
        unopened = koppel("runs", KOPPEL_DATABASE_URL=missing.render_as_string(False))
        assert unopened.exit_code == 2 and "cannot open the database" in unopened.stderr

        # One id for both: on PostgreSQL each process has its own unless told (a stable id).
        worker = start_worker(platform.settings.home, **env, KOPPEL_WORKER_ID="shared")
        try:
            busy = koppel("sync", "--config", str(config), KOPPEL_WORKER_ID="shared")
            assert busy.exit_code == 3 and "in use by another" in busy.stderr, busy.output
            assert make_url(password_databases.engine_url).host in busy.stderr
        finally:
            worker.stop()
        found.texts.append(worker.output())
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        av.faults.configure(FaultConfig())

    found.add_token_answers(issued)
    assert any(b"refresh_token" in answer for answer in issued), "a refresh over HTTP"
    found.texts += [dump(password_databases.store_url), dump(password_databases.engine_url)]
    found.assert_none_leaked()
