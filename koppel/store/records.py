"""What the repositories return and take: plain frozen dataclasses, detached from any session.

Read records (Tenant, Flow, Outcome, ...) are snapshots; write entries (OutcomeEntry, LinkEntry,
DeadLetterEntry) are what callers hand to the batch writers. Credentials never appear in a record:
they are read with `connections.get_credentials`, so printing a Connection cannot leak them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Generic, TypeVar

T_co = TypeVar("T_co", covariant=True)


class Application(StrEnum):
    PARTSPIM = "partspim"
    ACCOUNTVIEW = "accountview"


class ConnectionState(StrEnum):
    READY = "ready"
    NEEDS_AUTHORISATION = "needs_authorisation"
    """The API refused the grant (refresh token): runs fail at once until it is authorised."""


class RunStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    PARTIAL = "partial"
    INTERRUPTED = "interrupted"
    WAITING = "waiting"
    """Deferred: a flow it depends on has not completed a run yet (the reason says which)."""


class OutcomeKind(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    SKIPPED = "skipped"
    FAILED = "failed"


def counted(counts: Mapping[str, int], kind: OutcomeKind) -> int:
    """Records of a run that ended as `kind`, of every entity it wrote (`failed` and
    `categories.failed` alike)."""
    return sum(n for key, n in counts.items() if key.rpartition(".")[2] == kind.value)


def entity_counts(counts: Mapping[str, int]) -> dict[str, dict[str, int]]:
    """A run's counts of the other entities it wrote, by entity: {"categories": {...}}."""
    split: dict[str, dict[str, int]] = {}
    for key, number in counts.items():
        entity, dot, kind = key.partition(".")
        if dot:
            split.setdefault(entity, {k.value: 0 for k in OutcomeKind})[kind] = number
    return split


class DeadLetterStatus(StrEnum):
    PENDING = "pending"
    RESOLVED = "resolved"
    ABANDONED = "abandoned"


@dataclass(frozen=True)
class Tenant:
    id: int
    name: str
    created_at: datetime


@dataclass(frozen=True)
class Connection:
    id: int
    tenant_id: int
    name: str
    application: Application
    base_url: str
    options: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    state: ConnectionState = ConnectionState.READY
    state_reason: str | None = None
    """Why the connection is not ready: what the API said."""
    last_ok_at: datetime | None = None
    """When a call through it last got a good answer (in a run or a test)."""
    last_error: str | None = None
    """The last call that failed for a reason of the connection: unreachable, an error answer
    after the retries, credentials refused (not a record's own error)."""
    last_error_at: datetime | None = None


@dataclass(frozen=True)
class PendingAuthorization:
    """An authorisation under way, found by its `state`: the connection and where the login
    page sends its answer."""

    connection_id: int
    redirect_uri: str
    expires_at: datetime


@dataclass(frozen=True)
class Integration:
    """Two connections and the settings their flows share; flows pick a direction between them."""

    id: int
    tenant_id: int
    name: str
    connection_a_id: int
    connection_b_id: int
    settings: dict[str, Any]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Flow:
    id: int
    integration_id: int
    name: str
    entity: str
    source_connection_id: int
    target_connection_id: int
    enabled: bool
    schedule_seconds: int | None  # None: runs only on demand
    settings: dict[str, Any]
    mapping: dict[str, Any]
    mapping_version: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class MappingVersion:
    flow_id: int
    version: int
    mapping: dict[str, Any]
    note: str
    created_at: datetime


@dataclass(frozen=True)
class Run:
    id: str
    flow_id: int
    status: RunStatus
    started_at: datetime
    finished_at: datetime | None
    counts: dict[str, int]
    api_calls: int
    mapping_version: int
    error: str | None
    """Why a failed run failed: the cause and the fix, in one or two plain lines."""
    executor: str | None = None
    """The worker (KOPPEL_WORKER_ID) that ran it last."""
    number: int | None = None
    """1, 2, 3... in the order runs started: what people type (`koppel log 17`)."""


@dataclass(frozen=True)
class OutcomeEntry:
    """What happened to one source record in a run; written with `outcomes.record_many`."""

    source_key: str
    outcome: OutcomeKind
    reason: str | None = None
    target_key: str | None = None
    warnings: Sequence[str] = ()
    payload_excerpt: Mapping[str, Any] | None = None
    record_key: str | None = None
    """The key people know the record by (a SKU, an e-mail address, an order number): what
    the activity log's search finds it by, beside its source and target keys."""


