"""Repositories for what keeps syncing correct: links (the ID map), cursors, per-key locks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Dialect,
    Select,
    bindparam,
    delete,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from koppel.store.context import IN_CHUNK, StoreContext, chunks, upsert
from koppel.store.records import Cursor, Link, LinkEntry
from koppel.store.tables import (
    CursorRow,
    IntegrationRow,
    JsonText,
    KeyLockRow,
    LinkRow,
    utc_now,
)

_NO_EXTRA = JsonText("{}")


_LINK_COLUMNS = [
    LinkRow.integration_id,
    LinkRow.entity,
    LinkRow.source_key,
    LinkRow.target_key,
    LinkRow.content_hash,
    LinkRow.extra,
    LinkRow.created_at,
    LinkRow.updated_at,
    LinkRow.pending,
]
"""Links are read as plain rows of these columns, in the order of `Link`'s fields, not as ORM
objects: a batch reads hundreds of links, and building and tracking an object for each cost
more than the query."""


def _link(row: Any) -> Link:
    """A row of `_LINK_COLUMNS` as a Link, by position: a third of the cost of nine look-ups
    by name (its `extra` is the dict the JSON column decoded for this row alone)."""
    return Link(*row)


@dataclass(frozen=True)
class _KeyedStatement:
    """A statement on the links of one integration and entity whose key is IN a list, compiled
    for one dialect and one number of keys, run on the driver.

    Through the ORM session a read of 500 keys cost ten times what SQLite took to answer it
    (statement caching, the ORM's execution and result layers: 1.9 ms against 0.2 ms when no
    key had a link, 8 against 0.9 ms when all had), and a batch makes three such reads and
    one confirming UPDATE."""

    sql: str
    parameters: tuple[str, ...]
    """The statement's parameter names, in the driver's order."""
    positional: bool
    keys: tuple[str, ...]
    """The names of the IN list's parameters."""
    binds: tuple[tuple[str, Callable[[Any], Any]], ...]
    """(parameter name, SQLAlchemy's bind processor) of the values that have one (a timestamp
    in UTC, on SQLite a flag as 0 or 1)."""
    results: tuple[tuple[int, Callable[[Any], Any]], ...]
    """(column position, SQLAlchemy's result processor) of the selected columns that have one:
    the JSON `extra`, the UTC timestamps, and on SQLite the `pending` flag."""

    def execute(
        self, session: Session, values: dict[str, Any], keys: Sequence[str]
    ) -> CursorResult[Any]:
        """Run it for these keys (at most the statement's number; the last one fills the list
        up, which an IN list does not mind), the values processed as SQLAlchemy processes them."""
        given = dict(values)
        given.update(
            zip(self.keys, [*keys, *[keys[-1]] * (len(self.keys) - len(keys))], strict=True)
        )
        for name, process in self.binds:
            given[name] = process(given[name])
        if self.positional:
            parameters: Any = tuple(given[name] for name in self.parameters)
        else:
            parameters = given
        return session.connection().exec_driver_sql(self.sql, parameters)

    def links(self, session: Session, values: dict[str, Any], keys: Sequence[str]) -> list[Link]:
        """The links a read of `_LINK_COLUMNS` finds, processed as SQLAlchemy processes them."""
        rows = [list(row) for row in self.execute(session, values, keys)]
        for position, process in self.results:
            for row in rows:
                row[position] = process(row[position])
        return [_link(row) for row in rows]


def _key_count(keys: int) -> int:
    """How many keys a statement takes for `keys` of them: the next power of two, at most
    `IN_CHUNK`, so that a few statements serve every batch size."""
    return min(1 << max(0, keys - 1).bit_length(), IN_CHUNK)


def _keyed(dialect: Dialect, statement: ClauseElement, keys: int) -> _KeyedStatement:
    compiled = statement.compile(dialect=dialect)
    assert isinstance(compiled, SQLCompiler)
    if compiled.positional and compiled.positiontup:
        parameters = tuple(compiled.positiontup)
    else:
        parameters = tuple(compiled.binds)
    binds = []
    for name in parameters:
        process = compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            binds.append((name, process))
    results = []
    if isinstance(statement, Select):
        for position, attribute in enumerate(_LINK_COLUMNS):
            column_type = LinkRow.__table__.c[attribute.key].type
            process = column_type.dialect_impl(dialect).result_processor(dialect, None)
            if process is not None:
                results.append((position, process))
    names = tuple(f"key_{n}" for n in range(keys))
    return _KeyedStatement(
        compiled.string, parameters, compiled.positional, names, tuple(binds), tuple(results)
    )


def _of_keys(column: str, keys: int) -> list[ColumnElement[bool]]:
    return [
        LinkRow.integration_id == bindparam("integration_id"),
        LinkRow.entity == bindparam("entity"),
        LinkRow.__table__.c[column].in_([bindparam(f"key_{n}") for n in range(keys)]),
    ]


