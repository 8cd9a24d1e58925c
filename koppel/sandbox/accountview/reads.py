"""GET /accountviewdata: parameters to SQL, rows to the table-keyed response."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from koppel.sandbox.accountview import assumptions
from koppel.sandbox.accountview.dictionary import (
    DATE_TYPES,
    FieldDef,
    TableDef,
    business_objects,
    tables,
)
from koppel.sandbox.accountview.errors import ApiError
from koppel.sandbox.accountview.expressions import column, compile_filter, scoped
from koppel.sandbox.accountview.store import COMPANY, ROW_ID, key_order, quote, table_sql
from koppel.sandbox.accountview.values import json_converter, parse_datetime

_FILTER_PARAM = re.compile(r"^filtercontrolsource(\d+)$")
_OPERATORS = {op.lower(): op for op in assumptions.FILTER_OPERATORS}


@dataclass(frozen=True)
class Filter:
    table: TableDef
    field: FieldDef
    operator: str
    value_type: str
    values: tuple[Any, ...]
    is_list: bool


@dataclass(frozen=True)
class ReadRequest:
    bo: assumptions.BusinessObjectDef
    selection: dict[str, list[FieldDef]] | None
    filters: tuple[Filter, ...]
    match_any: bool
    expression: tuple[str, tuple[Any, ...]] | None
    """`Filter=` compiled to SQL on the header row (alias h), with its arguments."""
    sort_fields: tuple[FieldDef, ...]
    descending: bool
    page_size: int
    page_number: int
    last_key: str | None


def business_object(code: str | None, *, system: bool = False) -> assumptions.BusinessObjectDef:
    """The business object of a code (any case); `system`: only the data dictionary's."""
    if not code:
        raise ApiError(400, "BusinessObject is required")
    bo = business_objects().get(code.strip().upper())
    if bo is None:
        raise ApiError(400, f"Business object '{code}' does not exist")
    if system and not bo.system:
        raise ApiError(
            400, f"Business object '{code}' is not system data; read it from /accountviewdata"
        )
    return bo


def bo_tables(bo: assumptions.BusinessObjectDef) -> list[TableDef]:
    return [tables()[name] for name in (bo.table, *bo.details)]


def resolve_field(bo: assumptions.BusinessObjectDef, name: str) -> tuple[TableDef, FieldDef]:
    """A bare (`art_code`) or table-qualified (`article.art_code`) field name of a BO."""
    text = name.strip().upper()
    table_name, _, field_name = text.rpartition(".")
    for table in bo_tables(bo):
        if table_name and table.name != table_name:
            continue
        field = table.field(field_name)
        if field is not None:
            return table, field
    raise ApiError(400, f"Field '{name.strip()}' does not exist in business object {bo.code}")


def _int_param(params: Mapping[str, str], name: str, default: int) -> int:
    raw = params.get(name.lower(), "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be a whole number, not '{raw}'") from None


def _filter_value(value_type: str, text: str, n: int) -> Any:
    if value_type == "C":
        return text.rstrip()
    if value_type == "N":
        try:
            return float(text)
        except ValueError:
            raise ApiError(400, f"FilterValue{n}: '{text}' is not a number") from None
    parsed = parse_datetime(text)
    if parsed is None:
        raise ApiError(400, f"FilterValue{n}: '{text}' is not a date like {{^2020-01-01}}")
    return parsed[:10] if value_type == "D" else parsed


def _parse_filters(bo: assumptions.BusinessObjectDef, params: Mapping[str, str]) -> list[Filter]:
    numbers = sorted(int(m.group(1)) for key in params if (m := _FILTER_PARAM.match(key)))
    filters: list[Filter] = []
    for n in numbers:
        table, field = resolve_field(bo, params[f"filtercontrolsource{n}"])
        operator_text = params.get(f"filteroperator{n}", "Equal").strip().lower()
        operator = _OPERATORS.get(operator_text)
        if operator is None:
            raise ApiError(400, f"FilterOperator{n}: unknown operator '{operator_text}'")
        value_type = params.get(f"filtervaluetype{n}", "C").strip().upper() or "C"
        if value_type not in ("C", "N", "D", "T"):
            raise ApiError(400, f"FilterValueType{n}: unknown value type '{value_type}'")
        if operator == "DateOnOrAfterDate" and value_type not in ("D", "T"):
            raise ApiError(400, f"FilterOperator{n}: DateOnOrAfterDate needs value type D or T")
        is_list = params.get(f"filterislistofvalues{n}", "false").strip().lower() == "true"
        raw = params.get(f"filtervalue{n}", "")
        texts = [t.strip() for t in raw.split(assumptions.LIST_SEPARATOR)] if is_list else [raw]
        if is_list and operator == "DateOnOrAfterDate":
            raise ApiError(400, f"FilterIsListOfValues{n}: not possible with DateOnOrAfterDate")
        values = tuple(_filter_value(value_type, t, n) for t in texts)
        filters.append(Filter(table, field, operator, value_type, values, is_list))
    return filters


