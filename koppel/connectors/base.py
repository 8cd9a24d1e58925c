"""What every connector shares: the HTTP client policy and the record-level interface.

Remote APIs are the bottleneck (DESIGN.md, performance stance), so one `ApiClient` per connection
keeps as many requests in flight as the connection allows and no more, retries what is worth
retrying, and counts every call so runs can report their cost. Connectors override a few small
methods (`auth_headers`, `refresh_auth`, `validate_response`, `backoff_wait`) instead of the loop.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections import Counter
from collections.abc import AsyncGenerator, Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Protocol, TypeVar, runtime_checkable

import httpx

from koppel.connectors.errors import (
    AmbiguousWriteError,
    AuthenticationError,
    ConnectorError,
    FatalAPIError,
    PagingLoopError,
    RecordValidationError,
    RetriableAPIError,
)
from koppel.model.schema import RecordSchema

Record = dict[str, Any]
T = TypeVar("T")

log = logging.getLogger("koppel.connectors")

# Statuses that mean the API refused the request before acting on it.
_NOT_PROCESSED_STATUSES = frozenset({429, 503})
_MESSAGE_LIMIT = 300


@dataclass(frozen=True)
class ClientLimits:
    """How hard one connection may be driven and how long it is waited for; set per connection
    (`koppel.connectors.options.ConnectionOptions`, where the defaults are documented)."""

    concurrency: int = 8
    rate_per_second: float | None = None
    timeout_s: float = 30.0
    connect_timeout_s: float = 5.0
    max_attempts: int = 8
    backoff_base_s: float = 0.1
    backoff_max_s: float = 10.0
    down_after_s: float = 60.0
    max_pages: int = 100_000


class CallCounter:
    """API calls made through one client, by kind ("GET accountviewdata AK1")."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()

    def record(self, kind: str) -> None:
        self._counts[kind] += 1

    @property
    def total(self) -> int:
        return sum(self._counts.values())

    def by_kind(self) -> dict[str, int]:
        return dict(self._counts)


class RateLimiter:
    """Spaces request starts evenly at `rate_per_second`, across all tasks of one client."""

    def __init__(self, rate_per_second: float) -> None:
        self._interval = 1.0 / rate_per_second
        self._next_start = 0.0
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            now = time.monotonic()
            wait = self._next_start - now
            self._next_start = max(now, self._next_start) + self._interval
        if wait > 0:
            await asyncio.sleep(wait)


class PageGuard:
    """Stops paging that loops (a token seen before) or runs away (more pages than the cap)."""

    def __init__(self, what: str, max_pages: int) -> None:
        self._what = what
        self._max_pages = max_pages
        self._seen: set[Hashable] = set()

    def advance(self, token: Hashable) -> None:
        if token in self._seen:
            raise PagingLoopError(f"{self._what}: the API returned page token {token!r} twice")
        if len(self._seen) >= self._max_pages:
            raise PagingLoopError(f"{self._what}: more than {self._max_pages} pages; stopped")
        self._seen.add(token)


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: either a number or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def api_message(response: httpx.Response) -> str:
    """A short, printable version of the API's own error text."""
    text = response.text.strip().replace("\n", " ")
    return text[:_MESSAGE_LIMIT] + ("…" if len(text) > _MESSAGE_LIMIT else "")


