"""Customers, Parts Pim relations -> AccountView debtors (AR1/CONTACT).

A debtor is found by e-mail address, trimmed and in any letter case, so a debtor typed in
AccountView as `Info@Garage.NL` is updated rather than duplicated. AccountView's filters compare
text case-sensitively, so an exact lookup cannot find it; the flow keeps an index of debtor
e-mail addresses (a keyed hash of the lower-case address -> SUB_NR; the addresses themselves are
not kept) in the links table, refreshed at the start of each run
with the debtors changed since the last refresh (CNG_DATE), so a run costs O(changes). Every
index hit is checked against the debtor's current MAIL_BUS before it is trusted.

Two flows create debtors (this one and the orders flow), so every write holds a per-key lock on
the lower-case e-mail address (its keyed hash) in the store from the lookup until its outcome and
index entry are recorded: the second writer then finds the first one's debtor instead of creating
another.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from koppel.connectors.base import Record
from koppel.connectors.errors import ConnectorError
from koppel.flows.keys import ascii_upper, content_hash
from koppel.flows.mappings import (
    CANONICAL_MODELS,
    RESOLVED,
    FlowMappings,
    canonical_schema,
    flow_mappings,
)
from koppel.flows.orders_to_partspim import CUSTOMER_LINKS
from koppel.flows.pipeline import UNCHANGED_REASON, Item, TargetWriter, to_canonical, to_target
from koppel.flows.runtime import FlowRuntime
from koppel.flows.settings import CustomerSettings
from koppel.flows.turns import Turns
from koppel.mapping import CompiledMapping, compile_mapping
from koppel.store.records import LinkEntry, OutcomeKind

CUSTOMERS = "customers"
CUSTOMER_LOG_PREFIX = "customer:"
DEBTOR_EMAILS = "accountview:debtor-emails"
"""Link entity of the e-mail index: source key = keyed hash of the lower-case e-mail (no
address is stored: `Store.keyed_hash`), target key = SUB_NR."""
DEBTOR_EMAILS_REFRESHED = "accountview:debtor-emails-refreshed"
"""Link entity holding one row: when the index was last brought up to date (target key)."""
_REFRESH_MARK_KEY = "refreshed"
_DEBTORS = "debtors"
_SEARCH_CODE_LENGTH = 10
_LOCK_RETRY_S = 0.2
T = TypeVar("T")

log = logging.getLogger(__name__)


def normalize_email(value: Any) -> str | None:
    """The form e-mail addresses are compared in: trimmed, lower case; None when empty."""
    text = str(value or "").strip().lower()
    return text or None


def search_code(name: str | None) -> str:
    """SRC_CODE for a new debtor: the name's first ten letters and digits, upper case."""
    return ascii_upper(name or "")[:_SEARCH_CODE_LENGTH] or "-"


def relation_label(record: Record) -> str:
    name = record.get("email") or record.get("number") or record.get("id")
    return f"relation '{name}'"


async def partspim_code_tables(runtime: FlowRuntime) -> dict[str, dict[str, str]]:
    """Parts Pim's payment terms and methods as id -> code tables for the get-side mappings;
    both are read at once (a run's first batch waits for them)."""

    async def table(entity: str) -> dict[str, str]:
        rows: dict[str, str] = {}
        async for page in runtime.source.read(entity):
            rows.update((str(r["id"]), str(r["code"])) for r in page)
        return rows

    terms, methods = await asyncio.gather(table("payment_terms"), table("payment_methods"))
    return {"partspim_payment_terms": terms, "partspim_payment_methods": methods}


def compile_get(
    runtime: FlowRuntime, mappings: FlowMappings, entity: str, tables: dict[str, dict[str, str]]
) -> CompiledMapping:
    """The get-side mapping again, with tables the flow read from the source when it started."""
    settings_tables = {k: dict(v) for k, v in runtime.settings.tables.items()}
    return compile_mapping(
        mappings.get_spec,
        target_schema=canonical_schema(entity),
        tables={**settings_tables, **tables},
    )


def customer_mappings(runtime: FlowRuntime) -> FlowMappings:
    """The customers flow's mappings; the orders flow uses those of the integration's customers
    flow (with its overrides) when there is one, so a debtor looks the same whoever writes it."""
    if runtime.flow.entity == CUSTOMERS:
        return runtime.mappings
    overrides: dict[str, Any] = next(
        (
            flow.mapping
            for flow in runtime.store.flows.list(runtime.integration.id)
            if flow.entity == CUSTOMERS
            and flow.source_connection_id == runtime.flow.source_connection_id
            and flow.target_connection_id == runtime.flow.target_connection_id
        ),
        {},
    )
    return flow_mappings(
        entity=CUSTOMERS,
        source_application=runtime.source_connection.application,
        source_schema=runtime.source.entities[runtime.source_entity(CUSTOMERS)].schema,
        target_application=runtime.target_connection.application,
        target_schema=runtime.target.entities[runtime.target_entity(CUSTOMERS)].schema,
        overrides=overrides,
        tables=runtime.settings.tables,
    )


