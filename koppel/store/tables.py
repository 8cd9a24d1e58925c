"""The database tables (SQLAlchemy 2 declarative, typed). Change them only with a new migration
(and move `SCHEMA_HEAD` in koppel/store/database.py to it).

Timestamps are stored as UTC and always come back timezone-aware, on SQLite too. JSON columns are
JSONB on PostgreSQL. Uniqueness that the guarantees rest on lives in the database, not in code:
one outcome per record per run, one link per source key, one dead letter per record.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, ClassVar

import orjson
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import DateTime, TypeDecorator

KEY_LENGTH = 255
NAME_LENGTH = 100
OWNER_LENGTH = NAME_LENGTH + 40


class UtcDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out; SQLite would otherwise drop the zone."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} given; use an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class JsonText(str):
    """A JSON document already serialised: `dump_json` stores it as it is. The activity log's
    rows share pieces (the variants of one product share its source record), so a batch
    serialises each piece once instead of once per row (JSON was a sixth of a batch's CPU)."""


def json_text(value: Any) -> JsonText:
    """A plain value (dicts with text keys, lists, texts, numbers) as JSON text, by orjson:
    about six times faster than `json.dumps` for the activity log's excerpts. Its text is
    compact and keeps non-ASCII characters as they are; read back, the value is the same
    (NaN and infinities, which JSON has not, become null). What orjson refuses (integers
    beyond 64 bits, lone surrogates, other keys) is left to `json.dumps`."""
    try:
        return JsonText(orjson.dumps(value).decode())
    except TypeError:
        return JsonText(json.dumps(value))


def dump_json(value: Any) -> str:
    """The engines' JSON serialiser: `json.dumps`, except for a `JsonText`, which already is."""
    return value if isinstance(value, JsonText) else json.dumps(value)


# none_as_null: Python None is SQL NULL (not the JSON text "null"), so IS NULL finds it.
JsonDocument = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets 64 bits for big logs.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utc_now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UtcDateTime()}


class TenantRow(Base):
    __tablename__ = "tenants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class ConnectionRow(Base):
    __tablename__ = "connections"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name"),
        CheckConstraint("application IN ('partspim', 'accountview')", name="application"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    application: Mapped[str] = mapped_column(String(30))
    base_url: Mapped[str] = mapped_column(String(500))
    # Fernet tokens (SecretBox), never plain text.
    credentials: Mapped[bytes] = mapped_column(LargeBinary)
    # The credentials as last declared (config file or form), also encrypted: declaring the same
    # values must not overwrite a refresh token that the connector has rotated since.
    declared_credentials: Mapped[bytes] = mapped_column(LargeBinary)
    options: Mapped[dict[str, Any]] = mapped_column(JsonDocument, default=dict)
    # ready, or needs_authorisation (the API refused the grant): then runs fail at once.
    state: Mapped[str] = mapped_column(String(30), default="ready", server_default="ready")
    state_reason: Mapped[str | None] = mapped_column(Text)
    # Its health, from the calls of runs and tests: the last good answer, the last call that
    # failed for a reason of the connection (unreachable, credentials refused), never a secret.
    last_ok_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None]
    # Keyed hashes of every refresh token this connection has held, newest last: a file's token
    # is taken only when it is new, never when it is one the connector has already spent.
    token_fingerprints: Mapped[list[str]] = mapped_column(
        JsonDocument, default=list, server_default=text("'[]'")
    )
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)


class AuthorizationRow(Base):
    """An authorisation under way: the login page was opened with this `state` (hashed) and
    its answer must come back to `redirect_uri`, once, before `expires_at`."""

    __tablename__ = "authorizations"

    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    redirect_uri: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    expires_at: Mapped[datetime]


