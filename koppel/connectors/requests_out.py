"""When the requests a task has made are on their way: a hint for the order of our own work.

One process runs every page of a run on one event loop, so work that makes no call (recording
a page) runs between the steps of work that does (building and sending the next page's post),
in the order they became ready. When the recording goes first, the post leaves tens of
milliseconds later and the target and the run both wait for it. A batch that holds a turn
watches its requests (`RequestsOut`); work that can wait waits until they are out, and then
runs while the API answers them.

It is only a hint about order: nothing depends on it for correctness, and it is done as soon
as the watched work ends, whether it made any request or not. What must hold before a request
goes out (that the run is still this worker's) is its `before_each`, called as each request is
about to be sent: what it raises is raised by the request instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any

import httpx

__all__ = ["RequestsOut", "watch_request"]

_WATCHING: ContextVar[RequestsOut | None] = ContextVar("koppel_requests_out", default=None)
_BODY_SENT = ("send_request_body.complete", "send_request_body.failed")
"""httpcore's trace events (`http11.` prefixed) once a request's body is written, or not."""


class RequestsOut:
    """`with RequestsOut() as out:` the requests the task makes inside are watched (and those
    of tasks it starts inside); `await out.wait()` returns once each of them has been sent
    whole, or once the block has ended. `before_each` is called before each is sent."""

    def __init__(self, before_each: Callable[[], None] | None = None) -> None:
        self._before_each = before_each
        self._unsent = 0
        self._out = asyncio.Event()
        self._token: Token[RequestsOut | None] | None = None

    def __enter__(self) -> RequestsOut:
        self._token = _WATCHING.set(self)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._token is not None:
            _WATCHING.reset(self._token)
            self._token = None
        self.done()

    def done(self) -> None:
        """Nothing more will be sent: whoever waits goes on."""
        self._out.set()

    async def wait(self) -> None:
        await self._out.wait()

    def _starting(self, request: httpx.Request) -> None:
        if self._before_each is not None:
            self._before_each()
        self._unsent += 1
        sent = False

        async def trace(name: str, info: dict[str, Any]) -> None:
            nonlocal sent
            if not sent and name.endswith(_BODY_SENT):
                sent = True
                self._sent_one()

        request.extensions["trace"] = trace

    def _sent_one(self) -> None:
        self._unsent -= 1
        if self._unsent == 0:
            self._out.set()


def watch_request(request: httpx.Request) -> None:
    """Called by the client for every request it is about to send: counted by the watch of
    the task that makes it, if there is one, after that watch's `before_each`."""
    watching = _WATCHING.get()
    if watching is not None:
        watching._starting(request)
