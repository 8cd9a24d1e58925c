"""The sandbox's state: every Parts Pim resource in SQLite, with the contract's rules and paging.

Each resource is one table: an integer id, the record as JSON, created/updated timestamps and the
few columns that are searched, indexed or unique. The HTTP app and Python callers (tests, the
generator, fixtures) share this one code path, so a record changed from Python obeys the same rules,
gets a new `updated_at` and fires the same webhook event as one changed over the API.

Paging (see docs/connectors/partspim.md): every listing walks the immutable id (keyset, not
offset), `updated_since` only filters. So each row is returned at most once per listing, and a row
that exists and matches when paging starts is returned exactly once, whatever changes meanwhile;
a row changed behind the cursor is left for the next listing (its `updated_at` is later than the
moment this listing started).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from pydantic import ValidationError

from koppel.sandbox.partspim.models import (
    Body,
    CategoryIn,
    DocumentIn,
    EmployeeIn,
    PaymentMethodIn,
    PaymentTermIn,
    ProductIn,
    RelationIn,
    StockIn,
    WarehouseIn,
    WebhookIn,
    field_errors,
)

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 500
MAX_FILTER_VALUES = 100
MAX_STOCK_BATCH = 100
CENT = Decimal("0.01")
PRICE_TOLERANCE = Decimal("0.01")
ORDER_STATUSES = ("new", "processing", "shipped", "completed", "cancelled")
INVOICE_STATUSES = ("open", "paid", "cancelled")

ChangeListener = Callable[[str, dict[str, Any]], None]


class ApiError(Exception):
    """An answer other than success: HTTP status plus the contract's error list."""

    def __init__(self, status: int, errors: list[dict[str, Any]]) -> None:
        super().__init__(f"HTTP {status}: {errors}")
        self.status = status
        self.errors = errors

    def body(self) -> dict[str, Any]:
        return {"errors": self.errors}


def invalid(field: str | None, message: str, code: str = "invalid") -> ApiError:
    return ApiError(422, [{"field": field, "code": code, "message": message}])


def not_found(what: str, record_id: object) -> ApiError:
    return ApiError(404, [{"field": None, "code": "not_found", "message": f"{what} {record_id}"}])


def money(value: Decimal) -> str:
    """Amounts as strings with at least two decimals: "12.50", "0.0350"."""
    value = value.normalize()
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -2:
        value = value.quantize(CENT)
    return f"{value:f}"


def quantity(value: Decimal) -> str:
    return f"{value.normalize():f}"


def timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(value: str, field: str) -> str:
    """Any ISO 8601 date-time (naive = UTC) -> the store's sortable UTC text."""
    try:
        moment = datetime.fromisoformat(value.strip().replace(" ", "+"))
    except ValueError:
        raise invalid(field, "must be an ISO 8601 date-time, e.g. 2024-05-01T12:00:00Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return timestamp(moment)


class Clock:
    """Strictly increasing timestamps, so (updated_at, id) order equals the order of changes."""

    def __init__(self) -> None:
        self._last = datetime.min.replace(tzinfo=UTC)

    def now(self) -> str:
        moment = datetime.now(UTC)
        if moment <= self._last:
            moment = self._last + timedelta(microseconds=1)
        self._last = moment
        return timestamp(moment)


@dataclass(frozen=True)
class Resource:
    """One collection of the API and the table behind it."""

    name: str  # URL segment
    table: str
    event: str  # singular, for webhook events and messages
    model: type[Body]
    required: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()  # searched / unique columns kept next to the JSON
    unique: Mapping[str, str] = field(default_factory=dict)  # column -> field it comes from
    filters: Mapping[str, str] = field(default_factory=dict)  # list query parameter -> column
    writable: bool = True  # POST/PATCH over HTTP (master data is managed in Parts Pim itself)
    number_format: str | None = None  # the store numbers new records: "ORD-{:06d}"


RESOURCES: dict[str, Resource] = {
    r.name: r
    for r in (
        Resource(
            "products",
            "products",
            "product",
            ProductIn,
            ("sku", "name"),
            filters={"sku": "sku"},  # product and variant SKUs, through product_skus
        ),
        Resource(
            "categories",
            "categories",
            "category",
            CategoryIn,
            ("name",),
            ("code", "parent_id"),
            {"code": "code"},
            {"code": "code", "parent_id": "parent_id"},
        ),
        Resource(
            "stock",
            "stock",
            "stock",
            StockIn,
            ("sku", "warehouse_id"),
            ("sku", "warehouse_id"),
            {},
            {"sku": "sku", "warehouse_id": "warehouse_id"},
        ),
        Resource(
            "relations",
            "relations",
            "relation",
            RelationIn,
            ("type",),
            ("email_lower", "number"),
            {"email_lower": "email"},
            {"email": "email_lower", "number": "number"},
            number_format="1{:05d}",
        ),
        Resource(
            "orders",
            "orders",
            "order",
            DocumentIn,
            ("relation_id", "employee_number", "lines"),
            ("reference", "number", "status", "relation_id"),
            {"reference": "reference"},
            {
                "reference": "reference",
                "number": "number",
                "status": "status",
                "relation_id": "relation_id",
            },
            number_format="ORD-{:06d}",
        ),
        Resource(
            "invoices",
            "invoices",
            "invoice",
            DocumentIn,
            ("relation_id", "employee_number", "lines"),
            ("reference", "number", "status", "relation_id"),
            {"reference": "reference"},
            {
                "reference": "reference",
                "number": "number",
                "status": "status",
                "relation_id": "relation_id",
            },
            number_format="INV-{:06d}",
        ),
        Resource(
            "payment-terms",
            "payment_terms",
            "payment term",
            PaymentTermIn,
            ("code", "name", "days"),
            ("code",),
            {"code": "code"},
            {"code": "code"},
            writable=False,
        ),
        Resource(
            "payment-methods",
            "payment_methods",
            "payment method",
            PaymentMethodIn,
            ("code", "name"),
            ("code",),
            {"code": "code"},
            {"code": "code"},
            writable=False,
        ),
        Resource(
            "warehouses",
            "warehouses",
            "warehouse",
            WarehouseIn,
            ("code", "name"),
            ("code",),
            {"code": "code"},
            {"code": "code"},
            writable=False,
        ),
        Resource(
            "employees",
            "employees",
            "employee",
            EmployeeIn,
            ("number", "name"),
            ("number",),
            {"number": "number"},
            {"number": "number"},
            writable=False,
        ),
    )
}
# Webhook event names: "<event>.created" / "<event>.updated" for the resources that change.
WEBHOOK_EVENTS = tuple(
    f"{RESOURCES[name].event}.{action}"
    for name in ("products", "categories", "stock", "relations", "orders", "invoices")
    for action in ("created", "updated")
)
_LIST_PARAMETERS = frozenset({"limit", "cursor", "updated_since", "after_id", "id"})


def _schema() -> str:
    statements = [
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS product_skus (id INTEGER PRIMARY KEY, sku TEXT NOT NULL "
        "UNIQUE, product_id INTEGER NOT NULL)",
        "CREATE INDEX IF NOT EXISTS product_skus_product ON product_skus(product_id)",
        "CREATE TABLE IF NOT EXISTS webhooks (id INTEGER PRIMARY KEY, url TEXT NOT NULL, "
        "events TEXT NOT NULL, secret TEXT NOT NULL, created_at TEXT NOT NULL)",
    ]
    for resource in RESOURCES.values():
        table = resource.table
        extra = "".join(f", {c}" for c in resource.columns)
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {table} (id INTEGER PRIMARY KEY, data TEXT NOT NULL, "
            f"created_at TEXT NOT NULL, updated_at TEXT NOT NULL{extra})"
        )
        statements.append(f"CREATE INDEX IF NOT EXISTS {table}_updated ON {table}(updated_at, id)")
        for column in resource.columns:
            if column in resource.unique:
                statements.append(
                    f"CREATE UNIQUE INDEX IF NOT EXISTS {table}_{column} ON {table}({column})"
                )
            else:
                statements.append(
                    f"CREATE INDEX IF NOT EXISTS {table}_{column} ON {table}({column})"
                )
    statements.append("CREATE UNIQUE INDEX IF NOT EXISTS stock_row ON stock(warehouse_id, sku)")
    return ";\n".join(statements) + ";"


def _encode_cursor(state: dict[str, Any]) -> str:
    raw = json.dumps(state, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(token: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        state = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise invalid("cursor", "is not a cursor this API handed out") from None
    if not isinstance(state, dict) or state.get("v") != 1:
        raise invalid("cursor", "is not a cursor this API handed out")
    return state


def _query_fingerprint(params: Mapping[str, str]) -> str:
    items = sorted((k, v) for k, v in params.items() if k not in ("cursor", "limit", "after_id"))
    return hashlib.sha256(json.dumps(items).encode()).hexdigest()[:16]


class PartsPimStore:
    """All sandbox state behind one lock; safe to use from the server thread and the test thread."""

    def __init__(self, db_path: str = ":memory:") -> None:
        self._db = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode = WAL" if db_path != ":memory:" else "SELECT 1")
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._lock = threading.RLock()
        self._clock = Clock()
        self._listeners: list[ChangeListener] = []
        with self._lock:
            self._db.executescript(_schema())
            self.api_key = self._meta("api_key", lambda: "ppk_" + secrets.token_urlsafe(24))
            self.company = self._meta("company", lambda: "Sandbox Onderdelen B.V.")

    # -- plumbing --------------------------------------------------------------------------

    def _meta(self, key: str, default: Callable[[], str]) -> str:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        if row is not None:
            return str(row["value"])
        value = default()
        self._db.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, value))
        return value

    def set_company(self, name: str) -> None:
        with self._lock:
            self._db.execute("UPDATE meta SET value = ? WHERE key = 'company'", (name,))
            self.company = name

    def on_change(self, listener: ChangeListener) -> None:
        """Call `listener(event, record)` after every committed create or update."""
        self._listeners.append(listener)

    def _emit(self, event: str, record: dict[str, Any]) -> None:
        for listener in self._listeners:
            listener(event, record)

    def now(self) -> str:
        with self._lock:
            return self._clock.now()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @staticmethod
    def resource(name: str) -> Resource:
        try:
            return RESOURCES[name]
        except KeyError:
            raise not_found("resource", name) from None

    def sql(self, query: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Raw read access for tests: rows as dicts."""
        with self._lock:
            return [dict(row) for row in self._db.execute(query, params).fetchall()]

    def bulk_insert(
        self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
    ) -> None:
        """Fast path for the generator: rows that are already valid, in one transaction."""
        placeholders = ", ".join("?" for _ in columns)
        statement = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})"
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(statement, rows)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _render(self, row: sqlite3.Row) -> dict[str, Any]:
        record: dict[str, Any] = json.loads(_listed(row))
        return record

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    # -- reading ---------------------------------------------------------------------------

    def get(self, name: str, record_id: int) -> dict[str, Any]:
        resource = self.resource(name)
        with self._lock:
            row = self._db.execute(
                f"SELECT id, data, created_at, updated_at FROM {resource.table} WHERE id = ?",
                (record_id,),
            ).fetchone()
        if row is None:
            raise not_found(resource.event, record_id)
        return self._render(row)

    def all(self, name: str) -> list[dict[str, Any]]:
        """Every record of a resource in id order (tests and small fixtures)."""
        resource = self.resource(name)
        with self._lock:
            rows = self._db.execute(
                f"SELECT id, data, created_at, updated_at FROM {resource.table} ORDER BY id"
            ).fetchall()
        return [self._render(row) for row in rows]

    def count(self, name: str) -> int:
        resource = self.resource(name)
        with self._lock:
            return int(self._db.execute(f"SELECT count(*) FROM {resource.table}").fetchone()[0])

    def list_page(self, name: str, params: Mapping[str, str]) -> bytes:
        """One page of a listing, as the JSON body `{"data": [...], "next_cursor": ...}`.

        Each record's stored JSON goes into the body as it is (`_listed`): decoding every
        record to encode it again was most of the sandbox's work per call (17 ms a page of
        500 products, now 6), and the benchmarks run it on the cores of the sync they
        measure."""
        resource = self.resource(name)
        extra = {"created_since"} if resource.table in ("orders", "invoices") else set()
        for key in params:
            if key not in _LIST_PARAMETERS and key not in resource.filters and key not in extra:
                raise invalid(key, f"is not a query parameter of {resource.name}")
        limit = self._limit(params.get("limit"))
        where, args = self._filters(resource, params)
        fingerprint = _query_fingerprint(params)
        if params.get("cursor"):
            state = _decode_cursor(params["cursor"])
            if state.get("q") != fingerprint:
                raise invalid("cursor", "belongs to a listing with other filters")
            after = int(state["i"])
        else:
            after = self._after_id(params.get("after_id"))
        where.append("id > ?")
        args.append(after)
        if params.get("updated_since") is not None:
            where.append("updated_at >= ?")
            args.append(parse_timestamp(params["updated_since"], "updated_since"))
        query = (
            f"SELECT id, data, created_at, updated_at FROM {resource.table} "
            f"WHERE {' AND '.join(where)} ORDER BY id LIMIT ?"
        )
        with self._lock:
            rows = self._db.execute(query, [*args, limit + 1]).fetchall()
        page = rows[:limit]
        next_cursor = None
        if len(rows) > limit:
            next_cursor = _encode_cursor({"v": 1, "q": fingerprint, "i": page[-1]["id"]})
        listed = ",".join(_listed(row) for row in page)
        return f'{{"data":[{listed}],"next_cursor":{json.dumps(next_cursor)}}}'.encode()

    @staticmethod
    def _after_id(value: str | None) -> int:
        if value is None:
            return 0
        if not value.isdigit():
            raise invalid("after_id", "must be a record id (a whole number)")
        return int(value)

    @staticmethod
    def _limit(value: str | None) -> int:
        if value is None:
            return DEFAULT_PAGE_SIZE
        if not value.isdigit() or not 1 <= int(value) <= MAX_PAGE_SIZE:
            raise invalid("limit", f"must be a whole number from 1 to {MAX_PAGE_SIZE}")
        return int(value)

    def _filters(
        self, resource: Resource, params: Mapping[str, str]
    ) -> tuple[list[str], list[Any]]:
        where: list[str] = []
        args: list[Any] = []
        for parameter, raw in params.items():
            if parameter in ("id", *resource.filters):
                values = [v.strip() for v in raw.split(",") if v.strip()]
                if len(values) > MAX_FILTER_VALUES:
                    raise invalid(parameter, f"takes at most {MAX_FILTER_VALUES} values")
                column = "id" if parameter == "id" else resource.filters[parameter]
                if parameter in ("id", "warehouse_id", "relation_id", "parent_id"):
                    if not all(v.isdigit() for v in values):
                        raise invalid(parameter, "must be a comma-separated list of numbers")
                    values_any: list[Any] = [int(v) for v in values]
                elif parameter == "email":
                    values_any = [v.lower() for v in values]
                else:
                    values_any = list(values)
                marks = ", ".join("?" for _ in values_any) or "NULL"
                if resource.table == "products" and parameter == "sku":
                    where.append(
                        f"id IN (SELECT product_id FROM product_skus WHERE sku IN ({marks}))"
                    )
                else:
                    where.append(f"{column} IN ({marks})")
                args += values_any
            elif parameter == "created_since":
                where.append("created_at >= ?")
                args.append(parse_timestamp(raw, "created_since"))
        return where, args

    # -- writing ---------------------------------------------------------------------------

    def _parse(self, resource: Resource, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise invalid(None, "the body must be a JSON object")
        try:
            model = resource.model.model_validate(body)
        except ValidationError as error:
            raise ApiError(422, field_errors(error)) from None
        return model.model_dump(mode="json", exclude_unset=True)

    def create(
        self, name: str, body: Any, *, record_id: int | None = None, over_api: bool = True
    ) -> dict[str, Any]:
        """Insert one record; `record_id` and master data only from Python (fixtures)."""
        resource = self.resource(name)
        if over_api and not resource.writable:
            raise ApiError(405, [{"field": None, "code": "read_only", "message": "read only"}])
        fields = self._parse(resource, body)
        missing = [f for f in resource.required if fields.get(f) in (None, [], "")]
        if missing:
            raise ApiError(
                422, [{"field": f, "code": "required", "message": "is required"} for f in missing]
            )
        with self._lock, self._transaction():
            now = self._clock.now()
            columns = self._prepare(resource, fields, None)
            record_id = self._insert(resource, record_id, fields, columns, now)
            if resource.number_format is not None:
                number = resource.number_format.format(record_id)
                fields["number"] = number
                self._db.execute(
                    f"UPDATE {resource.table} SET number = ?, data = ? WHERE id = ?",
                    (number, json.dumps(fields), record_id),
                )
            self._after_write(resource, record_id, fields)
            record = self.get(name, record_id)
        self._emit(f"{resource.event}.created", record)
        return record

    def update(
        self, name: str, record_id: int, body: Any, *, over_api: bool = True
    ) -> dict[str, Any]:
        """PATCH: the fields sent replace the stored ones (nested objects as a whole)."""
        resource = self.resource(name)
        if over_api and not resource.writable:
            raise ApiError(405, [{"field": None, "code": "read_only", "message": "read only"}])
        patch = self._parse(resource, body)
        for name_ in resource.required:
            if name_ in patch and patch[name_] in (None, [], ""):
                raise invalid(name_, "must not be empty", "required")
        with self._lock, self._transaction():
            existing = self.get(name, record_id)
            stored = {k: v for k, v in existing.items() if k not in ("id", "created_at")}
            stored.pop("updated_at")
            if resource.table == "products":
                _reprice(stored, patch)
            fields = {**stored, **patch}
            columns = self._prepare(resource, fields, existing)
            assignments = ", ".join(f"{c} = ?" for c in columns)
            self._check_unique(resource, columns, record_id)
            self._db.execute(
                f"UPDATE {resource.table} SET data = ?, updated_at = ?"
                f"{', ' + assignments if assignments else ''} WHERE id = ?",
                (json.dumps(fields), self._clock.now(), *columns.values(), record_id),
            )
            self._after_write(resource, record_id, fields)
            record = self.get(name, record_id)
        self._emit(f"{resource.event}.updated", record)
        return record

    def delete(self, name: str, record_id: int) -> None:
        """A record removed in Parts Pim itself (its admin area; the API has no DELETE): no
        listing or lookup returns it any more."""
        resource = self.resource(name)
        with self._lock, self._transaction():
            self.get(name, record_id)  # 404 when there is no such record
            if resource.table == "products":
                self._db.execute("DELETE FROM product_skus WHERE product_id = ?", (record_id,))
            self._db.execute(f"DELETE FROM {resource.table} WHERE id = ?", (record_id,))

    def upsert_stock(self, rows: Any) -> list[dict[str, Any]]:
        """PUT /stock: set stock rows by (warehouse_id, sku); all rows or none."""
        if not isinstance(rows, list) or not rows:
            raise invalid("data", "must be a non-empty list of stock rows")
        if len(rows) > MAX_STOCK_BATCH:
            raise invalid("data", f"takes at most {MAX_STOCK_BATCH} rows")
        resource = RESOURCES["stock"]
        parsed: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for index, row in enumerate(rows):
            try:
                fields = self._parse(resource, row)
                parsed.append(fields)
                for name in resource.required:
                    if fields.get(name) is None:
                        raise invalid(name, "is required", "required")
            except ApiError as error:
                errors += [
                    {
                        **e,
                        "field": f"data[{index}].{e['field']}" if e["field"] else f"data[{index}]",
                    }
                    for e in error.errors
                ]
        events: list[tuple[str, dict[str, Any]]] = []
        with self._lock:
            for index, fields in enumerate(parsed):
                if errors:
                    break
                if not self._sku_exists(fields["sku"]):
                    errors.append(
                        {"field": f"data[{index}].sku", "code": "invalid", "message": "unknown SKU"}
                    )
                if not self._exists("warehouses", fields["warehouse_id"]):
                    errors.append(
                        {
                            "field": f"data[{index}].warehouse_id",
                            "code": "invalid",
                            "message": f"unknown warehouse {fields['warehouse_id']}",
                        }
                    )
            if errors:
                raise ApiError(422, errors)
            with self._transaction():
                for fields in parsed:
                    row = self._db.execute(
                        "SELECT id, data FROM stock WHERE warehouse_id = ? AND sku = ?",
                        (fields["warehouse_id"], fields["sku"]),
                    ).fetchone()
                    now = self._clock.now()
                    if row is None:
                        data = {"sku": fields["sku"], "warehouse_id": fields["warehouse_id"]}
                        data.update({k: "0" for k in ("on_hand", "reserved", "incoming")})
                    else:
                        data = json.loads(row["data"])
                    for key in ("on_hand", "reserved", "incoming"):
                        if fields.get(key) is not None:
                            data[key] = quantity(Decimal(fields[key]))
                    if row is None:
                        cursor = self._db.execute(
                            "INSERT INTO stock (data, created_at, updated_at, sku, warehouse_id) "
                            "VALUES (?, ?, ?, ?, ?)",
                            (json.dumps(data), now, now, data["sku"], data["warehouse_id"]),
                        )
                        stock_id = int(cursor.lastrowid or 0)
                    else:
                        stock_id = int(row["id"])
                        self._db.execute(
                            "UPDATE stock SET data = ?, updated_at = ? WHERE id = ?",
                            (json.dumps(data), now, stock_id),
                        )
                    action = "created" if row is None else "updated"
                    events.append((f"stock.{action}", self.get("stock", stock_id)))
        for event, record in events:
            self._emit(event, record)
        return [record for _, record in events]

    def _insert(
        self,
        resource: Resource,
        record_id: int | None,
        fields: dict[str, Any],
        columns: dict[str, Any],
        now: str,
    ) -> int:
        self._check_unique(resource, columns, record_id or -1)
        names = ["id", "data", "created_at", "updated_at", *columns]
        values = [record_id, json.dumps(fields), now, now, *columns.values()]
        marks = ", ".join("?" for _ in names)
        try:
            cursor = self._db.execute(
                f"INSERT INTO {resource.table} ({', '.join(names)}) VALUES ({marks})", values
            )
        except sqlite3.IntegrityError:
            raise ApiError(
                409, [{"field": "id", "code": "duplicate", "message": f"id {record_id} exists"}]
            ) from None
        return int(cursor.lastrowid or 0)

    def _check_unique(self, resource: Resource, columns: Mapping[str, Any], own_id: int) -> None:
        for column, field_name in resource.unique.items():
            value = columns.get(column)
            if value is None:
                continue
            row = self._db.execute(
                f"SELECT id FROM {resource.table} WHERE {column} = ? AND id != ?", (value, own_id)
            ).fetchone()
            if row is not None:
                raise ApiError(
                    409,
                    [
                        {
                            "field": field_name,
                            "code": "duplicate",
                            "message": f"is already used by {resource.event} {row['id']}",
                            "existing_id": row["id"],
                        }
                    ],
                )

    def _exists(self, name: str, record_id: Any) -> bool:
        table = RESOURCES[name].table
        found = self._db.execute(f"SELECT 1 FROM {table} WHERE id = ?", (record_id,)).fetchone()
        return found is not None

    def _sku_exists(self, sku: str) -> bool:
        found = self._db.execute("SELECT 1 FROM product_skus WHERE sku = ?", (sku,)).fetchone()
        return found is not None

    def _require_reference(self, name: str, field_name: str, record_id: Any) -> None:
        if record_id is not None and not self._exists(name, record_id):
            raise invalid(field_name, f"unknown {RESOURCES[name].event} {record_id}")

    # -- per-resource rules ----------------------------------------------------------------

    def _prepare(
        self, resource: Resource, fields: dict[str, Any], existing: dict[str, Any] | None
    ) -> dict[str, Any]:
        """Apply defaults and cross-field rules in place; return the indexed column values."""
        table = resource.table
        if table == "products":
            self._prepare_product(fields, existing)
        elif table == "categories":
            self._prepare_category(fields, existing)
        elif table == "relations":
            self._prepare_relation(fields)
        elif table in ("orders", "invoices"):
            self._prepare_document(table, fields)
        elif table == "employees":
            fields.setdefault("active", True)
        columns: dict[str, Any] = {}
        for column in resource.columns:
            if column == "email_lower":
                email = fields.get("email")
                columns[column] = email.lower() if email else None
            elif column != "number" or resource.number_format is None:
                columns[column] = fields.get(column)
        return columns

    def _prepare_product(self, fields: dict[str, Any], existing: dict[str, Any] | None) -> None:
        fields.setdefault("type", "simple")
        if existing is not None and fields["type"] != existing["type"]:
            raise invalid("type", "cannot change after the product is created")
        fields.setdefault("currency", "EUR")
        fields.setdefault("vat_rate", "21")
        for name in ("category_ids", "variant_attributes", "variants"):
            fields.setdefault(name, [])
        for name in ("attributes", "characteristics", "custom_fields"):
            fields.setdefault(name, {})
        for name in ("short_description", "long_description", "ean"):
            fields.setdefault(name, None)
        rate = Decimal(fields["vat_rate"])
        fields["vat_rate"] = quantity(rate)
        _settle_prices(fields, rate, "")
        for category_id in fields["category_ids"]:
            self._require_reference("categories", "category_ids", category_id)
        if fields["type"] == "simple" and (fields["variants"] or fields["variant_attributes"]):
            wrong = "variants" if fields["variants"] else "variant_attributes"
            raise invalid(wrong, "only a configurable product has variants")
        seen: set[str] = set()
        for index, variant in enumerate(fields["variants"]):
            where = f"variants[{index}]"
            if not variant.get("sku"):
                raise invalid(f"{where}.sku", "is required", "required")
            if variant["sku"] in seen or variant["sku"] == fields["sku"]:
                raise invalid(f"{where}.sku", "is used twice in this product", "duplicate")
            seen.add(variant["sku"])
            variant.setdefault("attributes", {})
            for axis in fields["variant_attributes"]:
                if axis not in variant["attributes"]:
                    raise invalid(f"{where}.attributes", f"must give a value for {axis}")
            for name in ("name", "ean", "price_excl_vat", "price_incl_vat"):
                variant.setdefault(name, None)
            variant.setdefault("custom_fields", {})
            _settle_prices(variant, rate, f"{where}.")

    def _prepare_category(self, fields: dict[str, Any], existing: dict[str, Any] | None) -> None:
        fields.setdefault("code", None)
        fields.setdefault("parent_id", None)
        fields.setdefault("position", 0)
        parent = fields["parent_id"]
        self._require_reference("categories", "parent_id", parent)
        if existing is not None:
            ancestor = parent
            while ancestor is not None:
                if ancestor == existing["id"]:
                    raise invalid("parent_id", "would make the category its own ancestor")
                ancestor = self.get("categories", ancestor)["parent_id"]

    def _prepare_relation(self, fields: dict[str, Any]) -> None:
        fields.setdefault("role", "customer")
        for name in (
            "company_name",
            "first_name",
            "last_name",
            "contact_person",
            "email",
            "phone",
            "vat_number",
            "billing_address",
            "shipping_address",
            "payment_term_id",
            "payment_method_id",
        ):
            fields.setdefault(name, None)
        fields.setdefault("custom_fields", {})
        if fields["type"] == "company" and not fields["company_name"]:
            raise invalid("company_name", "is required for a company", "required")
        if fields["type"] == "person" and not fields["last_name"]:
            raise invalid("last_name", "is required for a person", "required")
        if fields["type"] == "person" and fields["contact_person"]:
            raise invalid("contact_person", "only a company has a contact person")
        self._require_reference("payment-terms", "payment_term_id", fields["payment_term_id"])
        self._require_reference("payment-methods", "payment_method_id", fields["payment_method_id"])

    def _prepare_document(self, table: str, fields: dict[str, Any]) -> None:
        if table == "orders":
            for name in ("order_id", "due_date"):
                if name in fields:
                    raise invalid(name, "is a field of invoices, not of orders")
        relation_id = fields["relation_id"]
        self._require_reference("relations", "relation_id", relation_id)
        relation = self.get("relations", relation_id)
        number = fields["employee_number"]
        employee = self._db.execute("SELECT 1 FROM employees WHERE number = ?", (number,))
        if employee.fetchone() is None:
            raise invalid("employee_number", f"unknown employee number {number}")
        statuses = ORDER_STATUSES if table == "orders" else INVOICE_STATUSES
        fields.setdefault("status", statuses[0])
        if fields["status"] not in statuses:
            raise invalid("status", f"must be one of {', '.join(statuses)}")
        fields.setdefault("reference", None)
        fields.setdefault("order_date", date.today().isoformat())
        fields.setdefault("currency", "EUR")
        fields.setdefault("prices_include_vat", False)
        fields.setdefault("comment", None)
        fields.setdefault("custom_fields", {})
        fields.setdefault("billing_address", relation["billing_address"])
        fields.setdefault("shipping_address", fields["billing_address"])
        fields.setdefault("payment_term_id", relation["payment_term_id"])
        fields.setdefault("payment_method_id", relation["payment_method_id"])
        self._require_reference("payment-terms", "payment_term_id", fields["payment_term_id"])
        self._require_reference("payment-methods", "payment_method_id", fields["payment_method_id"])
        shipping = Decimal(fields.get("shipping_cost") or "0")
        fields["shipping_cost"] = money(shipping)
        include_vat = bool(fields["prices_include_vat"])
        total_excl = total_incl = Decimal(0)
        for index, line in enumerate(fields["lines"]):
            where = f"lines[{index}]"
            for name in ("sku", "quantity"):
                if line.get(name) is None:
                    raise invalid(f"{where}.{name}", "is required", "required")
            item = self._sku_item(line["sku"])
            if item is None:
                raise invalid(f"{where}.sku", f"unknown SKU {line['sku']}")
            if item["type"] == "configurable":
                raise invalid(
                    f"{where}.sku", "is a configurable product: order one of its variants"
                )
            rate = Decimal(line.get("vat_rate") or item["vat_rate"])
            default_price = item["price_incl_vat" if include_vat else "price_excl_vat"] or "0"
            price = Decimal(line.get("price") or default_price)
            amount = price * Decimal(line["quantity"])
            factor = 1 + rate / 100
            excl = amount / factor if include_vat else amount
            total_excl += excl
            total_incl += excl * factor
            line.update(
                price=money(price),
                quantity=quantity(Decimal(line["quantity"])),
                vat_rate=quantity(rate),
                description=line.get("description") or item["name"],
            )
        total_excl += shipping
        total_incl += shipping * Decimal("1.21")
        total_excl = total_excl.quantize(CENT, ROUND_HALF_UP)
        total_incl = total_incl.quantize(CENT, ROUND_HALF_UP)
        fields["total_excl_vat"] = money(total_excl)
        fields["total_vat"] = money(total_incl - total_excl)
        fields["total_incl_vat"] = money(total_incl)
        if table == "invoices":
            fields.setdefault("order_id", None)
            self._require_reference("orders", "order_id", fields["order_id"])
            if not fields.get("due_date"):
                days = 0
                if fields["payment_term_id"] is not None:
                    days = int(self.get("payment-terms", fields["payment_term_id"])["days"])
                order_date = date.fromisoformat(fields["order_date"])
                fields["due_date"] = (order_date + timedelta(days=days)).isoformat()

    def _sku_item(self, sku: str) -> dict[str, Any] | None:
        """The product or variant a SKU names, with the prices and name an order line needs."""
        row = self._db.execute(
            "SELECT p.data FROM product_skus s JOIN products p ON p.id = s.product_id "
            "WHERE s.sku = ?",
            (sku,),
        ).fetchone()
        if row is None:
            return None
        product: dict[str, Any] = json.loads(row["data"])
        item = dict(product)
        for variant in product.get("variants", []):
            if variant["sku"] == sku:
                item.update({k: v for k, v in variant.items() if v is not None})
                item["type"] = "variant"
                item["name"] = variant.get("name") or product["name"]
        return item

    def _after_write(self, resource: Resource, record_id: int, fields: dict[str, Any]) -> None:
        """Products: keep the SKU register (product and variant SKUs) and give variants ids."""
        if resource.table != "products":
            return
        skus = [fields["sku"], *(v["sku"] for v in fields["variants"])]
        placeholders = ", ".join("?" for _ in skus)
        taken = self._db.execute(
            f"SELECT sku, product_id FROM product_skus WHERE sku IN ({placeholders}) "
            "AND product_id != ?",
            (*skus, record_id),
        ).fetchone()
        if taken is not None:
            field_name = "sku"
            if taken["sku"] != fields["sku"]:
                index = skus.index(taken["sku"]) - 1
                field_name = f"variants[{index}].sku"
            raise ApiError(
                409,
                [
                    {
                        "field": field_name,
                        "code": "duplicate",
                        "message": f"is already used by product {taken['product_id']}",
                        "existing_id": taken["product_id"],
                    }
                ],
            )
        self._db.execute(
            f"DELETE FROM product_skus WHERE product_id = ? AND sku NOT IN ({placeholders})",
            (record_id, *skus),
        )
        for sku in skus:
            self._db.execute(
                "INSERT OR IGNORE INTO product_skus (sku, product_id) VALUES (?, ?)",
                (sku, record_id),
            )
        ids = dict(
            self._db.execute(
                "SELECT sku, id FROM product_skus WHERE product_id = ?", (record_id,)
            ).fetchall()
        )
        fields["variants"] = [{**v, "id": ids[v["sku"]]} for v in fields["variants"]]
        self._db.execute(
            "UPDATE products SET data = ? WHERE id = ?", (json.dumps(fields), record_id)
        )

    # -- webhooks --------------------------------------------------------------------------

    def create_webhook(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise invalid(None, "the body must be a JSON object")
        try:
            parsed = WebhookIn.model_validate(body)
        except ValidationError as error:
            raise ApiError(422, field_errors(error)) from None
        if not parsed.url:
            raise invalid("url", "is required", "required")
        if not parsed.events:
            raise invalid("events", "is required", "required")
        for index, event in enumerate(parsed.events):
            if event not in WEBHOOK_EVENTS:
                raise invalid(f"events[{index}]", f"must be one of {', '.join(WEBHOOK_EVENTS)}")
        secret = "whsec_" + secrets.token_urlsafe(24)
        with self._lock:
            now = self._clock.now()
            cursor = self._db.execute(
                "INSERT INTO webhooks (url, events, secret, created_at) VALUES (?, ?, ?, ?)",
                (parsed.url, json.dumps(parsed.events), secret, now),
            )
            webhook_id = int(cursor.lastrowid or 0)
        return {
            "id": webhook_id,
            "url": parsed.url,
            "events": parsed.events,
            "secret": secret,
            "created_at": now,
        }

    def webhooks(self, *, with_secrets: bool = False) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM webhooks ORDER BY id").fetchall()
        hooks = []
        for row in rows:
            hook = {
                "id": row["id"],
                "url": row["url"],
                "events": json.loads(row["events"]),
                "created_at": row["created_at"],
            }
            if with_secrets:
                hook["secret"] = row["secret"]
            hooks.append(hook)
        return hooks

    def delete_webhook(self, webhook_id: int) -> None:
        with self._lock:
            cursor = self._db.execute("DELETE FROM webhooks WHERE id = ?", (webhook_id,))
        if cursor.rowcount == 0:
            raise not_found("webhook", webhook_id)


class _Transaction:
    """BEGIN ... COMMIT, or ROLLBACK when the block raises (the connection is in autocommit)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN")

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        self._db.execute("ROLLBACK" if exc_type is not None else "COMMIT")


def _reprice(stored: dict[str, Any], patch: dict[str, Any]) -> None:
    """Prepare a product PATCH: the price sent wins, the other one is computed again.

    Variants in a PATCH are upserted by SKU; variants not sent stay as they are. A new VAT rate
    alone recomputes every price incl. VAT from the price excl. VAT.
    """
    new_rate = "vat_rate" in patch
    _drop_stale_price(stored, patch, new_rate)
    if "variants" not in patch:
        if new_rate:
            for variant in stored.get("variants", []):
                _drop_stale_price(variant, {}, new_rate)
        return
    merged = {v["sku"]: dict(v) for v in stored.get("variants", [])}
    extra: list[dict[str, Any]] = []
    for variant in patch["variants"]:
        variant.pop("id", None)
        sku = variant.get("sku")
        if sku in merged:
            _drop_stale_price(merged[sku], variant, new_rate)
            merged[sku].update(variant)
        else:
            extra.append(variant)
    for sku, variant in merged.items():
        if not any(v.get("sku") == sku for v in patch["variants"]):
            _drop_stale_price(variant, {}, new_rate)
    patch["variants"] = [*merged.values(), *extra]


def _drop_stale_price(stored: dict[str, Any], patch: dict[str, Any], new_rate: bool) -> None:
    if "price_excl_vat" in patch and "price_incl_vat" not in patch:
        stored["price_incl_vat"] = None
    elif "price_incl_vat" in patch and "price_excl_vat" not in patch:
        stored["price_excl_vat"] = None
    elif new_rate and stored.get("price_excl_vat") is not None:
        stored["price_incl_vat"] = None


def _settle_prices(fields: dict[str, Any], rate: Decimal, prefix: str) -> None:
    """One price given: compute the other with the VAT rate. Both given: they must agree."""
    excl_text, incl_text = fields.get("price_excl_vat"), fields.get("price_incl_vat")
    factor = 1 + rate / 100
    if excl_text is not None and incl_text is not None:
        excl, incl = Decimal(excl_text), Decimal(incl_text)
        expected = (excl * factor).quantize(CENT, ROUND_HALF_UP)
        if abs(expected - incl) > PRICE_TOLERANCE:
            raise invalid(
                f"{prefix}price_incl_vat",
                f"does not match price_excl_vat {money(excl)} at {quantity(rate)}% VAT "
                f"(expected {money(expected)})",
            )
    elif excl_text is not None:
        excl = Decimal(excl_text)
        incl = (excl * factor).quantize(CENT, ROUND_HALF_UP)
    elif incl_text is not None:
        incl = Decimal(incl_text)
        excl = (incl / factor).quantize(Decimal("0.0001"), ROUND_HALF_UP)
    else:
        fields["price_excl_vat"] = fields["price_incl_vat"] = None
        return
    fields["price_excl_vat"] = money(excl)
    fields["price_incl_vat"] = money(incl)


def _listed(row: sqlite3.Row) -> str:
    """A stored record as the API shows it, as JSON text: its id, its stored fields as they
    were stored, its times. Should a stored field share a name with those, the later member
    wins, as the stored times do."""
    fields = row["data"][1:-1]  # an object's members, without its braces
    times = json.dumps(row["created_at"]), json.dumps(row["updated_at"])
    members = f"{fields}," if fields else ""
    return f'{{"id":{row["id"]},{members}"created_at":{times[0]},"updated_at":{times[1]}}}'


__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_FILTER_VALUES",
    "MAX_PAGE_SIZE",
    "MAX_STOCK_BATCH",
    "RESOURCES",
    "WEBHOOK_EVENTS",
    "ApiError",
    "PartsPimStore",
    "Resource",
    "money",
    "quantity",
    "timestamp",
]
