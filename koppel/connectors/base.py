"""What every connector shares: the HTTP client policy and the record-level interface.

Remote APIs are the bottleneck (docs/performance.md), so one `ApiClient` per connection
keeps as many requests in flight as the connection allows and no more, retries what is worth
retrying, and counts every call so runs can report their cost. Connectors override a few small
methods (`auth_headers`, `refresh_auth`, `validate_response`, `backoff_wait`) instead of the loop.
"""

from __future__ import annotations

import asyncio
import email.utils
import errno
import functools
import logging
import random
import ssl
import time
from collections import Counter, deque
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Hashable,
    Mapping,
    Sequence,
)
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Protocol, TypeVar, runtime_checkable

import httpx

from koppel.connectors.errors import (
    AmbiguousWriteError,
    AuthenticationError,
    ConnectionDown,
    ConnectorError,
    FatalAPIError,
    Interrupted,
    PagingLoopError,
    RecordValidationError,
    RetriableAPIError,
)
from koppel.connectors.metrics import NO_ANSWER, record_call
from koppel.connectors.places import Places
from koppel.connectors.requests_out import watch_request
from koppel.model.schema import RecordSchema

Record = dict[str, Any]
T = TypeVar("T")

log = logging.getLogger("koppel.connectors")

# Statuses that mean the API refused the request before acting on it.
_NOT_PROCESSED_STATUSES = frozenset({429, 503})
_MESSAGE_LIMIT = 300
_DOWN: dict[str, tuple[float, str]] = {}
"""Base URLs marked down in this process: until when (monotonic) and why. A run that starts
meanwhile (the next flow of a sync) fails at once instead of waiting out the timeouts again."""
STOP_GRACE_S = 2.0
"""After a stop is asked for, how long a request in flight may still take to answer; then it
is cut (its batch runs again on resume), and no retry starts."""


@dataclass(frozen=True)
class ClientLimits:
    """How hard one connection may be driven and how long it is waited for; set per connection
    (`koppel.connectors.options.ConnectionOptions`, where the defaults are documented)."""

    concurrency: int = 8
    rate_per_second: float | None = None
    timeout_s: float = 30.0
    connect_timeout_s: float = 5.0
    max_attempts: int = 8
    rate_limit_wait_s: float = 900.0
    """How long one request may keep being refused with 429 (each waits Retry-After, none counts
    as an attempt) before it fails."""
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


CONNECTION_FAULTS = (RetriableAPIError, ConnectionDown, AuthenticationError)
"""The errors that say something about the connection rather than the record asked for."""


@dataclass
class CallHealth:
    """How one client's calls went, for its connection's health: when the last one got a good
    answer, and the last one that failed for a reason of the connection (no answer, an error
    answer after the retries, credentials refused), not for a record's own reason."""

    last_ok_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None

    def answered(self) -> None:
        self.last_ok_at = datetime.now(UTC)

    def failed(self, error: ConnectorError) -> None:
        if isinstance(error, CONNECTION_FAULTS):
            self.last_error, self.last_error_at = str(error), datetime.now(UTC)


