"""The record pipeline every one-way flow shares: map, decide create/update/skip, write, record.

One batch costs a fixed number of calls whatever its size: one read of links from our database,
one batched lookup of unlinked records in the target (so a lost link never makes a duplicate),
one multi-row write, and one transaction that records outcomes, links and dead letters together.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ValidationError

from koppel.connectors.base import Connector, Record
from koppel.connectors.errors import ConnectorError
from koppel.flows.checks import without_controls
from koppel.flows.keys import content_hash
from koppel.mapping import CompiledMapping, MappingError, apply
from koppel.store import Store
from koppel.store.records import DeadLetterEntry, Link, LinkEntry, OutcomeEntry, OutcomeKind

log = logging.getLogger("koppel.flows")

EXCERPT_TEXT_LIMIT = 200
UNCHANGED_REASON = "unchanged since the last sync"
"""A skipped outcome's reason when the record is as it was last sent (its link's hash)."""
_QUOTED = re.compile(r"'([^']*)'")


@dataclass
class Item:
    """One source record on its way through a batch."""

    source_key: str
    label: str
    source: Record
    canonical: dict[str, Any] | None = None
    create: Record | None = None
    update: Record | None = None
    target_key: str | None = None
    warnings: list[str] = field(default_factory=list)
    outcome: OutcomeKind | None = None
    reason: str | None = None
    waits_for: str | None = None
    """The entity another flow syncs that this failed record needs (`products` for an order
    naming an article that is not there yet): it is retried as soon as that flow completes."""
    claim: LinkEntry | None = None
    """The pending link written for it before the target write (`TargetWriter._claim`), with
    the hash of its `update`: `record` confirms that link rather than writing it again."""

    def fail(self, reason: str, *, waits_for: str | None = None) -> None:
        self.outcome = OutcomeKind.FAILED
        self.reason = shorten_quoted(reason)
        self.waits_for = waits_for

    @property
    def pending(self) -> bool:
        return self.outcome is None

    @property
    def record_key(self) -> str | None:
        """The key in the label, as people know the record: `10000001` of "SKU '10000001'",
        the address of "relation 'ann@example.com'"; the activity log is searched by it."""
        found = _QUOTED.search(self.label)
        return found.group(1) if found and found.group(1) else None


QUOTED_LIMIT = 60
_LONG_QUOTED = re.compile(
    r"(?:^|(?<=[\s(\[]))'([^']{" + str(QUOTED_LIMIT + 1) + r",})'(?=[\s:;,)\]]|$)"
)


def shorten_quoted(reason: str) -> str:
    """A reason with every long quoted value cut (a 10,000-character SKU in a record's label
    would bury the field and the rule that follow it)."""
    return _LONG_QUOTED.sub(lambda m: f"'{m[1][:QUOTED_LIMIT]}…' ({len(m[1])} characters)", reason)


_PLAIN = frozenset({bool, int, float, type(None)})
"""The leaves an excerpt keeps as they are."""
_CONTAINERS = frozenset({dict, list})
"""What an excerpt walks into inline: JSON's objects and arrays as decoded."""
_EXCERPT_LIST_LIMIT = 50
"""The items of a list an excerpt keeps."""


