"""Fault injection and the request log, as ASGI middleware around a sandbox's API.

With a seed, whether a request meets a fault depends on the request alone (its method, path,
query and body, and how many times the same request came before; a token request's form body,
which holds one-time secrets, is left out), not on the order requests
arrive in: a client with several calls in flight gets the same faults on every run, so a test
run can be repeated. Without a seed, faults are drawn at random. A dropped connection happens
*after* the API handled the request: the write is done but the client never hears of it, which
is the case that creates duplicates in careless integrations.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ADMIN_PREFIX = "/_admin"


class FaultConfig(BaseModel):
    """What goes wrong, and how often. Rates are fractions of requests (0.0 to 1.0)."""

    latency_ms: float = Field(default=0, ge=0, description="added to every API request")
    error_rate: float = Field(default=0, ge=0, le=1, description="answer 500, 502 or 503")
    rate_429: float = Field(default=0, ge=0, le=1, description="answer 429 with Retry-After")
    retry_after_s: float = Field(default=0.05, ge=0, description="the Retry-After of a 429")
    timeout_rate: float = Field(default=0, ge=0, le=1, description="hang for timeout_s, then 504")
    timeout_s: float = Field(default=5, ge=0)
    drop_rate: float = Field(default=0, ge=0, le=1, description="handle, then drop the connection")
    rate_limit_per_s: float | None = Field(default=None, gt=0, description="429 above this rate")
    seed: int | None = None

    def total_fault_rate(self) -> float:
        return self.error_rate + self.rate_429 + self.timeout_rate + self.drop_rate


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str
    kind: str
    status: int


class RequestLog:
    """Every API request the sandbox answered, so tests can count calls of each kind, and how
    many were in flight at once at most: a client's concurrency limit, seen from the API's side
    (the sum of every process that calls it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[LoggedRequest] = []
        self._in_flight = 0
        self._max_in_flight = 0

    def record(self, entry: LoggedRequest) -> None:
        with self._lock:
            self._entries.append(entry)

    def arrived(self) -> None:
        """A request came in (before any injected latency: it is in flight from here)."""
        with self._lock:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)

    def left(self) -> None:
        """A request's answer went out, or its connection was cut."""
        with self._lock:
            self._in_flight -= 1

    @property
    def max_in_flight(self) -> int:
        """The most requests in flight at once since the start or the last `clear()`."""
        with self._lock:
            return self._max_in_flight

    def entries(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self._entries)

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(Counter(e.kind for e in self._entries))

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._max_in_flight = self._in_flight


KindOf = Callable[[Scope], str]

DROP_MESSAGE = "injected dropped connection"


class _HideInjectedDrops(logging.Filter):
    """The server logs a dropped connection as an application error; an injected one is not."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (isinstance(error, ConnectionAbortedError) and str(error) == DROP_MESSAGE)


_DROP_FILTER = _HideInjectedDrops()


def default_kind(scope: Scope) -> str:
    return f"{scope['method']} {scope['path']}"


class _RateLimiter:
    """A fixed one-second window: simple and exactly what an API's documented limit looks like."""

    def __init__(self) -> None:
        self._window = 0
        self._count = 0
        self._lock = threading.Lock()

    def allow(self, per_second: float) -> bool:
        now = int(time.monotonic())
        with self._lock:
            if now != self._window:
                self._window, self._count = now, 0
            self._count += 1
            return self._count <= per_second


ErrorBody = Callable[[str], bytes]
"""The body of an injected error answer, in the emulated API's error shape."""


def default_error_body(message: str) -> bytes:
    return json.dumps({"error": message}).encode()


