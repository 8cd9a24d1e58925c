"""AccountView as the flows see it: named entities read in pages, looked up and written in bulk.

Write rule (the sandbox's assumed update rule): a posted row whose code (ART_CODE, AG_CODE,
SUB_NR, REC_ID) exists updates that row, otherwise it is inserted. Codes the API takes as keys
make articles and article groups safe to retry. Debtors without SUB_NR, delivery addresses without
REC_ID and new sales orders get their number from AccountView, so a retry after an ambiguous
failure first looks the record up by its natural key (MAIL_BUS, the address, ORD_REF).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

import httpx

from koppel.connectors.accountview.client import (
    AV_TIMEZONE,
    LIST_SEPARATOR,
    MAX_PAGE_SIZE,
    AccountViewClient,
    AccountViewCredentials,
    AccountViewError,
    Filter,
    foxpro_datetime,
)
from koppel.connectors.accountview.dictionary import (
    AVField,
    object_fields,
    record_schema,
    table_fields,
)
from koppel.connectors.base import ClientLimits, EntitySpec, Record, WriteResult
from koppel.connectors.credentials import CredentialStore
from koppel.connectors.errors import ConnectorError, RecordValidationError

LOOKUP_CHUNK = 100
"""Values per list filter: keeps the URL short; 41 keys take one call."""
DEFAULT_PAGE_SIZE = 500
ADDRESS_MATCH = ("SUB_NR", "DEL_NAME", "ADDRESS1", "POST_CODE", "CITY", "CNT_CODE")
"""A delivery address without REC_ID is the same address when these fields are equal."""


@dataclass(frozen=True)
class _Entity:
    spec: EntitySpec
    business_object: str
    table: str
    fields: Mapping[str, AVField]
    """The table's fields with the rules of the business object (AR1 adds ACCT_REC's)."""
    detail_table: str | None = None
    assigned_key: str | None = None
    """The field AccountView fills in on insert; a record without it needs a recheck."""


def _entity(
    name: str,
    bo: str,
    table: str,
    key: str,
    id_field: str,
    *,
    writable: bool = True,
    detail: str | None = None,
    assigned: str | None = None,
    overlay: str | None = None,
) -> _Entity:
    fields = object_fields(table, overlay)
    schema = record_schema(table, fields, details=(detail,) if detail else ())
    if assigned is not None and assigned in schema.fields:
        # AccountView fills it in on insert, so a mapping need not (and for a new record cannot)
        # give it: SUB_NR is mandatory in the dictionary yet omitted by integrators on insert.
        specs = {**schema.fields, assigned: replace(schema.fields[assigned], required=False)}
        schema = replace(schema, fields=specs)
    spec = EntitySpec(name, key, id_field, schema.with_key(key), writable)
    return _Entity(spec, bo, table, fields, detail, assigned)


ENTITIES: dict[str, _Entity] = {
    e.spec.name: e
    for e in (
        _entity("articles", "AK1", "ARTICLE", "ART_CODE", "ART_CODE"),
        _entity("article_groups", "AG1", "ART_GRP", "AG_CODE", "AG_CODE"),
        _entity(
            "debtors",
            "AR1",
            "CONTACT",
            "MAIL_BUS",
            "SUB_NR",
            assigned="SUB_NR",
            overlay="ACCT_REC",
        ),
        _entity("delivery_addresses", "ADDR", "DEL_ADDR", "REC_ID", "REC_ID", assigned="REC_ID"),
        _entity(
            "sales_orders",
            "SO1",
            "SO_HDR",
            "ORD_REF",
            "REC_ID",
            detail="SO_LINE",
            assigned="REC_ID",
        ),
        _entity("vat_codes", "VA1", "VAT", "VAT_CODE", "VAT_CODE", writable=False),
        _entity("payment_conditions", "BC1", "PAY_COND", "DISC_CODE", "DISC_CODE", writable=False),
        _entity("payment_methods", "BW1", "PAY_MTH", "PAY_TYPE", "PAY_TYPE", writable=False),
        _entity("employees", "MW1", "EMPLOYEE", "EMP_NR", "EMP_NR", writable=False),
    )
}
"""Each entity's id_field is its table's key in AccountView: the field keyset paging (lastKey)
runs on, and the id flows keep links and dead letters by. Reference rows are keyed by their own
codes, delivery addresses and sales orders by their REC_ID."""


@dataclass
class _Item:
    """One record on its way: its position in the call, its cleaned row, and its result."""

    index: int
    label: str
    row: Record
    existing: Record | None = None
    result: WriteResult | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class AccountViewConnector:
    """The Connector protocol for AccountView.Net (one company of one login)."""

    application = "accountview"

    def __init__(
        self,
        credentials: Mapping[str, Any] | AccountViewCredentials,
        *,
        credential_store: CredentialStore | None = None,
        limits: ClientLimits | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        name: str = "",
    ) -> None:
        self.client = AccountViewClient(
            credentials,
            credential_store=credential_store,
            limits=limits,
            transport=transport,
            name=name,
        )
        self.entities: Mapping[str, EntitySpec] = {n: e.spec for n, e in ENTITIES.items()}

    def __repr__(self) -> str:
        return f"AccountViewConnector({self.client!r})"

    async def aclose(self) -> None:
        await self.client.aclose()

    async def check(self) -> str:
        companies = await self.client.companies()
        company = next((c for c in companies if c.get("Id") == self.client.company_id), None)
        if company is None:
            known = ", ".join(f"{c.get('Code')} ({c.get('Id')})" for c in companies) or "none"
            raise ConnectorError(
                f"AccountView company id '{self.client.company_id}' is not one this login can "
                f"reach; its companies are: {known}"
            )
        async for _ in self.client.pages("AR1", table="CONTACT", key_field="SUB_NR", page_size=1):
            break
        return (
            f"Connected to AccountView company {company.get('Description')} "
            f"({company.get('Code')})."
        )

    # -- reading -----------------------------------------------------------------------------

    async def read(
        self,
        entity: str,
        *,
        since: datetime | None = None,
        after: str | None = None,
        page_size: int | None = None,
    ) -> AsyncGenerator[list[Record], None]:
        """Every record (changed on or after `since`, by CNG_DATE), in key order, page by page;
        `after` resumes after the record with that key (lastKey)."""
        ent = self._entity(entity)
        filters: list[Filter] = []
        if since is not None:
            local = since.astimezone(AV_TIMEZONE) if since.tzinfo else since
            filters.append(Filter("CNG_DATE", foxpro_datetime(local), "DateOnOrAfterDate", "T"))
        async for page in self._pages(ent, filters, page_size or DEFAULT_PAGE_SIZE, after):
            yield page

    async def _pages(
        self, ent: _Entity, filters: Sequence[Filter], page_size: int, after: str | None = None
    ) -> AsyncIterator[list[Record]]:
        async for body in self.client.pages(
            ent.business_object,
            table=ent.table,
            key_field=ent.spec.id_field,
            filters=filters,
            page_size=page_size,
            after=after,
        ):
            yield _records(ent, body)

    async def lookup(self, entity: str, field: str, values: Sequence[str]) -> list[Record]:
        """Records whose `field` is one of `values`: one list-filter call per 100 values, all
        in flight at once (the client's concurrency limit spaces them)."""
        ent = self._entity(entity)
        av_field = ent.fields.get(field.upper())
        if av_field is None:
            raise ConnectorError(f"{entity}: {field} is not a field of AccountView {ent.table}")
        unique = list(dict.fromkeys(str(v) for v in values if str(v) != ""))
        listed = [v for v in unique if LIST_SEPARATOR not in v]
        filters = [
            Filter(av_field.name, listed[i : i + LOOKUP_CHUNK], value_type=av_field.filter_type)
            for i in range(0, len(listed), LOOKUP_CHUNK)
        ]
        filters += [
            Filter(av_field.name, v, value_type=av_field.filter_type)
            for v in unique
            if LIST_SEPARATOR in v
        ]

        async def matching(flt: Filter) -> list[Record]:
            return [r async for page in self._pages(ent, [flt], MAX_PAGE_SIZE) for r in page]

        chunks = await asyncio.gather(*(matching(flt) for flt in filters))
        return [record for chunk in chunks for record in chunk]

    # -- writing -----------------------------------------------------------------------------

    async def write(
        self,
        entity: str,
        records: Sequence[Record],
        *,
        found: Mapping[str, Record | None] | None = None,
    ) -> list[WriteResult]:
        """Create or update each record by its key; a bad record fails alone with its reason.

        Keys in `found` (the caller's lookup by the key field, just made) are not looked up again.
        """
        ent = self._entity(entity)
        if not ent.spec.writable:
            raise ConnectorError(f"{entity} are kept in AccountView itself and are read-only here")
        columns = _Columns(
            ent.fields, keep_rec_id=ent.spec.key_field == "REC_ID", detail_table=ent.detail_table
        )
        lines = _Columns(table_fields()[ent.detail_table]) if ent.detail_table else None
        items: list[_Item] = []
        for i, record in enumerate(records):
            row, refused = _clean(ent, record, columns, lines)
            item = _Item(i, _label(ent, record, i), row)
            if refused is not None:
                _fail_on(item, RecordValidationError(item.label, *refused))
            items.append(item)
        await self._find_existing(ent, [i for i in items if i.result is None], found or {})
        for item in items:
            if item.result is None:
                _fail_on(item, _check_required(ent, item))
        pending = [i for i in items if i.result is None]
        groups: dict[tuple[bool, tuple[str, ...]], list[_Item]] = {}
        for item in pending:
            if ent.detail_table is None:
                header = tuple(sorted(item.row))
            else:
                header = tuple(sorted(f for f in item.row if f != ent.detail_table))
            groups.setdefault((self._needs_recheck(ent, item), header), []).append(item)
        # Rows with other fields (or another key rule) go in other calls, all in flight at once.
        await asyncio.gather(
            *(self._post_isolating(ent, group, recheck) for (recheck, _), group in groups.items())
        )
        return [i.result for i in items if i.result is not None]

    def _needs_recheck(self, ent: _Entity, item: _Item) -> bool:
        return (
            ent.assigned_key is not None
            and item.existing is None
            and not item.row.get(ent.assigned_key)
        )

    async def _find_existing(
        self, ent: _Entity, items: list[_Item], found: Mapping[str, Record | None]
    ) -> None:
        """Which records exist already (one batched lookup per key field, but not of the keys
        in `found`, a lookup by the key field the caller just made) and under which id."""
        name = ent.spec.name
        known = {key: record for key, record in found.items() if record is not None}
        if ent.table == "CONTACT":
            by_nr = await self._index(name, "SUB_NR", [i.row.get("SUB_NR") for i in items])
            mails = [i.row.get("MAIL_BUS") for i in items if not i.row.get("SUB_NR")]
            by_mail = known | await self._index(
                name, "MAIL_BUS", [m for m in mails if str(m) not in found]
            )
            for item in items:
                if item.row.get("SUB_NR"):
                    item.existing = by_nr.get(str(item.row["SUB_NR"]))
                else:
                    item.existing = by_mail.get(str(item.row.get("MAIL_BUS", "")))
                    if item.existing is not None:
                        item.row["SUB_NR"] = item.existing["SUB_NR"]
            return
        key = ent.spec.key_field
        keys = [i.row.get(key) for i in items]
        index = known | await self._index(name, key, [k for k in keys if str(k) not in found])
        for item in items:
            item.existing = index.get(str(item.row.get(key, "")))
            if ent.table == "SO_HDR" and item.existing is not None:
                item.row["REC_ID"] = item.existing["REC_ID"]

    async def _index(self, entity: str, field: str, values: Sequence[Any]) -> dict[str, Record]:
        wanted = [str(v) for v in values if v not in (None, "")]
        if not wanted:
            return {}
        index: dict[str, Record] = {}
        for record in await self.lookup(entity, field, wanted):
            index.setdefault(str(record[field]), record)
        return index

    async def _post_isolating(self, ent: _Entity, items: list[_Item], recheck: bool) -> None:
        """Post the items together; when AccountView refuses the call for one row, that record
        fails and the others are posted again (a row it does not name is found by halving)."""
        if not items:
            return
        try:
            echoed = await self._post(ent, items, recheck)
        except AccountViewError as error:
            culprit = _culprit(ent, items, error)
            if culprit is None and len(items) > 1:
                half = len(items) // 2
                await self._post_isolating(ent, items[:half], recheck)
                await self._post_isolating(ent, items[half:], recheck)
                return
            bad = culprit or items[0]
            bad.result = WriteResult(
                key=bad.label,
                error=RecordValidationError(
                    bad.label, error.field or "record", error.rule or str(error)
                ),
            )
            await self._post_isolating(ent, [i for i in items if i is not bad], recheck)
            return
        for item, record in zip(items, echoed, strict=True):
            item.result = WriteResult(
                key=str(record.get(ent.spec.key_field, "")),
                target_id=str(record[ent.spec.id_field]),
                created=item.existing is None,
                record=record,
            )

    async def _post(self, ent: _Entity, items: list[_Item], recheck: bool) -> list[Record]:
        async def write() -> list[Record]:
            body = await self.client.post(
                ent.business_object,
                ent.table,
                [i.row for i in items],
                detail_table=ent.detail_table,
                idempotent=not recheck,
            )
            return _records(ent, body)

        if not recheck:
            return await write()

        async def look() -> list[Record] | None:
            found = [await self._recheck_one(ent, item) for item in items]
            if all(f is None for f in found):
                return None
            if any(f is None for f in found):
                raise ConnectorError(
                    f"{ent.spec.name}: after a failed write only some records are in AccountView"
                )
            return [f for f in found if f is not None]

        return await self.client.write_with_recheck(write, look)

    async def _recheck_one(self, ent: _Entity, item: _Item) -> Record | None:
        if ent.table == "DEL_ADDR":
            candidates = await self.lookup(ent.spec.name, "SUB_NR", [str(item.row["SUB_NR"])])
            return next(
                (
                    c
                    for c in candidates
                    if all(str(c.get(f, "")) == str(item.row.get(f, "")) for f in ADDRESS_MATCH)
                ),
                None,
            )
        key = ent.spec.key_field
        found = await self.lookup(ent.spec.name, key, [str(item.row[key])])
        return found[0] if found else None

    def _entity(self, name: str) -> _Entity:
        ent = ENTITIES.get(name)
        if ent is None:
            raise ConnectorError(
                f"AccountView has no entity {name!r}; known: {', '.join(ENTITIES)}"
            )
        return ent


# -- records ---------------------------------------------------------------------------------


def _records(ent: _Entity, body: Mapping[str, Any]) -> list[Record]:
    """Main-table rows as records; a sales order carries its lines under "SO_LINE"."""
    id_key = f"{ent.table}_Id"
    records = [{k: v for k, v in row.items() if k != id_key} for row in body.get(ent.table) or []]
    if ent.detail_table is not None:
        for record in records:
            record[ent.detail_table] = []
        detail_id = f"{ent.detail_table}_Id"
        for line in body.get(ent.detail_table) or []:
            parent = line.get(id_key)
            if isinstance(parent, int | Decimal) and 0 <= int(parent) < len(records):
                clean = {k: v for k, v in line.items() if k not in (id_key, detail_id)}
                records[int(parent)][ent.detail_table].append(clean)
    return records


def _label(ent: _Entity, record: Record, index: int) -> str:
    key = ent.spec.key_field
    value = record.get(key) or record.get(key.lower())
    return f"{ent.spec.name} {key} '{value}'" if value else f"{ent.spec.name} record {index + 1}"


ValueRule = Callable[[Any], str | None]
"""rule(value) -> why AccountView would refuse the value (which is not None), or None"""


class _Column(NamedTuple):
    """A field name as the records of one write use it, resolved once per write."""

    name: str
    """the upper-case name the row holds it under"""
    av_field: AVField | None
    """its dictionary entry (None: not a field of the table)"""
    rule: ValueRule | None
    plain_text: int
    """a text at most this long is taken as it is, without a call of `rule` (-1: every text
    goes through the rule: an upper-case field, or not a text field)"""


class _Columns:
    """One table's fields as a write meets them: each field name the records use is resolved
    once per write (kept or dropped, its dictionary entry and its value rule), not once per
    value (this ran for every field of every record)."""

    def __init__(
        self,
        fields: Mapping[str, AVField],
        *,
        keep_rec_id: bool = False,
        detail_table: str | None = None,
    ) -> None:
        self.fields = fields
        self.keep_rec_id = keep_rec_id
        self.detail_table = detail_table
        self.known: dict[str, _Column | None] = {}
        """a record's field name -> how it is sent, or None when it is not sent"""

    def column(self, name: str) -> _Column | None:
        upper = name.upper()
        found: _Column | None = None
        if upper == self.detail_table or not _system(
            upper, self.fields, keep_rec_id=self.keep_rec_id
        ):
            av_field = self.fields.get(upper)
            rule = _value_rule(av_field) if av_field is not None else None
            found = _Column(upper, av_field, rule, _plain_text(av_field))
        self.known[name] = found
        return found


def _plain_text(av_field: AVField | None) -> int:
    if av_field is None or av_field.type not in "CM" or av_field.upper:
        return -1
    return av_field.length if av_field.type == "C" else sys.maxsize


Refusal = tuple[str, str]
"""(the field's path, why AccountView would refuse its value)"""


def _clean(
    ent: _Entity, record: Record, columns: _Columns, lines: _Columns | None
) -> tuple[Record, Refusal | None]:
    """The row to post, and the first value in it AccountView would refuse (unknown fields,
    types, lengths and upper case), found before anything is sent, in the same pass.

    Upper-case field names; drop what AccountView returns but does not take (read-only fields,
    EXT_KEY, <TABLE>_Id), except REC_ID where it is the record's key (delivery addresses); a
    sales order gets its REC_ID from the lookup by ORD_REF. The header's fields are checked
    before the detail rows, each in the row's order."""
    row: Record = {}
    # field -> why, of the values the row holds (a later value under the same name replaces
    # its refusal): made only when a value is refused
    refused: dict[str, str] | None = None
    line_refused: Refusal | None = None
    detail_table = ent.detail_table
    known = columns.known
    for name, value in record.items():
        column = known[name] if name in known else columns.column(name)
        if column is None:
            continue
        upper, av_field, rule, plain_text = column
        if upper == detail_table:
            if lines is None:
                row[upper] = value
                continue
            row[upper], line_refused = _lines(detail_table, value or [], lines)
            continue
        row[upper] = value
        if av_field is None:
            problem: str | None = f"is not a field of {ent.table}"
        elif value is None or rule is None or (type(value) is str and len(value) <= plain_text):
            problem = None  # nearly always: a text that fits, taken without a call
        else:
            problem = rule(value)
        if problem is not None:
            refused = refused or {}
            refused[upper] = problem
        elif refused and upper in refused:
            del refused[upper]
    if refused:
        first = next(name for name in row if name in refused)
        return row, (first, refused[first])
    return row, line_refused


def _lines(
    table: str, lines: Sequence[Record], columns: _Columns
) -> tuple[list[Record], Refusal | None]:
    """A sales order's lines as posted, and the first value in them AccountView would refuse."""
    kept: list[Record] = []
    first: Refusal | None = None
    known = columns.known
    for line in lines:
        row: Record = {}
        refused: dict[str, str] = {}
        for name, value in line.items():
            column = known[name] if name in known else columns.column(name)
            if column is None:
                continue
            upper, av_field, rule, plain_text = column
            row[upper] = value
            if av_field is None:
                problem: str | None = f"is not a field of {table}"
            elif value is None or rule is None or (type(value) is str and len(value) <= plain_text):
                problem = None
            else:
                problem = rule(value)
            if problem is None:
                refused.pop(upper, None)
            else:
                refused[upper] = problem
        kept.append(row)
        if refused and first is None:
            name = next(name for name in row if name in refused)
            first = (f"{table}.{name}", refused[name])
    return kept, first


def _system(name: str, fields: Mapping[str, AVField], *, keep_rec_id: bool) -> bool:
    if name == "EXT_KEY" or (name.endswith("_ID") and name not in fields):
        return True
    av_field = fields.get(name)
    if av_field is None or not av_field.read_only:
        return False
    return not (keep_rec_id and name == "REC_ID")


def _fail_on(item: _Item, error: RecordValidationError | None) -> None:
    if error is not None and item.result is None:
        item.result = WriteResult(key=item.label, error=error)


def _value_rule(av_field: AVField) -> ValueRule | None:
    """The check of a value for this field, made for its type once (None: any value goes)."""
    kind = av_field.type
    if kind in "CM":
        length = av_field.length if kind == "C" else None
        upper = av_field.upper

        def text_rule(value: Any) -> str | None:
            if isinstance(value, str):
                text = value
            elif isinstance(value, bool) or not isinstance(value, int | Decimal):
                return "must be text"
            else:
                text = str(value)
            if length is not None and len(text) > length:
                return f"is {len(text)} characters long; AccountView allows at most {length}"
            if upper and text != text.upper():
                return "must be upper case in AccountView"
            return None

        return text_rule
    if kind in "NYBI":
        digits = av_field.length

        def number_rule(value: Any) -> str | None:
            if isinstance(value, bool):
                return "must be a number"
            if type(value) is Decimal:
                number = value  # as Decimal(str(value)) would make it, without the text
            else:
                try:
                    number = Decimal(str(value)) if value != "" else Decimal(0)
                except InvalidOperation:
                    return "must be a number"
            if not number.is_finite():
                return "must be a finite number"
            if kind == "I" and number != number.to_integral_value():
                return "must be a whole number"
            if kind == "N" and len(str(abs(int(number)))) > digits:
                return f"has more than {digits} digits"
            if kind == "Y":
                return _currency_rule(number)
            return None

        return number_rule
    if kind == "L":
        return lambda value: (
            None if isinstance(value, bool | int | str) else "must be true or false"
        )
    if kind in "DT":
        return lambda value: None if isinstance(value, str | date) else "must be a date"
    return None


CURRENCY_DECIMALS = 4
CURRENCY_LIMIT = Decimal("922337203685477.5807")
"""AccountView's amounts (type Y) are Visual FoxPro currency values: four decimals, at most this
in size. A value that does not fit is refused, never rounded or cut on the way."""


def _currency_rule(number: Decimal) -> str | None:
    exponent = number.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > CURRENCY_DECIMALS:
        return (
            f"{number} has more than {CURRENCY_DECIMALS} decimals; AccountView's amounts hold "
            f"{CURRENCY_DECIMALS} (round it in the flow's mapping: `transform: [{{round: 2}}]`)"
        )
    if abs(number) > CURRENCY_LIMIT:
        return f"{number} is larger than AccountView's amounts hold (at most {CURRENCY_LIMIT})"
    return None


def _check_required(ent: _Entity, item: _Item) -> RecordValidationError | None:
    """Mandatory fields (all on insert, non-empty on update) and the keys our rules need."""
    row = item.row
    inserting = item.existing is None
    if ent.table == "CONTACT" and not row.get("SUB_NR") and not row.get("MAIL_BUS"):
        return RecordValidationError(
            item.label,
            "MAIL_BUS",
            "is needed to create a debtor without SUB_NR (it is the key "
            "that prevents a second debtor on a retry)",
        )
    if ent.table == "SO_HDR" and not row.get("ORD_REF"):
        return RecordValidationError(
            item.label,
            "ORD_REF",
            "is needed: it is our order reference, the key that prevents a second order",
        )
    tables = [(ent.table, row, inserting)]
    if ent.detail_table is not None:
        tables += [(ent.detail_table, line, True) for line in row.get(ent.detail_table, [])]
    for table, values, insert in tables:
        assigned = {"REC_ID", "SUB_NR" if table == "CONTACT" else "REC_ID"}
        fields = ent.fields if table == ent.table else table_fields()[table]
        for av_field in fields.values():
            if not av_field.mandatory or av_field.read_only or av_field.name in assigned:
                continue
            path = av_field.name if table == ent.table else f"{table}.{av_field.name}"
            present = av_field.name in values and values[av_field.name] not in (None, "")
            if insert and not present:
                return RecordValidationError(item.label, path, "is mandatory in AccountView")
            if not insert and av_field.name in values and not present:
                return RecordValidationError(item.label, path, "may not be empty in AccountView")
    return None


def _culprit(ent: _Entity, items: list[_Item], error: AccountViewError) -> _Item | None:
    """The record a row error is about: header rows by RowId, detail rows by HeaderId."""
    ref = error.header_id if error.table == ent.detail_table else error.row_id
    if ref is None or not ref.isdigit() or not 1 <= int(ref) <= len(items):
        return None
    return items[int(ref) - 1]


__all__ = ["AV_TIMEZONE", "ENTITIES", "AccountViewConnector"]
