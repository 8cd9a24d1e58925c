"""POST /accountviewdata: positional rows to inserts and updates, all or nothing.

The update rule, the system-assigned numbers and the validation order are decisions recorded in
assumptions.py; the checks themselves come from the data dictionary.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from koppel.sandbox.accountview import assumptions
from koppel.sandbox.accountview.dictionary import (
    FIELD_TYPES,
    NUMBER_TYPES,
    FieldDef,
    TableDef,
    mandatory_fields,
    tables,
)
from koppel.sandbox.accountview.errors import ApiError, RowError
from koppel.sandbox.accountview.reads import business_object, render
from koppel.sandbox.accountview.store import (
    COMPANY,
    ROW_ID,
    find_row,
    format_rec_id,
    insert_row,
    next_number,
    next_rec_id,
    quote,
    row_exists,
    table_sql,
    update_row,
)
from koppel.sandbox.accountview.values import ValueRuleError, coerce

_ROW_ID, _HEADER_ID, _ROW_ACTION = "ROWID", "HEADERID", "ROWACTION"


@dataclass(frozen=True)
class PostedRow:
    position: int
    row_id: str
    header_id: str | None
    values: dict[str, Any]


@dataclass(frozen=True)
class PostedTable:
    table: TableDef
    rows: tuple[PostedRow, ...]


@dataclass(frozen=True)
class PostRequest:
    bo: assumptions.BusinessObjectDef
    header: PostedTable
    details: tuple[PostedTable, ...]


def member(obj: Any, name: str) -> Any:
    """A JSON object's member, whatever the case of its name (clients send `name`, `Name`)."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            if isinstance(key, str) and key.lower() == name.lower():
                return value
    return None


def _as_list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ApiError(400, f"{what} must be an array")
    return value


def _posted_table(definition: Any, data: Any, allowed: Sequence[str], detail: bool) -> PostedTable:
    name = str(member(definition, "Name") or "").strip().upper()
    if name not in allowed:
        raise ApiError(400, f"Table '{name}' is not part of this business object")
    table = tables()[name]
    names: list[str] = []
    for field in _as_list(member(definition, "Fields"), f"{name}: Fields"):
        field_name = str(member(field, "Name") or "").strip().upper()
        field_type = str(member(field, "FieldType") or "C").strip().upper()
        if not field_name:
            raise ApiError(400, f"{name}: a field definition has no Name")
        if field_type not in FIELD_TYPES:
            raise ApiError(400, f"{name}: field {field_name}: unknown FieldType '{field_type}'")
        if field_name in names:
            raise ApiError(400, f"{name}: field {field_name} is defined twice")
        names.append(field_name)
    if detail and _HEADER_ID not in names:
        raise ApiError(400, f"{name}: detail rows need a HeaderId field")
    rows: list[PostedRow] = []
    for position, row in enumerate(_as_list(member(data, "Rows"), f"{name}: Rows"), start=1):
        values = _as_list(member(row, "Values"), f"{name} row {position}: Values")
        if len(values) != len(names):
            raise ApiError(
                400, f"{name} row {position}: {len(values)} values for {len(names)} fields"
            )
        by_name = dict(zip(names, values, strict=True))
        row_id = by_name.pop(_ROW_ID, position)
        header_id = by_name.pop(_HEADER_ID, None)
        by_name.pop(_ROW_ACTION, None)
        rows.append(
            PostedRow(
                position=position,
                row_id=str(row_id),
                header_id=None if header_id is None else str(header_id),
                values=by_name,
            )
        )
    return PostedTable(table, tuple(rows))


