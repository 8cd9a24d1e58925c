"""A workspace's notification settings and the outbox: notifications stored per channel until
they are sent, each event at most once per channel (its key is unique).

An entry moves pending -> sending (claimed, committed before the channel is called) -> sent, or
back to pending with a later `next_attempt_at` when the channel failed, or to failed after the
last attempt. An entry found still `sending` after its lease was claimed by a process that died
between sending and recording: it becomes `uncertain` and is never sent again (at most once).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select, update

from koppel.store.context import StoreContext, chunks, upsert
from koppel.store.tables import (
    DeadLetterRow,
    FlowRow,
    IntegrationRow,
    NotificationSettingsRow,
    OutboxRow,
    RunRow,
    utc_now,
)


class OutboxStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    UNCERTAIN = "uncertain"


@dataclass(frozen=True, slots=True)
class NotificationSettingsRecord:
    tenant_id: int
    settings: dict[str, Any]
    secrets: dict[str, Any]
    active_since: datetime
    digest_until: datetime


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    id: int
    tenant_id: int
    event_key: str
    kind: str
    channel: str
    payload: dict[str, Any]
    status: OutboxStatus
    attempts: int
    next_attempt_at: datetime
    sent_at: datetime | None
    last_error: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class FailedRun:
    """A run that failed, with the names a notification tells."""

    run_id: str
    number: int | None
    integration: str
    flow: str
    counts: dict[str, int]
    error: str | None
    started_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True, slots=True)
class FailedRecords:
    """The records of one flow that failed in a window (dead letters written in it)."""

    integration: str
    flow_id: int
    flow: str
    count: int
    examples: list[tuple[str, str]]
    """Up to a few (record key, reason) pairs, for the digest's text."""


@dataclass(frozen=True, slots=True)
class FlowDay:
    """One flow's day, for the daily report."""

    integration_id: int
    integration: str
    flow: str
    runs: dict[str, int]
    """Runs that started in the day, by status."""
    counts: dict[str, int]
    """Their records, by outcome (created, updated, ...)."""
    dead_letters: int
    """Records waiting on the dead-letter list now."""
    flow_id: int = 0


def _entry(row: OutboxRow) -> OutboxEntry:
    return OutboxEntry(
        id=row.id,
        tenant_id=row.tenant_id,
        event_key=row.event_key,
        kind=row.kind,
        channel=row.channel,
        payload=dict(row.payload),
        status=OutboxStatus(row.status),
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        sent_at=row.sent_at,
        last_error=row.last_error,
        created_at=row.created_at,
    )