def excerpt(value: Any) -> Any:
    """A bounded version of a payload for the activity log (long texts shortened, long lists
    cut, what JSON cannot hold as text), to be serialised at once.

    Runs for every field of every record (it was a tenth of a batch's CPU): plain dicts and
    lists, as decoded from JSON, are walked inline, without a call per leaf, and a container in
    which nothing needs changing is its own excerpt, not a copy (nineteen Parts Pim products in
    twenty: copying them was half the walk's time, and the copies fed the garbage collector);
    anything else (other mappings, subclasses, Decimals) takes the general rules below.
    """
    kind = type(value)
    if kind is dict:
        for key, item in value.items():
            leaf = type(item)
            if type(key) is not str:
                break
            if leaf is str:
                if len(item) > EXCERPT_TEXT_LIMIT:
                    break
            elif leaf not in _PLAIN and (leaf not in _CONTAINERS or excerpt(item) is not item):
                break
        else:
            return value
        return {
            (key if type(key) is str else str(key)): (
                item
                if type(item) in _PLAIN or (type(item) is str and len(item) <= EXCERPT_TEXT_LIMIT)
                else excerpt(item)
            )
            for key, item in value.items()
        }
    if kind is list:
        if len(value) <= _EXCERPT_LIST_LIMIT:
            for item in value:
                leaf = type(item)
                if leaf is str:
                    if len(item) > EXCERPT_TEXT_LIMIT:
                        break
                elif leaf not in _PLAIN and (leaf not in _CONTAINERS or excerpt(item) is not item):
                    break
            else:
                return value
        return [
            item
            if type(item) in _PLAIN or (type(item) is str and len(item) <= EXCERPT_TEXT_LIMIT)
            else excerpt(item)
            for item in value[:_EXCERPT_LIST_LIMIT]
        ]
    if kind is Decimal:  # an amount of an AccountView row: before the slow ABC check below
        return str(value)
    if isinstance(value, str):
        return value if len(value) <= EXCERPT_TEXT_LIMIT else value[:EXCERPT_TEXT_LIMIT] + "…"
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dict | Mapping):
        return {str(k): excerpt(v) for k, v in value.items()}
    if isinstance(value, list):
        return [excerpt(v) for v in value[:_EXCERPT_LIST_LIMIT]]
    return str(value)