@dataclass(frozen=True)
class Outcome:
    id: int
    run_id: str
    flow_id: int
    source_key: str
    outcome: OutcomeKind
    reason: str | None
    target_key: str | None
    warnings: list[str]
    payload_excerpt: dict[str, Any] | None
    created_at: datetime
    record_key: str | None = None
    """In lower case, as the search compares it."""


@dataclass(frozen=True)
class LinkEntry:
    source_key: str
    target_key: str
    content_hash: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    pending: bool = False
    """Written before the target write: the record is on its way, its outcome not yet recorded."""


@dataclass(frozen=True)
class Link:
    """Source key -> target key, and the hash of what was last sent (to skip unchanged records)."""

    integration_id: int
    entity: str
    source_key: str
    target_key: str
    content_hash: str | None
    extra: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    pending: bool = False
    """Written before a target write whose outcome is not recorded yet (it may have crashed): the
    target record may or may not exist, but it is this flow's."""


@dataclass(frozen=True)
class Cursor:
    """How far a flow has read: `value`, plus the keys already done AT that value (ties)."""

    flow_id: int
    value: str
    tie_keys: list[str]
    updated_at: datetime


@dataclass(frozen=True)
class DeadLetterEntry:
    source_key: str
    reason: str
    payload: Mapping[str, Any] | None = None
    waits_for: str | None = None
    """The entity whose sync the record needs (e.g. `products`): due again once it completes."""


@dataclass(frozen=True)
class DeadLetter:
    id: int
    flow_id: int
    source_key: str
    reason: str
    payload: dict[str, Any] | None
    attempts: int
    next_attempt_at: datetime
    status: DeadLetterStatus
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class AuditEntry:
    id: int
    tenant_id: int
    actor: str
    action: str
    subject: str
    detail: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class PutResult(Generic[T_co]):
    """What a declarative `put` did: created the thing, changed some fields, or nothing."""

    value: T_co
    created: bool
    changed_fields: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return self.created or bool(self.changed_fields)


@dataclass(frozen=True)
class PurgeResult:
    outcomes_deleted: int
    dead_letter_payloads_cleared: int
    dead_letters_deleted: int
    dead_letter_reasons_redacted: int = 0
    """Reasons of dead letters past retention that quoted an e-mail address, now without it."""


class ExecutorState(StrEnum):
    LIVE = "live"
    """Heartbeating within the takeover threshold."""
    SILENT = "silent"
    """No heartbeat for longer than the threshold: dead, or paused; a live process takes it over."""
    STOPPED = "stopped"
    """Stopped gracefully; its unfinished runs are taken over by a live process."""
    TAKEN_OVER = "taken over"
    """Gone; a live process (`taken_over_by`) took over its runs."""


@dataclass(frozen=True)
class Executor:
    """One engine process (`koppel worker`, `serve`, `sync`) as its heartbeats leave it."""

    id: str
    host: str
    pid: int
    started_at: datetime
    last_beat_at: datetime
    stopped_at: datetime | None
    taken_over_by: str | None
    taken_over_at: datetime | None

    def state(self, now: datetime, silent_after: timedelta) -> ExecutorState:
        if self.taken_over_by is not None:
            return ExecutorState.TAKEN_OVER
        if self.stopped_at is not None:
            return ExecutorState.STOPPED
        if now - self.last_beat_at > silent_after:
            return ExecutorState.SILENT
        return ExecutorState.LIVE


__all__ = [
    "Application",
    "AuditEntry",
    "Connection",
    "ConnectionState",
    "Cursor",
    "DeadLetter",
    "DeadLetterEntry",
    "DeadLetterStatus",
    "Executor",
    "ExecutorState",
    "Flow",
    "Integration",
    "Link",
    "LinkEntry",
    "MappingVersion",
    "Outcome",
    "OutcomeEntry",
    "OutcomeKind",
    "PendingAuthorization",
    "PurgeResult",
    "PutResult",
    "Run",
    "RunStatus",
    "Tenant",
    "counted",
    "entity_counts",
]