class IntegrationRow(Base):
    __tablename__ = "integrations"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name"),
        CheckConstraint("connection_a_id <> connection_b_id", name="two_connections"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    connection_a_id: Mapped[int] = mapped_column(ForeignKey("connections.id"))
    connection_b_id: Mapped[int] = mapped_column(ForeignKey("connections.id"))
    settings: Mapped[dict[str, Any]] = mapped_column(JsonDocument, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)


class FlowRow(Base):
    __tablename__ = "flows"
    __table_args__ = (
        UniqueConstraint("integration_id", "name"),
        CheckConstraint("source_connection_id <> target_connection_id", name="direction"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    integration_id: Mapped[int] = mapped_column(
        ForeignKey("integrations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    entity: Mapped[str] = mapped_column(String(50))
    source_connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id"))
    target_connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id"))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # None means no schedule (runs only on demand); no column default, it would replace None.
    schedule_seconds: Mapped[int | None] = mapped_column(Integer)
    settings: Mapped[dict[str, Any]] = mapped_column(JsonDocument, default=dict)
    mapping: Mapped[dict[str, Any]] = mapped_column(JsonDocument, default=dict)
    mapping_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)


class MappingVersionRow(Base):
    __tablename__ = "mapping_versions"

    flow_id: Mapped[int] = mapped_column(
        ForeignKey("flows.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    mapping: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class RunRow(Base):
    __tablename__ = "runs"
    __table_args__ = (
        Index(None, "flow_id", "started_at"),
        # The runs page lists every flow's runs newest first.
        Index(None, "started_at"),
        CheckConstraint(
            "status IN ('running', 'succeeded', 'failed', 'partial', 'interrupted', 'waiting')",
            name="status",
        ),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    flow_id: Mapped[int] = mapped_column(ForeignKey("flows.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(20))
    started_at: Mapped[datetime] = mapped_column(default=utc_now)
    finished_at: Mapped[datetime | None]
    counts: Mapped[dict[str, int]] = mapped_column(JsonDocument, default=dict)
    api_calls: Mapped[int] = mapped_column(Integer, default=0)
    mapping_version: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    # The worker (KOPPEL_WORKER_ID) that ran it last: each worker reports its own runs.
    executor: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    # 1, 2, 3... in the order runs start: what people type (`koppel log 17`).
    number: Mapped[int | None] = mapped_column(Integer, unique=True)
    # The one execution that may write for the run (executor id/nonce; see Store.fenced).
    owner: Mapped[str | None] = mapped_column(String(OWNER_LENGTH))


class OutcomeRow(Base):
    """The activity log: one row per source record per run (nothing lost: every record read
    ends as one outcome)."""

    __tablename__ = "outcomes"
    __table_args__ = (
        UniqueConstraint("run_id", "source_key"),
        Index(None, "flow_id", "source_key"),
        # The activity log's queries, newest first (keyset by id) on a million outcomes: per
        # flow, per run, per kind, and the search by key (what people type, either side's key).
        Index(None, "flow_id", "id"),
        Index(None, "run_id", "id"),
        Index(None, "flow_id", "outcome", "id"),
        Index(None, "record_key"),
        Index(None, "source_key"),
        Index(None, "target_key"),
        CheckConstraint("outcome IN ('created', 'updated', 'skipped', 'failed')", name="outcome"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    flow_id: Mapped[int] = mapped_column(ForeignKey("flows.id", ondelete="CASCADE"))
    source_key: Mapped[str] = mapped_column(String(KEY_LENGTH))
    # The key people know the record by (a SKU, an e-mail address, an order number), in lower
    # case for the search; None where the flow names none (and for outcomes before 0008).
    record_key: Mapped[str | None] = mapped_column(String(KEY_LENGTH))
    outcome: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str | None] = mapped_column(Text)
    target_key: Mapped[str | None] = mapped_column(String(KEY_LENGTH))
    warnings: Mapped[list[str]] = mapped_column(JsonDocument, default=list)
    payload_excerpt: Mapped[dict[str, Any] | None] = mapped_column(JsonDocument)
    created_at: Mapped[datetime] = mapped_column(default=utc_now, index=True)


class LinkRow(Base):
    """The ID map; the primary key is the uniqueness rule (integration, entity, source key)."""

    __tablename__ = "links"
    __table_args__ = (Index(None, "integration_id", "entity", "target_key"),)

    integration_id: Mapped[int] = mapped_column(
        ForeignKey("integrations.id", ondelete="CASCADE"), primary_key=True
    )
    entity: Mapped[str] = mapped_column(String(50), primary_key=True)
    source_key: Mapped[str] = mapped_column(String(KEY_LENGTH), primary_key=True)
    target_key: Mapped[str] = mapped_column(String(KEY_LENGTH))
    content_hash: Mapped[str | None] = mapped_column(String(128))
    extra: Mapped[dict[str, Any]] = mapped_column(JsonDocument, default=dict)
    pending: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    """Written before the target write, confirmed (False) when the outcome is recorded: the
    record's origin survives a crash between the two."""
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)


class CursorRow(Base):
    __tablename__ = "cursors"

    flow_id: Mapped[int] = mapped_column(
        ForeignKey("flows.id", ondelete="CASCADE"), primary_key=True
    )
    value: Mapped[str] = mapped_column(String(KEY_LENGTH))
    tie_keys: Mapped[list[str]] = mapped_column(JsonDocument, default=list)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)


class DeadLetterRow(Base):
    __tablename__ = "dead_letters"
    __table_args__ = (
        UniqueConstraint("flow_id", "source_key"),
        Index(None, "flow_id", "status", "next_attempt_at"),
        CheckConstraint("status IN ('pending', 'resolved', 'abandoned')", name="status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    flow_id: Mapped[int] = mapped_column(ForeignKey("flows.id", ondelete="CASCADE"))
    source_key: Mapped[str] = mapped_column(String(KEY_LENGTH))
    reason: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any] | None] = mapped_column(JsonDocument)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    next_attempt_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(10), default="pending")
    waits_for: Mapped[str | None] = mapped_column(String(50))
    """The entity whose sync the record needs (an order's products): when a run of a flow of
    that entity completes, the record is due again at once."""
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now, index=True)


class KeyLockRow(Base):
    __tablename__ = "key_locks"

    scope: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    key: Mapped[str] = mapped_column(String(KEY_LENGTH), primary_key=True)
    owner: Mapped[str] = mapped_column(String(NAME_LENGTH))
    expires_at: Mapped[datetime]


class ConnectionSlotRow(Base):
    """One request of a connection in flight, in some process (PostgreSQL stores only): at most
    `concurrency` unexpired rows per connection. A row expires, so a dead process's slots come
    back; released slots are deleted."""

    __tablename__ = "connection_slots"

    connection_id: Mapped[int] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True
    )
    slot: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(NAME_LENGTH))
    expires_at: Mapped[datetime]


class ConnectionPaceRow(Base):
    """A connection's request rate shared by every process (PostgreSQL stores only): the
    `RateLimiter`'s state, on the database's clock."""

    __tablename__ = "connection_pace"

    connection_id: Mapped[int] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True
    )
    # Requests per second now; NULL: no spacing (no ceiling, and no 429 lately).
    rate: Mapped[float | None] = mapped_column(Float)
    next_start: Mapped[datetime]
    paused_until: Mapped[datetime]


class AuditRow(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index(None, "tenant_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    actor: Mapped[str] = mapped_column(String(NAME_LENGTH))
    action: Mapped[str] = mapped_column(String(NAME_LENGTH))
    subject: Mapped[str] = mapped_column(String(KEY_LENGTH))
    detail: Mapped[dict[str, Any]] = mapped_column(JsonDocument, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class UserRow(Base):
    """A person who signs in to the web app; belongs to one workspace (tenant) with one role."""

    __tablename__ = "users"
    __table_args__ = (CheckConstraint("role IN ('admin', 'viewer')", name="role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    # Stored lower-cased: one account per address, whatever the case it is typed in.
    email: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    role: Mapped[str] = mapped_column(String(10))
    # None: the language the browser asks for (Accept-Language).
    locale: Mapped[str | None] = mapped_column(String(10))
    # argon2id, never the password itself.
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)


class UserSessionRow(Base):
    """A signed-in browser. The id is the SHA-256 of the cookie's token: a copy of the database
    gives no session away."""

    __tablename__ = "user_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    last_seen_at: Mapped[datetime] = mapped_column(default=utc_now)


class ApiTokenRow(Base):
    """A user's token for scripts; only its SHA-256 is kept, and a hint to recognise it by."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hint: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class LoginFailureRow(Base):
    """One failed sign-in, counted per account and per address for the rate limit. The key is
    hashed: people type passwords into the e-mail field, and addresses are personal data."""

    __tablename__ = "login_failures"
    __table_args__ = (Index(None, "key_hash", "failed_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    failed_at: Mapped[datetime] = mapped_column(default=utc_now, index=True)


class NotificationSettingsRow(Base):
    """A workspace's notification channels. Secrets (the SMTP password, the webhook's signing
    secret) are one Fernet token (SecretBox), never plain text."""

    __tablename__ = "notification_settings"

    tenant_id: Mapped[int] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    settings: Mapped[dict[str, Any]] = mapped_column(JsonDocument, default=dict)
    secrets: Mapped[bytes] = mapped_column(LargeBinary)
    # Events are looked for from here on: configuring notifications does not report the past.
    active_since: Mapped[datetime] = mapped_column(default=utc_now)
    # The failed records up to here are in a digest already.
    digest_until: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)


class OutboxRow(Base):
    """One notification for one channel, until it is sent. `event_key` names the event
    (`run-failed:<run id>`): unique per channel, so an event is never queued twice."""

    __tablename__ = "notification_outbox"
    __table_args__ = (
        UniqueConstraint("tenant_id", "event_key", "channel"),
        Index(None, "status", "next_attempt_at"),
        Index(None, "tenant_id", "created_at"),
        CheckConstraint(
            "status IN ('pending', 'sending', 'sent', 'failed', 'uncertain')", name="status"
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    event_key: Mapped[str] = mapped_column(String(KEY_LENGTH))
    kind: Mapped[str] = mapped_column(String(50))
    channel: Mapped[str] = mapped_column(String(20))
    payload: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utc_now)
    claimed_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class ReconciliationRow(Base):
    """One reconciliation of one flow: how many records were compared and the drift found.
    `differences` holds the first ones (record, field, both values); `drift` counts them all."""

    __tablename__ = "reconciliations"
    __table_args__ = (Index(None, "flow_id", "finished_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    flow_id: Mapped[int] = mapped_column(ForeignKey("flows.id", ondelete="CASCADE"))
    started_at: Mapped[datetime] = mapped_column(default=utc_now)
    finished_at: Mapped[datetime] = mapped_column(default=utc_now)
    compared: Mapped[int] = mapped_column(Integer, default=0)
    drift: Mapped[int] = mapped_column(Integer, default=0)
    api_calls: Mapped[int] = mapped_column(Integer, default=0)
    differences: Mapped[list[Any]] = mapped_column(JsonDocument, default=list)
    error: Mapped[str | None] = mapped_column(Text)


class ExecutorRow(Base):
    """One running (or once running) `koppel worker`, `serve` or `sync` process: its heartbeat,
    and which live process took over its runs once it went silent (at most one: the row is
    claimed with a conditional UPDATE)."""

    __tablename__ = "executors"

    id: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(default=utc_now)
    last_beat_at: Mapped[datetime] = mapped_column(default=utc_now)
    stopped_at: Mapped[datetime | None]
    taken_over_by: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    taken_over_at: Mapped[datetime | None]


class WebhookSubscriptionRow(Base):
    """A Parts Pim connection's subscription to its changes. The delivery URL ends in a random
    token that is kept only as its SHA-256 (a copy of the database gives no URL away); the
    signing secret Parts Pim returned is a Fernet token (SecretBox), never plain text."""

    __tablename__ = "webhook_subscriptions"

    connection_id: Mapped[int] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    remote_id: Mapped[str] = mapped_column(String(KEY_LENGTH))
    # Where the URL points without its token, to subscribe again when the address changes.
    base_url: Mapped[str] = mapped_column(String(500))
    events: Mapped[list[str]] = mapped_column(JsonDocument, default=list)
    secret: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class WebhookDeliveryRow(Base):
    """A delivery id accepted once: the same delivery again is a replay. Kept for as long as its
    timestamp is inside the signature's window, after which the signature refuses it anyway."""

    __tablename__ = "webhook_deliveries"

    connection_id: Mapped[int] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True
    )
    delivery_id: Mapped[str] = mapped_column(String(KEY_LENGTH), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(default=utc_now, index=True)


class PendingChangeRow(Base):
    """A record a webhook named, until a targeted run of its flow has synced it. One row per
    record however often it is named: a burst of deliveries becomes a set of keys that a few
    runs drain. A run claims rows (`claimed_by`) and deletes its claimed ones once synced; the
    record named again meanwhile is unclaimed again, so that change is not lost."""

    __tablename__ = "pending_changes"
    __table_args__ = (Index(None, "flow_id", "received_at"),)

    flow_id: Mapped[int] = mapped_column(
        ForeignKey("flows.id", ondelete="CASCADE"), primary_key=True
    )
    phase: Mapped[str] = mapped_column(String(50), primary_key=True)
    key: Mapped[str] = mapped_column(String(KEY_LENGTH), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(default=utc_now)
    claimed_by: Mapped[str | None] = mapped_column(String(KEY_LENGTH))


__all__ = [
    "ApiTokenRow",
    "AuditRow",
    "AuthorizationRow",
    "Base",
    "ConnectionPaceRow",
    "ConnectionRow",
    "ConnectionSlotRow",
    "CursorRow",
    "DeadLetterRow",
    "ExecutorRow",
    "FlowRow",
    "IntegrationRow",
    "KeyLockRow",
    "LinkRow",
    "LoginFailureRow",
    "MappingVersionRow",
    "NotificationSettingsRow",
    "OutboxRow",
    "OutcomeRow",
    "PendingChangeRow",
    "ReconciliationRow",
    "RunRow",
    "TenantRow",
    "UserRow",
    "UserSessionRow",
    "WebhookDeliveryRow",
    "WebhookSubscriptionRow",
    "utc_now",
]
