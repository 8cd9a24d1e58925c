"""Parts Pim as records of named entities: read, look up, create-or-update.

Write rule (every writable entity but stock): a record with an `id` is updated (PATCH). A record
without one is looked up by its natural key (SKU, category code, e-mail, order/invoice reference)
in one batch call per 100 keys; found means PATCH, not found means POST. A POST is not idempotent,
so it goes through `write_with_recheck`: when the answer is lost, the key is looked up again
before anything is sent twice. A 409 on the key (someone created it meanwhile) turns into an update.
Without a natural key Koppel does not create a record: a retried create could not be recognised.

Stock is written with PUT /stock (absolute values per warehouse and SKU), which is idempotent;
100 rows per call, and rows the API rejects are split off and reported, the others are resent.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx

from koppel.connectors.base import ClientLimits, EntitySpec, Record, WriteResult
from koppel.connectors.errors import ConnectorError, RecordValidationError
from koppel.connectors.partspim import contract
from koppel.connectors.partspim.client import (
    DuplicateRecordError,
    PartsPimClient,
    PartsPimValidationError,
)

ENTITIES: dict[str, EntitySpec] = {
    name: EntitySpec(
        name=name,
        key_field=resource.key_field,
        id_field="id",
        schema=contract.SCHEMAS[name].with_key(resource.key_field),
        writable=resource.writable,
    )
    for name, resource in contract.RESOURCES.items()
}
_ROW_FIELD = re.compile(r"data\[(\d+)\]\.?(.*)")


def _timestamp(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _chunks(values: Sequence[str], size: int) -> list[Sequence[str]]:
    return [values[i : i + size] for i in range(0, len(values), size)]


class PartsPimConnector:
    """The Connector protocol for Parts Pim (contract.RESOURCES lists the entities)."""

    application = "partspim"
    entities: Mapping[str, EntitySpec] = ENTITIES

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        limits: ClientLimits | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        name: str = "",
    ) -> None:
        self.client = PartsPimClient(
            base_url, api_key, limits=limits, transport=transport, name=name
        )

    def __repr__(self) -> str:
        return f"PartsPimConnector({self.client.base_url!r})"

    async def check(self) -> str:
        account = await self.client.get_json(contract.ACCOUNT_PATH, kind="GET account")
        return (
            f"Connected to Parts Pim of {account.get('company', '?')} "
            f"(API {account.get('api_version', '?')})."
        )

    def _resource(self, entity: str) -> contract.Resource:
        try:
            return contract.RESOURCES[entity]
        except KeyError:
            known = ", ".join(contract.RESOURCES)
            raise ConnectorError(f"Parts Pim has no entity {entity!r} (known: {known})") from None

    async def read(
        self,
        entity: str,
        *,
        since: datetime | None = None,
        after: str | None = None,
        page_size: int | None = None,
    ) -> AsyncGenerator[list[Record], None]:
        """Records changed at or after `since`, in id order, starting after id `after`.

        The API walks ids, so each record comes at most once per listing; one changed behind the
        cursor while the listing runs comes in the next listing (since = this run's start).
        """
        resource = self._resource(entity)
        filters: dict[str, str] = {}
        if since is not None:
            filters[contract.UPDATED_SINCE_PARAM] = _timestamp(since)
        if after is not None:
            filters[contract.AFTER_ID_PARAM] = str(after)
        async for page in self.client.pages(resource.path, filters=filters, page_size=page_size):
            yield page

    async def lookup(self, entity: str, field: str, values: Sequence[str]) -> list[Record]:
        """Records whose `field` is one of `values`: one call per 100 values, run concurrently.

        Products found by SKU include those where a variant has the SKU; relations match e-mail
        case-insensitively. A value that cannot be an id or a SKU (not digits) matches nothing.
        """
        resource = self._resource(entity)
        parameter = resource.lookup_params.get(field)
        if parameter is None:
            known = ", ".join(resource.lookup_params)
            raise ConnectorError(f"Parts Pim {entity} cannot be looked up by {field} ({known})")
        unique = list(dict.fromkeys(str(v) for v in values if str(v).strip()))
        unique = [v for v in unique if contract.lookup_value_possible(parameter, v)]
        if "," in "".join(unique):
            raise ConnectorError(f"Parts Pim {entity}: a {field} to look up contains a comma")

        async def one_chunk(chunk: Sequence[str]) -> list[Record]:
            found: list[Record] = []
            filters = {parameter: ",".join(chunk)}
            async for page in self.client.pages(resource.path, filters=filters):
                found += page
            return found

        chunks = await asyncio.gather(
            *(one_chunk(c) for c in _chunks(unique, contract.MAX_FILTER_VALUES))
        )
        by_id: dict[Any, Record] = {}
        for chunk_records in chunks:
            for record in chunk_records:
                by_id.setdefault(record["id"], record)
        return list(by_id.values())

    async def write(
        self,
        entity: str,
        records: Sequence[Record],
        *,
        found: Mapping[str, Record | None] | None = None,
    ) -> list[WriteResult]:
        """Create or update each record; keys in `found` (the caller's lookup by the key field,
        just made) are not looked up again."""
        resource = self._resource(entity)
        if not resource.writable:
            raise ConnectorError(f"Parts Pim {entity} are read only over the API")
        if entity == "stock":
            return await self._write_stock(records)
        existing = await self._existing_ids(resource, records, found or {})
        return list(
            await asyncio.gather(*(self._write_one(resource, r, existing) for r in records))
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    # -- create or update ------------------------------------------------------------------

    @staticmethod
    def _key_of(resource: contract.Resource, record: Mapping[str, Any]) -> str:
        value = record.get(resource.key_field)
        return "" if value is None else str(value)

    @staticmethod
    def _normal(resource: contract.Resource, key: str) -> str:
        return key.lower() if resource.key_field == "email" else key

    def _label(self, resource: contract.Resource, record: Mapping[str, Any]) -> str:
        key = self._key_of(resource, record) or f"id {record.get('id')}"
        return f"{resource.record_label} {key!r}"

    async def _existing_ids(
        self,
        resource: contract.Resource,
        records: Sequence[Record],
        found: Mapping[str, Record | None],
    ) -> dict[str, Any]:
        """Natural key -> id of the records that exist already, for records without an id;
        keys in `found` are taken from it instead of being looked up."""
        looked_up = {self._normal(resource, key) for key in found}
        known = [r for r in found.values() if r is not None]
        keys = [self._key_of(resource, r) for r in records if r.get("id") is None]
        keys = [k for k in keys if k and self._normal(resource, k) not in looked_up]
        if keys:
            known += await self.lookup(resource.entity, resource.key_field, keys)
        return {
            self._normal(resource, self._key_of(resource, r)): r["id"]
            for r in known
            if self._key_of(resource, r)
        }

    async def _find(self, resource: contract.Resource, key: str) -> Record | None:
        """The record whose own natural key is `key` (not, say, a variant SKU of another)."""
        wanted = self._normal(resource, key)
        for record in await self.lookup(resource.entity, resource.key_field, [key]):
            if self._normal(resource, self._key_of(resource, record)) == wanted:
                return record
        return None

    async def _write_one(
        self, resource: contract.Resource, record: Record, existing: Mapping[str, Any]
    ) -> WriteResult:
        key = self._key_of(resource, record)
        label = self._label(resource, record)
        body = {k: v for k, v in record.items() if k not in resource.read_only_fields}
        record_id = record.get("id") or existing.get(self._normal(resource, key))
        try:
            if record_id is not None:
                return self._result(key, await self._patch(resource, record_id, body), False)
            if not key:
                rule = "is required: without it a retried create could not be recognised"
                raise RecordValidationError(label, resource.key_field, rule)
            return await self._create(resource, key, body)
        except PartsPimValidationError as error:
            return WriteResult(key=key, error=RecordValidationError(label, error.field, error.rule))
        except RecordValidationError as error:
            return WriteResult(key=key, error=error)

    async def _patch(self, resource: contract.Resource, record_id: Any, body: Record) -> Record:
        return await self.client.update(resource.path, record_id, body)

    async def _create(self, resource: contract.Resource, key: str, body: Record) -> WriteResult:
        label = f"{resource.record_label} {key!r}"

        async def post() -> WriteResult:
            return self._result(key, await self.client.create(resource.path, body), True)

        async def recheck() -> WriteResult | None:
            found = await self._find(resource, key)
            return None if found is None else self._result(key, found, True)

        try:
            return await self.client.write_with_recheck(post, recheck)
        except DuplicateRecordError as error:
            found = await self._find(resource, key)
            if error.field != resource.key_field or found is None:
                raise RecordValidationError(
                    label, error.field or resource.key_field, f"is already used ({error})"
                ) from None
            return self._result(key, await self._patch(resource, found["id"], body), False)

    @staticmethod
    def _result(key: str, record: Record, created: bool) -> WriteResult:
        return WriteResult(key=key, target_id=str(record["id"]), created=created, record=record)

    # -- stock -----------------------------------------------------------------------------

    async def _write_stock(self, records: Sequence[Record]) -> list[WriteResult]:
        """PUT /stock per 100 rows; rejected rows are reported and the rest sent again."""
        results: list[WriteResult | None] = [None] * len(records)
        indices = list(range(len(records)))
        size = contract.MAX_STOCK_BATCH
        batches = [indices[i : i + size] for i in range(0, len(indices), size)]
        read_only = contract.RESOURCES["stock"].read_only_fields

        async def send(batch: list[int]) -> None:
            while batch:
                rows = [{k: v for k, v in records[i].items() if k not in read_only} for i in batch]
                try:
                    written = await self.client.put_stock(rows)
                except PartsPimValidationError as error:
                    rejected = self._rejected_rows(error, batch, records, results)
                    batch = [i for i in batch if i not in rejected]
                    continue
                for index, row in zip(batch, written, strict=True):
                    key = self._stock_key(row)
                    created = row["created_at"] == row["updated_at"]
                    results[index] = WriteResult(key, str(row["id"]), created, row)
                return

        await asyncio.gather(*(send(b) for b in batches))
        return [r for r in results if r is not None]

    @staticmethod
    def _stock_key(row: Mapping[str, Any]) -> str:
        return f"{row.get('sku')}@{row.get('warehouse_id')}"

    def _rejected_rows(
        self,
        error: PartsPimValidationError,
        batch: list[int],
        records: Sequence[Record],
        results: list[WriteResult | None],
    ) -> set[int]:
        rejected: set[int] = set()
        for field_error in error.errors:
            match = _ROW_FIELD.fullmatch(field_error.field)
            if match is None or int(match.group(1)) >= len(batch):
                continue
            index = batch[int(match.group(1))]
            if index in rejected:
                continue
            rejected.add(index)
            key = self._stock_key(records[index])
            failure = RecordValidationError(
                f"stock {key!r}", match.group(2) or "(row)", field_error.message
            )
            results[index] = WriteResult(key=key, error=failure)
        if not rejected:  # the batch as a whole was refused: that is every row's error
            for index in batch:
                key = self._stock_key(records[index])
                failure = RecordValidationError(f"stock {key!r}", error.field, error.rule)
                results[index] = WriteResult(key=key, error=failure)
            rejected = set(batch)
        return rejected


__all__ = ["ENTITIES", "PartsPimConnector"]
