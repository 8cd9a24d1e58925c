"""Where a connector keeps credentials that the API rotates (OAuth2 refresh tokens).

AccountView hands out a new refresh token on every refresh and the old one stops working at
once, so the connection's credentials must be refreshed by one holder at a time (tasks, threads
and processes alike), stored before anything uses them, and read again by every other holder
instead of refreshing with a token that is already spent. The store behind a stored connection
(`koppel.flows.runtime.StoredCredentials`) does that with a lock in the database; a connector
built without one keeps its credentials in memory (`MemoryCredentials`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol


class CredentialStore(Protocol):
    def exclusive(self) -> AbstractAsyncContextManager[None]:
        """Held while the credentials are refreshed: one refresh at a time per connection."""
        ...

    async def load(self) -> dict[str, Any]:
        """The credentials as they are stored now: another holder may have refreshed them."""
        ...

    async def save(self, credentials: Mapping[str, Any]) -> None:
        """Keep refreshed credentials; called before anything uses them."""
        ...

    async def grant_lost(self, reason: str) -> None:
        """The API refused the grant for good: the connection must be authorised again."""
        ...


class MemoryCredentials:
    """Credentials held by one connector in this process only; `on_save` sees each refresh."""

    def __init__(
        self,
        credentials: Mapping[str, Any],
        *,
        on_save: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
    ) -> None:
        self._credentials = dict(credentials)
        self._on_save = on_save
        self._lock = asyncio.Lock()

    @asynccontextmanager
    async def _held(self) -> AsyncIterator[None]:
        async with self._lock:
            yield

    def exclusive(self) -> AbstractAsyncContextManager[None]:
        return self._held()

    async def load(self) -> dict[str, Any]:
        return dict(self._credentials)

    async def save(self, credentials: Mapping[str, Any]) -> None:
        self._credentials = dict(credentials)
        if self._on_save is not None:
            await self._on_save(dict(credentials))

    async def grant_lost(self, reason: str) -> None:
        """Nothing to mark: the error the connector raises says it."""


__all__ = ["CredentialStore", "MemoryCredentials"]
