"""A connection's places for requests in flight in this process, and who gets a free one.

A batch starts some calls before it needs their answers (`read_ahead`): the orders flow's
articles, looked up beside the debtors and checked after them, took twenty calls at 500
orders and held all eight places while the debtors' look-up, which the batch was waiting on,
queued behind them. So requests made while reading ahead hold at most three quarters of the
places, and a request made for an answer wanted now goes before the waiting requests made
while reading ahead; among themselves each kind keeps the order it came in.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import deque
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

T = TypeVar("T")

_READING_AHEAD: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "koppel_reading_ahead", default=False
)


def read_ahead(call: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    """Start a call whose answer is wanted later: its requests let the others go first."""
    context = contextvars.copy_context()
    context.run(_READING_AHEAD.set, True)
    return asyncio.get_running_loop().create_task(call, context=context)


class Places:
    """`count` places; `taken()` holds one while a request is in flight. Requests made while
    reading ahead hold at most three quarters of them (all, when there are three or fewer),
    so a request for an answer wanted now finds one free or next to be freed."""

    def __init__(self, count: int) -> None:
        self._free = count
        self._ahead_limit = max(1, count - count // 4)
        self._ahead_taken = 0
        self._now: deque[asyncio.Future[None]] = deque()
        self._ahead: deque[asyncio.Future[None]] = deque()

    @asynccontextmanager
    async def taken(self) -> AsyncIterator[None]:
        ahead = _READING_AHEAD.get()
        await self._take(ahead)
        try:
            yield
        finally:
            self._give_back(ahead)

    async def _take(self, ahead: bool) -> None:
        if self._free and not self._now and not (ahead and (self._ahead or self._ahead_full)):
            self._free -= 1
            self._ahead_taken += ahead
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._ahead if ahead else self._now
        queue.append(waiter)
        try:
            await waiter  # handed a place by `_give_back`
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._give_back(ahead)  # handed a place just as the wait was called off
            elif waiter in queue:
                queue.remove(waiter)
            raise

    @property
    def _ahead_full(self) -> bool:
        return self._ahead_taken >= self._ahead_limit

    def _give_back(self, ahead: bool) -> None:
        self._free += 1
        self._ahead_taken -= ahead
        while self._free:
            if self._now:
                waiter, to_ahead = self._now.popleft(), False
            elif self._ahead and not self._ahead_full:
                waiter, to_ahead = self._ahead.popleft(), True
            else:
                return
            if not waiter.done():  # not a wait called off
                self._free -= 1
                self._ahead_taken += to_ahead
                waiter.set_result(None)


__all__ = ["Places", "read_ahead"]