def _parse_selection(
    bo: assumptions.BusinessObjectDef, raw: str
) -> dict[str, list[FieldDef]] | None:
    names = [n for n in raw.split(",") if n.strip()]
    if not names or any(n.strip() == "*" for n in names):
        return None
    selection: dict[str, list[FieldDef]] = {}
    for name in names:
        table, field = resolve_field(bo, name)
        chosen = selection.setdefault(table.name, [])
        if field not in chosen:
            chosen.append(field)
    return selection


def parse_read(params: Mapping[str, str], *, system: bool = False) -> ReadRequest:
    """Parameters (names already lower case) to a request; ApiError(400) says what is wrong.
    `system`: the request came to /accountviewsystemdata."""
    bo = business_object(params.get("businessobject"), system=system)
    page_size = _int_param(params, "PageSize", 0) or assumptions.DEFAULT_PAGE_SIZE
    if not 1 <= page_size <= assumptions.MAX_PAGE_SIZE:
        raise ApiError(400, f"PageSize must be between 0 and {assumptions.MAX_PAGE_SIZE}")
    page_number = _int_param(params, "PageNumber", 1)
    if page_number < 1:
        raise ApiError(400, "PageNumber must be 1 or more")
    sort_fields: list[FieldDef] = []
    for name in params.get("sortfields", "").split(","):
        if name.strip():
            table, field = resolve_field(bo, name)
            if table.name != bo.table:
                raise ApiError(400, f"SortFields: '{name.strip()}' is not a field of {bo.table}")
            sort_fields.append(field)
    last_key = params.get("lastkey", "")
    if last_key.strip() and tables()[bo.table].key is None:
        raise ApiError(400, f"lastKey: {bo.table} has no key to page on; page it with PageNumber")
    expression = params.get("filter", "")
    compiled = None
    if expression.strip():
        sql, args = compile_filter(
            expression, tables()[bo.table], lambda name: resolve_field(bo, name)
        )
        compiled = (sql, tuple(args))
    return ReadRequest(
        bo=bo,
        selection=_parse_selection(bo, params.get("fields", "")),
        filters=tuple(_parse_filters(bo, params)),
        match_any=params.get("matchanyfilter", "false").strip().lower() == "true",
        expression=compiled,
        sort_fields=tuple(sort_fields),
        descending=params.get("sortorder", "").strip().lower().startswith("desc"),
        page_size=page_size,
        page_number=page_number,
        last_key=last_key if last_key.strip() else None,
    )


def _condition(flt: Filter, header: TableDef) -> tuple[str, list[Any]]:
    expr = column(flt.table, header, flt.field)
    if flt.value_type == "D" and flt.field.type in DATE_TYPES:
        expr = f"substr({expr}, 1, 10)"
    marks = ", ".join("?" for _ in flt.values)
    args = list(flt.values)
    if flt.operator == "Equal":
        sql = f"{expr} IN ({marks})"
    elif flt.operator == "NotEqual":
        sql = f"{expr} NOT IN ({marks})"
    elif flt.operator == "Contains":
        sql = "(" + " OR ".join(f"instr({expr}, ?) > 0" for _ in flt.values) + ")"
    else:
        sql = f"({expr} != '' AND {expr} >= ?)"
    return scoped(flt.table, header, sql), args


