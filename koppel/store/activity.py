"""Repositories for what flows do: runs, outcomes (the activity log), dead letters, retention.

Writers take whole batches: a flow records a batch of outcomes in one statement, never one round
trip per record.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

from sqlalchemy import (
    ColumnElement,
    and_,
    case,
    delete,
    func,
    literal,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from koppel.store.context import NotFoundError, StoreContext, StoreError, chunks, upsert
from koppel.store.records import (
    DeadLetter,
    DeadLetterEntry,
    DeadLetterStatus,
    Outcome,
    OutcomeEntry,
    OutcomeKind,
    PurgeResult,
    Run,
    RunStatus,
)
from koppel.store.tables import (
    KEY_LENGTH,
    DeadLetterRow,
    FlowRow,
    JsonText,
    OutcomeRow,
    RunRow,
    json_text,
    utc_now,
)

PURGE_CHUNK = 5_000
_NUMBER_TRIES = 5
Backoff = Callable[[int], timedelta]


def search_key(key: str) -> str:
    """A record key as the activity log's search compares it: trimmed, in lower case (people
    type e-mail addresses and SKUs in either case)."""
    return key.strip().lower()[:KEY_LENGTH]


def retry_backoff(attempts: int) -> timedelta:
    """Wait before retry number `attempts`: 1 min, 2, 4, ... capped at 6 hours."""
    return min(timedelta(minutes=2 ** min(attempts - 1, 20)), timedelta(hours=6))


def _run(row: RunRow) -> Run:
    return Run(
        id=row.id,
        flow_id=row.flow_id,
        status=RunStatus(row.status),
        started_at=row.started_at,
        finished_at=row.finished_at,
        counts=dict(row.counts),
        api_calls=row.api_calls,
        mapping_version=row.mapping_version,
        error=row.error,
        executor=row.executor,
        number=row.number,
    )


def _outcome(row: OutcomeRow) -> Outcome:
    return Outcome(
        id=row.id,
        run_id=row.run_id,
        flow_id=row.flow_id,
        source_key=row.source_key,
        outcome=OutcomeKind(row.outcome),
        reason=row.reason,
        target_key=row.target_key,
        warnings=list(row.warnings),
        payload_excerpt=row.payload_excerpt,
        created_at=row.created_at,
        record_key=row.record_key,
    )


def _dead_letter(row: DeadLetterRow) -> DeadLetter:
    return DeadLetter(
        id=row.id,
        flow_id=row.flow_id,
        source_key=row.source_key,
        reason=row.reason,
        payload=row.payload,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        status=DeadLetterStatus(row.status),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _count_outcomes(
    session: Session, run_id: str, entities: Mapping[str, str] | None = None
) -> dict[str, int]:
    """Outcomes of a run by kind (`created`: 3); those logged under a prefix of `entities`
    (prefix -> entity, the other entities a flow writes) as `entity.kind` (`categories.skipped`)."""
    counts = {kind.value: 0 for kind in OutcomeKind}
    entity = (
        case(
            *(
                (OutcomeRow.source_key.startswith(p, autoescape=True), e)
                for p, e in entities.items()
            ),
            else_=literal(""),
        )
        if entities
        else literal("")
    )
    rows = session.execute(
        select(entity, OutcomeRow.outcome, func.count())
        .where(OutcomeRow.run_id == run_id)
        .group_by(entity, OutcomeRow.outcome)
    )
    for name, outcome, count in rows:
        counts[f"{name}.{outcome}" if name else outcome] = count
    return counts


class RunRepository:
    def __init__(self, context: StoreContext) -> None:
        self._context = context

    def start(
        self,
        flow_id: int,
        *,
        run_id: str | None = None,
        executor: str | None = None,
        owner: str | None = None,
    ) -> Run:
        """Start a run with the flow's current mapping version, by `executor` (a worker id);
        `owner` is the execution that may write for it (`Store.fenced`).

        Starting a `run_id` that exists returns that run unchanged, so a durable engine that
        repeats this step after a crash gets the same run back. The run gets the next number;
        two processes that take the same one at once try again.
        """
        for attempt in range(_NUMBER_TRIES):
            try:
                return self._start(flow_id, run_id, executor, owner)
            except IntegrityError:
                if attempt + 1 == _NUMBER_TRIES or self._context.session is not None:
                    raise
        raise AssertionError("unreachable")

    def _start(
        self, flow_id: int, run_id: str | None, executor: str | None, owner: str | None
    ) -> Run:
        with self._context.write() as session:
            flow = session.scalar(
                select(FlowRow).where(
                    FlowRow.id == flow_id, self._context.in_tenant_flows(FlowRow.id)
                )
            )
            if flow is None:
                raise NotFoundError(f"flow {flow_id} not found")
            if run_id is not None:
                existing = session.get(RunRow, run_id)
                if existing is not None:
                    if existing.flow_id != flow_id:
                        raise StoreError(f"run {run_id} belongs to another flow")
                    return _run(existing)
            row = RunRow(
                id=run_id or uuid4().hex,
                flow_id=flow_id,
                status=RunStatus.RUNNING.value,
                started_at=utc_now(),
                counts={kind.value: 0 for kind in OutcomeKind},
                api_calls=0,
                mapping_version=flow.mapping_version,
                executor=executor,
                owner=owner,
                number=(session.scalar(select(func.max(RunRow.number))) or 0) + 1,
            )
            session.add(row)
            session.flush()
            return _run(row)

    def claim(self, run_id: str, executor: str, owner: str) -> None:
        """This execution (`owner`, of `executor`) runs the run from now on: a resume after a
        crash or a takeover. Any older execution still going (a paused worker) is fenced off
        from its next write on. A run not started yet is claimed by its start."""
        with self._context.write() as session:
            session.execute(
                update(RunRow)
                .where(RunRow.id == run_id, self._context.in_tenant_flows(RunRow.flow_id))
                .values(executor=executor, owner=owner)
            )

    def progress(self, run_id: str, counts: Mapping[str, int], *, api_calls: int) -> None:
        """What a running run has done so far (after each batch), so a list of runs and a
        stop's summary show it; `finish` counts the outcomes again at the end."""
        with self._context.write() as session:
            row = self._require(session, run_id)
            if row.status == RunStatus.RUNNING.value:
                row.counts = {kind.value: 0 for kind in OutcomeKind} | {
                    str(k): int(v) for k, v in counts.items()
                }
                row.api_calls = api_calls

    def finish(
        self,
        run_id: str,
        status: RunStatus,
        *,
        api_calls: int = 0,
        error: str | None = None,
        entities: Mapping[str, str] | None = None,
    ) -> Run:
        """End a run; its counts are computed from its outcomes, so they always match the log
        (those of other entities it wrote, logged under a prefix of `entities`, apart)."""
        if status is RunStatus.RUNNING:
            raise StoreError("finish() needs a final status, not 'running'")
        with self._context.write() as session:
            row = self._require(session, run_id)
            row.status = status.value
            row.finished_at = utc_now()
            row.counts = _count_outcomes(session, run_id, entities)
            row.api_calls = api_calls
            row.error = error
            session.flush()
            return _run(row)

    def get(self, run_id: str) -> Run | None:
        with self._context.read() as session:
            row = self._row(session, run_id)
            return None if row is None else _run(row)

    def has_completed(self, flow_id: int) -> bool:
        """Whether the flow has ever finished a run (every record with an outcome, some of
        them perhaps failed): what the flows that depend on it wait for."""
        completed = (RunStatus.SUCCEEDED.value, RunStatus.PARTIAL.value)
        with self._context.read() as session:
            found = session.scalar(
                select(RunRow.id)
                .where(
                    RunRow.flow_id == flow_id,
                    RunRow.status.in_(completed),
                    self._context.in_tenant_flows(RunRow.flow_id),
                )
                .limit(1)
            )
        return found is not None

    def list(
        self,
        *,
        flow_id: int | None = None,
        flow_ids: Sequence[int] | None = None,
        status: RunStatus | None = None,
        limit: int = 50,
        offset: int = 0,
        before: str | None = None,
        started_from: datetime | None = None,
        started_until: datetime | None = None,
    ) -> list[Run]:
        """Newest first; `flow_ids` limits them to those flows, `before` (a run id) pages by
        key: the runs after that one in this order, which stays right while new runs start.
        `started_from` (inclusive) and `started_until` (exclusive) bound their start."""
        query = select(RunRow).where(self._context.in_tenant_flows(RunRow.flow_id))
        if flow_id is not None:
            query = query.where(RunRow.flow_id == flow_id)
        if flow_ids is not None:
            query = query.where(RunRow.flow_id.in_(flow_ids))
        if status is not None:
            query = query.where(RunRow.status == status.value)
        if started_from is not None:
            query = query.where(RunRow.started_at >= started_from)
        if started_until is not None:
            query = query.where(RunRow.started_at < started_until)
        query = query.order_by(RunRow.started_at.desc(), RunRow.id).limit(limit).offset(offset)
        with self._context.read() as session:
            if before is not None:
                started = self._require(session, before).started_at
                query = query.where(
                    or_(
                        RunRow.started_at < started,
                        and_(RunRow.started_at == started, RunRow.id > before),
                    )
                )
            return [_run(row) for row in session.scalars(query)]

    def sums(
        self,
        flow_ids: Sequence[int],
        *,
        bounds: Sequence[datetime],
        keys: Mapping[str, Sequence[str]],
    ) -> builtins.list[dict[str, int]]:
        """The runs' counts added up per period, in the database: period n holds the runs of
        these flows that started in [bounds[n], bounds[n + 1]); each total (`created`) adds
        the count keys `keys` names for it (`created`, `categories.created`, ...)."""
        periods = len(bounds) - 1
        totals = [dict.fromkeys(keys, 0) for _ in range(max(periods, 0))]
        if periods < 1 or not flow_ids:
            return totals
        period = case(
            *((RunRow.started_at < bounds[n + 1], n) for n in range(periods)), else_=-1
        ).label("period")
        sums = [
            func.sum(
                sum(
                    (func.coalesce(RunRow.counts[key].as_integer(), 0) for key in names),
                    literal(0),
                )
            ).label(total)
            for total, names in keys.items()
        ]
        query = (
            select(period, *sums)
            .where(
                RunRow.flow_id.in_(flow_ids),
                RunRow.started_at >= bounds[0],
                RunRow.started_at < bounds[-1],
                self._context.in_tenant_flows(RunRow.flow_id),
            )
            .group_by(period)
        )
        with self._context.read() as session:
            for row in session.execute(query):
                if 0 <= row.period < periods:
                    totals[row.period] = {total: int(row._mapping[total] or 0) for total in keys}
        return totals

    def totals_by_flow(
        self, keys: Mapping[str, Sequence[str]]
    ) -> builtins.list[tuple[int, RunStatus, int, dict[str, int]]]:
        """Per flow and status: how many runs, and their counts added up (each total adds
        the count keys `keys` names for it, as `sums` does), in one grouped query over the
        runs: the cost follows the number of runs, not of the outcomes they logged."""
        sums = [
            func.sum(
                sum(
                    (func.coalesce(RunRow.counts[key].as_integer(), 0) for key in names),
                    literal(0),
                )
            ).label(total)
            for total, names in keys.items()
        ]
        query = (
            select(RunRow.flow_id, RunRow.status, func.count().label("runs"), *sums)
            .where(self._context.in_tenant_flows(RunRow.flow_id))
            .group_by(RunRow.flow_id, RunRow.status)
        )
        with self._context.read() as session:
            return [
                (
                    int(row.flow_id),
                    RunStatus(row.status),
                    int(row.runs),
                    {total: int(row._mapping[total] or 0) for total in keys},
                )
                for row in session.execute(query)
            ]

    def last_good_by_flow(self) -> dict[int, datetime]:
        """Flow id -> when its last run that succeeded (or partly failed) ended."""
        good = (RunStatus.SUCCEEDED.value, RunStatus.PARTIAL.value)
        query = (
            select(RunRow.flow_id, func.max(RunRow.finished_at))
            .where(
                RunRow.status.in_(good),
                RunRow.finished_at.is_not(None),
                self._context.in_tenant_flows(RunRow.flow_id),
            )
            .group_by(RunRow.flow_id)
        )
        with self._context.read() as session:
            return {int(flow_id): at for flow_id, at in session.execute(query) if at is not None}

    def numbers(self, run_ids: Sequence[str]) -> dict[str, int | None]:
        """Run id -> its number, for these runs (of the tenant), in one query."""
        found: dict[str, int | None] = {}
        with self._context.read() as session:
            for ids in chunks(list(dict.fromkeys(run_ids))):
                rows = session.execute(
                    select(RunRow.id, RunRow.number).where(
                        RunRow.id.in_(ids), self._context.in_tenant_flows(RunRow.flow_id)
                    )
                )
                found.update((run_id, number) for run_id, number in rows)
        return found

    def find(self, id_or_prefix: str) -> builtins.list[Run]:
        """The run with this number or id, or the runs whose id starts with it (people type a
        number or a prefix)."""
        exact = self.get(id_or_prefix)
        if exact is not None:
            return [exact]
        if id_or_prefix.removeprefix("#").isdigit():
            with self._context.read() as session:
                row = session.scalar(
                    select(RunRow).where(
                        RunRow.number == int(id_or_prefix.removeprefix("#")),
                        self._context.in_tenant_flows(RunRow.flow_id),
                    )
                )
                return [] if row is None else [_run(row)]
        query = (
            select(RunRow)
            .where(
                RunRow.id.startswith(id_or_prefix, autoescape=True),
                self._context.in_tenant_flows(RunRow.flow_id),
            )
            .order_by(RunRow.started_at.desc())
            .limit(10)
        )
        with self._context.read() as session:
            return [_run(row) for row in session.scalars(query)]

    def _row(self, session: Session, run_id: str) -> RunRow | None:
        return session.scalar(
            select(RunRow).where(RunRow.id == run_id, self._context.in_tenant_flows(RunRow.flow_id))
        )

    def _require(self, session: Session, run_id: str) -> RunRow:
        row = self._row(session, run_id)
        if row is None:
            raise NotFoundError(f"run {run_id} not found")
        return row