@lru_cache(maxsize=64)
def _link_read(dialect: Dialect, by: str, keys: int, scoped: bool) -> _KeyedStatement:
    """`SELECT _LINK_COLUMNS` of the links whose `by` is one of `keys` keys, in the tenant's
    integrations when `scoped`."""
    conditions = _of_keys(by, keys)
    if scoped:
        conditions.append(
            LinkRow.integration_id.in_(
                select(IntegrationRow.id).where(IntegrationRow.tenant_id == bindparam("tenant"))
            )
        )
    return _keyed(dialect, select(*_LINK_COLUMNS).where(*conditions), keys)


@lru_cache(maxsize=16)
def _link_confirm(dialect: Dialect, keys: int) -> _KeyedStatement:
    """`UPDATE links SET pending = false, updated_at` of the pending links of `keys` source
    keys."""
    statement = (
        update(LinkRow)
        .where(*_of_keys("source_key", keys), LinkRow.pending.is_(True))
        .values(pending=bindparam("pending"), updated_at=bindparam("updated_at"))
    )
    return _keyed(dialect, statement, keys)


class LinkRepository:
    """Source key -> target key per integration and entity (the OCA connector's "binders")."""

    def __init__(self, context: StoreContext) -> None:
        self._context = context

    def get_many(
        self, integration_id: int, entity: str, source_keys: Sequence[str]
    ) -> dict[str, Link]:
        """The links of those source keys that have one, by source key."""
        links = self._read(integration_id, entity, "source_key", source_keys)
        return {link.source_key: link for link in links}

    def find_by_target(
        self, integration_id: int, entity: str, target_keys: Sequence[str]
    ) -> list[Link]:
        """Links pointing at these target keys (several sources may share one target), in
        source-key order.

        Sorted here, not by the query: with ORDER BY source_key SQLite walks the primary key
        (every link of the entity, a batch's cost growing with the catalogue) instead of the
        target-key index.
        """
        links = self._read(integration_id, entity, "target_key", target_keys)
        return sorted(links, key=lambda link: link.source_key)

    def _read(self, integration_id: int, entity: str, by: str, keys: Sequence[str]) -> list[Link]:
        """The links whose `by` column holds one of `keys`, in the tenant's integrations."""
        found: list[Link] = []
        values: dict[str, Any] = {"integration_id": integration_id, "entity": entity}
        scoped = self._context.tenant_id is not None
        if scoped:
            values["tenant"] = self._context.tenant_id
        with self._context.read() as session:
            dialect = session.get_bind().dialect
            for part in chunks(list(dict.fromkeys(keys))):
                read = _link_read(dialect, by, _key_count(len(part)), scoped)
                found.extend(read.links(session, values, part))
        return found

    def page(
        self, integration_id: int, entity: str, *, after: str | None = None, limit: int = 1000
    ) -> list[Link]:
        """Confirmed links of an entity in source-key order, `limit` after the key `after`: a
        reconciliation walks them to find target records whose source is gone."""
        with self._context.read() as session:
            rows = session.execute(
                select(*_LINK_COLUMNS)
                .where(
                    LinkRow.integration_id == integration_id,
                    LinkRow.entity == entity,
                    LinkRow.pending.is_(False),
                    LinkRow.source_key > after if after is not None else true(),
                    self._context.in_tenant_integrations(LinkRow.integration_id),
                )
                .order_by(LinkRow.source_key)
                .limit(limit)
            )
            return [_link(row) for row in rows]

    def upsert_many(self, integration_id: int, entity: str, entries: Sequence[LinkEntry]) -> None:
        """Create or replace links; the last entry wins when a source key repeats."""
        if not entries:
            return
        with self._context.write() as session:
            self._context.require_integration(session, integration_id)
            self._upsert(session, integration_id, entity, entries)

    def confirm_many(self, integration_id: int, entity: str, entries: Sequence[LinkEntry]) -> None:
        """Confirm links written pending with these very target keys and hashes (a flow's
        claim before its target write): one UPDATE of their flag, not each row written again.

        A pending link that is gone meanwhile (a reconciliation dropped it) is written anew,
        as `upsert_many` would.
        """
        if not entries:
            return
        keys = list(dict.fromkeys(entry.source_key for entry in entries))
        now = utc_now()
        values = {
            "integration_id": integration_id,
            "entity": entity,
            "pending": False,
            "updated_at": now,
        }
        with self._context.write() as session:
            self._context.require_integration(session, integration_id)
            dialect = session.get_bind().dialect
            confirmed = 0
            for part in chunks(keys):
                confirm = _link_confirm(dialect, _key_count(len(part)))
                confirmed += confirm.execute(session, values, part).rowcount
            if confirmed < len(keys):
                self._upsert(session, integration_id, entity, entries)

    @staticmethod
    def _upsert(
        session: Session, integration_id: int, entity: str, entries: Sequence[LinkEntry]
    ) -> None:
        now = utc_now()
        rows = [
            {
                "integration_id": integration_id,
                "entity": entity,
                "source_key": entry.source_key,
                "target_key": entry.target_key,
                "content_hash": entry.content_hash,
                "extra": dict(entry.extra) if entry.extra else _NO_EXTRA,
                "pending": entry.pending,
                "created_at": now,
                "updated_at": now,
            }
            for entry in entries
        ]
        upsert(
            session,
            LinkRow,
            rows,
            key=("integration_id", "entity", "source_key"),
            update=("target_key", "content_hash", "extra", "pending", "updated_at"),
        )

    def delete_pending(self, integration_id: int, entity: str, source_keys: Sequence[str]) -> None:
        """Drop the pending links of these source keys (their write was refused); confirmed
        links stay."""
        with self._context.write() as session:
            self._context.require_integration(session, integration_id)
            for keys in chunks(list(dict.fromkeys(source_keys))):
                session.execute(
                    delete(LinkRow).where(
                        LinkRow.integration_id == integration_id,
                        LinkRow.entity == entity,
                        LinkRow.source_key.in_(keys),
                        LinkRow.pending.is_(True),
                    )
                )

    def forget(
        self, integration_id: int, entity: str, *, drop: Sequence[str], stale: Sequence[str]
    ) -> None:
        """Make the next sync of these source keys write them again, in one transaction.

        `drop`: their target records are gone, so their links go and the flow looks them up and
        creates them anew; `stale`: their target records differ from what was sent, so their
        links lose their content hash and the flow updates them even though the source did not
        change (a reconciliation's "sync these").
        """
        with self._context.write() as session:
            self._context.require_integration(session, integration_id)
            where = (LinkRow.integration_id == integration_id, LinkRow.entity == entity)
            for keys in chunks(list(dict.fromkeys(drop))):
                session.execute(delete(LinkRow).where(*where, LinkRow.source_key.in_(keys)))
            for keys in chunks(list(dict.fromkeys(stale))):
                session.execute(
                    update(LinkRow)
                    .where(*where, LinkRow.source_key.in_(keys))
                    .values(content_hash=None, updated_at=utc_now())
                )


