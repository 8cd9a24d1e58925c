"""Webhook deliveries: signed, asynchronous, best effort (a few attempts, then given up).

The signature is HMAC-SHA256 over `"{timestamp}.{body}"` with the subscription's secret, so a
receiver can check both that Parts Pim sent the body and that it is recent (no replays).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from koppel.sandbox.partspim.store import PartsPimStore

SIGNATURE_HEADER = "X-PartsPim-Signature"
TIMESTAMP_HEADER = "X-PartsPim-Timestamp"
EVENT_HEADER = "X-PartsPim-Event"
DELIVERY_HEADER = "X-PartsPim-Delivery"
ATTEMPT_WAITS_S = (0.0, 0.2, 1.0)  # three attempts
DELIVERY_TIMEOUT_S = 5.0


def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


@dataclass(frozen=True)
class Delivery:
    """One delivery as the sandbox last tried it: for tests and the admin view."""

    webhook_id: int
    event: str
    delivery_id: str
    status: int | None  # the receiver's HTTP status of the last attempt; None = no answer
    attempts: int


class WebhookDispatcher:
    """Queues an event per matching subscription and posts it from a background thread."""

    def __init__(self, store: PartsPimStore) -> None:
        self._store = store
        self._queue: queue.Queue[tuple[dict[str, Any], bytes, str, str] | None] = queue.Queue()
        self._deliveries: list[Delivery] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        store.on_change(self.publish)

    def publish(self, event: str, record: dict[str, Any]) -> None:
        hooks = [h for h in self._store.webhooks(with_secrets=True) if event in h["events"]]
        for hook in hooks:
            delivery_id = "evt_" + uuid.uuid4().hex
            payload = {
                "id": delivery_id,
                "event": event,
                "occurred_at": record["updated_at"],
                "data": record,
            }
            body = json.dumps(payload, separators=(",", ":")).encode()
            self._start()
            self._queue.put((hook, body, event, delivery_id))

    def deliveries(self) -> list[Delivery]:
        with self._lock:
            return list(self._deliveries)

    def wait_idle(self, timeout_s: float = 10.0) -> bool:
        """True once every queued delivery was tried (tests wait on this, never on a sleep)."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=DELIVERY_TIMEOUT_S * len(ATTEMPT_WAITS_S))
            self._thread = None

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="partspim-webhooks", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        with httpx.Client(timeout=DELIVERY_TIMEOUT_S) as http:
            while True:
                item = self._queue.get()
                try:
                    if item is None:
                        return
                    self._deliver(http, *item)
                finally:
                    self._queue.task_done()

    def _deliver(
        self, http: httpx.Client, hook: dict[str, Any], body: bytes, event: str, delivery_id: str
    ) -> None:
        status: int | None = None
        attempts = 0
        for wait in ATTEMPT_WAITS_S:
            time.sleep(wait)
            attempts += 1
            stamp = str(int(time.time()))
            headers = {
                "content-type": "application/json",
                EVENT_HEADER: event,
                DELIVERY_HEADER: delivery_id,
                TIMESTAMP_HEADER: stamp,
                SIGNATURE_HEADER: sign(hook["secret"], stamp, body),
            }
            try:
                status = http.post(hook["url"], content=body, headers=headers).status_code
            except httpx.HTTPError:
                status = None
            if status is not None and 200 <= status < 300:
                break
        with self._lock:
            self._deliveries.append(Delivery(hook["id"], event, delivery_id, status, attempts))


__all__ = [
    "DELIVERY_HEADER",
    "EVENT_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "Delivery",
    "WebhookDispatcher",
    "sign",
]
