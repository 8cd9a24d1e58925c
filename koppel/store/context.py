"""What every repository shares: sessions, the tenant scope, and the batch upsert.

A repository call is its own short transaction, unless it runs inside `Store.transaction()`: then
all calls share one session and commit together (e.g. outcomes + links + cursor of one batch).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import lru_cache
from operator import itemgetter
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Dialect, Engine, Table, exists, func, select, true
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Compiled
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.sql.compiler import SQLCompiler

from koppel.errors import ErrorCategory, KoppelError, NotFound, RunTakenOver
from koppel.secrets import SecretBox
from koppel.store.database import WRITE_OPTION
from koppel.store.tables import Base, FlowRow, IntegrationRow, RunRow

# Keys per IN (...) list: well under SQLite's and PostgreSQL's bound-parameter limits.
IN_CHUNK = 500
T = TypeVar("T")
FROZEN_TRANSACTION_SECONDS = 15
"""How long PostgreSQL keeps a fenced write transaction whose process went silent in it."""


class StoreError(KoppelError):
    """The store was asked for something its rules do not allow (two flows of one name...)."""

    category = ErrorCategory.CONFIGURATION


class NotFoundError(StoreError, NotFound, LookupError):
    """The thing does not exist, or belongs to another tenant (the two are not told apart)."""

    category = ErrorCategory.NOT_FOUND


def chunks(items: Sequence[T], size: int = IN_CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass(frozen=True)
class StoreContext:
    engine: Engine
    secret_box: SecretBox
    retention: timedelta
    payload_excerpts: bool
    tenant_id: int | None = None
    session: Session | None = None
    fence: tuple[str, str] | None = None
    """(run id, owner): every write transaction first checks that the run is still this
    execution's, and raises `RunTakenOver` if another took it over (see `Store.fenced`)."""

    def scoped(self, tenant_id: int) -> StoreContext:
        return replace(self, tenant_id=tenant_id)

    def fenced(self, run_id: str, owner: str) -> StoreContext:
        return replace(self, fence=(run_id, owner))

    def check_fence(self, session: Session) -> None:
        """Refuse the transaction if the fenced run has another owner. The run's row stays
        locked until the transaction ends (SQLite: the write lock), so a takeover cannot land
        between this check and the writes after it. A run not started yet has no owner.

        On PostgreSQL the transaction also ends on its own once its process has gone silent in
        it for `FROZEN_TRANSACTION_SECONDS` (paused, its host frozen): the run's row lock goes
        with it, so the worker that takes the run over is not kept waiting behind a process
        that may never wake (and if it wakes, its transaction is gone and its writes refused).
        """
        if self.fence is None:
            return
        run_id, owner = self.fence
        columns: list[Any] = [RunRow.executor, RunRow.owner]
        if session.get_bind().dialect.name == "postgresql":
            timeout = str(FROZEN_TRANSACTION_SECONDS * 1000)
            columns.append(func.set_config("idle_in_transaction_session_timeout", timeout, True))
        row = session.execute(
            select(*columns).where(RunRow.id == run_id).with_for_update(of=RunRow)
        ).first()
        if row is not None and row.owner is not None and row.owner != owner:
            raise RunTakenOver(run_id, row.executor, owner.split("/")[0])

    def bound(self, session: Session) -> StoreContext:
        return replace(self, session=session)

    @contextmanager
    def read(self) -> Iterator[Session]:
        if self.session is not None:
            yield self.session
            return
        with Session(self.engine) as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        if self.session is not None:
            yield self.session
            self.session.flush()
            return
        with Session(self.engine.execution_options(**{WRITE_OPTION: True})) as session:
            self.check_fence(session)
            yield session
            session.commit()

    # Tenant scope: conditions that are always true for an unscoped (system) store.

    def in_tenant(self, tenant_column: InstrumentedAttribute[int]) -> ColumnElement[bool]:
        return true() if self.tenant_id is None else tenant_column == self.tenant_id

    def in_tenant_integrations(self, column: InstrumentedAttribute[int]) -> ColumnElement[bool]:
        if self.tenant_id is None:
            return true()
        return column.in_(
            select(IntegrationRow.id).where(IntegrationRow.tenant_id == self.tenant_id)
        )

    def in_tenant_flows(self, column: InstrumentedAttribute[int]) -> ColumnElement[bool]:
        if self.tenant_id is None:
            return true()
        return column.in_(
            select(FlowRow.id)
            .join(IntegrationRow, FlowRow.integration_id == IntegrationRow.id)
            .where(IntegrationRow.tenant_id == self.tenant_id)
        )

    def require_tenant(self, tenant_id: int) -> None:
        if self.tenant_id is not None and tenant_id != self.tenant_id:
            raise NotFoundError(f"tenant {tenant_id} not found")

    def require_integration(self, session: Session, integration_id: int) -> None:
        found = session.scalar(
            select(
                exists().where(
                    IntegrationRow.id == integration_id, self.in_tenant(IntegrationRow.tenant_id)
                )
            )
        )
        if not found:
            raise NotFoundError(f"integration {integration_id} not found")

    def require_flow(self, session: Session, flow_id: int) -> None:
        found = session.scalar(
            select(exists().where(FlowRow.id == flow_id, self.in_tenant_flows(FlowRow.id)))
        )
        if not found:
            raise NotFoundError(f"flow {flow_id} not found")