class NotificationRepository:
    def __init__(self, context: StoreContext) -> None:
        self._context = context

    # Settings

    def get_settings(self, tenant_id: int) -> NotificationSettingsRecord | None:
        self._context.require_tenant(tenant_id)
        with self._context.read() as session:
            row = session.get(NotificationSettingsRow, tenant_id)
            if row is None:
                return None
            return NotificationSettingsRecord(
                tenant_id=row.tenant_id,
                settings=dict(row.settings),
                secrets=self._context.secret_box.decrypt_json(row.secrets),
                active_since=row.active_since,
                digest_until=row.digest_until,
            )

    def put_settings(
        self, tenant_id: int, settings: Mapping[str, Any], secrets: Mapping[str, Any]
    ) -> bool:
        """Store the workspace's channels; True when something changed."""
        self._context.require_tenant(tenant_id)
        box = self._context.secret_box
        with self._context.write() as session:
            row = session.get(NotificationSettingsRow, tenant_id)
            if row is None:
                now = utc_now()
                session.add(
                    NotificationSettingsRow(
                        tenant_id=tenant_id,
                        settings=dict(settings),
                        secrets=box.encrypt_json(dict(secrets)),
                        active_since=now,
                        digest_until=now,
                        updated_at=now,
                    )
                )
                return True
            if row.settings == dict(settings) and box.decrypt_json(row.secrets) == dict(secrets):
                return False
            row.settings = dict(settings)
            row.secrets = box.encrypt_json(dict(secrets))
            row.updated_at = utc_now()
            return True

    def remove_settings(self, tenant_id: int) -> bool:
        self._context.require_tenant(tenant_id)
        with self._context.write() as session:
            row = session.get(NotificationSettingsRow, tenant_id)
            if row is None:
                return False
            session.delete(row)
            return True

    def move_digest_until(self, tenant_id: int, *, was: datetime, until: datetime) -> bool:
        """Move the digests' mark from `was` to `until`; False when another process moved it
        first (that process tells the window)."""
        self._context.require_tenant(tenant_id)
        with self._context.write() as session:
            result = session.execute(
                update(NotificationSettingsRow)
                .where(
                    NotificationSettingsRow.tenant_id == tenant_id,
                    NotificationSettingsRow.digest_until == was,
                )
                .values(digest_until=until)
            )
            return bool(getattr(result, "rowcount", 0))

    def tenants_with_settings(self) -> list[int]:
        with self._context.read() as session:
            return list(
                session.scalars(
                    select(NotificationSettingsRow.tenant_id).where(
                        self._context.in_tenant(NotificationSettingsRow.tenant_id)
                    )
                )
            )

    # What the events are found in

    def failed_runs(self, tenant_id: int, *, since: datetime) -> list[FailedRun]:
        """The workspace's runs that failed and finished at or after `since`."""
        self._context.require_tenant(tenant_id)
        query = (
            select(RunRow, FlowRow.name, IntegrationRow.name)
            .join(FlowRow, RunRow.flow_id == FlowRow.id)
            .join(IntegrationRow, FlowRow.integration_id == IntegrationRow.id)
            .where(
                IntegrationRow.tenant_id == tenant_id,
                RunRow.status == "failed",
                RunRow.started_at >= since - timedelta(days=1),
                RunRow.finished_at >= since,
            )
            .order_by(RunRow.finished_at, RunRow.id)
        )
        with self._context.read() as session:
            return [
                FailedRun(
                    run_id=run.id,
                    number=run.number,
                    integration=integration,
                    flow=flow,
                    counts=dict(run.counts),
                    error=run.error,
                    started_at=run.started_at,
                    finished_at=run.finished_at,
                )
                for run, flow, integration in session.execute(query)
            ]

    def failed_records(
        self, tenant_id: int, *, after: datetime, until: datetime, examples: int = 5
    ) -> list[FailedRecords]:
        """Per flow, the records whose latest failure was written in (after, until]."""
        self._context.require_tenant(tenant_id)
        window = (
            DeadLetterRow.status == "pending",
            DeadLetterRow.updated_at > after,
            DeadLetterRow.updated_at <= until,
        )
        counts = (
            select(FlowRow.id, FlowRow.name, IntegrationRow.name, func.count(DeadLetterRow.id))
            .join(FlowRow, DeadLetterRow.flow_id == FlowRow.id)
            .join(IntegrationRow, FlowRow.integration_id == IntegrationRow.id)
            .where(IntegrationRow.tenant_id == tenant_id, *window)
            .group_by(FlowRow.id, FlowRow.name, IntegrationRow.name)
            .order_by(FlowRow.id)
        )
        with self._context.read() as session:
            found = []
            for flow_id, flow, integration, count in session.execute(counts):
                first = session.execute(
                    select(DeadLetterRow.source_key, DeadLetterRow.reason)
                    .where(DeadLetterRow.flow_id == flow_id, *window)
                    .order_by(DeadLetterRow.source_key)
                    .limit(examples)
                )
                found.append(
                    FailedRecords(
                        integration=integration,
                        flow_id=flow_id,
                        flow=flow,
                        count=int(count),
                        examples=[(key, reason) for key, reason in first],
                    )
                )
            return found

    def flow_days(self, tenant_id: int, *, start: datetime, end: datetime) -> list[FlowDay]:
        """Every flow of the workspace's integrations: its runs started in [start, end) and
        the dead letters waiting now."""
        self._context.require_tenant(tenant_id)
        with self._context.read() as session:
            flows = session.execute(
                select(FlowRow.id, FlowRow.name, IntegrationRow.id, IntegrationRow.name)
                .join(IntegrationRow, FlowRow.integration_id == IntegrationRow.id)
                .where(IntegrationRow.tenant_id == tenant_id)
                .order_by(IntegrationRow.id, FlowRow.id)
            ).all()
            days = []
            for flow_id, flow, integration_id, integration in flows:
                runs: dict[str, int] = {}
                counts: dict[str, int] = {}
                for status, run_counts in session.execute(
                    select(RunRow.status, RunRow.counts).where(
                        RunRow.flow_id == flow_id,
                        RunRow.started_at >= start,
                        RunRow.started_at < end,
                    )
                ):
                    runs[status] = runs.get(status, 0) + 1
                    for kind, count in (run_counts or {}).items():
                        if isinstance(count, int) and "." not in kind:
                            counts[kind] = counts.get(kind, 0) + count
                waiting = session.scalar(
                    select(func.count())
                    .select_from(DeadLetterRow)
                    .where(DeadLetterRow.flow_id == flow_id, DeadLetterRow.status == "pending")
                )
                days.append(
                    FlowDay(
                        integration_id,
                        integration,
                        flow,
                        runs,
                        counts,
                        int(waiting or 0),
                        flow_id,
                    )
                )
            return days

    # The outbox

    def enqueue(
        self,
        tenant_id: int,
        event_key: str,
        kind: str,
        payload: Mapping[str, Any],
        channels: Sequence[str],
        *,
        now: datetime | None = None,
    ) -> int:
        """Queue the event once per channel; an event already queued is left alone. Returns how
        many entries are new."""
        self._context.require_tenant(tenant_id)
        now = now or utc_now()
        with self._context.write() as session:
            before = self._count(session, tenant_id, event_key)
            upsert(
                session,
                OutboxRow,
                [
                    {
                        "tenant_id": tenant_id,
                        "event_key": event_key,
                        "kind": kind,
                        "channel": channel,
                        "payload": dict(payload),
                        "status": OutboxStatus.PENDING.value,
                        "attempts": 0,
                        "next_attempt_at": now,
                        "created_at": now,
                    }
                    for channel in channels
                ],
                key=("tenant_id", "event_key", "channel"),
                update=(),
            )
            return self._count(session, tenant_id, event_key) - before

    @staticmethod
    def _count(session: Any, tenant_id: int, event_key: str) -> int:
        return int(
            session.scalar(
                select(func.count())
                .select_from(OutboxRow)
                .where(OutboxRow.tenant_id == tenant_id, OutboxRow.event_key == event_key)
            )
        )

    def queued_keys(self, tenant_id: int, event_keys: Sequence[str]) -> set[str]:
        """Which of these events are in the outbox already (any channel, any status)."""
        self._context.require_tenant(tenant_id)
        found: set[str] = set()
        with self._context.read() as session:
            for keys in chunks(list(event_keys)):
                found.update(
                    session.scalars(
                        select(OutboxRow.event_key).where(
                            OutboxRow.tenant_id == tenant_id, OutboxRow.event_key.in_(keys)
                        )
                    )
                )
        return found

    def latest_event(self, tenant_id: int, key_prefix: str) -> str | None:
        """The key of the newest event queued whose key starts with `key_prefix`."""
        self._context.require_tenant(tenant_id)
        with self._context.read() as session:
            return session.scalar(
                select(OutboxRow.event_key)
                .where(
                    OutboxRow.tenant_id == tenant_id,
                    OutboxRow.event_key.startswith(key_prefix, autoescape=True),
                )
                .order_by(OutboxRow.id.desc())
                .limit(1)
            )

    def claim_due(self, *, now: datetime, limit: int = 20) -> list[OutboxEntry]:
        """Mark due entries as sending and return them; committed before anything is sent, so
        another process never claims them too."""
        with self._context.write() as session:
            rows = session.scalars(
                select(OutboxRow)
                .where(
                    OutboxRow.status == OutboxStatus.PENDING.value,
                    OutboxRow.next_attempt_at <= now,
                    self._context.in_tenant(OutboxRow.tenant_id),
                )
                .order_by(OutboxRow.next_attempt_at, OutboxRow.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).all()
            for row in rows:
                row.status = OutboxStatus.SENDING.value
                row.claimed_at = now
                row.attempts += 1
            session.flush()
            return [_entry(row) for row in rows]

    def mark_sent(self, entry_id: int, *, now: datetime) -> None:
        self._set(entry_id, status=OutboxStatus.SENT.value, sent_at=now, last_error=None)

    def mark_retry(self, entry_id: int, error: str, *, at: datetime) -> None:
        self._set(entry_id, status=OutboxStatus.PENDING.value, next_attempt_at=at, last_error=error)

    def mark_failed(self, entry_id: int, error: str) -> None:
        self._set(entry_id, status=OutboxStatus.FAILED.value, last_error=error)

    def _set(self, entry_id: int, **values: Any) -> None:
        with self._context.write() as session:
            session.execute(
                update(OutboxRow)
                .where(OutboxRow.id == entry_id, OutboxRow.status == OutboxStatus.SENDING.value)
                .values(**values)
            )

    def expire_sending(self, *, now: datetime, lease: timedelta) -> int:
        """Entries claimed longer than `lease` ago whose sender died: uncertain, never resent."""
        with self._context.write() as session:
            result = session.execute(
                update(OutboxRow)
                .where(
                    OutboxRow.status == OutboxStatus.SENDING.value,
                    OutboxRow.claimed_at < now - lease,
                    self._context.in_tenant(OutboxRow.tenant_id),
                )
                .values(
                    status=OutboxStatus.UNCERTAIN.value,
                    last_error=(
                        "the sender stopped between sending and recording; not sent again, "
                        "so it may or may not have arrived"
                    ),
                )
            )
            return int(getattr(result, "rowcount", 0) or 0)

    def list_recent(self, tenant_id: int, *, limit: int = 50) -> list[OutboxEntry]:
        self._context.require_tenant(tenant_id)
        with self._context.read() as session:
            rows = session.scalars(
                select(OutboxRow)
                .where(OutboxRow.tenant_id == tenant_id)
                .order_by(OutboxRow.created_at.desc(), OutboxRow.id.desc())
                .limit(limit)
            ).all()
            return [_entry(row) for row in rows]

    def waiting(self) -> int:
        """Entries not sent yet (pending or being sent): the outbox's size."""
        return sum(self.waiting_by_tenant().values())

    def waiting_by_tenant(self) -> dict[int, int]:
        """The outbox's size per workspace (those with entries waiting), for /metrics."""
        with self._context.read() as session:
            rows = session.execute(
                select(OutboxRow.tenant_id, func.count())
                .where(
                    OutboxRow.status.in_([OutboxStatus.PENDING.value, OutboxStatus.SENDING.value]),
                    self._context.in_tenant(OutboxRow.tenant_id),
                )
                .group_by(OutboxRow.tenant_id)
            ).all()
            return {int(tenant_id): int(count) for tenant_id, count in rows}


__all__ = [
    "FailedRecords",
    "FailedRun",
    "FlowDay",
    "NotificationRepository",
    "NotificationSettingsRecord",
    "OutboxEntry",
    "OutboxStatus",
]
