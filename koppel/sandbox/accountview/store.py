"""The sandbox's state in SQLite: one table per AccountView table, one column per dictionary field.

The server answers on a uvicorn thread while tests and the demo read and edit from their own
thread, so every use of the connection goes through `transaction()`, which holds one lock.
Indexes cover the paging keys, the upsert keys, CNG_DATE and the lookup fields, so keyset paging
and list lookups stay fast with 100,000 articles.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

from koppel.sandbox.accountview import assumptions
from koppel.sandbox.accountview.dictionary import TableDef, tables
from koppel.sandbox.accountview.values import sql_type

ROW_ID = "_rowid"
COMPANY = "_company"

_LOOKUP_INDEXES: dict[str, tuple[str, ...]] = {
    "CONTACT": ("MAIL_BUS",),
    "DEL_ADDR": ("SUB_NR",),
    "SO_HDR": ("ORD_REF", "RPL_INV"),
    "SO_LINE": ("ORD_NR",),
    "ARTICLE": ("AG_CODE", "EAN_CODE"),
}
_UNIQUE_CODES: dict[str, tuple[str, ...]] = {"SO_HDR": ("ORD_NR",)}
_NUMBERED_CODES: dict[str, tuple[str, ...]] = {"SO_HDR": ("ORD_NR",), "CONTACT": ("SUB_NR",)}
"""Code columns the sandbox numbers itself (`next_number`) when a post leaves them empty."""

_AUTH_SCHEMA = """
CREATE TABLE IF NOT EXISTS companies (
    id TEXT PRIMARY KEY, code TEXT NOT NULL, description TEXT NOT NULL, position INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS oauth_clients (
    client_id TEXT PRIMARY KEY, client_secret TEXT NOT NULL, name TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS oauth_codes (
    code_hash TEXT PRIMARY KEY, client_id TEXT NOT NULL, redirect_uri TEXT NOT NULL,
    scope TEXT NOT NULL, expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS oauth_tokens (
    token_hash TEXT PRIMARY KEY, kind TEXT NOT NULL, client_id TEXT NOT NULL,
    scope TEXT NOT NULL, expires_at REAL
);
"""


def quote(name: str) -> str:
    """An SQL identifier for a dictionary name (dictionary names are [A-Z0-9_] only)."""
    if not name.replace("_", "").isalnum():
        raise ValueError(f"not a field name: {name!r}")
    return f'"{name}"'


def table_sql(table: str) -> str:
    return quote(f"T_{table}")


class Store:
    """The SQLite connection, its lock and the schema."""

    def __init__(self, db_path: str = ":memory:") -> None:
        self._conn = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        with self.transaction() as conn:
            for statement in _AUTH_SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            for table in tables().values():
                _create_table(conn, table)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """The connection inside one transaction: committed on success, rolled back on error."""
        with self._lock:
            if self._conn.in_transaction:
                yield self._conn
                return
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _create_table(conn: sqlite3.Connection, table: TableDef) -> None:
    columns = [f"{ROW_ID} INTEGER PRIMARY KEY AUTOINCREMENT", f"{COMPANY} TEXT NOT NULL"]
    columns += [f"{quote(f.name)} {sql_type(f)}" for f in table.fields.values()]
    name = table_sql(table.name)
    conn.execute(f"CREATE TABLE IF NOT EXISTS {name} ({', '.join(columns)})")
    order = key_order(table)
    unique = {*([table.key] if table.key is not None else []), *_UNIQUE_CODES.get(table.name, ())}
    for column in sorted(unique):
        conn.execute(
            f"CREATE UNIQUE INDEX IF NOT EXISTS {quote(f'U_{table.name}_{column}')} "
            f"ON {name} ({COMPANY}, {quote(column)})"
        )
    plain = [c for c in _LOOKUP_INDEXES.get(table.name, ()) if c in table.fields]
    if "CNG_DATE" in table.fields:
        plain.append("CNG_DATE")
    for column in plain:
        conn.execute(
            f"CREATE INDEX IF NOT EXISTS {quote(f'I_{table.name}_{column}')} "
            f"ON {name} ({COMPANY}, {quote(column)}, {order})"
        )
    # The next number of a code is looked up for every order (and debtor) a post inserts
    # without one; without this index, each was a scan of the table, and a page of orders took
    # longer the more orders there were (1.7 ms an order at 5,000 orders, 0.24 at the first).
    for column in _NUMBERED_CODES.get(table.name, ()):
        conn.execute(
            f"CREATE INDEX IF NOT EXISTS {quote(f'N_{table.name}_{column}')} "
            f"ON {name} ({COMPANY}, {_as_number(column)}) WHERE {_is_number(column)}"
        )


def key_order(table: TableDef) -> str:
    """The SQL column a table's rows are ordered by: its key, or insertion order."""
    return quote(table.key) if table.key is not None else ROW_ID


def next_rec_id(conn: sqlite3.Connection, company: str, table: str) -> int:
    """The next REC_ID number of a table in a company (REC_IDs are zero-padded numbers)."""
    row = conn.execute(
        f"SELECT MAX(REC_ID) FROM {table_sql(table)} WHERE {COMPANY} = ?", (company,)
    ).fetchone()
    return int(row[0]) + 1 if row[0] else 1


def format_rec_id(number: int) -> str:
    return f"{number:0{assumptions.REC_ID_WIDTH}d}"


def next_number(conn: sqlite3.Connection, company: str, table: str, column: str, first: int) -> int:
    """Highest purely numeric value of a code column plus one (at least `first`)."""
    row = conn.execute(
        f"SELECT MAX({_as_number(column)}) FROM {table_sql(table)} "
        f"WHERE {COMPANY} = ? AND {_is_number(column)}",
        (company,),
    ).fetchone()
    return max(first, int(row[0]) + 1 if row[0] is not None else first)


def _as_number(column: str) -> str:
    return f"CAST({quote(column)} AS INTEGER)"


def _is_number(column: str) -> str:
    """Non-empty and digits only; `next_number`'s query and its index share this text (SQLite
    uses a partial index only for a query whose WHERE contains the index's)."""
    return f"{quote(column)} != '' AND {quote(column)} NOT GLOB '*[^0-9]*'"


def insert_row(
    conn: sqlite3.Connection, company: str, table: str, values: dict[str, Any]
) -> sqlite3.Row:
    """Insert one complete row; returns it as stored (with its internal row number, EXT_KEY)."""
    row: sqlite3.Row = conn.execute(
        _insert_sql(table, tuple(values)), (company, *values.values())
    ).fetchone()
    return row


def update_row(
    conn: sqlite3.Connection, table: str, row_id: int, values: dict[str, Any]
) -> sqlite3.Row:
    """Change the given columns of one row; returns it as stored."""
    row: sqlite3.Row = conn.execute(
        _update_sql(table, tuple(values)), (*values.values(), row_id)
    ).fetchone()
    return row


@cache
def _insert_sql(table: str, columns: tuple[str, ...]) -> str:
    """A post writes hundreds of rows with the same columns: their statement is made once
    (quoting every name for every row was a tenth of a post's time)."""
    names = ", ".join([COMPANY, *(quote(c) for c in columns)])
    marks = ", ".join("?" for _ in range(len(columns) + 1))
    return f"INSERT INTO {table_sql(table)} ({names}) VALUES ({marks}) RETURNING *"


@cache
def _update_sql(table: str, columns: tuple[str, ...]) -> str:
    assignments = ", ".join(f"{quote(c)} = ?" for c in columns)
    return f"UPDATE {table_sql(table)} SET {assignments} WHERE {ROW_ID} = ? RETURNING *"


def find_row(
    conn: sqlite3.Connection, company: str, table: str, column: str, value: Any
) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute(
        f"SELECT * FROM {table_sql(table)} WHERE {COMPANY} = ? AND {quote(column)} = ? "
        f"ORDER BY {ROW_ID} LIMIT 1",
        (company, value),
    ).fetchone()
    return row


def row_exists(conn: sqlite3.Connection, company: str, table: str, column: str, value: Any) -> bool:
    """Whether a row has this value: a post checks every reference of every row it writes,
    and reading the whole row (an article has over a hundred columns) was most of that."""
    found = conn.execute(
        f"SELECT 1 FROM {table_sql(table)} WHERE {COMPANY} = ? AND {quote(column)} = ? LIMIT 1",
        (company, value),
    ).fetchone()
    return found is not None


__all__ = [
    "COMPANY",
    "ROW_ID",
    "Store",
    "find_row",
    "format_rec_id",
    "insert_row",
    "key_order",
    "next_number",
    "next_rec_id",
    "quote",
    "row_exists",
    "table_sql",
    "update_row",
]