class CursorRepository:
    """How far each flow has read. Set it only after the records it covers are recorded."""

    def __init__(self, context: StoreContext) -> None:
        self._context = context

    def get(self, flow_id: int) -> Cursor | None:
        with self._context.read() as session:
            row = session.scalar(
                select(CursorRow).where(
                    CursorRow.flow_id == flow_id, self._context.in_tenant_flows(CursorRow.flow_id)
                )
            )
            if row is None:
                return None
            return Cursor(
                flow_id=row.flow_id,
                value=row.value,
                tie_keys=list(row.tie_keys),
                updated_at=row.updated_at,
            )

    def set(self, flow_id: int, value: str, tie_keys: Sequence[str] = ()) -> None:
        """`tie_keys`: source keys already processed whose cursor value equals `value`."""
        with self._context.write() as session:
            self._context.require_flow(session, flow_id)
            upsert(
                session,
                CursorRow,
                [
                    {
                        "flow_id": flow_id,
                        "value": value,
                        "tie_keys": list(dict.fromkeys(tie_keys)),
                        "updated_at": utc_now(),
                    }
                ],
                key=("flow_id",),
                update=("value", "tie_keys", "updated_at"),
            )


class KeyLockRepository:
    """Per-key writer locks shared by every process on the database (guarantee 2).

    A lock expires, so a crashed holder cannot block a key forever: choose a `ttl` longer than a
    batch takes, and acquire again (same owner) to extend it. Locks are not tenant data:
    `scope` names what is locked, e.g. "integration:3:customers".
    """

    def __init__(self, context: StoreContext) -> None:
        self._context = context

    def acquire_many(
        self,
        scope: str,
        keys: Sequence[str],
        owner: str,
        *,
        ttl: timedelta,
        now: datetime | None = None,
    ) -> set[str]:
        """Take the free or expired keys (and extend our own); returns the keys now held.

        The caller processes the keys it got and leaves the others for later.
        """
        unique = list(dict.fromkeys(keys))
        if not unique:
            return set()
        now = now or utc_now()
        expires_at = now + ttl
        held: set[str] = set()
        with self._context.write() as session:
            upsert(
                session,
                KeyLockRow,
                [
                    {"scope": scope, "key": key, "owner": owner, "expires_at": expires_at}
                    for key in unique
                ],
                key=("scope", "key"),
                update=("owner", "expires_at"),
                only_if=or_(KeyLockRow.owner == owner, KeyLockRow.expires_at <= now),
            )
            for part in chunks(unique):
                held.update(
                    session.scalars(
                        select(KeyLockRow.key).where(
                            KeyLockRow.scope == scope,
                            KeyLockRow.key.in_(part),
                            KeyLockRow.owner == owner,
                        )
                    )
                )
        return held

    def release_many(self, scope: str, keys: Sequence[str], owner: str) -> None:
        """Release our locks on these keys; locks that another owner took over stay."""
        with self._context.write() as session:
            for part in chunks(list(dict.fromkeys(keys))):
                session.execute(
                    delete(KeyLockRow).where(
                        KeyLockRow.scope == scope,
                        KeyLockRow.key.in_(part),
                        KeyLockRow.owner == owner,
                    )
                )


__all__ = ["CursorRepository", "KeyLockRepository", "LinkRepository"]
