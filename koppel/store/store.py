"""The Store: one object that gives access to every repository, optionally scoped to a tenant."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from types import TracebackType

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from koppel.secrets import SecretBox
from koppel.settings import Settings, get_settings
from koppel.store.accounts import (
    ApiTokenRepository,
    LoginFailureRepository,
    UserRepository,
    UserSessionRepository,
)
from koppel.store.activity import (
    DeadLetterRepository,
    OutcomeRepository,
    RetentionService,
    RunRepository,
)
from koppel.store.context import StoreContext, StoreError
from koppel.store.database import WRITE_OPTION, at_head, make_engine, upgrade
from koppel.store.definitions import (
    AuditRepository,
    AuthorizationRepository,
    ConnectionRepository,
    FlowRepository,
    IntegrationRepository,
    TenantRepository,
)
from koppel.store.executors import ExecutorRepository
from koppel.store.limits import ConnectionLimitRepository
from koppel.store.notifications import NotificationRepository
from koppel.store.realtime import PendingChangeRepository, WebhookRepository
from koppel.store.reconciliations import ReconciliationRepository
from koppel.store.sync_state import CursorRepository, KeyLockRepository, LinkRepository


class Store:
    """Repositories over one database.

    A system store (the engine, the CLI) sees every tenant; `scoped(tenant_id)` gives a store whose
    every query is limited to that tenant (the web app serves each user through one). Calls are
    synchronous and short; async code calls them per batch (or via asyncio.to_thread).
    """

    def __init__(self, context: StoreContext) -> None:
        self._context = context
        self.tenants = TenantRepository(context)
        self.connections = ConnectionRepository(context)
        self.authorizations = AuthorizationRepository(context)
        self.integrations = IntegrationRepository(context)
        self.flows = FlowRepository(context)
        self.audit = AuditRepository(context)
        self.runs = RunRepository(context)
        self.outcomes = OutcomeRepository(context)
        self.dead_letters = DeadLetterRepository(context)
        self.retention = RetentionService(context)
        self.links = LinkRepository(context)
        self.cursors = CursorRepository(context)
        self.key_locks = KeyLockRepository(context)
        self.connection_limits = ConnectionLimitRepository(context)
        self.users = UserRepository(context)
        self.user_sessions = UserSessionRepository(context)
        self.api_tokens = ApiTokenRepository(context)
        self.login_failures = LoginFailureRepository(context)
        self.notifications = NotificationRepository(context)
        self.reconciliations = ReconciliationRepository(context)
        self.executors = ExecutorRepository(context)
        self.webhooks = WebhookRepository(context)
        self.pending_changes = PendingChangeRepository(context)

    @classmethod
    def from_engine(
        cls,
        engine: Engine,
        secret_box: SecretBox,
        *,
        log_retention_days: int = 30,
        payload_excerpts: bool = True,
    ) -> Store:
        return cls(
            StoreContext(
                engine=engine,
                secret_box=secret_box,
                retention=timedelta(days=log_retention_days),
                payload_excerpts=payload_excerpts,
            )
        )

    def keyed_hash(self, text: str) -> str:
        """A keyed hash (HMAC) of personal data that is looked up but never read back."""
        return self._context.secret_box.keyed_hash(text)

    @property
    def engine(self) -> Engine:
        return self._context.engine

    @property
    def tenant_id(self) -> int | None:
        """The tenant this store is limited to; None for a system store."""
        return self._context.tenant_id

    def scoped(self, tenant_id: int) -> Store:
        return Store(self._context.scoped(tenant_id))

    def fenced(self, run_id: str, owner: str) -> Store:
        """A store for the writes of one execution of a run (`owner`: its executor id and a
        nonce, claimed with `runs.claim`): each write transaction first checks that the run
        is still that execution's and raises `RunTakenOver` if another took it over
        meanwhile, so a paused worker that wakes up writes nothing more for it."""
        return Store(self._context.fenced(run_id, owner))

    def check_owner(self) -> None:
        """Raise `RunTakenOver` when the run this store is fenced to has been taken over;
        nothing for a store that is not fenced. For a write to an API, which no transaction
        of ours covers: asked just before it, so a worker woken from a pause sends nothing
        more for the run it lost."""
        if self._context.fence is None:
            return
        with self._context.write():
            pass

    @contextmanager
    def transaction(self) -> Iterator[Store]:
        """A store whose calls share one transaction: all commit together, or none does.

        Use it to make a batch's outcomes, links and cursor one atomic step.
        """
        if self._context.session is not None:
            yield self
            return
        engine = self._context.engine.execution_options(**{WRITE_OPTION: True})
        with Session(engine) as session, session.begin():
            self._context.check_fence(session)
            yield Store(self._context.bound(session))

    @contextmanager
    def rehearsal(self) -> Iterator[Store]:
        """A store whose calls share one transaction that is always rolled back: a dry run
        records outcomes, links and cursors as a run would (later batches and flows see them),
        and none of it stays. On SQLite it holds the write lock while it lasts."""
        if self._context.session is not None:
            raise StoreError("a rehearsal cannot start inside a transaction")
        engine = self._context.engine.execution_options(**{WRITE_OPTION: True})
        with Session(engine) as session:
            session.begin()
            if engine.dialect.name == "postgresql":
                # Its transaction waits on the APIs between statements (a page, a 429's
                # pause): the server's limit for a frozen process's transactions (open_store)
                # would end it.
                session.execute(text("SET LOCAL idle_in_transaction_session_timeout = 0"))
            try:
                yield Store(self._context.bound(session))
            finally:
                session.rollback()

    def close(self) -> None:
        self._context.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def open_store(settings: Settings | None = None, *, migrate: bool = True) -> Store:
    """Open the store the settings name, bringing its schema up to date first."""
    settings = settings or get_settings()
    # A process silent for that long is taken for gone (its runs go to a live one): so are
    # its open transactions, whose row locks the taker may need.
    engine = make_engine(
        settings.store_url, silent_transaction_seconds=settings.takeover_after_seconds
    )
    box = SecretBox.from_settings(settings)
    if migrate and not at_head(engine):
        upgrade(engine, keyed_hash=box.keyed_hash)
    return Store.from_engine(
        engine,
        box,
        log_retention_days=settings.log_retention_days,
        payload_excerpts=settings.payload_excerpts,
    )


__all__ = ["Store", "open_store"]
