"""What machines ask a server: is it alive (`/healthz`), can it work (`/readyz`), and its
figures for Prometheus (`/metrics`).

The first two need no sign-in and show no data: a load balancer or an orchestrator asks them.
`/metrics` is off (404) until `KOPPEL_METRICS_TOKEN` is set; then it answers only a request
that carries that token as a bearer token (compared in constant time).
"""

from __future__ import annotations

import asyncio
import hmac

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from koppel.services import health, metrics
from koppel.web.context import web_state

router = APIRouter(tags=["health"])


@router.get("/healthz", name="healthz")
async def healthz() -> PlainTextResponse:
    """The process answers: nothing more is checked."""
    return PlainTextResponse("ok\n")


@router.get("/readyz", name="readyz")
async def readyz(request: Request) -> PlainTextResponse:
    state = web_state(request)
    reason = await asyncio.to_thread(health.not_ready, state.store, state.runner)
    if reason is not None:
        return PlainTextResponse(f"not ready: {reason}\n", status_code=503)
    return PlainTextResponse("ready\n")


def _bearer_matches(request: Request, expected: str) -> bool:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), expected.encode())


@router.get("/metrics", name="metrics")
async def metrics_page(request: Request) -> Response:
    state = web_state(request)
    token = state.settings.metrics_token
    if token is None or not token.get_secret_value():
        return PlainTextResponse("not found: /metrics is off; set KOPPEL_METRICS_TOKEN\n", 404)
    if not _bearer_matches(request, token.get_secret_value()):
        return PlainTextResponse(
            "/metrics needs the token of KOPPEL_METRICS_TOKEN: "
            "send it as `Authorization: Bearer <token>`\n",
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    body = await asyncio.to_thread(metrics.scrape, state.store)
    return Response(body, media_type=metrics.CONTENT_TYPE)