class RateLimiter:
    """Spaces request starts across all tasks of one client (a connection in a run), at a rate
    that adapts to the API (AIMD): a 429 halves it and holds every start until Retry-After has
    passed; each answer that is not a 429 raises it again by `RATE_STEP`, up to the configured
    `ceiling` (none: until the spacing no longer matters and it is off again). `reserve` says
    how long the caller must wait, and the caller waits (so that a stop cuts the wait short).
    """

    MIN_RATE = 1.0
    """The slowest it goes, in requests per second; a 429 with Retry-After r keeps it at one
    start per r or faster (the API's own hint), the pause for Retry-After comes on top."""
    RATE_STEP = 1.0
    """Requests per second added by each answer that is not a 429 (the additive increase)."""
    OFF_ABOVE = 200.0
    """Without a ceiling, spacing stops once the rate has grown back past this."""

    def __init__(self, ceiling: float | None) -> None:
        self.ceiling = ceiling
        self.rate: float | None = ceiling
        """Requests per second now; None: no spacing (no ceiling, and no 429 lately)."""
        self._next_start = 0.0
        self._paused_until = 0.0
        self._recent: deque[float] = deque(maxlen=256)

    def reserve(self) -> float:
        """Take the next start; returns the seconds to wait before it."""
        now = time.monotonic()
        start = max(now, self._paused_until)
        if self.rate is not None:
            start = max(start, self._next_start)
            self._next_start = start + 1.0 / self.rate
        self._recent.append(start)
        return start - now

    def throttled(self, retry_after: float | None) -> None:
        """The API answered 429: halve the rate (once per pause, down to the floor) and hold every
        start until Retry-After has passed."""
        now = time.monotonic()
        if now < self._paused_until:  # the same burst: its pause holds already
            return
        current = self.rate if self.rate is not None else self._observed_rate(now)
        # never slower than one start per Retry-After: that is what the API asked for
        floor = max(1 / retry_after, self.MIN_RATE) if retry_after else self.MIN_RATE
        self.rate = max(current / 2, floor)
        if self.ceiling is not None:
            self.rate = min(self.rate, self.ceiling)
        self._paused_until = now + (retry_after if retry_after is not None else 1 / self.rate)
        self._next_start = max(self._next_start, self._paused_until)

    def answered(self) -> None:
        """An answer that is not a 429: speed up again."""
        if self.rate is None or self.rate == self.ceiling:
            return
        self.rate += self.RATE_STEP
        if self.ceiling is not None:
            self.rate = min(self.rate, self.ceiling)
        elif self.rate > self.OFF_ABOVE:
            self.rate = None

    def _observed_rate(self, now: float) -> float:
        """Starts per second over the last second (the rate that the API just refused)."""
        return float(max(1, sum(1 for start in self._recent if now - start <= 1.0)))


Pause = Callable[[float], Awaitable[None]]
"""Waits that many seconds, unless a stop is asked for meanwhile (then raises `Interrupted`)."""


class Gate(Protocol):
    """Where one connection's requests wait before they start: for one of its `concurrency`
    slots, then for their turn under the rate limit; and where the answers go that adapt the
    rate (`RateLimiter`). One process on its own keeps both in memory (`LocalGate`); processes
    that share a PostgreSQL store share them there (`koppel.connectors.shared.SharedGate`), so
    the limits hold for the sum of every worker, as the API sees it."""

    def slot(self, pause: Pause) -> AbstractAsyncContextManager[float]:
        """Held while one request is in flight; gives the seconds to wait before it starts
        (its turn under the rate limit, taken with the slot)."""
        ...

    async def throttled(self, retry_after: float | None) -> None:
        """The API answered 429 (see `RateLimiter.throttled`)."""
        ...

    async def answered(self) -> None:
        """An answer that is not a 429 (see `RateLimiter.answered`)."""
        ...

    async def aclose(self) -> None:
        """The client is closed: give back anything held outside this process."""
        ...


class LocalGate:
    """The limits of a connection in this process alone: its `Places` and a `RateLimiter`."""

    def __init__(self, limits: ClientLimits) -> None:
        self._slots = Places(limits.concurrency)
        self.limiter = RateLimiter(limits.rate_per_second)

    @asynccontextmanager
    async def slot(self, pause: Pause) -> AsyncIterator[float]:
        async with self._slots.taken():
            yield self.limiter.reserve()

    async def throttled(self, retry_after: float | None) -> None:
        self.limiter.throttled(retry_after)

    async def answered(self) -> None:
        self.limiter.answered()

    async def aclose(self) -> None:
        return None


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