_NO_WARNINGS = JsonText("[]")
_NOT_A_DOWNGRADE = or_(
    literal_column("excluded.outcome") != OutcomeKind.SKIPPED.value,
    and_(
        OutcomeRow.outcome != OutcomeKind.CREATED.value,
        OutcomeRow.outcome != OutcomeKind.UPDATED.value,
    ),
)
"""The update of an outcome row a run wrote before (see `record_many`)."""


def _excerpt_json(excerpt: Mapping[str, Any]) -> JsonText:
    """The excerpt as JSON text, serialised in one go by orjson (`json_text`): its pieces one
    by one through `json.dumps` were a fifth of a batch's recording."""
    return json_text({str(key): value for key, value in excerpt.items()})


class OutcomeRepository:
    def __init__(self, context: StoreContext) -> None:
        self._context = context

    def record_many(self, run_id: str, entries: Sequence[OutcomeEntry]) -> None:
        """Write one outcome per source key; writing a key again (a retried batch) replaces it,
        except that "skipped" never replaces what the same run wrote: a page synced again after
        a resume finds its own writes unchanged, and the run still created or updated them."""
        if not entries:
            return
        keep_excerpts = self._context.payload_excerpts
        now = utc_now()
        with self._context.write() as session:
            flow_id = session.scalar(
                select(RunRow.flow_id).where(
                    RunRow.id == run_id, self._context.in_tenant_flows(RunRow.flow_id)
                )
            )
            if flow_id is None:
                raise NotFoundError(f"run {run_id} not found")
            rows: list[dict[str, Any]] = [
                {
                    "run_id": run_id,
                    "flow_id": flow_id,
                    "source_key": entry.source_key,
                    "record_key": search_key(entry.record_key) if entry.record_key else None,
                    "outcome": OutcomeKind(entry.outcome).value,
                    "reason": entry.reason,
                    "target_key": entry.target_key,
                    "warnings": json_text(list(entry.warnings)) if entry.warnings else _NO_WARNINGS,
                    "payload_excerpt": (
                        _excerpt_json(entry.payload_excerpt)
                        if keep_excerpts and entry.payload_excerpt is not None
                        else None
                    ),
                    "created_at": now,
                }
                for entry in entries
            ]
            upsert(
                session,
                OutcomeRow,
                rows,
                key=("run_id", "source_key"),
                update=(
                    "record_key",
                    "outcome",
                    "reason",
                    "target_key",
                    "warnings",
                    "payload_excerpt",
                    "created_at",
                ),
                only_if=_NOT_A_DOWNGRADE,
            )

    def list(
        self,
        run_id: str,
        *,
        outcome: OutcomeKind | None = None,
        limit: int = 100,
        offset: int = 0,
        after_id: int | None = None,
    ) -> list[Outcome]:
        """In the order they were first recorded; `after_id` pages by key (an outcome's id)."""
        query = select(OutcomeRow).where(
            OutcomeRow.run_id == run_id, self._context.in_tenant_flows(OutcomeRow.flow_id)
        )
        if outcome is not None:
            query = query.where(OutcomeRow.outcome == outcome.value)
        if after_id is not None:
            query = query.where(OutcomeRow.id > after_id)
        with self._context.read() as session:
            rows = session.scalars(query.order_by(OutcomeRow.id).limit(limit).offset(offset))
            return [_outcome(row) for row in rows]

    def get(self, outcome_id: int) -> Outcome | None:
        with self._context.read() as session:
            row = session.scalar(
                select(OutcomeRow).where(
                    OutcomeRow.id == outcome_id, self._context.in_tenant_flows(OutcomeRow.flow_id)
                )
            )
            return None if row is None else _outcome(row)

    def search(
        self,
        *,
        flow_ids: Sequence[int] | None = None,
        run_id: str | None = None,
        outcome: OutcomeKind | None = None,
        key: str | None = None,
        before_id: int | None = None,
        limit: int = 50,
    ) -> builtins.list[Outcome]:
        """Outcomes across runs, newest first; `before_id` pages by key (an outcome's id).

        `key` finds a record by what people know it by: its record key (a SKU, an e-mail
        address, an order number; in any case), or exactly its source or target key. Every
        query walks an index in id order and stops at `limit` (migration 0008), so a page costs
        the same at the millionth outcome as at the first: a key or a run narrows the log to a
        few rows at once; otherwise each flow's newest rows are read from its own index and
        merged (a planner given "any of these flows, newest first" would sort them all).
        """
        conditions: builtins.list[ColumnElement[bool]] = []
        if outcome is not None:
            conditions.append(OutcomeRow.outcome == outcome.value)
        if before_id is not None:
            conditions.append(OutcomeRow.id < before_id)
        if run_id is not None:
            conditions.append(OutcomeRow.run_id == run_id)
        if key is not None:
            conditions.append(
                or_(
                    OutcomeRow.record_key == search_key(key),
                    OutcomeRow.source_key == key,
                    OutcomeRow.target_key == key,
                )
            )
        newest = OutcomeRow.id.desc()
        with self._context.read() as session:
            if run_id is not None or key is not None:
                query = select(OutcomeRow).where(
                    self._context.in_tenant_flows(OutcomeRow.flow_id), *conditions
                )
                if flow_ids is not None:
                    query = query.where(OutcomeRow.flow_id.in_(flow_ids))
                rows = builtins.list(session.scalars(query.order_by(newest).limit(limit)))
            else:
                flows = select(FlowRow.id).where(self._context.in_tenant_flows(FlowRow.id))
                if flow_ids is not None:
                    flows = flows.where(FlowRow.id.in_(flow_ids))
                rows = []
                for flow_id in session.scalars(flows):
                    per_flow = select(OutcomeRow).where(OutcomeRow.flow_id == flow_id, *conditions)
                    rows.extend(session.scalars(per_flow.order_by(newest).limit(limit)))
                rows = sorted(rows, key=lambda row: row.id, reverse=True)[:limit]
            return [_outcome(row) for row in rows]

    def latest_ids(self, flow_id: int, source_keys: Sequence[str]) -> dict[str, int]:
        """Source key -> the id of its newest outcome in the flow (for the keys that have one)."""
        found: dict[str, int] = {}
        with self._context.read() as session:
            for keys in chunks(list(dict.fromkeys(source_keys))):
                rows = session.execute(
                    select(OutcomeRow.source_key, func.max(OutcomeRow.id))
                    .where(
                        OutcomeRow.flow_id == flow_id,
                        OutcomeRow.source_key.in_(keys),
                        self._context.in_tenant_flows(OutcomeRow.flow_id),
                    )
                    .group_by(OutcomeRow.source_key)
                )
                found.update((key, int(newest)) for key, newest in rows)
        return found

    def counts(self, run_id: str, entities: Mapping[str, str] | None = None) -> dict[str, int]:
        """{created, updated, skipped, failed} -> number of records, for one run; those logged
        under a prefix of `entities` (prefix -> entity) as `entity.kind`."""
        with self._context.read() as session:
            if self._context.tenant_id is not None:
                exists = session.scalar(
                    select(RunRow.id).where(
                        RunRow.id == run_id, self._context.in_tenant_flows(RunRow.flow_id)
                    )
                )
                if exists is None:
                    raise NotFoundError(f"run {run_id} not found")
            return _count_outcomes(session, run_id, entities)