def plain_json(value: Any) -> Any:
    """A copy that JSON can store: AccountView records carry Decimal amounts and dates."""
    if isinstance(value, Mapping):
        return {str(k): plain_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_json(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def to_canonical(
    item: Item, mapping: CompiledMapping, model: type[BaseModel]
) -> dict[str, Any] | None:
    """Get side: the source record as a validated canonical dict, or the item fails; its texts
    lose their control characters (a warning names each field)."""
    try:
        result = apply(mapping, item.source, record_key=item.label)
    except MappingError as error:
        item.fail(str(error))
        return None
    item.warnings.extend(f"{w.field}: {w.message}" for w in result.warnings)
    try:
        canonical = model.model_validate(result.values).model_dump(mode="python")
    except ValidationError as error:
        problems = "; ".join(
            f"field {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        item.fail(f"{item.label}: {problems}")
        return None
    clean, cleaned = without_controls(canonical)
    item.warnings.extend(f"{path}: control characters removed" for path in cleaned)
    item.canonical = clean  # model_dump's own dict, or the copy without the controls
    return item.canonical


def to_target(item: Item, mapping: CompiledMapping, record: Mapping[str, Any]) -> bool:
    """Send side: create and update payloads for the target, or the item fails."""
    try:
        result = apply(mapping, record, record_key=item.label)
    except MappingError as error:
        item.fail(str(error))
        return False
    item.warnings.extend(f"{w.field}: {w.message}" for w in result.warnings)
    item.create = result.values
    item.update = result.for_update()
    return True


def skip_echoes(
    store: Store,
    integration_id: int,
    items: Sequence[Item],
    reverse_links: str,
    origin: str,
) -> None:
    """Skip records that the flow going the other way wrote into this source.

    With both directions configured, a record one flow created in a system would otherwise be
    read back by the other flow and written again to where it came from (with whatever the trip
    cost it: cut names, rounded prices). A record belongs to the system it was made in.
    `reverse_links` is the other flow's link entity; its target keys are this flow's natural
    keys (the items' `target_key`).
    """
    keyed = {str(i.target_key): i for i in items if i.pending and i.target_key}
    if not keyed:
        return
    for link in store.links.find_by_target(integration_id, reverse_links, list(keyed)):
        item = keyed.get(link.target_key)
        if item is not None and item.pending:
            item.outcome = OutcomeKind.SKIPPED
            item.reason = f"came from {origin}; a record is not sent back to where it came from"


@dataclass
class PlannedWrite:
    """A batch's write as `TargetWriter.plan` decided it: the items to send and their payloads,
    the look-up's answers (the target's write does not ask again), and whether pending links
    were claimed for new records."""

    writing: list[Item] = field(default_factory=list)
    payloads: list[Record] = field(default_factory=list)
    found: dict[str, Record | None] = field(default_factory=dict)
    claimed: bool = False


@dataclass
class TargetWriter:
    """Writes prepared items to one target entity and records what became of each."""

    store: Store
    integration_id: int
    flow_id: int
    link_entity: str
    target: Connector
    target_entity: str
    log_prefix: str = ""
    """Put before source keys in outcomes and dead letters, to tell apart two entities that one
    flow writes (a products flow also writes categories: `category:7`)."""
    on_missing: Callable[[Item], None] | None = None
    """For flows that only update (stock): called, instead of creating it, for an unlinked item
    the target does not have; it sets the item's outcome (failed or skipped, with the reason)."""

    @property
    def key_field(self) -> str:
        return self.target.entities[self.target_entity].key_field

    async def write(self, items: Sequence[Item]) -> None:
        """Create, update or skip every pending item; failures stay on their item."""
        await self.send(await self.plan(items))

    async def look_up(self, items: Sequence[Item]) -> dict[str, Record | None]:
        """The target's answer for the key of each item without a link, asked before the
        batch's turn to decide, so that the pages in flight look up together rather than one
        after the other; `plan` takes it (its `looked_up`). Empty when the look-up failed: `plan`
        asks again in its turn, and fails the items there if it fails again."""
        pending = [i for i in items if i.pending and self._has_key(i)]
        links = self._confirmed_links(pending)
        keys = [str(i.target_key) for i in pending if i.source_key not in links]
        if not keys:
            return {}
        try:
            records = await self.target.lookup(self.target_entity, self.key_field, keys)
        except ConnectorError as error:
            if error.stops_run:  # the connection cannot be used: the run fails
                raise
            return {}
        found: dict[str, Record | None] = dict.fromkeys(keys)
        found.update({str(r.get(self.key_field)): r for r in records})
        return found

    async def plan(
        self, items: Sequence[Item], looked_up: Mapping[str, Record | None] | None = None
    ) -> PlannedWrite:
        """What `send` will write, decided from our links and a look-up in the target, with
        the new records claimed by pending links: the part of a write a batch does in its turn to
        decide (`koppel.flows.turns`), so the next batch's plan sees these claims.

        `looked_up` is `look_up`'s answer, from before the turn. Only the batches before this
        one could have written a key since, and each of them claimed it by a link first: a key
        that a link names now is asked again, the others are taken as they were answered.
        """
        pending = [i for i in items if i.pending and self._has_key(i)]
        if not pending:
            return PlannedWrite()
        links = self._confirmed_links(pending)
        named = self._refuse_shared_keys(pending)
        pending = [i for i in pending if i.pending]
        unlinked = [i for i in pending if i.source_key not in links]
        # The lookup by natural key, handed to the target's write so it does not ask again.
        found: dict[str, Record | None] = {}
        if unlinked:
            keys = [str(i.target_key) for i in unlinked]
            answered = looked_up or {}
            ask = [k for k in keys if k not in answered or k in named]
            found = {k: answered[k] for k in keys if k not in ask}
            try:
                records = (
                    await self.target.lookup(self.target_entity, self.key_field, ask) if ask else []
                )
            except ConnectorError as error:
                if error.stops_run:  # the connection cannot be used: the run fails
                    raise
                for item in unlinked:
                    if str(item.target_key) in ask:
                        item.fail(f"{item.label}: could not look it up in the target: {error}")
            else:
                found.update(dict.fromkeys(ask))
                found.update({str(r.get(self.key_field)): r for r in records})
        existing = {key for key, record in found.items() if record is not None}
        payloads: list[Record] = []
        writing: list[Item] = []
        for item in pending:
            if not item.pending:
                continue
            assert item.update is not None and item.create is not None
            link = links.get(item.source_key)
            if (
                link is not None
                and link.target_key == item.target_key
                and link.content_hash == content_hash(item.update)
            ):
                item.outcome = OutcomeKind.SKIPPED
                item.reason = UNCHANGED_REASON
                continue
            known = link is not None and link.target_key == item.target_key
            if not known and item.target_key not in existing and self.on_missing is not None:
                self.on_missing(item)
                continue
            payloads.append(item.update if known or item.target_key in existing else item.create)
            writing.append(item)
        if not writing:
            return PlannedWrite()
        new = [i for i in writing if i.source_key not in links]
        self._claim(new)
        return PlannedWrite(writing, payloads, found, claimed=bool(new))

    async def send(self, planned: PlannedWrite) -> None:
        """Write what `plan` decided; each item gets its outcome, or fails with the reason."""
        writing = planned.writing
        if not writing:
            return
        try:
            results = await self.target.write(
                self.target_entity, planned.payloads, found=planned.found
            )
        except ConnectorError as error:
            if error.stops_run:  # the connection cannot be used: the run fails
                raise
            # The pending links stay: the target may have taken some of them before it failed.
            for item in writing:
                item.fail(f"{item.label}: the target did not take it: {error}")
            return
        refused: list[str] = []
        for item, result in zip(writing, results, strict=True):
            if result.error is not None:
                item.fail(str(result.error))
                refused.append(item.source_key)
            else:
                item.outcome = OutcomeKind.CREATED if result.created else OutcomeKind.UPDATED
                item.target_key = result.key or item.target_key
        if refused and planned.claimed:
            self.store.links.delete_pending(self.integration_id, self.link_entity, refused)

    def _has_key(self, item: Item) -> bool:
        """Whether the item's payload has its target key (kept as its `target_key`); an item
        without one fails."""
        assert item.create is not None and item.update is not None
        key = item.create.get(self.key_field)
        if key in (None, ""):
            item.fail(f"{item.label}: field {self.key_field}: has no value; map it")
            return False
        item.target_key = str(key)
        return True

    def _confirmed_links(self, items: Sequence[Item]) -> dict[str, Link]:
        """The items' links whose write is known to have happened; a pending link's write may
        never have, so its item is looked up as if unlinked."""
        return {
            key: link
            for key, link in self.store.links.get_many(
                self.integration_id, self.link_entity, [i.source_key for i in items]
            ).items()
            if not link.pending
        }

    def _claim(self, items: Sequence[Item]) -> None:
        """Pending links for items that have none, before they are written (guarantee 2).

        A process killed between the target write and `record` would otherwise leave target
        records no link names, and the flow going the other way would take them for its own
        source's records and write them back. The pending link keeps their origin, and
        already the hash of what is sent, so that `record` confirms it by its flag alone.
        """
        claims: list[LinkEntry] = []
        for item in items:
            assert item.update is not None
            item.claim = LinkEntry(
                item.source_key, str(item.target_key), content_hash(item.update), pending=True
            )
            claims.append(item.claim)
        if claims:
            self.store.links.upsert_many(self.integration_id, self.link_entity, claims)

    def _refuse_shared_keys(self, items: Sequence[Item]) -> set[str]:
        """Fail every item whose target key another source record holds (guarantee 2); returns
        the items' target keys that a link names.

        A mapping that cuts or cleans keys (`overflow: truncate`, `digits_only`) can give two
        source records one target key; writing both would make the second overwrite the first.
        The key belongs to the source record linked to it earlier, else to the first of the batch.
        """
        claimed: dict[str, set[str]] = {}
        for link in self.store.links.find_by_target(
            self.integration_id, self.link_entity, [str(i.target_key) for i in items]
        ):
            claimed.setdefault(link.target_key, set()).add(link.source_key)
        first: dict[str, Item] = {}
        for item in items:
            key = str(item.target_key)
            owners = claimed.get(key)
            if owners is None:
                other = first.setdefault(key, item)
                if other.source_key == item.source_key:
                    continue
                holder = f"{other.label} (source key {other.source_key!r}) in the same batch"
            elif item.source_key in owners:
                continue
            else:
                holder = f"source record {min(owners)!r}, synced earlier"
            item.fail(
                f"{item.label}: field {self.key_field}: target key {key!r} is already taken by "
                f"{holder}; two source records never become one target record: change the "
                f"mapping of {self.key_field} (or the source) so the keys differ"
            )
        return set(claimed)

    def record(self, run_id: str, items: Sequence[Item]) -> dict[str, int]:
        """Outcomes, links and dead letters of a batch in one transaction; returns the counts."""
        outcomes: list[OutcomeEntry] = []
        links: list[LinkEntry] = []
        confirmed: list[LinkEntry] = []
        dead: list[DeadLetterEntry] = []
        resolved: list[str] = []
        counts: dict[str, int] = {}
        # By id() of the source record: the variants of one product share their record.
        source_excerpts: dict[int, Any] = {}
        for item in items:
            outcome = item.outcome or OutcomeKind.FAILED
            if id(item.source) not in source_excerpts:
                source_excerpts[id(item.source)] = excerpt(item.source)
            # Another entity of the flow (a products flow's categories) is counted as itself.
            counted = f"{self.link_entity}.{outcome.value}" if self.log_prefix else outcome.value
            counts[counted] = counts.get(counted, 0) + 1
            logged_key = self.log_prefix + item.source_key
            outcomes.append(
                OutcomeEntry(
                    source_key=logged_key,
                    record_key=item.record_key,
                    outcome=outcome,
                    reason=item.reason or ("not processed" if item.outcome is None else None),
                    target_key=item.target_key,
                    warnings=tuple(item.warnings),
                    payload_excerpt={
                        "source": source_excerpts[id(item.source)],
                        "sent": excerpt(self._sent(item)),
                    },
                )
            )
            if outcome is OutcomeKind.FAILED:
                payload = plain_json(item.source)
                reason = item.reason or "failed"
                dead.append(DeadLetterEntry(logged_key, reason, payload, item.waits_for))
                continue
            resolved.append(logged_key)
            if outcome is OutcomeKind.SKIPPED or not item.target_key or item.update is None:
                continue
            claim = item.claim
            if claim is not None and claim.target_key == item.target_key:
                confirmed.append(LinkEntry(item.source_key, item.target_key, claim.content_hash))
            else:
                links.append(LinkEntry(item.source_key, item.target_key, content_hash(item.update)))
        with self.store.transaction() as tx:
            tx.outcomes.record_many(run_id, outcomes)
            if links:
                tx.links.upsert_many(self.integration_id, self.link_entity, links)
            if confirmed:
                tx.links.confirm_many(self.integration_id, self.link_entity, confirmed)
            if dead:
                tx.dead_letters.add_many(self.flow_id, dead)
            if resolved:
                tx.dead_letters.resolve_many(self.flow_id, resolved)
        return counts

    @staticmethod
    def _sent(item: Item) -> Record | None:
        if item.outcome in (OutcomeKind.CREATED, OutcomeKind.UPDATED):
            return item.create if item.outcome is OutcomeKind.CREATED else item.update
        return None


__all__ = [
    "UNCHANGED_REASON",
    "Item",
    "PlannedWrite",
    "TargetWriter",
    "excerpt",
    "plain_json",
    "to_canonical",
    "to_target",
]
