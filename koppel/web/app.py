"""The web app's factory: `create_app(settings)` for `koppel serve`, with a store and a runner
passed in by tests.

The app holds the system store and, unless started with `--no-worker`, the engine: its lifespan
starts the FlowRunner (signal handling off: uvicorn owns the signals) with the flows' schedules,
and shuts it down gracefully when the server stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.staticfiles import StaticFiles

from koppel.accounts.signin import purge_expired_sessions
from koppel.engine import ExecutorInUse
from koppel.engine.runner import FlowRunner
from koppel.notify.outbox import notify_regularly
from koppel.services.webhooks import SUBSCRIPTIONS_EVERY_S, sync_subscriptions
from koppel.settings import Settings
from koppel.store import Store, open_store
from koppel.web.errors import install_error_handlers
from koppel.web.routes import (
    account,
    activity,
    api,
    api_mappings,
    api_records,
    auth,
    connections,
    dashboard,
    dead_letters,
    health,
    hooks,
    integration_files,
    mappings,
    notifications,
    reconciliation,
    runs,
    users,
    wizard,
    workers,
)
from koppel.web.security import SecurityHeaders
from koppel.web.state import FirstRun, WebState

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
HOUSEKEEPING_EVERY_S = 3600.0
"""How often expired sessions (and, with the worker here, the retention window) are purged."""


async def _housekeeping(state: WebState) -> None:
    while True:
        try:
            await asyncio.to_thread(purge_expired_sessions, state.store, state.policy)
            if state.runner is not None:
                result = await asyncio.to_thread(state.store.retention.purge)
                if result.outcomes_deleted or result.dead_letters_deleted:
                    logger.info(
                        "retention: deleted %d log entries and %d closed dead letters",
                        result.outcomes_deleted,
                        result.dead_letters_deleted,
                    )
        except Exception:  # housekeeping must not stop the server; it runs again
            logger.exception("housekeeping failed; retrying in an hour")
        await asyncio.sleep(HOUSEKEEPING_EVERY_S)


async def _keep_subscriptions(state: WebState, public_url: str) -> None:
    """Parts Pim's webhooks follow the flows: subscribed for what enabled flows read, at this
    server's public address, whoever changed the flows (the web app, `koppel config apply`)."""
    while True:
        try:
            for change in await sync_subscriptions(state.store, public_url):
                logger.info("webhooks of connection %s: %s", change.connection, change.action)
        except Exception:  # a subscription problem must not stop the server; it runs again
            logger.exception("webhook subscriptions failed; trying again")
        await asyncio.sleep(SUBSCRIPTIONS_EVERY_S)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    state: WebState = app.state.koppel
    if state.runner is not None:
        try:
            await state.runner.__aenter__()
        except ExecutorInUse as error:
            state.startup_error = error
            raise
        await state.runner.engine.start_worker(state.runner.schedules)
    helpers = [asyncio.create_task(_housekeeping(state))]
    if state.settings.web_public_url:
        helpers.append(
            asyncio.create_task(_keep_subscriptions(state, state.settings.web_public_url))
        )
    if state.runner is not None:
        helpers.append(asyncio.create_task(notify_regularly(state.store)))
    try:
        yield
    finally:
        for helper in helpers:
            helper.cancel()
        for helper in helpers:
            with contextlib.suppress(asyncio.CancelledError):
                await helper
        if state.runner is not None:
            await state.runner.__aexit__(None, None, None)
        if state.owns_store:
            state.store.close()


def create_app(
    settings: Settings, *, store: Store | None = None, runner: FlowRunner | None = None
) -> FastAPI:
    """The app over `store` (else the store the settings name, opened and closed by the app).

    `runner`: the engine this process runs flows with, started and stopped by the app's
    lifespan; None leaves the runs to `koppel worker` processes.
    """
    system_store = store if store is not None else open_store(settings)
    state = WebState(
        settings=settings,
        store=system_store,
        runner=runner,
        owns_store=store is None,
        first_run=FirstRun.arm(system_store),
    )
    app = FastAPI(
        title="Koppel",
        lifespan=_lifespan,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.koppel = state
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(hooks.router)
    app.include_router(auth.public)
    app.include_router(auth.signed_in)
    app.include_router(dashboard.router)
    app.include_router(runs.router)
    app.include_router(connections.router)
    app.include_router(workers.router)
    app.include_router(wizard.router)
    app.include_router(account.router)
    app.include_router(users.router)
    app.include_router(notifications.router)
    app.include_router(activity.router)
    app.include_router(dead_letters.pages)
    app.include_router(dead_letters.actions)
    app.include_router(reconciliation.pages)
    app.include_router(reconciliation.actions)
    app.include_router(mappings.pages)
    app.include_router(mappings.actions)
    app.include_router(integration_files.pages)
    app.include_router(integration_files.actions)
    app.include_router(api.router)
    app.include_router(api_records.router)
    app.include_router(api_mappings.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.allowed_hosts)
    app.add_middleware(SecurityHeaders, https=settings.web_https)
    return app


__all__ = ["create_app"]
