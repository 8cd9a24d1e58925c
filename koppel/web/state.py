"""What the app holds for its lifetime: settings, the system store, the runner, the first run."""

from __future__ import annotations

import asyncio
import hmac
import secrets
import threading
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from koppel.accounts.signin import SignInPolicy
from koppel.engine.runner import FlowRunner
from koppel.errors import KoppelError
from koppel.services.webhooks import DeliveryIntake
from koppel.services.wizard import SetupDraft
from koppel.settings import Settings
from koppel.store import Store


class FirstRun:
    """The one-time token that guards the first-run page while no account exists.

    It lives in this process only and is printed on its console; using it once closes it.
    """

    def __init__(self, token: str | None) -> None:
        self._token = token
        self._lock = threading.Lock()

    @classmethod
    def arm(cls, store: Store) -> FirstRun:
        return cls(secrets.token_urlsafe(24) if store.users.count() == 0 else None)

    @property
    def token(self) -> str | None:
        return self._token

    def matches(self, given: str) -> bool:
        token = self._token
        return token is not None and hmac.compare_digest(token.encode(), given.encode())

    def consume(self, given: str) -> bool:
        """True once, for the right token; then the page is closed for good."""
        with self._lock:
            if not self.matches(given):
                return False
            self._token = None
            return True


@dataclass
class WebState:
    settings: Settings
    store: Store
    """The system store; requests get a workspace-scoped one (koppel.web.deps)."""
    runner: FlowRunner | None
    """The engine run in this process (`koppel serve`), None with --no-worker."""
    owns_store: bool
    first_run: FirstRun
    startup_error: KoppelError | None = None
    """Why the lifespan could not start (the engine held by another process), for `serve`."""
    setup_drafts: dict[int, SetupDraft] = field(default_factory=dict)
    """The setup wizard's draft of each user (by id) until it is activated: in this process
    only, and without secrets (those are in the connections it stores)."""
    background: set[asyncio.Task[None]] = field(default_factory=set)
    """Runs started by a request that does not wait for them (the first run on activation)."""
    policy: SignInPolicy = field(init=False)
    zone: ZoneInfo = field(init=False)
    intake: DeliveryIntake = field(init=False)
    """Where Parts Pim's webhook deliveries are checked and recorded, in groups."""

    def __post_init__(self) -> None:
        self.intake = DeliveryIntake(self.store)
        self.policy = SignInPolicy.from_settings(self.settings)
        self.zone = ZoneInfo(self.settings.web_timezone)


__all__ = ["FirstRun", "WebState"]
