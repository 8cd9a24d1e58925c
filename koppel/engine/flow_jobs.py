"""A flow run as the engine drives it: phases of batches, each batch one page of source records.

A batch reads one page after the last record the previous batch finished (keyset `after`), so a
run that was killed resumes where its last recorded batch ended. The cursor (`since`) moves only
when the whole run is done, and to the time the run *started* (less a margin for clock skew):
a record changed while the run was paging is read again next time rather than lost. Records seen
twice cost nothing: their content hash matches their link and they are skipped.

The last phase retries dead letters: those whose backoff has passed in a normal run, all of
them in a replay. Either way they are read again from the source and go through the current
mapping and settings.

A targeted run (`CHANGES_JOB`, started by webhooks) has one phase instead: the records that
deliveries named (the store's pending changes), claimed a page at a time, read by key and synced,
until none are left (also those named while it runs: a burst that trickles in is drained by one
run) or `TARGETED_BATCHES` pages are done (then the next run goes on, and a full run of the flow
is not kept waiting for long). It moves no cursor (it read only those records) and leaves dead
letters to the full runs; the schedule stays the safety net for a lost delivery.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import httpx

from koppel.connectors.base import Record
from koppel.connectors.errors import ConnectorError
from koppel.engine.jobs import BatchResult, JsonState
from koppel.errors import reason_of
from koppel.flows.dry_run import Rehearsal
from koppel.flows.registry import FlowType, RecordSync, dependents, flow_type, prerequisites
from koppel.flows.runtime import FlowRuntime, connection_fix, ready
from koppel.flows.turns import TakesTurns, Turns
from koppel.store import DeadLetterStatus, Flow, OutcomeKind, RunStatus, Store, counted

DEAD_LETTERS = "dead_letters"
RECORDS = "records"
"""The phase of a resync run: the records it names, read again from the source and synced."""
CHANGES = "changes"
FLOW_JOB = "flow"
REPLAY_JOB = "replay"
RESYNC_JOB = "resync"
CHANGES_JOB = "changes"
TARGETED_BATCHES = 50
"""Pages of pending changes one targeted run syncs at most."""
PAGES_AHEAD = 3
"""Pages launched after the engine's batch. While it records, the next one posts, the one
after looks up, and the third is read: no page waits for its read, and our own work has the
waits of three pages to fill (docs/performance.md, section 26)."""

_PageKey = tuple[str, str | None, str | None]
"""A page of a phase: (phase, since, after)."""


def _now() -> datetime:
    return datetime.now(UTC)


class FlowJob:
    """One run of one flow. Built anew on every resume, so it holds nothing but its arguments."""

    def __init__(
        self,
        store: Store,
        flow_id: int,
        *,
        replay: bool = False,
        targeted: bool = False,
        dead_letter_ids: frozenset[int] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        executor: str | None = None,
        dry_run: Rehearsal | None = None,
        records: Sequence[str] | None = None,
    ) -> None:
        """`dead_letter_ids` limits a replay to those dead letters (None: all pending);
        `targeted` syncs only the flow's pending changes (the records webhooks named);
        `dry_run` makes the run write nowhere (its store should be a `Store.rehearsal()`);
        `records` makes it a resync of those source keys (as the flow logs them) only, a
        reconciliation's "sync these". Neither targeted kind moves the cursor."""
        self.store = store
        """What the job reads and writes; fenced to its run and executor once it knows the run
        (`_own`), so a worker whose run was taken over writes nothing more for it."""
        self._unfenced = store
        self._owner: str | None = None
        self.flow_id = flow_id
        self.replay = replay
        self.targeted = targeted
        self.dead_letter_ids = dead_letter_ids
        self.transport = transport
        self.executor = executor
        self.dry_run = dry_run
        self.records = None if records is None else tuple(dict.fromkeys(records))
        self._runtime: FlowRuntime | None = None
        self._syncs: dict[str, RecordSync] = {}
        self._ahead: list[_PageInFlight] = []
        """The pages after the engine's batch, in page order: read and synced ahead up to
        their turns while the batch is still this one (`PAGES_AHEAD` at most)."""
        self._calls_before = 0
        """API calls of this job before the batch under way (a failed one's count too)."""

    def _own(self, run_id: str) -> None:
        """Before the first write of this execution (the engine builds a job per execution):
        claim the run, and check on every write transaction from here on that it is still
        ours, so an older execution (a paused worker that wakes up) writes nothing more and
        neither does this one once another takes over (DESIGN guarantee 2 across workers)."""
        if self.executor is None or self.dry_run is not None or self._owner is not None:
            return
        self._owner = f"{self.executor}/{uuid4().hex[:12]}"
        self._unfenced.runs.claim(run_id, self.executor, self._owner)
        self.store = self._unfenced.fenced(run_id, self._owner)

    @property
    def runtime(self) -> FlowRuntime:
        if self._runtime is None:
            self._runtime = FlowRuntime.open(
                self.store, self.flow_id, transport=self.transport, dry_run=self.dry_run
            )
        return self._runtime

    @property
    def flow_type(self) -> FlowType:
        runtime = self.runtime
        return flow_type(runtime.source_connection.application, runtime.flow.entity)

    def _sync(self, phase: str) -> RecordSync:
        if phase not in self._syncs:
            self._syncs[phase] = self.flow_type.syncs[phase](self.runtime)
        return self._syncs[phase]

    async def start(self, run_id: str) -> JsonState:
        """The run's row first, so that a flow that cannot start (a mapping that does not
        parse, credentials under another key, a setting or a connection that must be fixed)
        still leaves a failed run with its reason, before any record is touched."""
        self._own(run_id)
        self.store.runs.start(
            self.flow_id, run_id=run_id, executor=self.executor, owner=self._owner
        )
        try:
            runtime = self.runtime
            ready(runtime.source_connection)
            ready(runtime.target_connection)
            phases = list(self.flow_type.phases)
            for phase in phases:
                self._sync(phase)
        except Exception as error:
            self.store.runs.finish(run_id, RunStatus.FAILED, error=self.describe_failure(error))
            if self.targeted:  # left to the full run, not tried again while the cause lasts
                self.store.pending_changes.drop(self.flow_id, received_until=_now())
            if self._runtime is not None:
                self._runtime.record_health()
                await self._runtime.aclose()
            raise
        cursor = self.store.cursors.get(self.flow_id)
        now = _now()
        started = now - timedelta(seconds=runtime.settings.cursor_margin_seconds)
        named = self.replay or self.records is not None
        waiting = None if named else self._waiting_for(runtime.flow)
        if waiting is not None:
            phases_to_run = []
            if self.targeted:  # the full run it waits for reads them from its cursor
                self.store.pending_changes.drop(self.flow_id, received_until=now)
        elif self.records is not None:
            phases_to_run = [RECORDS]
        elif self.targeted:
            phases_to_run = [CHANGES]
        else:
            phases_to_run = [DEAD_LETTERS] if self.replay else [*phases, DEAD_LETTERS]
        return {
            "received_until": now.isoformat(),
            "phases": phases_to_run,
            "waiting": waiting,
            "phase": 0,
            "since": self._since(cursor.value if cursor else None),
            "after": None,
            "started": started.isoformat(),
            "api_calls": 0,
            "counts": {},
        }

    def _waiting_for(self, flow: Flow) -> str | None:
        """Why the run is deferred: the flows it depends on that have not completed a run yet
        (on a first sync, stock would fail against articles the products flow has not made)."""
        first = [
            f for f in prerequisites(self.store, flow) if not self.store.runs.has_completed(f.id)
        ]
        if not first:
            return None
        names = ", ".join(f.name for f in first)
        return (
            f"waits for flow {names} to complete a run first: it syncs what this flow needs; "
            f"this flow runs at its next turn after that (now: koppel sync --flow {first[0].name})"
        )

    def _since(self, cursor: str | None) -> str | None:
        """Where reading starts: the cursor, else the flow's `retrieve_from` setting (a date or
        time: older records are never picked up), else the beginning; a replay reads no pages."""
        if self.replay:
            return None
        if cursor:
            return cursor
        retrieve_from = self.runtime.settings.retrieve_from
        return None if retrieve_from is None else retrieve_from.isoformat()

    async def run_batch(self, run_id: str, state: JsonState) -> BatchResult:
        self._own(run_id)
        runtime = self.runtime
        calls_before = self._calls_before = runtime.api_calls()
        if state["phase"] >= len(state["phases"]):  # a deferred run reads nothing
            return BatchResult(dict(state), True, {})
        phase = state["phases"][state["phase"]]
        if phase == DEAD_LETTERS:
            counts, after = await self._retry_dead_letters(run_id, state)
        elif phase == RECORDS:
            counts, after = await self._sync_records(run_id, state)
        elif phase == CHANGES:
            counts, after = await self._sync_changes(run_id, state)
        else:
            counts, after = await self._read_and_sync(run_id, phase, state)
        next_state = dict(state)
        next_state["api_calls"] = state["api_calls"] + runtime.api_calls() - calls_before
        so_far = dict(state.get("counts", {}))
        for kind, number in counts.items():
            so_far[kind] = so_far.get(kind, 0) + number
        next_state["counts"] = so_far
        self.store.runs.progress(run_id, so_far, api_calls=next_state["api_calls"])
        if after is None:
            next_state["phase"] = state["phase"] + 1
            next_state["after"] = None
        else:
            next_state["after"] = after
        done = next_state["phase"] >= len(state["phases"])
        return BatchResult(next_state, done, counts)

    async def _read_and_sync(
        self, run_id: str, phase: str, state: JsonState
    ) -> tuple[dict[str, int], str | None]:
        """One page of the phase's source entity; `after` is None once the source is exhausted.

        Pages are in flight together (`koppel.flows.turns`): once a page is read, the next one
        is launched (read, then synced up to its turns), up to `PAGES_AHEAD` after this batch's.
        The pages ahead are never recorded for this batch: the state moves to the last record
        of this page only, and a run that is killed syncs them again on resume.
        `PAGES_AHEAD` + 1 pages at most, so memory stays flat.
        """
        key = (phase, state["since"], state["after"])
        page = self._page_in_flight(key) or self._launch(run_id, key, before=None)
        try:
            records = await page.read
        except BaseException:
            _discard(page.synced)
            raise
        if not records:
            await page.synced
            return {}, None
        self._keep_ahead(run_id, self._ahead[-1] if self._ahead else page)
        id_field = self.runtime.source.entities[self.runtime.source_entity(phase)].id_field
        try:
            counts = await page.synced
        except BaseException:
            self._drop_ahead()
            raise
        return counts, str(records[-1][id_field])

    def _page_in_flight(self, key: _PageKey) -> _PageInFlight | None:
        """The first page launched ahead when it is the one at `key`; otherwise every page
        ahead is dropped."""
        if self._ahead and self._ahead[0].key == key:
            return self._ahead.pop(0)
        self._drop_ahead()
        return None

    def _keep_ahead(self, run_id: str, last: _PageInFlight) -> None:
        """Launch the page after `last` (the last page in flight) once `last` is read and not
        empty, and so on, until `PAGES_AHEAD` pages are ahead of the batch; a page read later
        goes on from its read's callback, a page the batch takes up from `_read_and_sync`."""
        while len(self._ahead) < PAGES_AHEAD:
            read = last.read
            if not read.done() or read.cancelled() or read.exception() is not None:
                return
            records = read.result()
            if not records:
                return
            phase, since, _ = last.key
            id_field = self.runtime.source.entities[self.runtime.source_entity(phase)].id_field
            page = self._launch(
                run_id, (phase, since, str(records[-1][id_field])), before=last.turns
            )
            self._ahead.append(page)
            page.read.add_done_callback(functools.partial(self._read_ahead, run_id, page))
            last = page

    def _read_ahead(self, run_id: str, page: _PageInFlight, _: object) -> None:
        if self._ahead and self._ahead[-1] is page:  # not dropped, and the last in flight
            self._keep_ahead(run_id, page)

    def _launch(self, run_id: str, key: _PageKey, before: Turns | None) -> _PageInFlight:
        read = asyncio.ensure_future(self._read_page(key))
        # A request in a turn goes out only while the run is this execution's: a worker woken
        # from a pause finds its run taken over before its next post, not after it.
        turns = Turns.after(before, before_each_request=self.store.check_owner)
        synced = asyncio.ensure_future(self._sync_page(run_id, key[0], read, turns))
        return _PageInFlight(key, read, turns, synced)

    async def _sync_page(
        self, run_id: str, phase: str, read: asyncio.Future[list[Record]], turns: Turns
    ) -> dict[str, int]:
        try:
            records = await read
            if not records:
                return {}
            sync = self._sync(phase)
            if isinstance(sync, TakesTurns):
                return await sync.sync_in_turns(run_id, records, turns)
            async with turns.decide, turns.write:
                return await sync.sync(run_id, records)
        finally:
            turns.close()

    async def _read_page(self, key: _PageKey) -> list[Record]:
        phase, since, after = key
        runtime = self.runtime
        pages = runtime.source.read(
            runtime.source_entity(phase),
            since=datetime.fromisoformat(since) if since else None,
            after=after,
            page_size=runtime.settings.page_size,
        )
        try:
            return await anext(pages, [])
        finally:
            await pages.aclose()

    def _drop_ahead(self) -> None:
        ahead, self._ahead = self._ahead, []
        for page in ahead:
            page.drop()

    async def _sync_changes(
        self, run_id: str, state: JsonState
    ) -> tuple[dict[str, int], str | None]:
        """One page of the pending changes, read by key in one lookup per phase (the source's
        batch filter) and synced; None once there are none, or this run has done its share.

        A batch run again after a crash takes up the rows it had claimed. A record named again
        while this batch reads it is unclaimed by that and comes in a later batch."""
        runtime = self.runtime
        done = int(state["after"] or 0)
        if done >= TARGETED_BATCHES:
            return {}, None
        claimed = self.store.pending_changes.claim(
            self.flow_id, run_id, limit=runtime.settings.page_size
        )
        if not claimed:
            return {}, None
        by_phase: dict[str, list[str]] = {}
        for phase, key in claimed:
            by_phase.setdefault(phase, []).append(key)
        counts: dict[str, int] = {}
        for phase in self.flow_type.phases:
            if phase not in by_phase:
                continue
            entity = runtime.source_entity(phase)
            key_field = (
                self.flow_type.retry_keys.get(phase) or runtime.source.entities[entity].id_field
            )
            records = await runtime.source.lookup(entity, key_field, by_phase[phase])
            if records:
                for kind, number in (await self._sync(phase).sync(run_id, records)).items():
                    counts[kind] = counts.get(kind, 0) + number
        self.store.pending_changes.release(self.flow_id, run_id)
        return counts, str(done + 1)

    async def _retry_dead_letters(
        self, run_id: str, state: JsonState
    ) -> tuple[dict[str, int], str | None]:
        """One page of pending dead letters, read again from the source and synced."""
        runtime = self.runtime
        after_id = int(state["after"]) if state["after"] else None
        letters = self.store.dead_letters.list(
            self.flow_id,
            status=DeadLetterStatus.PENDING,
            limit=runtime.settings.page_size,
            after_id=after_id,
        )
        if not letters:
            return {}, None
        cutoff = datetime.fromisoformat(state["started"])
        chosen = [
            d for d in letters if self.dead_letter_ids is None or d.id in self.dead_letter_ids
        ]
        due = [d for d in chosen if self.replay or _aware(d.next_attempt_at) <= cutoff]
        by_phase: dict[str, list[str]] = {}
        for letter in due:
            phase, _ = self.flow_type.phase_of(runtime.flow.entity, letter.source_key)
            by_phase.setdefault(phase, []).append(letter.source_key)
        counts: dict[str, int] = {}
        for phase, logged_keys in by_phase.items():
            for kind, number in (await self._retry(run_id, phase, logged_keys)).items():
                counts[kind] = counts.get(kind, 0) + number
        return counts, str(letters[-1].id)

    async def _sync_records(
        self, run_id: str, state: JsonState
    ) -> tuple[dict[str, int], str | None]:
        """One page of the records a targeted run names, by their phase (`category:7` is the
        categories phase's); `after` is how many of them are done."""
        assert self.records is not None
        done = int(state["after"] or 0)
        chosen = self.records[done : done + self.runtime.settings.page_size]
        if not chosen:
            return {}, None
        by_phase: dict[str, list[str]] = {}
        for key in chosen:
            phase, _ = self.flow_type.phase_of(self.runtime.flow.entity, key)
            by_phase.setdefault(phase, []).append(key)
        counts: dict[str, int] = {}
        for phase, logged_keys in by_phase.items():
            for kind, number in (await self._retry(run_id, phase, logged_keys)).items():
                counts[kind] = counts.get(kind, 0) + number
        return counts, str(done + len(chosen))

    async def _retry(self, run_id: str, phase: str, logged_keys: list[str]) -> dict[str, int]:
        """Read these records again and sync them; those gone from the source are abandoned."""
        runtime = self.runtime
        entity = runtime.source_entity(phase)
        key_field = self.flow_type.retry_keys.get(phase) or runtime.source.entities[entity].id_field
        record_ids = {
            k: self.flow_type.phase_of(runtime.flow.entity, k)[1].split("/")[0] for k in logged_keys
        }
        records = await runtime.source.lookup(entity, key_field, sorted(set(record_ids.values())))
        found = {str(r[key_field]) for r in records}
        counts: dict[str, int] = {}
        gone = [k for k, record_id in record_ids.items() if record_id not in found]
        if gone:
            self.store.dead_letters.resolve_many(
                self.flow_id, gone, status=DeadLetterStatus.ABANDONED
            )
            counts["abandoned"] = len(gone)
        if records:
            counts.update(await self._sync(phase).sync(run_id, records))
        return counts

    def interrupt(self) -> None:
        self._drop_ahead()
        if self._runtime is not None:
            self._runtime.source.client.interrupt()
            self._runtime.target.client.interrupt()

    def _other_entities(self) -> dict[str, str]:
        """Log prefix -> entity of the other entities the flow writes (a products flow's
        categories), so each is counted as itself; none when the flow could not open."""
        if self._runtime is None:
            return {}
        return {prefix: phase for phase, prefix in self.flow_type.log_prefixes.items()}

    def describe_failure(self, error: Exception) -> str:
        """The error's own message (it says what is wrong), and for a connection that cannot be
        used, which one and the command that checks or authorises it."""
        reason = reason_of(error)
        if not isinstance(error, ConnectorError) or error.connection is None:
            return reason
        name = error.connection
        return f"connection {name}: {reason}\n{connection_fix(error, name)}"

    async def finish(self, run_id: str, state: JsonState, failure: str | None) -> None:
        """Record how the run ended; without opening the flow again (it may be what failed)."""
        self._own(run_id)
        self._drop_ahead()
        entities = self._other_entities()
        try:
            with self.store.transaction() as tx:
                waiting = state.get("waiting")
                targeted = self.replay or self.targeted or self.records is not None
                if failure is None and waiting is None and not targeted:
                    tx.cursors.set(self.flow_id, state["started"])
                if failure is not None and self.targeted and "received_until" in state:
                    # Not tried again run after run while the cause lasts: the next full run
                    # reads these records from its cursor, which has not moved past them.
                    tx.pending_changes.release(self.flow_id, run_id)
                    tx.pending_changes.drop(
                        self.flow_id, received_until=datetime.fromisoformat(state["received_until"])
                    )
                counts = tx.outcomes.counts(run_id, entities)
                if failure is not None:
                    status = RunStatus.FAILED
                elif waiting is not None:
                    status, failure = RunStatus.WAITING, str(waiting)
                elif counted(counts, OutcomeKind.FAILED):
                    status = RunStatus.PARTIAL
                else:
                    status = RunStatus.SUCCEEDED
                if status in (RunStatus.SUCCEEDED, RunStatus.PARTIAL):
                    self._wake_dependents(tx)
                api_calls = int(state["api_calls"])
                if failure is not None and self._runtime is not None:
                    api_calls += self._runtime.api_calls() - self._calls_before
                tx.runs.finish(
                    run_id, status, api_calls=api_calls, error=failure, entities=entities
                )
            if self._runtime is not None:
                self._runtime.record_health()
        finally:
            if self._runtime is not None:
                await self._runtime.aclose()

    def _wake_dependents(self, tx: Store) -> None:
        """The records of flows depending on this one that failed for want of what it syncs
        (`waits_for` its entity) are due at once: their flow's next run retries them, not the
        backoff's."""
        flow = tx.flows.get(self.flow_id)
        if flow is not None:
            waiting = [d.id for d in dependents(tx, flow)]
            tx.dead_letters.due_now(waiting, waits_for=flow.entity)


