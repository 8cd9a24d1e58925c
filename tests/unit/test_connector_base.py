"""The shared client policy, exercised through httpx's transport seam (no patching)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from koppel.connectors.base import (
    ApiClient,
    ClientLimits,
    PageGuard,
    RateLimiter,
    parse_retry_after,
)
from koppel.connectors.errors import (
    AmbiguousWriteError,
    AuthenticationError,
    FatalAPIError,
    PagingLoopError,
    RetriableAPIError,
)

FAST = ClientLimits(max_attempts=4, backoff_base_s=0.001, backoff_max_s=0.002)


def scripted(statuses: list[int], seen: list[httpx.Request]) -> httpx.MockTransport:
    """Answers with the given statuses in turn, then 200."""

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        status = statuses.pop(0) if statuses else 200
        headers = {"retry-after": "0"} if status == 429 else {}
        return httpx.Response(status, json={"status": status}, headers=headers)

    return httpx.MockTransport(handler)


async def test_retries_server_errors_until_success() -> None:
    seen: list[httpx.Request] = []
    async with ApiClient("http://api", limits=FAST, transport=scripted([503, 500, 502], seen)) as c:
        response = await c.send("GET", "/things", kind="GET things")
    assert response.status_code == 200
    assert len(seen) == 4
    assert c.calls.by_kind() == {"GET things": 4}


async def test_gives_up_after_max_attempts() -> None:
    seen: list[httpx.Request] = []
    transport = scripted([500] * 10, seen)
    async with ApiClient("http://api", limits=FAST, transport=transport) as client:
        with pytest.raises(RetriableAPIError) as info:
            await client.send("GET", "/things", kind="GET things")
    assert info.value.status == 500
    assert len(seen) == FAST.max_attempts


async def test_client_errors_are_fatal_and_not_retried() -> None:
    seen: list[httpx.Request] = []
    async with ApiClient("http://api", limits=FAST, transport=scripted([400], seen)) as client:
        with pytest.raises(FatalAPIError):
            await client.send("GET", "/things", kind="GET things")
    assert len(seen) == 1


async def test_write_that_may_have_happened_is_not_retried_blindly() -> None:
    seen: list[httpx.Request] = []
    async with ApiClient("http://api", limits=FAST, transport=scripted([500], seen)) as client:
        with pytest.raises(AmbiguousWriteError):
            await client.send("POST", "/things", kind="POST things", json={}, idempotent=False)
    assert len(seen) == 1


async def test_write_refused_before_processing_is_retried() -> None:
    seen: list[httpx.Request] = []
    transport = scripted([429, 503], seen)
    async with ApiClient("http://api", limits=FAST, transport=transport) as client:
        response = await client.send("POST", "/things", kind="POST", json={}, idempotent=False)
    assert response.status_code == 200
    assert len(seen) == 3


async def test_write_with_recheck_finds_the_record_instead_of_writing_twice() -> None:
    writes: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        writes.append(1)
        return httpx.Response(502)

    async with ApiClient("http://api", limits=FAST, transport=httpx.MockTransport(handler)) as c:

        async def write() -> str:
            await c.send("POST", "/things", kind="POST", json={}, idempotent=False)
            return "written"

        async def recheck() -> str | None:
            return "found"

        assert await c.write_with_recheck(write, recheck) == "found"
    assert len(writes) == 1


class TokenClient(ApiClient):
    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        super().__init__("http://api", limits=FAST, transport=transport)
        self.token = "old-token-value"
        self.refreshes = 0

    async def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def refresh_auth(self) -> bool:
        self.refreshes += 1
        self.token = "new-token-value"
        return True


async def test_refreshes_once_on_401_and_repeats_the_request() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        ok = request.headers["authorization"] == "Bearer new-token-value"
        return httpx.Response(200 if ok else 401)

    async with TokenClient(httpx.MockTransport(handler)) as client:
        response = await client.send("GET", "/x", kind="GET x")
    assert response.status_code == 200
    assert client.refreshes == 1


async def test_refused_credentials_do_not_leak_into_the_error() -> None:
    async with TokenClient(httpx.MockTransport(lambda r: httpx.Response(401))) as client:
        with pytest.raises(AuthenticationError) as info:
            await client.send("GET", "/x", kind="GET x")
    assert client.refreshes == 1
    assert "token-value" not in str(info.value)
    assert "authorise" in str(info.value)


async def test_concurrency_limit_is_respected() -> None:
    import asyncio

    in_flight = 0
    peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return httpx.Response(200)

    limits = ClientLimits(concurrency=3)
    transport = httpx.MockTransport(handler)
    async with ApiClient("http://api", limits=limits, transport=transport) as client:
        await asyncio.gather(*(client.send("GET", "/x", kind="x") for _ in range(20)))
    assert peak == 3
    assert client.calls.total == 20


def test_backoff_honours_retry_after() -> None:
    client_limits = ClientLimits(backoff_base_s=0.01, backoff_max_s=0.02)
    client = ApiClient("http://api", limits=client_limits)
    error = RetriableAPIError("429", status=429, retry_after=3.0)
    waits = [client.backoff_wait(1, error) for _ in range(50)]
    assert min(waits) >= 3.0
    plain = [client.backoff_wait(6, RetriableAPIError("x")) for _ in range(50)]
    assert max(plain) <= 0.02


@pytest.mark.parametrize(
    ("value", "check"),
    [
        ("2", lambda s: s == 2.0),
        ("0.5", lambda s: s == 0.5),
        ("Wed, 21 Oct 2015 07:28:00 GMT", lambda s: s == 0.0),
        ("soon", lambda s: s is None),
        (None, lambda s: s is None),
    ],
)
def test_parse_retry_after(value: str | None, check: Callable[[float | None], bool]) -> None:
    assert check(parse_retry_after(value))


def test_page_guard_stops_loops_and_runaways() -> None:
    guard = PageGuard("articles", max_pages=3)
    guard.advance("a")
    guard.advance("b")
    with pytest.raises(PagingLoopError, match="twice"):
        guard.advance("a")
    guard.advance("c")
    with pytest.raises(PagingLoopError, match="more than 3 pages"):
        guard.advance("d")


async def test_429_is_not_a_try_and_the_rate_adapts() -> None:
    """Six 429s in a row, with two tries allowed: the request still succeeds, and the
    connection's rate went down on the 429s and comes up again on the answers after them."""
    seen: list[httpx.Request] = []
    limits = ClientLimits(max_attempts=2, rate_per_second=50)
    async with ApiClient("http://api", limits=limits, transport=scripted([429] * 6, seen)) as c:
        response = await c.send("GET", "/things", kind="GET things")
        slowed = c._gate.limiter.rate
        assert slowed is not None and slowed < 50
        for _ in range(3):
            await c.send("GET", "/things", kind="GET things")
        assert c._gate.limiter.rate is not None and c._gate.limiter.rate > slowed
    assert response.status_code == 200
    assert len(seen) == 7 + 3