class DebtorWriter:
    """Creates or updates the debtors of canonical customers, found by e-mail in any case."""

    def __init__(self, runtime: FlowRuntime, *, log_prefix: str) -> None:
        self.runtime = runtime
        self.settings = runtime.settings_as(CustomerSettings)
        self.mappings = customer_mappings(runtime)
        self.recorder = TargetWriter(
            runtime.store,
            runtime.integration.id,
            runtime.flow.id,
            CUSTOMERS,
            runtime.target,
            runtime.target_entity(CUSTOMERS),
            log_prefix=log_prefix,
        )
        self._get: CompiledMapping | None = None
        self._tables: asyncio.Future[dict[str, dict[str, str]]] | None = None
        self._index_refresh: asyncio.Future[None] | None = None

    @property
    def lock_scope(self) -> str:
        return f"integration:{self.runtime.integration.id}:debtor-email"

    async def code_tables(self) -> dict[str, dict[str, str]]:
        """Parts Pim's code tables, read once per run and shared: by the orders flow's own get
        side, and by the page in flight beside the first one, which maps while the first still
        waits for them. A page called off does not call off the read the other awaits; one
        that failed is read again."""
        tables = self._tables
        if tables is None or (tables.done() and (tables.cancelled() or tables.exception())):
            tables = self._tables = _shared(partspim_code_tables(self.runtime))
        return await asyncio.shield(tables)

    async def canonical(self, items: Sequence[Item]) -> None:
        """Map each relation to a canonical customer (item.canonical), or fail the item."""
        if self._get is None:
            tables = await self.code_tables()
            if self._get is None:  # not compiled by a page that awaited the tables beside this
                self._get = compile_get(self.runtime, self.mappings, CUSTOMERS, tables)
        for item in items:
            if item.pending:
                to_canonical(item, self._get, CANONICAL_MODELS[CUSTOMERS])

    async def upsert(self, run_id: str, items: Sequence[Item]) -> dict[str, int]:
        """Write the pending items' customers and record every item's outcome (one transaction).

        On return a created, updated or skipped item's target_key is its debtor's SUB_NR.
        """
        pending = [i for i in items if i.pending and i.canonical is not None]
        emails = {
            i.source_key: normalize_email(i.canonical["email"]) for i in pending if i.canonical
        }
        store = self.runtime.store
        links = store.links.get_many(
            self.runtime.integration.id, CUSTOMERS, [i.source_key for i in pending]
        )
        for item in pending:
            if emails[item.source_key] is None and item.source_key not in links:
                item.fail(
                    f"{item.label}: field email: is empty; Koppel finds and creates debtors "
                    "by e-mail address"
                )
        hashed = {e: store.keyed_hash(e) for e in emails.values() if e is not None}
        held = await self._lock(run_id, sorted(set(hashed.values())))
        try:
            for item in pending:
                email = emails[item.source_key]
                if item.pending and email is not None and hashed[email] not in held:
                    item.fail(
                        f"{item.label}: another flow is writing the debtor with e-mail "
                        f"{email} right now; the record is retried later"
                    )
            await self._write(run_id, [i for i in pending if i.pending], emails, links)
            index = [
                LinkEntry(hashed[email], i.target_key)
                for i in items
                if i.outcome in (OutcomeKind.CREATED, OutcomeKind.UPDATED, OutcomeKind.SKIPPED)
                and i.target_key
                and (email := emails.get(i.source_key)) is not None
            ]
            if index:
                store.links.upsert_many(self.runtime.integration.id, DEBTOR_EMAILS, index)
            return self.recorder.record(run_id, items)
        finally:
            if held:
                store.key_locks.release_many(self.lock_scope, sorted(held), run_id)

    async def _lock(self, run_id: str, emails: list[str]) -> set[str]:
        """Take the e-mail locks, waiting a while for those another flow holds."""
        if not emails:
            return set()
        locks = self.runtime.store.key_locks
        ttl = timedelta(seconds=max(600.0, self.settings.customer_lock_wait_seconds * 4))
        deadline = asyncio.get_running_loop().time() + self.settings.customer_lock_wait_seconds
        held = locks.acquire_many(self.lock_scope, emails, run_id, ttl=ttl)
        if len(held) < len(emails):
            log.info(
                "run %s waits up to %gs for %d debtor e-mail address(es) another flow is writing",
                run_id,
                self.settings.customer_lock_wait_seconds,
                len(emails) - len(held),
            )
        while len(held) < len(emails) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(_LOCK_RETRY_S)
            held |= locks.acquire_many(
                self.lock_scope, [e for e in emails if e not in held], run_id, ttl=ttl
            )
        return held

    async def _write(
        self,
        run_id: str,
        items: list[Item],
        emails: dict[str, str | None],
        links: dict[str, Any],
    ) -> None:
        if not items:
            return
        try:
            numbers, unmatched = await self._debtor_numbers(items, emails, links)
        except ConnectorError as error:
            if error.stops_run:  # the connection cannot be used: the run fails
                raise
            for item in items:
                item.fail(f"{item.label}: could not look the debtor up in AccountView: {error}")
            return
        payloads: list[Record] = []
        writing: list[Item] = []
        for item in items:
            assert item.canonical is not None
            customer = item.canonical
            number = numbers.get(item.source_key)
            resolved = {
                "debtor_number": number,
                "collective_account": self.settings.debtor_collective_account,
                "search_code": search_code(customer["company_name"] or customer["contact_name"]),
            }
            if not to_target(item, self.mappings.send, {**customer, RESOLVED: resolved}):
                continue
            assert item.create is not None and item.update is not None
            link = links.get(item.source_key)
            if number is not None:
                item.target_key = number
            if (
                link is not None
                and number == link.target_key
                and link.content_hash == content_hash(item.update)
            ):
                item.outcome = OutcomeKind.SKIPPED
                item.reason = UNCHANGED_REASON
                continue
            payloads.append(item.update if number is not None else item.create)
            writing.append(item)
        if not writing:
            return
        # The look-up by e-mail was just made under the lock: the write need not ask again.
        found: dict[str, Record | None] = {
            mail: None
            for payload in payloads
            if (mail := str(payload.get("MAIL_BUS") or "")) in unmatched
        }
        try:
            results = await self.runtime.target.write(_DEBTORS, payloads, found=found)
        except ConnectorError as error:
            if error.stops_run:  # the connection cannot be used: the run fails
                raise
            for item in writing:
                item.fail(f"{item.label}: AccountView did not take the debtor: {error}")
            return
        for item, result in zip(writing, results, strict=True):
            if result.error is not None:
                item.fail(f"{item.label}: {result.error}")
            else:
                item.outcome = OutcomeKind.CREATED if result.created else OutcomeKind.UPDATED
                item.target_key = result.target_id or item.target_key
                if item.update is not None and item.target_key:
                    # hashed as the next run's update payload will be: with the debtor number
                    item.update = {**item.update, "SUB_NR": item.target_key}

    async def _debtor_numbers(
        self, items: list[Item], emails: dict[str, str | None], links: dict[str, Any]
    ) -> tuple[dict[str, str], set[str]]:
        """SUB_NR of each item's debtor when it has one: by link, else by e-mail in any case;
        and the e-mail addresses, as typed, that were looked up exactly and no debtor has."""
        numbers = {
            i.source_key: links[i.source_key].target_key for i in items if i.source_key in links
        }
        unlinked = {
            i.source_key: email
            for i in items
            if i.source_key not in numbers and (email := emails[i.source_key]) is not None
        }
        if not unlinked:
            return numbers, set()
        await asyncio.shield(self.refresh_index())
        store, integration_id = self.runtime.store, self.runtime.integration.id
        hashed = {email: store.keyed_hash(email) for email in unlinked.values()}
        index = store.links.get_many(integration_id, DEBTOR_EMAILS, sorted(set(hashed.values())))
        candidates = sorted({link.target_key for link in index.values()})
        target = self.runtime.target
        found = await target.lookup(_DEBTORS, "SUB_NR", candidates) if candidates else []
        by_email: dict[str, str] = {}
        for debtor in found:
            email = normalize_email(debtor.get("MAIL_BUS"))
            link = index.get(hashed.get(email or "", ""))
            if email is not None and link is not None and link.target_key == debtor["SUB_NR"]:
                by_email[email] = str(debtor["SUB_NR"])
        missing = [
            i for i in items if i.source_key in unlinked and unlinked[i.source_key] not in by_email
        ]
        unmatched: set[str] = set()
        if missing:
            exact: list[str] = []
            for item in missing:
                assert item.canonical is not None
                typed = str(item.canonical["email"]).strip()
                exact += [typed, typed.lower()]
            debtors = await target.lookup(_DEBTORS, "MAIL_BUS", exact)
            for debtor in sorted(debtors, key=lambda d: str(d["SUB_NR"])):
                email = normalize_email(debtor.get("MAIL_BUS"))
                if email is not None:
                    by_email.setdefault(email, str(debtor["SUB_NR"]))
            unmatched = set(exact) - {str(d.get("MAIL_BUS")) for d in debtors}
        for key, email in unlinked.items():
            if email in by_email:
                numbers[key] = by_email[email]
        return numbers, unmatched

    def refresh_index(self) -> asyncio.Future[None]:
        """The run's refresh of the e-mail index: started by the first part of the run that
        needs it (the orders flow starts it beside its other look-ups) and shared after that,
        also by pages in flight together, so no page calls it off; one that failed or was
        called off is started again."""
        refresh = self._index_refresh
        if refresh is None or (refresh.done() and (refresh.cancelled() or refresh.exception())):
            refresh = self._index_refresh = _shared(self._refresh_index())
        return refresh

    async def _refresh_index(self) -> None:
        """Bring the e-mail index up to date with the debtors changed since its last refresh."""
        store, integration_id = self.runtime.store, self.runtime.integration.id
        marks = store.links.get_many(integration_id, DEBTOR_EMAILS_REFRESHED, [_REFRESH_MARK_KEY])
        mark = marks.get(_REFRESH_MARK_KEY)
        since = datetime.fromisoformat(mark.target_key) if mark else None
        started = datetime.now(UTC) - timedelta(seconds=self.runtime.settings.cursor_margin_seconds)
        async for page in self.runtime.target.read(_DEBTORS, since=since, page_size=1000):
            entries: dict[str, str] = {}
            for debtor in page:
                email = normalize_email(debtor.get("MAIL_BUS"))
                if email is not None:
                    entries.setdefault(store.keyed_hash(email), str(debtor["SUB_NR"]))
            store.links.upsert_many(
                integration_id,
                DEBTOR_EMAILS,
                [LinkEntry(digest, number) for digest, number in entries.items()],
            )
        store.links.upsert_many(
            integration_id,
            DEBTOR_EMAILS_REFRESHED,
            [LinkEntry(_REFRESH_MARK_KEY, started.isoformat())],
        )