def parse_post(body: Any) -> PostRequest:
    """The JSON body to a request; ApiError(400) when it is not shaped as the API expects."""
    if not isinstance(body, dict):
        raise ApiError(400, "The body must be a JSON object")
    bo = business_object(member(body, "BusinessObject"))
    table = member(body, "Table")
    table_data = member(body, "TableData")
    if not isinstance(table, dict) or not isinstance(table_data, dict):
        raise ApiError(400, "Table and TableData are required")
    header = _posted_table(
        member(table, "Definition"), member(table_data, "Data"), (bo.table,), detail=False
    )
    definitions = _as_list(member(table, "DetailDefinitions"), "DetailDefinitions")
    data = _as_list(member(table_data, "DetailData"), "DetailData")
    if len(definitions) != len(data):
        raise ApiError(400, "DetailData needs one entry per DetailDefinition")
    details = tuple(
        _posted_table(d, rows, bo.details, detail=True)
        for d, rows in zip(definitions, data, strict=True)
    )
    return PostRequest(bo, header, details)


class _Writer:
    """Writes the rows of one POST inside the caller's transaction."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        bo: assumptions.BusinessObjectDef,
        company: str,
        now: str,
        user: str,
        system: bool,
    ) -> None:
        self.conn = conn
        self.bo = bo
        self.system = system
        self.company = company
        self.now = now
        self.user = user
        self.found: set[tuple[str, str, Any]] = set()
        """References already found in this post (the 500 articles of a page share a handful
        of groups and VAT codes); a post deletes no row they could point to."""
        self.mandatory: dict[str, list[FieldDef]] = {}

    def write(
        self, table: TableDef, row: PostedRow, link: tuple[str, str] | None = None
    ) -> sqlite3.Row:
        """Insert or update one row; returns it as stored. `link` = (column, header's value)."""

        def fail(field: str, rule: str) -> RowError:
            return RowError(table.name, row.position, row.row_id, row.header_id, field, rule)

        key = table.key
        values: dict[str, Any] = {}
        for name, raw in row.values.items():
            field = table.field(name)
            if field is None:
                raise fail(name, f"does not exist in table {table.name}")
            is_update_key = field.name == key and link is None
            if field.read_only and not is_update_key and not self.system:
                raise fail(field.name, "is read-only")
            try:
                values[field.name] = coerce(field, raw)
            except ValueRuleError as error:
                raise fail(field.name, str(error)) from None
        existing = None
        if key is not None and values.get(key):
            existing = find_row(self.conn, self.company, table.name, key, values[key])
            if existing is None and key == "REC_ID" and not self.system:
                raise fail(key, f"no {table.name} row has REC_ID '{values[key]}'")
        if link is not None:
            values[link[0]] = link[1]
        self._check_mandatory(table, values, existing, fail)
        self._check_references(table, values, fail)
        if existing is None:
            return self._insert(table, values, fail)
        changes = dict(values)
        if "CNG_DATE" in table.fields:
            changes.update(CNG_DATE=self.now, CNG_NR=existing["CNG_NR"] + 1, CNG_USR=self.user)
        return update_row(self.conn, table.name, existing[ROW_ID], changes)

    def _check_mandatory(
        self, table: TableDef, values: dict[str, Any], existing: Any, fail: Any
    ) -> None:
        assigned = {"REC_ID", "SUB_NR" if table.name == "CONTACT" else ""}
        required = self.mandatory.get(table.name)
        if required is None:
            required = self.mandatory[table.name] = mandatory_fields(self.bo, table)
        for field in required:
            if field.name in assigned:
                continue
            if field.name not in values:
                if existing is None:
                    raise fail(field.name, "is mandatory")
                continue
            if field.type not in NUMBER_TYPES and values[field.name] == "":
                raise fail(field.name, "is mandatory and may not be empty")

    def _check_references(self, table: TableDef, values: dict[str, Any], fail: Any) -> None:
        for (owner, column), (target, target_column) in assumptions.REFERENCES.items():
            value = values.get(column)
            if owner != table.name or not value or (target, target_column, value) in self.found:
                continue
            if not row_exists(self.conn, self.company, target, target_column, value):
                raise fail(column, f"'{value}' is not an existing {target}.{target_column}")
            self.found.add((target, target_column, value))

    def _insert(self, table: TableDef, values: dict[str, Any], fail: Any) -> sqlite3.Row:
        if "REC_ID" in table.fields and not values.get("REC_ID"):
            values["REC_ID"] = format_rec_id(next_rec_id(self.conn, self.company, table.name))
        if table.name == "CONTACT" and not values.get("SUB_NR"):
            number = next_number(
                self.conn, self.company, "CONTACT", "SUB_NR", assumptions.FIRST_SUB_NR
            )
            values["SUB_NR"] = str(number)
        if table.name == "SO_HDR":
            if not values.get("ORD_NR"):
                number = next_number(
                    self.conn, self.company, "SO_HDR", "ORD_NR", assumptions.FIRST_ORD_NR
                )
                values["ORD_NR"] = str(number)
            elif row_exists(self.conn, self.company, "SO_HDR", "ORD_NR", values["ORD_NR"]):
                raise fail("ORD_NR", f"order number '{values['ORD_NR']}' already exists")
        if "CNG_DATE" in table.fields:
            audit = {
                "CNG_DATE": self.now,
                "INP_DATE": self.now,
                "CNG_NR": 1,
                "CNG_USR": self.user,
                "INP_USR": self.user,
            }
            values.update({k: v for k, v in audit.items() if not values.get(k)})
        return insert_row(self.conn, self.company, table.name, values)

    def replace_details(self, detail: TableDef, link: str, value: str) -> None:
        self.conn.execute(
            f"DELETE FROM {table_sql(detail.name)} WHERE {COMPANY} = ? AND {quote(link)} = ?",
            (self.company, value),
        )


def run_post(
    conn: sqlite3.Connection,
    company: str,
    request: PostRequest,
    now: str,
    user: str,
    *,
    system: bool = False,
) -> dict[str, Any]:
    """Write every row (call inside a transaction: a RowError must roll all of them back).

    `system` is for fixtures: read-only fields (REC_ID, CNG_DATE...) are taken as given.
    """
    writer = _Writer(conn, request.bo, company, now, user, system)
    headers: list[sqlite3.Row] = []
    # Each detail table's lines by their header, in the order posted: looking them up per
    # header went over every line of the post for every header (a page of 500 orders with
    # 1,500 lines: 750,000 comparisons).
    lines_of: list[dict[str | None, list[PostedRow]]] = []
    for detail in request.details:
        grouped: dict[str | None, list[PostedRow]] = {}
        for line in detail.rows:
            grouped.setdefault(line.header_id, []).append(line)
        lines_of.append(grouped)
    for row in request.header.rows:
        existed = bool(row.values) and _updates(request.header.table, row)
        stored = writer.write(request.header.table, row)
        headers.append(stored)
        for detail, grouped in zip(request.details, lines_of, strict=True):
            link = assumptions.DETAIL_LINKS[detail.table.name]
            lines = grouped.get(row.row_id, [])
            if existed and lines and assumptions.REPLACE_DETAILS_ON_UPDATE:
                writer.replace_details(detail.table, link, stored[link])
            for line in lines:
                writer.write(detail.table, line, (link, stored[link]))
    header_ids = {row.row_id for row in request.header.rows}
    for detail in request.details:
        for line in detail.rows:
            if line.header_id not in header_ids:
                raise RowError(
                    detail.table.name,
                    line.position,
                    line.row_id,
                    line.header_id,
                    "HeaderId",
                    f"no {request.header.table.name} row has RowId '{line.header_id}'",
                )
    return render(conn, company, request.bo, headers)


def _updates(table: TableDef, row: PostedRow) -> bool:
    key = next((k for k in row.values if k.upper() == table.key), None)
    return key is not None and bool(row.values[key])


__all__ = ["PostRequest", "PostedRow", "PostedTable", "member", "parse_post", "run_post"]