@dataclass(frozen=True)
class _PageInFlight:
    """A page launched for syncing: its read, its turns and its sync (which awaits the read)."""

    key: _PageKey
    read: asyncio.Future[list[Record]]
    turns: Turns
    synced: asyncio.Future[dict[str, int]]

    def drop(self) -> None:
        """Cancel it: a page synced ahead that no batch will take up (the engine stops, the
        batch before it failed) is synced again by the batch that reads it next."""
        _discard(self.synced)
        _discard(self.read)
        self.turns.close()  # a sync cancelled before it began never closes them itself


def _discard(task: asyncio.Future[Any]) -> None:
    task.cancel()
    # Its result (or error) is not wanted; retrieving it keeps asyncio from warning.
    task.add_done_callback(lambda t: t.cancelled() or t.exception())


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def flow_job_factory(
    store: Store,
    *,
    replay: bool = False,
    targeted: bool = False,
    transport: httpx.AsyncBaseTransport | None = None,
    executor: str | None = None,
) -> Any:
    """The engine's factory: job arguments are the flow id (see `job_args`); `transport` is for
    in-process tests; `executor` (this process's worker id) is kept on the runs it starts;
    `targeted` for the runs that sync a flow's pending changes."""

    def factory(args: str) -> FlowJob:
        flow_id, _, selected = args.partition(":")
        dead_letter_ids = frozenset(int(i) for i in selected.split(",")) if selected else None
        return FlowJob(
            store,
            int(flow_id),
            replay=replay,
            targeted=targeted,
            dead_letter_ids=dead_letter_ids,
            transport=transport,
            executor=executor,
        )

    return factory