def _shared(call: Coroutine[Any, Any, T]) -> asyncio.Future[T]:
    """A read the run's pages share: its error is theirs to handle (each awaits it), and one
    that none awaited (the run ended first) does not make asyncio warn."""
    future = asyncio.ensure_future(call)
    future.add_done_callback(lambda f: f.cancelled() or f.exception())
    return future


class CustomerSync:
    """Parts Pim relations -> AccountView debtors; the RecordSync of the customers flow."""

    def __init__(self, runtime: FlowRuntime) -> None:
        self.runtime = runtime
        own_flow = runtime.flow.entity == CUSTOMERS
        self.writer = DebtorWriter(runtime, log_prefix="" if own_flow else CUSTOMER_LOG_PREFIX)

    async def sync(self, run_id: str, records: Sequence[Record]) -> dict[str, int]:
        return await self.sync_in_turns(run_id, records, Turns.after(None))

    async def sync_in_turns(
        self, run_id: str, records: Sequence[Record], turns: Turns
    ) -> dict[str, int]:
        """The page mapped before its turns, the debtors written in its turn to write
        (`koppel.flows.turns`): the look-up by e-mail, the post and the record, all under the
        e-mail locks. The look-up is in the write turn, not the turn to decide, because it must
        see the debtors the page before made, and AccountView gives a new debtor its number
        only when it takes the post (no pending link could claim it); and the locks are the
        run's, so the pages of one run must not hold them at the same time."""
        items = [Item(str(r["id"]), relation_label(r), r) for r in records]
        for item in items:
            if item.source.get("role") == "supplier":
                item.outcome = OutcomeKind.SKIPPED
                item.reason = "a supplier, not a customer: suppliers are not debtors"
        self._skip_echoes(items)
        await self.writer.canonical(items)
        async with turns.write:
            return await self.writer.upsert(run_id, items)

    def _skip_echoes(self, items: Sequence[Item]) -> None:
        """Relations the orders flow from AccountView made in Parts Pim came from AccountView's
        debtors: they are not written back there."""
        store, integration_id = self.runtime.store, self.runtime.integration.id
        pending = {i.source_key: i for i in items if i.pending}
        for link in store.links.find_by_target(integration_id, CUSTOMER_LINKS, list(pending)):
            item = pending[link.target_key]
            item.outcome = OutcomeKind.SKIPPED
            item.reason = (
                "came from AccountView (the orders flow from AccountView); a record is not sent "
                "back to where it came from"
            )


__all__ = [
    "CUSTOMERS",
    "CUSTOMER_LOG_PREFIX",
    "DEBTOR_EMAILS",
    "CustomerSettings",
    "CustomerSync",
    "DebtorWriter",
    "compile_get",
    "normalize_email",
    "partspim_code_tables",
    "relation_label",
    "search_code",
]