async def test_a_request_refused_with_429_for_too_long_fails_saying_what_to_do() -> None:
    seen: list[httpx.Request] = []
    limits = ClientLimits(rate_limit_wait_s=0.05)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(429, headers={"retry-after": "0.01"})

    transport = httpx.MockTransport(handler)
    async with ApiClient("http://api", limits=limits, transport=transport) as client:
        with pytest.raises(RetriableAPIError) as info:
            await client.send("GET", "/things", kind="GET things")
    assert info.value.status == 429
    assert "raise rate_limit_wait_seconds" in str(info.value)
    assert len(seen) > 1


def test_the_rate_halves_on_429_never_below_one_start_per_retry_after() -> None:
    limiter = RateLimiter(ceiling=40)
    limiter.throttled(retry_after=None)
    assert limiter.rate == 20
    limiter.answered()
    assert limiter.rate == 20 + RateLimiter.RATE_STEP
    unlimited = RateLimiter(ceiling=None)
    assert unlimited.rate is None
    unlimited.throttled(retry_after=0.1)  # 10 starts per second at the least
    assert unlimited.rate == 10
    capped = RateLimiter(ceiling=5)
    capped.throttled(retry_after=0.01)  # the API's hint never lifts it above the ceiling
    assert capped.rate == 5


async def test_a_redirect_is_not_followed_and_says_where_it_pointed() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(302, headers={"location": "http://169.254.169.254/latest"})

    async with ApiClient("http://api", limits=FAST, transport=httpx.MockTransport(handler)) as c:
        with pytest.raises(FatalAPIError, match="does not follow redirects") as raised:
            await c.send("GET", "/items", kind="read")
    assert [r.url.host for r in seen] == ["api"]
    assert "169.254.169.254/latest" in str(raised.value)
