"""Fault injection around a minimal app, over real HTTP."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI

from koppel.sandbox.common import FaultConfig, FaultMiddleware, SandboxServer, admin_router


def counting_app() -> tuple[FaultMiddleware, list[int]]:
    handled: list[int] = []
    app = FastAPI()

    @app.post("/items")
    def create() -> dict[str, int]:
        handled.append(1)
        return {"id": len(handled)}

    @app.get("/items")
    def list_items() -> dict[str, int]:
        return {"count": len(handled)}

    middleware = FaultMiddleware(app, FaultConfig(seed=1))
    app.include_router(admin_router(middleware))
    return middleware, handled


def test_dropped_connection_happens_after_the_write() -> None:
    faults, handled = counting_app()
    faults.configure(FaultConfig(drop_rate=1.0))
    with SandboxServer(faults) as server, httpx.Client(base_url=server.url) as http:
        with pytest.raises(httpx.TransportError):
            http.post("/items")
        assert handled == [1]
        http.put("/_admin/faults", json={})
        assert http.get("/items").json() == {"count": 1}


def test_429_carries_retry_after_and_is_logged() -> None:
    faults, _ = counting_app()
    with SandboxServer(faults) as server, httpx.Client(base_url=server.url) as http:
        http.put("/_admin/faults", json={"rate_429": 1.0, "retry_after_s": 2})
        response = http.get("/items")
        assert response.status_code == 429
        assert response.headers["retry-after"] == "2"
        log = http.get("/_admin/requests").json()
        assert log["counts"] == {"GET /items": 1}
        assert log["requests"][0]["status"] == 429


def test_error_rate_gives_a_mix_of_server_errors() -> None:
    faults, handled = counting_app()
    faults.configure(FaultConfig(error_rate=0.3, seed=7))
    with SandboxServer(faults) as server, httpx.Client(base_url=server.url) as http:
        statuses = [http.post("/items").status_code for _ in range(200)]
    failed = [s for s in statuses if s != 200]
    assert set(failed) <= {500, 502, 503}
    assert 30 <= len(failed) <= 90
    assert len(handled) == statuses.count(200)


def test_rate_limit_answers_429_above_the_limit() -> None:
    faults, _ = counting_app()
    faults.configure(FaultConfig(rate_limit_per_s=5))
    with SandboxServer(faults) as server, httpx.Client(base_url=server.url) as http:
        statuses = [http.get("/items").status_code for _ in range(12)]
    assert statuses.count(429) >= 1
    assert statuses.count(200) >= 5


async def test_the_request_log_counts_the_most_requests_in_flight_at_once() -> None:
    """Three requests held inside the API until all three have come: the log saw three in
    flight; after they answered and the log was cleared, the next one alone is one."""
    app = FastAPI()
    arrived: list[int] = []
    all_in = asyncio.Event()

    @app.get("/slow")
    async def slow() -> dict[str, int]:
        arrived.append(1)
        if len(arrived) >= 3:
            all_in.set()
        await all_in.wait()
        return {"arrived": len(arrived)}

    faults = FaultMiddleware(app, FaultConfig())
    app.include_router(admin_router(faults))
    with SandboxServer(faults) as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            answers = await asyncio.gather(*(http.get("/slow") for _ in range(3)))
            assert [a.status_code for a in answers] == [200] * 3
            assert (await http.get("/_admin/requests")).json()["max_in_flight"] == 3
            assert (await http.delete("/_admin/requests")).json()["max_in_flight"] == 0
            await http.get("/slow")
            assert (await http.get("/_admin/requests")).json()["max_in_flight"] == 1
