"""Helpers of the real-time tests: `koppel serve`'s app with its engine on a port of its own
(so its public address is known before it subscribes), deliveries signed as Parts Pim signs
them, and waiting for the engine to be idle."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import uvicorn
from dbos import DBOS

from koppel.engine.engine import RUN_QUEUE
from koppel.sandbox.common.server import free_port
from koppel.sandbox.partspim.webhooks import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
)
from koppel.settings import Settings
from koppel.store import Run
from koppel.web import create_app
from tests.e2e.conftest import Platform


class Serving:
    """The web app with a FlowRunner in this process, as `koppel serve` runs it, at
    http://127.0.0.1:PORT, which is also its KOPPEL_WEB_PUBLIC_URL."""

    def __init__(self, platform: Platform) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.settings = Settings(home=platform.settings.home, web_public_url=self.url)
        self.runner = platform.runner()
        app = create_app(self.settings, store=platform.store, runner=self.runner)
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Serving:
        self.thread.start()
        wait_for(lambda: self.server.started, "the web app to start", thread=self.thread)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=120)


def wait_for(
    condition: Callable[[], object],
    what: str,
    *,
    timeout_s: float = 60.0,
    thread: threading.Thread | None = None,
) -> None:
    """Poll until `condition()` is true; fail naming `what` after `timeout_s` (a bound for a
    broken build, not a measurement)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if thread is not None and not thread.is_alive():
            raise AssertionError(f"stopped while waiting for {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout_s:g} s for {what}")
        time.sleep(0.05)


def engine_idle() -> bool:
    """No run waiting in the queue or going (the engine runs in the server's thread; DBOS is
    one per process, so this thread can ask it too)."""
    active = DBOS.list_workflows(
        status=["ENQUEUED", "PENDING"], queue_name=RUN_QUEUE, load_input=False, load_output=False
    )
    return not active


def settled(platform: Platform) -> bool:
    """Every pending change synced and no run waiting or going."""
    return platform.store.pending_changes.count() == 0 and engine_idle()


def targeted_runs(platform: Platform, flow_id: int) -> list[Run]:
    return [r for r in platform.store.runs.list(flow_id=flow_id, limit=1000) if is_targeted(r)]


def is_targeted(run: Run) -> bool:
    return run.id.startswith("changes-")


def secret_of(platform: Platform) -> str:
    """The subscription's signing secret as Parts Pim holds it."""
    [hook] = platform.sandboxes.partspim.store.webhooks(with_secrets=True)
    return str(hook["secret"])


def hook_url(platform: Platform) -> str:
    [hook] = platform.sandboxes.partspim.store.webhooks()
    return str(hook["url"])


def delivery(
    secret: str,
    event: str,
    record: dict[str, Any],
    *,
    delivery_id: str | None = None,
    stamp: int | None = None,
) -> tuple[bytes, dict[str, str]]:
    """A delivery's body and headers as Parts Pim's dispatcher makes them."""
    delivery_id = delivery_id or "evt_" + uuid.uuid4().hex
    payload = {
        "id": delivery_id,
        "event": event,
        "occurred_at": record["updated_at"],
        "data": record,
    }
    body = json.dumps(payload, separators=(",", ":")).encode()
    timestamp = str(int(time.time()) if stamp is None else stamp)
    headers = {
        "content-type": "application/json",
        EVENT_HEADER: event,
        DELIVERY_HEADER: delivery_id,
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: sign(secret, timestamp, body),
    }
    return body, headers


def post(url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(url, content=body, headers=headers, timeout=30)
