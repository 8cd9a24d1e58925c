"""`python -m bench web` (`make bench-web`): the web app's pages over a store of a million outcomes.

A store is filled in bulk (INSERT ... SELECT over generated rows, a run at a time: seconds, not
the hours a million recorded outcomes would take through the flows): one workspace, five flows,
1,000 runs of 1,000 outcomes over the last week, 1 % of them failed, and their dead letters. Then
the app (`create_app`, no engine) answers the pages through an in-process client, signed in as
the workspace's admin, and each page's server time is measured: the median and the slowest of
`REPEAT` requests after a warm-up. It runs on SQLite (a file in a temporary directory) and on
PostgreSQL (a database of its own on KOPPEL_BENCH_POSTGRES_URL's server, dropped after).

For every page the statements it sent to the log's tables (outcomes, runs, dead letters) are
captured and their plans printed, each plan once (`EXPLAIN QUERY PLAN` on SQLite, `EXPLAIN` on
PostgreSQL): a full scan shows at once.
"""

from __future__ import annotations

import os
import re
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from sqlalchemy import Connection, event, insert, text
from sqlalchemy.engine import make_url

from koppel.accounts.signin import start_session
from koppel.accounts.users import create_user
from koppel.settings import Settings
from koppel.store import Application, Role, Store, open_store
from koppel.store.tables import DeadLetterRow, RunRow

__all__ = ["format_web", "run_web"]