def replaying(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the app a request body already read (by middleware that had to
    see it first), then waits on the connection as the original would."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


class FaultMiddleware:
    """Wraps a sandbox app: injects the configured faults and logs every API request."""

    def __init__(
        self,
        app: ASGIApp,
        config: FaultConfig | None = None,
        log: RequestLog | None = None,
        kind_of: KindOf = default_kind,
        error_body: ErrorBody = default_error_body,
    ) -> None:
        self.app = app
        self.log = log or RequestLog()
        self.kind_of = kind_of
        self.error_body = error_body
        self._limiter = _RateLimiter()
        logging.getLogger("uvicorn.error").addFilter(_DROP_FILTER)
        self.configure(config or FaultConfig())

    @property
    def config(self) -> FaultConfig:
        return self._config

    def configure(self, config: FaultConfig) -> None:
        self._config = config
        self._random = random.Random(config.seed)
        self._seen: Counter[str] = Counter()
        """Requests met so far, by fingerprint: a retry of a request draws anew."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(ADMIN_PREFIX):
            await self.app(scope, receive, send)
            return
        config = self._config
        kind = self.kind_of(scope)
        logged = False

        def record(status: int) -> None:
            # Logged before the response leaves, so a client that got an answer sees its call.
            nonlocal logged
            if not logged:
                logged = True
                self.log.record(LoggedRequest(scope["method"], scope["path"], kind, status))

        async def logging_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                record(int(message["status"]))
            await send(message)

        self.log.arrived()
        try:
            if config.latency_ms:
                await asyncio.sleep(config.latency_ms / 1000)
            chance = self._random
            if config.seed is not None and config.total_fault_rate() > 0:
                receive, chance = await self._chance_of(scope, receive, config.seed)
            fault = self._draw(config, chance)
            if fault == "drop":
                record(-1)
                await self._handle_then_drop(scope, receive, send)
                return
            if fault is not None:
                await fault(logging_send, chance)
                return
            await self.app(scope, receive, logging_send)
        finally:
            record(0)
            self.log.left()

    async def _chance_of(
        self, scope: Scope, receive: Receive, seed: int
    ) -> tuple[Receive, random.Random]:
        """The request's own random source, from the seed and the request's fingerprint; and a
        `receive` that hands the app the body read for the fingerprint."""
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        # A form body is a token request's, with one-time secrets in it: those are counted by
        # their path alone (a client asks for one token at a time).
        headers = dict(scope.get("headers", []))
        form = headers.get(b"content-type", b"").startswith(b"application/x-www-form-urlencoded")
        digest = hashlib.sha256(b"" if form else body)
        for part in (scope["method"], scope["path"], scope.get("query_string", b"").decode()):
            digest.update(b"\0" + part.encode())
        fingerprint = digest.hexdigest()
        self._seen[fingerprint] += 1
        chance = random.Random(f"{seed}:{fingerprint}:{self._seen[fingerprint]}")
        return replaying(body, receive), chance

    def _draw(self, config: FaultConfig, chance: random.Random) -> Any:
        if config.rate_limit_per_s is not None and not self._limiter.allow(config.rate_limit_per_s):
            return self._too_many_requests
        roll = chance.random()
        for rate, fault in (
            (config.error_rate, self._server_error),
            (config.rate_429, self._too_many_requests),
            (config.timeout_rate, self._timeout),
            (config.drop_rate, "drop"),
        ):
            if roll < rate:
                return fault
            roll -= rate
        return None

    async def _server_error(self, send: Send, chance: random.Random) -> None:
        status = chance.choice((500, 502, 503))
        await _send_json(send, status, self.error_body("injected server error"))

    async def _too_many_requests(self, send: Send, chance: random.Random) -> None:
        retry_after = f"{self._config.retry_after_s:g}".encode()
        await _send_json(
            send, 429, self.error_body("too many requests"), [(b"retry-after", retry_after)]
        )

    async def _timeout(self, send: Send, chance: random.Random) -> None:
        await asyncio.sleep(self._config.timeout_s)
        await _send_json(send, 504, self.error_body("injected gateway timeout"))

    async def _handle_then_drop(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request, swallow its response and cut the connection mid-response."""
        start: dict[str, Any] = {}

        async def swallow(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)

        await self.app(scope, receive, swallow)
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", b"1000"))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b'{"partial', "more_body": True})
        raise ConnectionAbortedError(DROP_MESSAGE)


async def _send_json(
    send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += extra or []
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def admin_router(faults: FaultMiddleware) -> APIRouter:
    """`/_admin`: read and change faults at run time, read and reset the request log."""
    router = APIRouter(prefix=ADMIN_PREFIX, tags=["sandbox admin"])

    @router.get("/faults")
    def get_faults() -> FaultConfig:
        return faults.config

    @router.put("/faults")
    def put_faults(config: FaultConfig) -> FaultConfig:
        faults.configure(config)
        return faults.config

    @router.get("/requests")
    def get_requests() -> dict[str, Any]:
        entries = faults.log.entries()
        return {
            "total": len(entries),
            "max_in_flight": faults.log.max_in_flight,
            "counts": faults.log.counts(),
            "requests": [e.__dict__ for e in entries[-1000:]],
        }

    @router.delete("/requests")
    def clear_requests() -> dict[str, int]:
        faults.log.clear()
        return {"total": 0, "max_in_flight": faults.log.max_in_flight}

    return router