def _causes(error: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def no_answer_reason(error: httpx.TransportError, url: httpx.URL, limits: ClientLimits) -> str:
    """Why a request got no answer, and what to check: refused, DNS, TLS, a timeout."""
    where = f"{url.host}:{url.port}" if url.port else str(url.host)
    causes = _causes(error)
    text = " ".join(str(cause) for cause in causes).lower()
    if isinstance(error, httpx.ConnectTimeout):
        return (
            f"could not connect to {where} within {limits.connect_timeout_s:g} s (timeout); "
            "check base_url and that the host is reachable from here"
        )
    if isinstance(error, httpx.TimeoutException):
        return (
            f"{where} accepted the connection but gave no answer within {limits.timeout_s:g} s "
            "(timeout); check that the service is up, or raise timeout_seconds"
        )
    if any(isinstance(c, ssl.SSLError) for c in causes) or "ssl" in text or "certificate" in text:
        return (
            f"the TLS handshake with {where} failed ({causes[-1]}); check https:// in base_url "
            "and the host's certificate"
        )
    if any(isinstance(c, ConnectionRefusedError) for c in causes) or (
        "refused" in text or f"errno {errno.ECONNREFUSED}" in text
    ):
        return (
            f"{where} refused the connection (nothing listens there); check base_url and "
            "that the service runs"
        )
    if (
        "name or service not known" in text
        or "nodename nor servname" in text
        or ("name resolution" in text or "getaddrinfo" in text)
    ):
        return f"the host name {url.host} does not resolve (DNS); check base_url"
    if isinstance(error, httpx.ConnectError):
        return f"could not connect to {where} ({causes[-1]}); check base_url"
    return f"{where} closed the connection before it answered ({type(error).__name__})"


def api_message(response: httpx.Response) -> str:
    """A short, printable version of the API's own error text."""
    text = response.text.strip().replace("\n", " ")
    return text[:_MESSAGE_LIMIT] + ("…" if len(text) > _MESSAGE_LIMIT else "")


@functools.cache
def _tls_context(https: bool) -> ssl.SSLContext:
    """The TLS settings every client shares (httpx's defaults: the system's trust settings and
    certifi's roots). Building them loads the root certificates, 40 to 140 ms of CPU, which each
    run paid once per connection; an SSL context is safe to share between clients.

    A connection to an http:// address makes no TLS handshake (every request is a path under
    its address), so it gets a context without roots: a process whose connections are all
    plain HTTP (the sandboxes, an AccountView on the local network) loads none, and a handshake
    such a client should never make fails rather than goes unverified."""
    if not https:
        return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    return httpx.create_ssl_context()


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
        self.health = CallHealth()
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            verify=_tls_context(httpx.URL(base_url).scheme == "https"),
            timeout=httpx.Timeout(self.limits.timeout_s, connect=self.limits.connect_timeout_s),
            transport=transport,
            limits=httpx.Limits(
                max_connections=self.limits.concurrency,
                max_keepalive_connections=self.limits.concurrency,
            ),
        )
        self._gate: Gate = LocalGate(self.limits)
        self._unanswered_since: float | None = None
        """When the first attempt started that got no answer, since the last answer."""
        self._down: str | None = None
        """Why the connection is down for the rest of this client's life (a run)."""
        self._stopping = asyncio.Event()

    def share_limits(self, gate: Gate) -> None:
        """Make the connection's limits hold across processes: its requests wait at `gate`
        (built with the same limits) instead of this process's own; before the first request."""
        self._gate = gate

    def interrupt(self) -> None:
        """A stop was asked for: requests in flight get STOP_GRACE_S to answer, then they are
        cut, and no retry waits or starts (`Interrupted`)."""
        self._stopping.set()

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
        where = f"{response.request.method} {response.request.url.path}"
        if 300 <= status < 400 and "location" in response.headers:
            # Never followed (httpx's default, kept): an address the address guard let through
            # must not send Koppel's call, with its credentials, somewhere else.
            raise FatalAPIError(
                f"{where}: HTTP {status}: the API redirects to {response.headers['location']}; "
                "Koppel does not follow redirects: if that is the right address, enter it as "
                "the base URL",
                status=status,
            )
        if status < 400:
            return
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
            response = await self._send(
                method, path, kind, params, json, data, headers, idempotent, authenticated
            )
        except ConnectorError as error:
            error.connection = error.connection or self.name or None
            self.health.failed(error)
            raise
        self.health.answered()
        return response

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
        throttled_since: float | None = None
        while True:
            attempt += 1
            self._raise_if_down()
            started = time.monotonic()
            try:
                response = await self._send_once(
                    method, path, kind, params, json, data, headers, authenticated
                )
                self._unanswered_since = None
                _DOWN.pop(self.base_url, None)
                if response.status_code == 429:
                    await self._gate.throttled(
                        parse_retry_after(response.headers.get("retry-after"))
                    )
                else:
                    await self._gate.answered()
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
                if error.status == 429:
                    # A rate limit slows the connection down (the limiter waits Retry-After);
                    # it is not a failed attempt, so it never uses up a record's retries.
                    throttled_since = throttled_since or started
                    if time.monotonic() - throttled_since < self.limits.rate_limit_wait_s:
                        attempt -= 1
                        continue
                    raise RetriableAPIError(
                        f"{error}; still refused after {self.limits.rate_limit_wait_s:g} s of "
                        "waiting as the API asked (Retry-After); lower rate_per_second or "
                        "raise rate_limit_wait_seconds",
                        status=429,
                        maybe_processed=False,
                    ) from error
                if error.unreachable:
                    self._note_no_answer(started, error)
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
                await self._pause(wait, f"{method} {path}")

    def _raise_if_down(self) -> None:
        if self._down is None:
            until, reason = _DOWN.get(self.base_url, (0.0, ""))
            if until > time.monotonic():
                self._down = reason
        if self._down is not None:
            raise ConnectionDown(self._down)

    def _note_no_answer(self, started: float, error: RetriableAPIError) -> None:
        """Mark the connection down once it has given no answer for `down_after_s`: the rest
        of the run, and runs that start in this process in the next `down_after_s`, fail at
        once with the reason."""
        since = self._unanswered_since = min(started, self._unanswered_since or started)
        silent = time.monotonic() - since
        if self._down is None and silent >= self.limits.down_after_s:
            self._down = (
                f"{error}; no answer for {silent:.0f} s: marked down for "
                f"{self.limits.down_after_s:g} s, the calls meanwhile fail at once"
            )
            _DOWN[self.base_url] = (time.monotonic() + self.limits.down_after_s, self._down)
            log.warning("%s: %s", self.name or self.base_url, self._down)
        self._raise_if_down()

    async def _pause(self, seconds: float, what: str) -> None:
        """Wait before a retry, unless a stop is asked for meanwhile."""
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return
        raise Interrupted(f"{what}: stopped before the next try")

    async def _answer(self, request: Awaitable[httpx.Response], what: str) -> httpx.Response:
        """The request's answer; after a stop is asked for it gets STOP_GRACE_S more."""
        task = asyncio.ensure_future(request)
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not task.done():
                await asyncio.wait({task}, timeout=STOP_GRACE_S)
            if not task.done():
                task.cancel()
                raise Interrupted(f"{what}: stopped while it waited for an answer")
            return task.result()
        finally:
            stopping.cancel()

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
        what = f"{method} {path}"
        async with self._gate.slot(lambda seconds: self._pause(seconds, what)) as wait:
            if wait > 0:
                await self._pause(wait, f"{method} {path}")
            request = self._http.build_request(
                method, path, params=params, json=json, data=data, headers=request_headers
            )
            watch_request(request)  # may refuse it (a run taken over): then it is no call
            self.calls.record(kind)
            started = time.monotonic()
            status = NO_ANSWER
            try:
                response = await self._answer(self._http.send(request), f"{method} {path}")
                status = str(response.status_code)
                return response
            except httpx.PoolTimeout:
                raise RetriableAPIError(
                    f"{method} {path}: every connection to the API stayed busy",
                    maybe_processed=False,
                ) from None
            except (httpx.ConnectError, httpx.ConnectTimeout) as error:
                reason = no_answer_reason(error, request.url, self.limits)
                raise RetriableAPIError(
                    f"{method} {path}: {reason}", maybe_processed=False, unreachable=True
                ) from None
            except httpx.TransportError as error:
                reason = no_answer_reason(error, request.url, self.limits)
                raise RetriableAPIError(f"{method} {path}: {reason}", unreachable=True) from None
            finally:
                record_call(
                    self.name or self._http.base_url.host, status, time.monotonic() - started
                )

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
        await self._gate.aclose()

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
    "CONNECTION_FAULTS",
    "STOP_GRACE_S",
    "AmbiguousWriteError",
    "ApiClient",
    "AuthenticationError",
    "CallCounter",
    "CallHealth",
    "ClientLimits",
    "Connector",
    "ConnectorError",
    "EntitySpec",
    "FatalAPIError",
    "Gate",
    "LocalGate",
    "PageGuard",
    "PagingLoopError",
    "Pause",
    "RateLimiter",
    "Record",
    "RecordValidationError",
    "RetriableAPIError",
    "WriteResult",
    "api_message",
    "no_answer_reason",
    "parse_retry_after",
]