class ApiClient:
    """One connection's HTTP client: concurrency and rate limits, retries, error classes."""

    def __init__(
        self,
        base_url: str,
        *,
        limits: ClientLimits | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        name: str = "",
    ) -> None:
        self.limits = limits or ClientLimits()
        self.name = name
        """The connection's name, given to the errors this client raises (ConnectorError.
        connection), so a run's reason can say which connection to check."""
        self.calls = CallCounter()
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=httpx.Timeout(self.limits.timeout_s, connect=self.limits.connect_timeout_s),
            transport=transport,
            limits=httpx.Limits(
                max_connections=self.limits.concurrency,
                max_keepalive_connections=self.limits.concurrency,
            ),
        )
        self._slots = asyncio.Semaphore(self.limits.concurrency)
        self._rate = (
            RateLimiter(self.limits.rate_per_second) if self.limits.rate_per_second else None
        )

    @property
    def base_url(self) -> str:
        return str(self._http.base_url)

    # -- override points -------------------------------------------------------------------

    async def auth_headers(self) -> dict[str, str]:
        """Headers that authenticate a request; called before every attempt."""
        return {}

    async def refresh_auth(self) -> bool:
        """Called once after a 401; return True when new credentials make a retry worthwhile."""
        return False

    def validate_response(self, response: httpx.Response) -> None:
        """Raise the error class that says what to do about a response; return if it is fine."""
        status = response.status_code
        if status < 400:
            return
        where = f"{response.request.method} {response.request.url.path}"
        message = f"{where}: HTTP {status}: {api_message(response)}"
        if status == 429 or status >= 500:
            raise RetriableAPIError(
                message,
                status=status,
                retry_after=parse_retry_after(response.headers.get("retry-after")),
                maybe_processed=status not in _NOT_PROCESSED_STATUSES,
            )
        if status in (401, 403):
            raise AuthenticationError(
                f"{where}: the credentials were refused (HTTP {status}); check them or "
                "authorise the connection again",
                status=status,
            )
        raise FatalAPIError(message, status=status)

    def backoff_wait(self, attempt: int, error: RetriableAPIError) -> float:
        """Seconds to wait before attempt `attempt + 1`: jittered exponential, >= Retry-After."""
        exponential: float = min(
            self.limits.backoff_max_s, self.limits.backoff_base_s * 2.0 ** (attempt - 1)
        )
        wait = exponential * random.uniform(0.5, 1.0)
        if error.retry_after is not None:
            wait = max(wait, error.retry_after * random.uniform(1.0, 1.2))
        return wait

    # -- the request loop ------------------------------------------------------------------

    async def send(
        self,
        method: str,
        path: str,
        *,
        kind: str,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool = True,
        authenticated: bool = True,
    ) -> httpx.Response:
        """Send one request with retries; raise the connector error class when it fails.

        A request that is not idempotent is retried only when the API certainly did not act on
        it; otherwise AmbiguousWriteError tells the caller to look before writing again.
        """
        try:
            return await self._send(
                method, path, kind, params, json, data, headers, idempotent, authenticated
            )
        except ConnectorError as error:
            error.connection = error.connection or self.name or None
            raise

    async def _send(
        self,
        method: str,
        path: str,
        kind: str,
        params: Mapping[str, Any] | None,
        json: Any,
        data: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
        idempotent: bool,
        authenticated: bool,
    ) -> httpx.Response:
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self._send_once(
                    method, path, kind, params, json, data, headers, authenticated
                )
                self.validate_response(response)
                return response
            except AuthenticationError as error:
                if error.status == 401 and authenticated and not refreshed:
                    refreshed = True
                    if await self.refresh_auth():
                        attempt -= 1
                        continue
                raise
            except AmbiguousWriteError:
                raise
            except RetriableAPIError as error:
                if not idempotent and error.maybe_processed:
                    raise AmbiguousWriteError(
                        str(error), status=error.status, retry_after=error.retry_after
                    ) from error
                if attempt >= self.limits.max_attempts:
                    raise
                wait = self.backoff_wait(attempt, error)
                log.info(
                    "%s %s: attempt %d failed (%s); retry in %.2fs",
                    method,
                    path,
                    attempt,
                    error.status or "no answer",
                    wait,
                )
                await asyncio.sleep(wait)

    async def _send_once(
        self,
        method: str,
        path: str,
        kind: str,
        params: Mapping[str, Any] | None,
        json: Any,
        data: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
        authenticated: bool,
    ) -> httpx.Response:
        request_headers = dict(headers or {})
        if authenticated:
            request_headers.update(await self.auth_headers())
        async with self._slots:
            if self._rate is not None:
                await self._rate.acquire()
            self.calls.record(kind)
            try:
                return await self._http.request(
                    method, path, params=params, json=json, data=data, headers=request_headers
                )
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as error:
                raise RetriableAPIError(
                    f"{method} {path}: could not connect ({type(error).__name__})",
                    maybe_processed=False,
                ) from None
            except httpx.TransportError as error:
                raise RetriableAPIError(
                    f"{method} {path}: the connection failed ({type(error).__name__})"
                ) from None

    async def write_with_recheck(
        self,
        write: Callable[[], Awaitable[T]],
        recheck: Callable[[], Awaitable[T | None]],
    ) -> T:
        """Write that is safe to retry: after an ambiguous failure, look before writing again."""
        last_error: AmbiguousWriteError | None = None
        for attempt in range(1, self.limits.max_attempts + 1):
            if last_error is not None:
                found = await recheck()
                if found is not None:
                    return found
            try:
                return await write()
            except AmbiguousWriteError as error:
                last_error = error
                await asyncio.sleep(self.backoff_wait(attempt, error))
        assert last_error is not None
        raise last_error

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


# -- the record-level interface every connector implements --------------------------------


@dataclass(frozen=True)
class EntitySpec:
    """One kind of record a connector reads or writes, and how it is identified."""

    name: str
    key_field: str
    id_field: str
    schema: RecordSchema
    writable: bool = True


@dataclass(frozen=True)
class WriteResult:
    """What became of one record of a write: written (created or updated) or rejected."""

    key: str
    target_id: str = ""
    created: bool = False
    record: Record | None = field(default=None, compare=False)
    error: RecordValidationError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@runtime_checkable
class Connector(Protocol):
    """An application as the flows see it: records of named entities, read and written in bulk."""

    application: str
    entities: Mapping[str, EntitySpec]

    async def check(self) -> str:
        """Connection test: a sentence for the user, or a ConnectorError that says what to fix."""
        ...

    def read(
        self,
        entity: str,
        *,
        since: datetime | None = None,
        after: str | None = None,
        page_size: int | None = None,
    ) -> AsyncGenerator[list[Record], None]:
        """Every record changed at or after `since`, one list per page, in `id_field` order.

        `after` resumes after the record with that id (exclusive): a run that was interrupted
        continues from the last record it finished instead of starting over.
        """
        ...

    async def lookup(self, entity: str, field: str, values: Sequence[str]) -> list[Record]:
        """The records whose `field` is one of `values`, in as few calls as the API allows."""
        ...

    async def write(
        self,
        entity: str,
        records: Sequence[Record],
        *,
        found: Mapping[str, Record | None] | None = None,
    ) -> list[WriteResult]:
        """Create or update each record by its key; one result per record, in order.

        `found` is a lookup by the entity's key field that the caller made just before: each
        key it asked for (None: not in the target) and each record it found, by its key. The
        connector trusts it instead of asking the API the same question again.
        """
        ...

    async def aclose(self) -> None: ...


__all__ = [
    "AmbiguousWriteError",
    "ApiClient",
    "AuthenticationError",
    "CallCounter",
    "ClientLimits",
    "Connector",
    "ConnectorError",
    "EntitySpec",
    "FatalAPIError",
    "PageGuard",
    "PagingLoopError",
    "RateLimiter",
    "Record",
    "RecordValidationError",
    "RetriableAPIError",
    "WriteResult",
    "api_message",
    "parse_retry_after",
]
