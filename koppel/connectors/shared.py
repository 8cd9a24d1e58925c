"""A connection's limits held in a database shared by every process (`SharedGate`).

Several `koppel worker` processes on one PostgreSQL store run flows that use the same
connection; the API sees the sum of their calls. Each process keeping its own `concurrency`
would let N processes put N times as many calls in flight, so the requests wait at a gate in
the database instead: one slot row per request in flight (it expires, so a process that dies
holding slots gives them back), and one row with the rate of starts (the `RateLimiter`'s
AIMD state on the database's clock). The connectors know nothing of the store: the gate talks
to it through `SharedLimitStore`, which `koppel.store.limits` implements.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

from koppel.connectors.base import STOP_GRACE_S, ClientLimits, Pause, RateLimiter
from koppel.connectors.places import Places

FIRST_POLL_S = 0.005
"""How soon a request that found every slot taken asks again; it doubles up to `LAST_POLL_S`."""
LAST_POLL_S = 0.05
"""The longest wait between two asks for a slot: a request of a busy connection starts at most
this long after one ends (about a call's latency at 50 ms: a small share of the throughput)."""


class SharedLimitStore(Protocol):
    """The database side of the gate (`koppel.store.limits.ConnectionLimitRepository`)."""

    def take(
        self,
        connection_id: int,
        *,
        concurrency: int,
        owner: str,
        ttl_s: float,
        ceiling: float | None,
    ) -> tuple[int, float | None, float] | None: ...

    def free_slot(self, connection_id: int, slot: int, owner: str) -> None: ...

    def free_owner(self, owner: str) -> None: ...

    def throttled(
        self,
        connection_id: int,
        *,
        ceiling: float | None,
        floor: float,
        observed: float,
        retry_after: float | None,
    ) -> None: ...

    def answered(
        self, connection_id: int, *, ceiling: float | None, step: float, off_above: float
    ) -> float | None: ...


def slot_ttl(limits: ClientLimits) -> float:
    """How long a slot is held at most: longer than any request may take (connect, answer,
    the grace of a stop, with room to spare), so a live request never loses its slot; this is
    also how soon the slots of a process that died come back."""
    return 2 * (limits.connect_timeout_s + limits.timeout_s + STOP_GRACE_S)


class SharedGate:
    """The `Gate` of a connection whose limits every process shares through the store.

    A process first takes one of its own `concurrency` places (`Places`: so no more of its
    requests ask the database than could ever get a slot), then a slot in the database, asking
    again with a short backoff while all are taken. The database calls are short and
    synchronous; they run on a thread so the loop goes on serving the requests in flight.
    """

    def __init__(self, store: SharedLimitStore, connection_id: int, limits: ClientLimits) -> None:
        self._store = store
        self._connection = connection_id
        self._limits = limits
        self._ttl = slot_ttl(limits)
        self._owner = f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self._places = Places(limits.concurrency)
        self._rate: float | None = limits.rate_per_second
        self._recent: deque[float] = deque(maxlen=256)

    @asynccontextmanager
    async def slot(self, pause: Pause) -> AsyncIterator[float]:
        async with self._places.taken():
            slot, wait = await self._take(pause)
            try:
                yield wait
            finally:
                await asyncio.to_thread(self._store.free_slot, self._connection, slot, self._owner)

    async def _take(self, pause: Pause) -> tuple[int, float]:
        """A slot and the start's wait, asking again with a short backoff while all slots are
        taken."""
        backoff = FIRST_POLL_S
        while True:
            taken = await asyncio.to_thread(
                lambda: self._store.take(
                    self._connection,
                    concurrency=self._limits.concurrency,
                    owner=self._owner,
                    ttl_s=self._ttl,
                    ceiling=self._limits.rate_per_second,
                )
            )
            if taken is not None:
                slot, self._rate, wait = taken
                self._recent.append(time.monotonic() + wait)
                return slot, wait
            await pause(backoff * random.uniform(0.5, 1.0))
            backoff = min(LAST_POLL_S, backoff * 2)

    async def throttled(self, retry_after: float | None) -> None:
        now = time.monotonic()
        observed = float(max(1, sum(1 for start in self._recent if now - start <= 1.0)))
        floor = max(1 / retry_after, RateLimiter.MIN_RATE) if retry_after else RateLimiter.MIN_RATE
        await asyncio.to_thread(
            lambda: self._store.throttled(
                self._connection,
                ceiling=self._limits.rate_per_second,
                floor=floor,
                observed=observed,
                retry_after=retry_after,
            )
        )

    async def answered(self) -> None:
        """Only a rate that is below its ceiling (or spacing at all) is written: at a steady
        pace an answer costs the database nothing."""
        if self._rate is None or self._rate == self._limits.rate_per_second:
            return
        self._rate = await asyncio.to_thread(
            lambda: self._store.answered(
                self._connection,
                ceiling=self._limits.rate_per_second,
                step=RateLimiter.RATE_STEP,
                off_above=RateLimiter.OFF_ABOVE,
            )
        )

    async def aclose(self) -> None:
        await asyncio.to_thread(self._store.free_owner, self._owner)


__all__ = ["FIRST_POLL_S", "LAST_POLL_S", "SharedGate", "SharedLimitStore", "slot_ttl"]