def upsert(
    session: Session,
    table: type[Base],
    rows: Iterable[Mapping[str, Any]],
    *,
    key: Sequence[str],
    update: Sequence[str],
    update_values: Mapping[str, Any] | None = None,
    only_if: ColumnElement[bool] | None = None,
) -> None:
    """INSERT ... ON CONFLICT (key) DO UPDATE, on SQLite and PostgreSQL alike.

    Rows with the same key keep the last one (PostgreSQL refuses to touch a row twice in one
    statement). `update` columns take the new row's value; `update_values` overrides them with
    SQL expressions; `only_if` limits the update (the insert always happens when the key is new).
    Every row names the same columns, and every column that has a default.
    """
    key_of = itemgetter(*key)
    unique = {key_of(row): row for row in rows}
    if not unique:
        return
    connection = session.connection()
    core_table = table.__table__
    assert isinstance(core_table, Table)
    # Sorted by key: concurrent writers then lock rows in one order and cannot deadlock.
    ordered = [unique[k] for k in sorted(unique)]
    columns = tuple(ordered[0])
    if update_values is None and only_if is None:
        compiled = _plain_upsert(connection.dialect, core_table, columns, tuple(key), tuple(update))
    else:
        compiled = _compile_upsert(
            connection.dialect, core_table, columns, key, update, update_values, only_if
        )
    # Straight to the driver's executemany: SQLAlchemy's own executemany builds and processes
    # the parameters of every row one by one (a third of a batch's store time); here each
    # column is processed once per distinct value (a batch's rows share their timestamp).
    connection.exec_driver_sql(compiled.string, _parameters(compiled, core_table, ordered))


def _compile_upsert(
    dialect: Dialect,
    table: Table,
    columns: Sequence[str],
    key: Sequence[str],
    update: Sequence[str],
    update_values: Mapping[str, Any] | None,
    only_if: ColumnElement[bool] | None,
) -> Compiled:
    insert = postgresql.insert if dialect.name == "postgresql" else sqlite.insert
    statement = insert(table)
    values: dict[str, Any] = {column: statement.excluded[column] for column in update}
    values.update(update_values or {})
    if values:
        statement = statement.on_conflict_do_update(index_elements=key, set_=values, where=only_if)
    else:
        statement = statement.on_conflict_do_nothing(index_elements=key)
    return statement.compile(dialect=dialect, column_keys=list(columns), for_executemany=True)


@lru_cache(maxsize=128)
def _plain_upsert(
    dialect: Dialect,
    table: Table,
    columns: tuple[str, ...],
    key: tuple[str, ...],
    update: tuple[str, ...],
) -> Compiled:
    """An upsert without SQL of its own (no `update_values`, no `only_if`: those carry values),
    compiled once per shape: building and compiling it took a millisecond, per batch and table."""
    return _compile_upsert(dialect, table, columns, key, update, None, None)


def _parameters(compiled: Compiled, table: Table, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
    """The driver's parameters for `rows`, processed as SQLAlchemy processes them (UTC
    timestamps, JSON text, booleans), in the compiled statement's bind order."""
    assert isinstance(compiled, SQLCompiler)
    dialect = compiled.dialect
    binds = {name: bind for bind, name in compiled.bind_names.items()}
    names = (
        list(compiled.positiontup) if compiled.positional and compiled.positiontup else list(binds)
    )
    columns: list[list[Any]] = []
    for name in names:
        bind = binds[name]
        shared = name not in rows[0]
        if shared and name in table.c:
            # Its default would be evaluated per row by SQLAlchemy's execution, not here.
            raise StoreError(f"upsert into {table.name}: the rows must name column {name!r}")
        # A name no row has is a value of `only_if` or `update_values`, the same for all.
        raw = [bind.effective_value] * len(rows) if shared else [row[name] for row in rows]
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if process is None:
            columns.append(raw)
            continue
        done: dict[int, Any] = {}
        for value in raw:
            if id(value) not in done:
                done[id(value)] = process(value)
        columns.append([done[id(value)] for value in raw])
    if compiled.positional:
        return list(zip(*columns, strict=True))
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


__all__ = ["NotFoundError", "StoreContext", "StoreError", "chunks", "upsert"]