class DeadLetterRepository:
    """Records that failed, waiting for a retry; at most one entry per record of a flow."""

    def __init__(self, context: StoreContext) -> None:
        self._context = context

    def add_many(
        self,
        flow_id: int,
        entries: Sequence[DeadLetterEntry],
        *,
        now: datetime | None = None,
        backoff: Backoff = retry_backoff,
    ) -> dict[str, int]:
        """Put records on the list, or count another attempt for those already pending.

        Returns source key -> attempts so far; next_attempt_at is now + backoff(attempts). A
        record that was resolved or abandoned and fails again starts over at attempt 1.
        """
        if not entries:
            return {}
        now = now or utc_now()
        latest = {entry.source_key: entry for entry in entries}
        with self._context.write() as session:
            self._context.require_flow(session, flow_id)
            pending: dict[str, int] = {}
            for keys in chunks(list(latest)):
                found = session.execute(
                    select(DeadLetterRow.source_key, DeadLetterRow.attempts).where(
                        DeadLetterRow.flow_id == flow_id,
                        DeadLetterRow.source_key.in_(keys),
                        DeadLetterRow.status == DeadLetterStatus.PENDING.value,
                    )
                )
                pending.update((key, count) for key, count in found)
            attempts = {key: pending.get(key, 0) + 1 for key in latest}
            rows = [
                {
                    "flow_id": flow_id,
                    "source_key": key,
                    "reason": entry.reason,
                    "payload": None if entry.payload is None else dict(entry.payload),
                    "attempts": attempts[key],
                    "next_attempt_at": now + backoff(attempts[key]),
                    "status": DeadLetterStatus.PENDING.value,
                    "waits_for": entry.waits_for,
                    "created_at": now,
                    "updated_at": now,
                }
                for key, entry in latest.items()
            ]
            upsert(
                session,
                DeadLetterRow,
                rows,
                key=("flow_id", "source_key"),
                update=(
                    "reason",
                    "payload",
                    "attempts",
                    "next_attempt_at",
                    "status",
                    "waits_for",
                    "updated_at",
                ),
            )
            return attempts

    def due_now(self, flow_ids: Sequence[int], waits_for: str, now: datetime | None = None) -> int:
        """Make the pending dead letters of these flows that wait for `waits_for` due now
        (a run of a flow of that entity has just completed); returns how many."""
        if not flow_ids:
            return 0
        with self._context.write() as session:
            return int(
                session.execute(
                    update(DeadLetterRow)
                    .where(
                        DeadLetterRow.flow_id.in_(flow_ids),
                        DeadLetterRow.status == DeadLetterStatus.PENDING.value,
                        DeadLetterRow.waits_for == waits_for,
                        self._context.in_tenant_flows(DeadLetterRow.flow_id),
                    )
                    .values(next_attempt_at=now or utc_now())
                ).rowcount  # type: ignore[attr-defined]
            )

    def count_pending(self, flow_id: int) -> int:
        """How many records of the flow wait for a retry."""
        with self._context.read() as session:
            return int(
                session.scalar(
                    select(func.count()).where(
                        DeadLetterRow.flow_id == flow_id,
                        DeadLetterRow.status == DeadLetterStatus.PENDING.value,
                        self._context.in_tenant_flows(DeadLetterRow.flow_id),
                    )
                )
                or 0
            )

    def pending_by_flow(self) -> dict[int, int]:
        """Flow id -> how many of its records wait for a retry (flows with none left out)."""
        query = (
            select(DeadLetterRow.flow_id, func.count())
            .where(
                DeadLetterRow.status == DeadLetterStatus.PENDING.value,
                self._context.in_tenant_flows(DeadLetterRow.flow_id),
            )
            .group_by(DeadLetterRow.flow_id)
        )
        with self._context.read() as session:
            return {int(flow_id): int(count) for flow_id, count in session.execute(query)}

    def due(
        self, flow_id: int, now: datetime | None = None, *, limit: int = 500
    ) -> list[DeadLetter]:
        """Pending entries whose retry time has come, oldest retry time first."""
        query = (
            select(DeadLetterRow)
            .where(
                DeadLetterRow.flow_id == flow_id,
                DeadLetterRow.status == DeadLetterStatus.PENDING.value,
                DeadLetterRow.next_attempt_at <= (now or utc_now()),
                self._context.in_tenant_flows(DeadLetterRow.flow_id),
            )
            .order_by(DeadLetterRow.next_attempt_at, DeadLetterRow.id)
            .limit(limit)
        )
        with self._context.read() as session:
            return [_dead_letter(row) for row in session.scalars(query)]

    def list(
        self,
        flow_id: int,
        *,
        status: DeadLetterStatus | None = None,
        limit: int = 100,
        offset: int = 0,
        after_id: int | None = None,
    ) -> list[DeadLetter]:
        """Entries in id order; `after_id` pages by id, which stays right while entries change."""
        query = select(DeadLetterRow).where(
            DeadLetterRow.flow_id == flow_id,
            self._context.in_tenant_flows(DeadLetterRow.flow_id),
        )
        if status is not None:
            query = query.where(DeadLetterRow.status == status.value)
        if after_id is not None:
            query = query.where(DeadLetterRow.id > after_id)
        with self._context.read() as session:
            rows = session.scalars(query.order_by(DeadLetterRow.id).limit(limit).offset(offset))
            return [_dead_letter(row) for row in rows]

    def get(self, dead_letter_id: int) -> DeadLetter | None:
        with self._context.read() as session:
            row = session.scalar(
                select(DeadLetterRow).where(
                    DeadLetterRow.id == dead_letter_id,
                    self._context.in_tenant_flows(DeadLetterRow.flow_id),
                )
            )
            return None if row is None else _dead_letter(row)

    def search(
        self,
        *,
        flow_ids: Sequence[int] | None = None,
        status: DeadLetterStatus | None = None,
        after_id: int | None = None,
        limit: int = 100,
    ) -> builtins.list[DeadLetter]:
        """Entries of every flow of the tenant (or of these flows), oldest first, paged by id."""
        query = select(DeadLetterRow).where(self._context.in_tenant_flows(DeadLetterRow.flow_id))
        if flow_ids is not None:
            query = query.where(DeadLetterRow.flow_id.in_(flow_ids))
        if status is not None:
            query = query.where(DeadLetterRow.status == status.value)
        if after_id is not None:
            query = query.where(DeadLetterRow.id > after_id)
        with self._context.read() as session:
            rows = session.scalars(query.order_by(DeadLetterRow.id).limit(limit))
            return [_dead_letter(row) for row in rows]

    def resolve_many(
        self,
        flow_id: int,
        source_keys: Sequence[str],
        *,
        status: DeadLetterStatus = DeadLetterStatus.RESOLVED,
    ) -> int:
        """Close entries as resolved (retried fine) or abandoned (given up); returns the count."""
        if status is DeadLetterStatus.PENDING:
            raise StoreError("resolve_many() closes entries: use resolved or abandoned")
        changed = 0
        with self._context.write() as session:
            self._context.require_flow(session, flow_id)
            # Every batch resolves all the keys it recorded, and mostly the flow has no
            # pending entry at all: one look at the status index instead of an UPDATE by
            # key (an IN list of 500 made and matched per batch).
            any_pending = select(DeadLetterRow.id).where(
                DeadLetterRow.flow_id == flow_id,
                DeadLetterRow.status == DeadLetterStatus.PENDING.value,
            )
            if session.scalar(any_pending.limit(1)) is None:
                return 0
            for keys in chunks(list(dict.fromkeys(source_keys))):
                result = session.execute(
                    update(DeadLetterRow)
                    .where(
                        DeadLetterRow.flow_id == flow_id,
                        DeadLetterRow.source_key.in_(keys),
                        DeadLetterRow.status == DeadLetterStatus.PENDING.value,
                    )
                    .values(status=status.value, updated_at=utc_now())
                )
                changed += result.rowcount  # type: ignore[attr-defined]
        return changed


