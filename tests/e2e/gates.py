"""Requests a test holds at a sandbox until it lets them through.

A flow is paused at one chosen request (the second page of a read, the post of one debtor), so
a race, a change behind the read position or a stop happens exactly there, whatever the load
on the machine: the test waits for the request to arrive, acts, then releases it. The gate is
ASGI middleware in front of the sandbox app, on the other side of the wire: Koppel's own code
runs unchanged.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from koppel.sandbox.accountview import AccountViewSandbox
from koppel.sandbox.common import FaultConfig, SandboxServer, replaying
from koppel.sandbox.partspim import PartsPimSandbox
from koppel.services.demo import DemoSandboxes

WAIT_S = 120.0
"""How long a test waits for a request to arrive before it fails (a bound, not a timing)."""


@dataclass(frozen=True)
class SeenRequest:
    method: str
    path: str
    query: dict[str, str]
    body: bytes
    client_port: int | None = None
    """The caller's port: which process sent it (`tests.e2e.processes.socket_ports`)."""


@dataclass
class Hold:
    """Holds the next `count` requests that match, each until `release()`."""

    matches: Callable[[SeenRequest], bool]
    count: int = 1
    answered: bool = False
    """Hold the answer instead: the sandbox has done the request, the caller has not heard."""
    held: list[SeenRequest] = field(default_factory=list)
    _arrived: threading.Event = field(default_factory=threading.Event)
    _released: threading.Event = field(default_factory=threading.Event)

    def wait_arrived(self, timeout: float = WAIT_S) -> SeenRequest:
        if not self._arrived.wait(timeout):
            raise AssertionError(f"no held request arrived within {timeout:g}s")
        return self.held[0]

    async def arrived(self) -> SeenRequest:
        return await asyncio.to_thread(self.wait_arrived)

    def release(self) -> None:
        self._released.set()


class RequestGate:
    """ASGI middleware that holds the requests a `Hold` matches, and passes all others."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._holds: list[Hold] = []
        self._taps: list[tuple[Callable[[SeenRequest], bool], list[bytes]]] = []
        self._lock = threading.Lock()

    def tap(self, matches: Callable[[SeenRequest], bool]) -> list[bytes]:
        """The response bodies of every request that matches from now on (e.g. tokens issued)."""
        bodies: list[bytes] = []
        with self._lock:
            self._taps.append((matches, bodies))
        return bodies

    def hold(
        self, matches: Callable[[SeenRequest], bool], *, count: int = 1, answered: bool = False
    ) -> Hold:
        """Hold matching requests before the sandbox sees them, or with `answered` their
        answers after the sandbox has done them (a crash between a write and its record)."""
        hold = Hold(matches, count, answered)
        with self._lock:
            self._holds.append(hold)
        return hold

    def release_all(self) -> None:
        with self._lock:
            holds, self._holds = self._holds, []
        for hold in holds:
            hold.release()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not (self._holds or self._taps):
            await self.app(scope, receive, send)
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = bool(message.get("more_body"))
        query = {
            key: values[-1]
            for key, values in parse_qs(scope.get("query_string", b"").decode("latin-1")).items()
        }
        client = scope.get("client")
        seen = SeenRequest(scope["method"], scope["path"], query, body, client and client[1])
        hold = self._take(seen)
        if hold is not None and not hold.answered:
            hold._arrived.set()
            await asyncio.to_thread(hold._released.wait)
        replay = replaying(body, receive)

        if hold is not None and hold.answered:
            answer_messages: list[Message] = []

            async def buffer(message: Message) -> None:
                answer_messages.append(message)

            await self.app(scope, replay, buffer)
            hold._arrived.set()
            await asyncio.to_thread(hold._released.wait)
            for message in answer_messages:
                await send(message)
            return
        with self._lock:
            taps = [bodies for matches, bodies in self._taps if matches(seen)]
        if not taps:
            await self.app(scope, replay, send)
            return
        answer = b""

        async def keep(message: Message) -> None:
            nonlocal answer
            if message["type"] == "http.response.body":
                answer += message.get("body", b"")
            await send(message)

        await self.app(scope, replay, keep)
        for bodies in taps:
            bodies.append(answer)

    def _take(self, seen: SeenRequest) -> Hold | None:
        with self._lock:
            for hold in self._holds:
                if len(hold.held) < hold.count and hold.matches(seen):
                    hold.held.append(seen)
                    return hold
        return None


@dataclass
class Gates:
    partspim: RequestGate
    accountview: RequestGate

    def release_all(self) -> None:
        self.partspim.release_all()
        self.accountview.release_all()


@contextmanager
def gated_sandboxes(
    products: int,
    *,
    seed: int = 0,
    partspim_faults: FaultConfig | None = None,
    accountview_faults: FaultConfig | None = None,
    accountview_articles: int = 0,
) -> Iterator[tuple[DemoSandboxes, Gates]]:
    """Both sandboxes as `services.demo.running_sandboxes` serves them, each behind a gate."""
    partspim = PartsPimSandbox(faults=partspim_faults, seed=seed)
    accountview = AccountViewSandbox(faults=accountview_faults, seed=seed)
    partspim.generate(products, seed=seed)
    accountview.generate(accountview_articles, seed=seed)
    gates = Gates(RequestGate(partspim.asgi_app()), RequestGate(accountview.asgi_app()))
    with ExitStack() as stack:
        # Released before the servers stop, so no held request keeps a server from stopping.
        stack.callback(gates.release_all)
        pim_server = stack.enter_context(SandboxServer(gates.partspim))
        av_server = stack.enter_context(SandboxServer(gates.accountview))
        stack.callback(gates.release_all)
        yield DemoSandboxes(partspim, accountview, pim_server.url, av_server.url), gates


def post_of(business_object: str) -> Callable[[SeenRequest], bool]:
    """An AccountView POST of rows of this business object (e.g. AR1, the debtors)."""
    marker = f'"BusinessObject": "{business_object}"'.encode()
    compact = f'"BusinessObject":"{business_object}"'.encode()

    def matches(seen: SeenRequest) -> bool:
        return (
            seen.method == "POST"
            and seen.path.lower().endswith("/accountviewdata")
            and (marker in seen.body or compact in seen.body)
        )

    return matches


def listing_after(resource: str) -> Callable[[SeenRequest], bool]:
    """A Parts Pim listing of this resource that continues after an id (its second page on)."""

    def matches(seen: SeenRequest) -> bool:
        return (
            seen.method == "GET"
            and seen.path.rstrip("/").endswith(f"/{resource}")
            and bool(seen.query.get("after_id"))
        )

    return matches


def token_requests(seen: SeenRequest) -> bool:
    """AccountView's OAuth token endpoint: its answers hold every token issued."""
    return seen.method == "POST" and seen.path.rstrip("/").lower().endswith("/token")


__all__ = [
    "Gates",
    "Hold",
    "RequestGate",
    "SeenRequest",
    "gated_sandboxes",
    "listing_after",
    "post_of",
    "token_requests",
]