def run_read(
    conn: sqlite3.Connection,
    company: str,
    request: ReadRequest,
    past_last_page: assumptions.PastLastPage = assumptions.PAST_LAST_PAGE,
) -> dict[str, Any]:
    header = tables()[request.bo.table]
    key = f"h.{key_order(header)}"
    where = [f"h.{COMPANY} = ?"]
    args: list[Any] = [company]
    if request.filters:
        parts = [_condition(f, header) for f in request.filters]
        joiner = " OR " if request.match_any else " AND "
        where.append("(" + joiner.join(sql for sql, _ in parts) + ")")
        args += [a for _, part_args in parts for a in part_args]
    if request.expression is not None:
        where.append(request.expression[0])
        args += request.expression[1]
    direction = "DESC" if request.descending else "ASC"
    offset = 0
    if request.last_key is not None:
        where.append(f"{key} {'<' if request.descending else '>'} ?")
        args.append(request.last_key)
        order = f"{key} {direction}"
    else:
        order = ", ".join(f"h.{quote(f.name)} {direction}" for f in request.sort_fields)
        order = f"{order}, {key} {direction}" if order else f"{key} {direction}"
        offset = (request.page_number - 1) * request.page_size
    sql = (
        f"SELECT h.* FROM {table_sql(header.name)} h WHERE {' AND '.join(where)} "
        f"ORDER BY {order} LIMIT ? OFFSET ?"
    )
    rows = conn.execute(sql, (*args, request.page_size, offset)).fetchall()
    paging_on = request.last_key is not None or request.page_number > 1
    if not rows and paging_on and past_last_page is not assumptions.PastLastPage.EMPTY:
        status = 404 if past_last_page is assumptions.PastLastPage.NOT_FOUND else 400
        raise ApiError(status, "There are no more rows.")
    return render(conn, company, request.bo, rows, request.selection)


def render(
    conn: sqlite3.Connection,
    company: str,
    bo: assumptions.BusinessObjectDef,
    header_rows: Sequence[sqlite3.Row],
    selection: dict[str, list[FieldDef]] | None = None,
) -> dict[str, Any]:
    """The response body: one array per table, main table first, detail rows beside it."""
    header = tables()[bo.table]
    numbered = bool(bo.details or bo.extra_tables)
    numbers = [(f"{header.name}_Id", index) for index in range(len(header_rows))]
    body: dict[str, Any] = {
        header.name: rendered_rows(
            _chosen(header, selection),
            header_rows,
            numbers if numbered else None,
            ext_key=not bo.system,
        )
    }
    for detail_name in bo.details:
        detail = tables()[detail_name]
        link = assumptions.DETAIL_LINKS[detail_name]
        ordinal = {row[link]: index for index, row in enumerate(header_rows)}
        lines: list[sqlite3.Row] = []
        keys = list(ordinal)
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            lines += conn.execute(
                f"SELECT * FROM {table_sql(detail_name)} WHERE {COMPANY} = ? AND "
                f"{quote(link)} IN ({', '.join('?' for _ in chunk)})",
                (company, *chunk),
            ).fetchall()
        order = detail.key or ROW_ID
        lines.sort(key=lambda line: (ordinal[line[link]], line[order]))
        body[detail_name] = rendered_rows(
            _chosen(detail, selection),
            lines,
            [(f"{header.name}_Id", ordinal[line[link]]) for line in lines],
            ext_key=True,
        )
    for extra in bo.extra_tables:
        body[extra] = []
    return body


def _chosen(table: TableDef, selection: dict[str, list[FieldDef]] | None) -> list[FieldDef]:
    """The fields of a table a read shows: its selection's, with the key first if not chosen."""
    chosen = selection.get(table.name) if selection is not None else None
    if chosen is None:
        return list(table.fields.values())
    if table.key is None or table.fields[table.key] in chosen:
        return chosen
    return [table.fields[table.key], *chosen]


def rendered_rows(
    fields: Sequence[FieldDef],
    rows: Sequence[sqlite3.Row],
    numbers: Sequence[tuple[str, int]] | None,
    *,
    ext_key: bool,
) -> list[dict[str, Any]]:
    """Rows (all of one table, as `SELECT *` reads them) as the API shows them: `fields`, then
    EXT_KEY, then the row's (or, for a detail row, its header's) _Id from `numbers`. Dictionary
    rows carry no EXT_KEY (assumptions.FIELDS_ALWAYS_RETURNED).

    A row is read by position: `sqlite3.Row` finds a column by name by comparing it with the
    names before it, one by one, so reading a debtor's 189 fields by name took 0.3 ms, longer
    than writing it.
    """
    if not rows:
        return []
    position = {name: index for index, name in enumerate(rows[0].keys())}
    columns = [(f.name, position[f.name], json_converter(f)) for f in fields]
    row_id = position[ROW_ID]
    result: list[dict[str, Any]] = []
    for index, row in enumerate(rows):
        values = tuple(row)
        shown = {name: convert(values[at]) for name, at, convert in columns}
        if ext_key:
            shown["EXT_KEY"] = values[row_id]
        if numbers is not None:
            name, number = numbers[index]
            shown[name] = number
        result.append(shown)
    return result


__all__ = [
    "ReadRequest",
    "bo_tables",
    "business_object",
    "parse_read",
    "render",
    "rendered_rows",
    "run_read",
]
