"""The store: SQLAlchemy tables, batch-oriented repositories and migrations.

store = open_store()                       # KOPPEL_* settings; migrates on open
links = store.links.get_many(integration.id, "products", keys)
with store.transaction() as tx:            # one atomic step per batch
    tx.outcomes.record_many(run.id, outcomes)
    tx.cursors.set(flow.id, value, tie_keys)
"""

from koppel.store.accounts import ApiToken, EmailTakenError, Role, User, UserSession
from koppel.store.activity import retry_backoff
from koppel.store.context import NotFoundError, StoreError
from koppel.store.database import DatabaseURLError, make_engine, upgrade
from koppel.store.records import (
    Application,
    AuditEntry,
    Connection,
    ConnectionState,
    Cursor,
    DeadLetter,
    DeadLetterEntry,
    DeadLetterStatus,
    Executor,
    ExecutorState,
    Flow,
    Integration,
    Link,
    LinkEntry,
    MappingVersion,
    Outcome,
    OutcomeEntry,
    OutcomeKind,
    PendingAuthorization,
    PurgeResult,
    PutResult,
    Run,
    RunStatus,
    Tenant,
    counted,
    entity_counts,
)
from koppel.store.store import Store, open_store

__all__ = [
    "ApiToken",
    "Application",
    "AuditEntry",
    "Connection",
    "ConnectionState",
    "Cursor",
    "DatabaseURLError",
    "DeadLetter",
    "DeadLetterEntry",
    "DeadLetterStatus",
    "EmailTakenError",
    "Executor",
    "ExecutorState",
    "Flow",
    "Integration",
    "Link",
    "LinkEntry",
    "MappingVersion",
    "NotFoundError",
    "Outcome",
    "OutcomeEntry",
    "OutcomeKind",
    "PendingAuthorization",
    "PurgeResult",
    "PutResult",
    "Role",
    "Run",
    "RunStatus",
    "Store",
    "StoreError",
    "Tenant",
    "User",
    "UserSession",
    "counted",
    "entity_counts",
    "make_engine",
    "open_store",
    "retry_backoff",
    "upgrade",
]
