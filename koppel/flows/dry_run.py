"""The dry run: flows read both systems and decide what they would write, and write nothing.

Every connector of a dry run is wrapped in `DryRunConnector`: reads and look-ups go to the API,
a write goes nowhere and answers as the API would have (created when the target lacks the key,
updated when it has it). What would have been written is kept (`Rehearsal.written`), so a later
look-up in the same dry run finds it: the debtor an orders flow would create is there for the
order, the article a products flow would create is there for the order lines. The store side is
`Store.rehearsal()`: outcomes, links and cursors are recorded and rolled back.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from koppel.connectors.base import ApiClient, EntitySpec, Record, WriteResult
from koppel.connectors.registry import ClientConnector
from koppel.flows.pipeline import plain_json

EXAMPLES_PER_ENTITY = 3
"""How many of the records that would be sent a dry run keeps per entity, to show."""
STAND_IN_BASE = 900_000
"""Stand-in ids of a dry run count up from here (see `DryRunConnector._stand_in`)."""


@dataclass(frozen=True)
class WouldSend:
    """One record a dry run would have written."""

    application: str
    entity: str
    key: str
    created: bool
    record: Record
    """As JSON holds it (amounts and dates as text)."""


@dataclass
class Rehearsal:
    """What one dry run would have written, per connection; shared by all its flows."""

    written: dict[tuple[int, str], dict[str, Record]] = field(default_factory=dict)
    """(connection id, entity) -> key -> the record as it would be after the write."""
    examples: dict[tuple[str, str], list[WouldSend]] = field(default_factory=dict)
    """(application, entity) -> the first records that would be sent."""
    writes: dict[tuple[str, str], int] = field(default_factory=dict)
    """(application, entity) -> how many records would be sent."""

    def wrap(self, connection_id: int, connector: ClientConnector) -> DryRunConnector:
        return DryRunConnector(connector, self, connection_id)

    stand_ins: int = 0
    """Ids handed out for records the API would number itself."""

    def remember(self, connection_id: int, sent: WouldSend, after: Record) -> None:
        """`after` is the record as the target would hold it, found by later look-ups."""
        rows = self.written.setdefault((connection_id, sent.entity), {})
        rows[sent.key] = {**rows.get(sent.key, {}), **after}
        kind = (sent.application, sent.entity)
        self.writes[kind] = self.writes.get(kind, 0) + 1
        shown = self.examples.setdefault(kind, [])
        if len(shown) < EXAMPLES_PER_ENTITY:
            shown.append(sent)


class DryRunConnector:
    """A connector that reads through to the API and writes nowhere (see the module)."""

    def __init__(self, inner: ClientConnector, rehearsal: Rehearsal, connection_id: int) -> None:
        self._inner = inner
        self._rehearsal = rehearsal
        self._connection_id = connection_id
        self.application = inner.application
        self.entities: Mapping[str, EntitySpec] = inner.entities

    @property
    def client(self) -> ApiClient:
        return self._inner.client

    async def check(self) -> str:
        return await self._inner.check()

    def read(
        self,
        entity: str,
        *,
        since: datetime | None = None,
        after: str | None = None,
        page_size: int | None = None,
    ) -> AsyncGenerator[list[Record], None]:
        return self._inner.read(entity, since=since, after=after, page_size=page_size)

    async def lookup(self, entity: str, field: str, values: Sequence[str]) -> list[Record]:
        found = await self._inner.lookup(entity, field, values)
        written = self._rehearsal.written.get((self._connection_id, entity), {})
        if not written:
            return found
        wanted = {str(v) for v in values}
        key_field = self.entities[entity].key_field
        by_key = {str(r.get(key_field)): r for r in found}
        for key, record in written.items():
            if str(record.get(field)) in wanted:
                by_key[key] = {**by_key.get(key, {}), **record}
        return list(by_key.values())

    async def write(
        self,
        entity: str,
        records: Sequence[Record],
        *,
        found: Mapping[str, Record | None] | None = None,
    ) -> list[WriteResult]:
        """No call: each record answers as written, updated when the target (or this dry run)
        has its id or key, else created with a stand-in id where the API would assign one."""
        spec = self.entities[entity]
        keys = [str(r.get(spec.key_field) or "") for r in records]
        ids = [str(r.get(spec.id_field) or "") for r in records]
        by_key = {k: r for k, r in (found or {}).items() if r is not None}
        unknown = sorted({k for k in keys if k and k not in (found or {})})
        if unknown:
            for record in await self.lookup(entity, spec.key_field, unknown):
                by_key.setdefault(str(record.get(spec.key_field)), record)
        by_id: dict[str, Record] = {}
        if spec.id_field != spec.key_field and any(ids):
            for record in await self.lookup(entity, spec.id_field, sorted({i for i in ids if i})):
                by_id.setdefault(str(record.get(spec.id_field)), record)
        results: list[WriteResult] = []
        for key, record_id, record in zip(keys, ids, records, strict=True):
            existing = by_id.get(record_id) if record_id else None
            existing = existing or by_key.get(key)
            assigned = record_id or str((existing or {}).get(spec.id_field) or "")
            assigned = assigned or self._stand_in()
            after = {**(existing or {}), **record, spec.id_field: assigned}
            key = key or str(after.get(spec.key_field) or assigned)
            after.setdefault(spec.key_field, key)
            sent = WouldSend(self.application, entity, key, existing is None, plain_json(record))
            self._rehearsal.remember(self._connection_id, sent, after)
            results.append(
                WriteResult(key=key, target_id=assigned, created=existing is None, record=after)
            )
        return results

    def _stand_in(self) -> str:
        """An id for a record the API would number itself: digits, short enough for any id
        field (AccountView's SUB_NR holds 10), and unique within the dry run."""
        self._rehearsal.stand_ins += 1
        return str(STAND_IN_BASE + self._rehearsal.stand_ins)

    async def aclose(self) -> None:
        await self._inner.aclose()


__all__ = ["EXAMPLES_PER_ENTITY", "DryRunConnector", "Rehearsal", "WouldSend"]
