"""Webhook deliveries from Parts Pim: `POST /hooks/partspim/{token}`.

No session and no anti-forgery token: a delivery proves itself by its signature (HMAC with the
subscription's secret), its timestamp and its event id, checked by
`services.webhooks.DeliveryIntake`.
The answers: 202 accepted (records named, their flows woken), 401 not signed, wrongly signed,
tampered with or too old, 409 a replay (that event id was accepted before), 404 no subscription
has this address. Only a 202 enqueues anything.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse

from koppel.services import webhooks
from koppel.web.context import web_state
from koppel.web.state import WebState

logger = logging.getLogger(__name__)

router = APIRouter(tags=["hooks"])


@router.post(webhooks.HOOK_PATH + "/{token}", name="partspim_webhook")
async def partspim_webhook(token: str, request: Request) -> JSONResponse:
    state = web_state(request)
    body = await request.body()
    try:
        received = await state.intake.receive(token, body, request.headers)
    except webhooks.WebhookRefused as error:
        return JSONResponse({"detail": str(error)}, status_code=401)
    except webhooks.WebhookReplayed as error:
        return JSONResponse({"detail": str(error)}, status_code=409)
    except webhooks.UnknownWebhook as error:
        return JSONResponse({"detail": str(error)}, status_code=404)
    if state.runner is not None:  # else the workers' schedulers find the pending changes
        for flow_id in received.named:
            state.runner.wake(flow_id)
    return JSONResponse(
        {"accepted": received.delivery_id, "flows": sorted(received.named)}, status_code=202
    )


def follow_flows(state: WebState) -> None:
    """Bring the webhook subscriptions in line with the flows now, not at the next turn of the
    server's loop: after the web app activated or uploaded an integration. In the background,
    so the request does not wait for Parts Pim."""
    public_url = state.settings.web_public_url
    if not public_url:
        return

    async def resubscribe() -> None:
        try:
            for change in await webhooks.sync_subscriptions(state.store, public_url):
                logger.info("webhooks of connection %s: %s", change.connection, change.action)
        except Exception:  # the server's loop tries again
            logger.exception("webhook subscriptions failed; trying again later")

    task = asyncio.create_task(resubscribe())
    state.background.add(task)
    task.add_done_callback(state.background.discard)