POSTGRES_URL = os.environ.get(
    "KOPPEL_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
FLOWS = ("products", "stock", "customers", "orders", "categories")
RUNS = 1_000
PER_RUN = 1_000
CATALOGUE = 100_000
"""Distinct records: each run touches PER_RUN of them, so a key shows up in about ten runs."""
REPEAT = 15
WARM_UP = 2
TARGET_MS = 200.0
SEARCH_TARGET_MS = 100.0
SEARCH_SKU = str(10_000_000 + 4_242)
METRICS_TOKEN = "bench-metrics-token"
"""The bearer token of `/metrics` (KOPPEL_METRICS_TOKEN), which the scrape sends."""


@dataclass
class PageFigures:
    name: str
    path: str
    median_ms: float
    slowest_ms: float
    target_ms: float
    status: int
    plans: list[str] = field(default_factory=list)


@dataclass
class BackendFigures:
    backend: str
    outcomes: int
    fill_seconds: float
    pages: list[PageFigures]
    missing: list[str]
    """Pages this app does not have (yet): named, not measured."""


def _outcomes_sql(dialect: str) -> str:
    """PER_RUN outcomes of one run: generated keys, a realistic excerpt, every 100th failed."""
    if dialect == "sqlite":
        rows = "WITH RECURSIVE n(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM n WHERE j < :last) "
        key = "CAST(((:first_key + j) % :catalogue) AS TEXT)"
        sku = "CAST(10000000 + ((:first_key + j) % :catalogue) AS TEXT)"
        payload = (
            "json_object('source', json_object('id', (:first_key + j) % :catalogue, 'sku', "
            f"{sku}, 'name', 'Remschijf geventileerd ' || {sku}, 'price_excl_vat', '54.24', "
            "'description', 'Geventileerde remschijf voor de vooras, OE-kwaliteit, per stuk.'), "
            f"'sent', json_object('ART_CODE', {sku}, 'ART_DESC1', 'Remschijf ' || {sku}, "
            "'PRICE', 54.24, 'AG_CODE', 'REM1O'))"
        )
        return (
            f"{rows}INSERT INTO outcomes (run_id, flow_id, source_key, record_key, outcome, "
            "reason, target_key, warnings, payload_excerpt, created_at) "
            f"SELECT :run_id, :flow_id, {key}, {sku}, "
            "CASE WHEN j % 100 = 99 THEN 'failed' WHEN j % 10 = 0 THEN 'created' "
            "WHEN j % 3 = 0 THEN 'skipped' ELSE 'updated' END, "
            "CASE WHEN j % 100 = 99 THEN 'SKU ''' || "
            f"{sku} || ''': field ART_CODE: is 17 characters; the target holds 15' END, "
            f"CASE WHEN j % 100 = 99 THEN NULL ELSE {sku} END, '[]', {payload}, :created_at "
            "FROM n"
        )
    key = "((:first_key + j) % :catalogue)::text"
    sku = "(10000000 + ((:first_key + j) % :catalogue))::text"
    payload = (
        "jsonb_build_object('source', jsonb_build_object('id', (:first_key + j) % :catalogue, "
        f"'sku', {sku}, 'name', 'Remschijf geventileerd ' || {sku}, 'price_excl_vat', '54.24', "
        "'description', 'Geventileerde remschijf voor de vooras, OE-kwaliteit, per stuk.'), "
        f"'sent', jsonb_build_object('ART_CODE', {sku}, 'ART_DESC1', 'Remschijf ' || {sku}, "
        "'PRICE', 54.24, 'AG_CODE', 'REM1O'))"
    )
    return (
        "INSERT INTO outcomes (run_id, flow_id, source_key, record_key, outcome, reason, "
        "target_key, warnings, payload_excerpt, created_at) "
        f"SELECT :run_id, :flow_id, {key}, {sku}, "
        "CASE WHEN j % 100 = 99 THEN 'failed' WHEN j % 10 = 0 THEN 'created' "
        "WHEN j % 3 = 0 THEN 'skipped' ELSE 'updated' END, "
        f"CASE WHEN j % 100 = 99 THEN 'SKU ''' || {sku} || "
        "''': field ART_CODE: is 17 characters; the target holds 15' END, "
        f"CASE WHEN j % 100 = 99 THEN NULL ELSE {sku} END, '[]'::jsonb, {payload}, "
        "CAST(:created_at AS timestamptz) FROM generate_series(0, :last) AS j"
    )


def _seed_definitions(store: Store) -> tuple[int, list[int]]:
    """The workspace's tenant, connections, integration and flows; (tenant id, flow ids)."""
    tenant = store.tenants.ensure("bench")
    pim = store.connections.put(
        tenant.id,
        "pim",
        application=Application.PARTSPIM,
        base_url="http://127.0.0.1:1/api/v1",
        credentials={"api_key": "bench"},
        options={},
    ).value
    av = store.connections.put(
        tenant.id,
        "av",
        application=Application.ACCOUNTVIEW,
        base_url="http://127.0.0.1:2/api/v3",
        credentials={"client_id": "bench", "refresh_token": "bench"},
        options={},
    ).value
    integration = store.integrations.put(
        tenant.id, "bench-pim-av", connection_a_id=pim.id, connection_b_id=av.id, settings={}
    ).value
    flow_ids = [
        store.flows.put(
            integration.id,
            name,
            entity=name,
            source_connection_id=pim.id,
            target_connection_id=av.id,
            enabled=True,
            schedule_seconds=300,
            settings={},
            mapping={},
            mapping_note="bench",
        ).value.id
        for name in FLOWS
    ]
    return tenant.id, flow_ids


def fill(store: Store, *, runs: int = RUNS, per_run: int = PER_RUN) -> tuple[int, list[int]]:
    """A workspace with `runs` x `per_run` outcomes; returns (tenant id, flow ids)."""
    tenant_id, flow_ids = _seed_definitions(store)
    dialect = store.engine.dialect.name
    statement = text(_outcomes_sql(dialect))
    now = datetime.now(UTC)
    failed_per_run = per_run // 100
    with store.engine.begin() as connection:
        run_rows: list[dict[str, Any]] = []
        for number in range(runs):
            started = now - timedelta(minutes=10 * (runs - number))
            run_rows.append(
                {
                    "id": f"bench-{number:06d}",
                    "flow_id": flow_ids[number % len(flow_ids)],
                    "status": "partial",
                    "started_at": started,
                    "finished_at": started + timedelta(seconds=40),
                    "counts": {"created": 100, "updated": 600, "skipped": 290, "failed": 10},
                    "api_calls": 12,
                    "mapping_version": 1,
                    "number": number + 1,
                }
            )
        connection.execute(insert(RunRow), run_rows)
        for number, run in enumerate(run_rows):
            created = run["finished_at"]
            connection.execute(
                statement,
                {
                    "run_id": run["id"],
                    "flow_id": run["flow_id"],
                    "first_key": number * per_run,
                    "catalogue": CATALOGUE,
                    "last": per_run - 1,
                    "created_at": (
                        created.replace(tzinfo=None).isoformat(sep=" ")
                        if dialect == "sqlite"
                        else created.isoformat()
                    ),
                },
            )
        letters = [
            {
                "flow_id": flow_ids[0],
                "source_key": str(key),
                "reason": f"SKU '{10_000_000 + key}': field ART_CODE: is 17 characters",
                "payload": {"id": key},
                "attempts": 3,
                "next_attempt_at": now + timedelta(minutes=4),
                "status": "pending",
                "created_at": now - timedelta(days=1),
                "updated_at": now - timedelta(hours=1),
            }
            for key in range(99, CATALOGUE, 100)[: failed_per_run * 20]
        ]
        connection.execute(insert(DeadLetterRow), letters)
    if dialect == "postgresql":
        with store.engine.connect() as connection:
            connection.execute(text("ANALYZE"))
            connection.commit()
    return tenant_id, flow_ids


@contextmanager
def _captured(store: Store) -> Iterator[list[tuple[str, Any]]]:
    """The statements sent to the log's tables meanwhile, with their parameters."""
    statements: list[tuple[str, Any]] = []

    def capture(_conn: Connection, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if any(f"FROM {table}" in statement for table in ("outcomes", "runs", "dead_letters")):
            statements.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", capture)
    try:
        yield statements
    finally:
        event.remove(store.engine, "before_cursor_execute", capture)


def _plans(store: Store, statements: list[tuple[str, Any]]) -> list[str]:
    sqlite = store.engine.dialect.name == "sqlite"
    plans: list[str] = []
    with store.engine.connect() as connection:
        for statement, parameters in statements:
            explain = ("EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN ") + statement
            rows = connection.exec_driver_sql(explain, parameters).all()
            lines = [str(row[-1]) for row in rows]
            plan = " | ".join(line.strip() for line in lines)
            if plan not in plans:
                plans.append(plan)
    return plans


def _measure(client: Any, store: Store, name: str, path: str, target_ms: float) -> PageFigures:
    headers = {"Authorization": f"Bearer {METRICS_TOKEN}"} if path == "/metrics" else {}
    for _ in range(WARM_UP):
        client.get(path, headers=headers)
    times: list[float] = []
    status = 0
    for _ in range(REPEAT):
        started = time.perf_counter()
        answer = client.get(path, headers=headers)
        times.append((time.perf_counter() - started) * 1000)
        status = answer.status_code
    with _captured(store) as statements:
        client.get(path, headers=headers)
    return PageFigures(
        name=name,
        path=path,
        median_ms=statistics.median(times),
        slowest_ms=max(times),
        target_ms=target_ms,
        status=status,
        plans=_plans(store, statements),
    )


def _measure_app(
    store: Store, settings: Settings, tenant_id: int, flow_ids: list[int]
) -> tuple[list[PageFigures], list[str]]:
    from fastapi.routing import iter_route_contexts
    from fastapi.testclient import TestClient

    from koppel.web import create_app

    admin = create_user(
        store,
        actor="bench",
        tenant_id=tenant_id,
        email="admin@bench.example",
        name="Bench Admin",
        password="correct horse battery staple",
        role=Role.ADMIN,
    )
    app = create_app(settings, store=store)
    templates = [
        re.compile("^" + re.sub(r"{[^}]+}", "[^/]+", route.path or "") + "$")
        for route in iter_route_contexts(app.routes)
        if "GET" in (route.methods or ())
    ]
    scoped = store.scoped(tenant_id)
    middle = scoped.outcomes.search(limit=1)[0].id // 2
    middle_run = len(scoped.runs.list(limit=100_000)) // 2
    pages = [
        ("dashboard", "/", TARGET_MS),
        ("dashboard, its refreshed part", "/dashboard/live", TARGET_MS),
        ("runs list", "/runs", TARGET_MS),
        ("runs API", "/api/v1/runs", TARGET_MS),
        ("activity log, newest", "/activity", TARGET_MS),
        ("activity log, half-way back", f"/activity?before={middle}", TARGET_MS),
        ("activity log, failed only", "/activity?outcome=failed", TARGET_MS),
        ("activity log, one flow", f"/activity?flow={flow_ids[2]}", TARGET_MS),
        ("activity log, one run", f"/activity?run=bench-{middle_run:06d}", TARGET_MS),
        ("search by SKU (page)", f"/activity?key={SEARCH_SKU}", SEARCH_TARGET_MS),
        ("search by SKU (API)", f"/api/v1/outcomes?key={SEARCH_SKU}", SEARCH_TARGET_MS),
        ("one activity entry", f"/activity/{middle}", TARGET_MS),
        ("dead letters", "/dead-letters", TARGET_MS),
        ("Prometheus scrape (/metrics)", "/metrics", TARGET_MS),
    ]
    figures: list[PageFigures] = []
    missing: list[str] = []
    with TestClient(app, base_url="http://127.0.0.1") as client:
        client.cookies.set("koppel_session", start_session(store, admin))
        for name, path, target in pages:
            if not any(template.match(path.split("?")[0]) for template in templates):
                missing.append(f"{name} ({path})")
                continue
            figures.append(_measure(client, store, name, path, target))
    return figures, missing


def _settings(home: Path, database_url: str | None) -> Settings:
    return Settings.model_validate(
        {
            "home": home,
            "database_url": database_url,
            "secret_key": Fernet.generate_key().decode(),
            "web_allowed_hosts": "127.0.0.1",
            "metrics_token": METRICS_TOKEN,
        }
    )


@contextmanager
def postgres_database(prefix: str) -> Iterator[str]:
    """A database of its own on POSTGRES_URL's server, named after `prefix`, dropped after."""
    import psycopg

    server = make_url(POSTGRES_URL)
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(
        host=server.host,
        port=server.port or 5432,
        user=server.username,
        password=server.password,
        dbname=server.database,
        autocommit=True,
        connect_timeout=3,
    )
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield server.set(database=name).render_as_string(hide_password=False)
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _backend(backend: str, database_url: str | None, home: Path, runs: int) -> BackendFigures:
    settings = _settings(home, database_url)
    store = open_store(settings)
    try:
        started = time.perf_counter()
        tenant_id, flow_ids = fill(store, runs=runs)
        fill_seconds = time.perf_counter() - started
        pages, missing = _measure_app(store, settings, tenant_id, flow_ids)
    finally:
        store.close()
    return BackendFigures(backend, runs * PER_RUN, fill_seconds, pages, missing)


def run_web(
    *, quick: bool = False, backends: tuple[str, ...] = ("sqlite", "postgresql")
) -> list[BackendFigures]:
    """Fill and measure each backend in turn; `quick`: 100,000 outcomes instead of 1,000,000."""
    runs = RUNS // 10 if quick else RUNS
    results: list[BackendFigures] = []
    with tempfile.TemporaryDirectory(prefix="koppel-bench-web-") as directory:
        home = Path(directory)
        for backend in backends:
            if backend == "sqlite":
                results.append(_backend(backend, None, home / "sqlite", runs))
            else:
                with postgres_database("koppel_bench_web") as url:
                    results.append(_backend(backend, url, home / "postgresql", runs))
    return results


def format_web(results: list[BackendFigures], *, plans: bool = True) -> str:
    lines: list[str] = []
    for result in results:
        lines.append(
            f"== web pages on {result.backend}: {result.outcomes:,} outcomes "
            f"(filled in {result.fill_seconds:.0f} s); server time over {REPEAT} requests"
        )
        for page in result.pages:
            verdict = "ok" if page.median_ms < page.target_ms else "OVER TARGET"
            lines.append(
                f"  {page.name:<30} median {page.median_ms:7.1f} ms, slowest "
                f"{page.slowest_ms:7.1f} ms  (target < {page.target_ms:.0f} ms: {verdict}; "
                f"HTTP {page.status})"
            )
            if plans:
                lines.extend(f"      plan: {plan}" for plan in page.plans)
        for name in result.missing:
            lines.append(f"  {name:<30} not in this app yet: not measured")
    return "\n".join(lines)