class RetentionService:
    """Deletes what the retention window (KOPPEL_LOG_RETENTION_DAYS) no longer allows (GDPR).

    Outcomes older than the window go (their payload excerpts with them); dead letters keep
    their key and reason but lose their payload once untouched for the window (a replay then
    reads the record again from the source); closed dead letters older than the window go.
    """

    def __init__(self, context: StoreContext) -> None:
        self._context = context

    def purge(self, now: datetime | None = None) -> PurgeResult:
        cutoff = (now or utc_now()) - self._context.retention
        outcomes_deleted = 0
        # In chunks, each its own transaction: SQLite has one writer, so never hold it for long.
        while True:
            with self._context.write() as session:
                ids = select(OutcomeRow.id).where(
                    OutcomeRow.created_at < cutoff,
                    self._context.in_tenant_flows(OutcomeRow.flow_id),
                )
                deleted = session.execute(
                    delete(OutcomeRow).where(OutcomeRow.id.in_(ids.limit(PURGE_CHUNK)))
                ).rowcount  # type: ignore[attr-defined]
            outcomes_deleted += deleted
            if deleted < PURGE_CHUNK:
                break
        old_dead_letter = (
            DeadLetterRow.updated_at < cutoff,
            self._context.in_tenant_flows(DeadLetterRow.flow_id),
        )
        with self._context.write() as session:
            closed_deleted = session.execute(
                delete(DeadLetterRow).where(
                    *old_dead_letter, DeadLetterRow.status != DeadLetterStatus.PENDING.value
                )
            ).rowcount  # type: ignore[attr-defined]
            cleared = session.execute(
                update(DeadLetterRow)
                .where(*old_dead_letter, DeadLetterRow.payload.is_not(None))
                .values(payload=None)
            ).rowcount  # type: ignore[attr-defined]
            quoting = session.execute(
                select(DeadLetterRow.id, DeadLetterRow.reason).where(
                    *old_dead_letter, DeadLetterRow.reason.contains("@")
                )
            ).all()
            redacted = 0
            for row_id, reason in quoting:
                plain = redact_emails(reason)
                if plain != reason:
                    session.execute(
                        update(DeadLetterRow).where(DeadLetterRow.id == row_id).values(reason=plain)
                    )
                    redacted += 1
        return PurgeResult(
            outcomes_deleted=outcomes_deleted,
            dead_letter_payloads_cleared=cleared,
            dead_letters_deleted=closed_deleted,
            dead_letter_reasons_redacted=redacted,
        )


_EMAIL = re.compile(r"[^\s'\"<>()\[\],;:]+@[^\s'\"<>()\[\],;:]+")
REDACTED_EMAIL = "<e-mail removed>"


def redact_emails(text: str) -> str:
    """`text` with every e-mail address replaced: what a dead letter's reason keeps past
    retention (the reason stays readable, the person is gone)."""
    return _EMAIL.sub(REDACTED_EMAIL, text)


__all__ = [
    "Backoff",
    "DeadLetterRepository",
    "OutcomeRepository",
    "RetentionService",
    "RunRepository",
    "redact_emails",
    "retry_backoff",
]