def resync_job_factory(
    store: Store,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    executor: str | None = None,
) -> Any:
    """The engine's factory of targeted runs: arguments are `resync_args`'."""

    def factory(args: str) -> FlowJob:
        records = args.split(":", 1)[1]
        return FlowJob(
            store,
            int(flow_of_job_args(args)),
            records=[str(k) for k in json.loads(records)],
            transport=transport,
            executor=executor,
        )

    return factory


def resync_args(flow_id: int, source_keys: Sequence[str]) -> str:
    """A resync run's arguments: the flow, then the source keys (as it logs them) to sync as
    JSON: `12:["SKU-1"]`."""
    return f"{flow_id}:{json.dumps(sorted(set(source_keys)))}"


def job_args(flow_id: int, dead_letter_ids: Sequence[int] | None = None) -> str:
    """A flow job's arguments: `12`, or for a replay of chosen dead letters `12:4,7`."""
    if not dead_letter_ids:
        return str(flow_id)
    return f"{flow_id}:{','.join(str(i) for i in sorted(set(dead_letter_ids)))}"


def flow_of_job_args(args: str) -> str:
    """The flow of a flow job's or a resync's arguments, as the flow's own runs have it: `12`."""
    return args.split(":", 1)[0]


__all__ = [
    "CHANGES",
    "CHANGES_JOB",
    "DEAD_LETTERS",
    "FLOW_JOB",
    "RECORDS",
    "REPLAY_JOB",
    "RESYNC_JOB",
    "TARGETED_BATCHES",
    "FlowJob",
    "flow_job_factory",
    "flow_of_job_args",
    "job_args",
    "resync_args",
    "resync_job_factory",
]
