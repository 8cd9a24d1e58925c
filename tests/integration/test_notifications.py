"""Notifications over real channels: a local SMTP server (aiosmtpd, STARTTLS and login) and a
local webhook receiver (an HTTP server in the test), fed by real runs against the sandboxes.

The crash test kills a sending process (SIGKILL) while the receiver holds the delivered
request, so the send happened and its record did not."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from koppel.config import load_config
from koppel.notify.events import queue_events
from koppel.notify.outbox import LEASE, notify_once, send_due
from koppel.services import runs, setup, worker
from koppel.services.activity import RunView
from koppel.services.reconcile import reconcile_flows
from koppel.settings import Settings
from koppel.store import PurgeResult, RunStatus, Store, open_store
from koppel.store.notifications import OutboxStatus
from tests.e2e.processes import wait_for
from tests.fixtures_notify import (
    SMTP_PASSWORD,
    WEBHOOK_SECRET,
    Inbox,
    Receiver,
    notifications,
)
from tests.sandboxes_inprocess import InProcessSandboxes, inprocess_sandboxes

PRODUCTS = {"from": "pim", "to": "av", "entity": "products", "schedule": "60s"}


@pytest.fixture
def sandboxes() -> Iterator[InProcessSandboxes]:
    with inprocess_sandboxes(60, seed=3) as served:
        yield served


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "koppel", database_url=None, secret_key=None)


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    opened = open_store(settings)
    yield opened
    opened.close()


def apply(store: Store, tmp_path: Path, document: dict[str, Any]) -> None:
    file = tmp_path / "integration.yaml"
    file.write_text(yaml.safe_dump(document, sort_keys=False))
    config = load_config(file, environ={"SMTP_PASSWORD": SMTP_PASSWORD})
    setup.apply_file(store, config, file, actor="test")


async def run_products(store: Store, settings: Settings, sandboxes: InProcessSandboxes) -> str:
    [flow] = store.flows.list()
    async with runs.started_runner(
        store, settings, handle_signals=False, transport=sandboxes.transport
    ) as runner:
        [report] = await runs.run_flows(runner, store, [flow])
    return report.status


def kinds(receiver: Receiver) -> list[str]:
    return [document["kind"] for document in receiver.documents()]


async def test_a_failed_run_is_one_e_mail_and_one_signed_webhook_with_its_reason(
    store: Store,
    settings: Settings,
    sandboxes: InProcessSandboxes,
    inbox: Inbox,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    document = sandboxes.integration({"products": PRODUCTS})
    document["connections"]["pim"]["credentials"]["api_key"] = "not-the-key"
    document["notifications"] = notifications(inbox, receiver)
    apply(store, tmp_path, document)
    assert await run_products(store, settings, sandboxes) == "failed"

    first = await notify_once(store)
    again = await notify_once(store)  # the same events found again queue nothing
    assert again.queued == 0 and again.sent == 0
    assert first.failed == 0 and first.retried == 0

    [run] = store.runs.list(limit=5)
    failed = [d for d in receiver.documents() if d["kind"] == "run_failed"]
    assert len(failed) == 1
    [hook] = failed
    assert hook["event"] == f"run-failed:{run.id}"
    assert hook["workspace"] == "demo" and hook["integration"] == document["integration"]
    assert hook["flow"] == "products" and hook["run"]["id"] == run.id
    assert "credentials were refused" in hook["error"]
    assert hook["link"] == f"http://koppel.example/runs/{run.id}"
    assert hook["text"].startswith(f"Run {run.number} of flow products")
    assert set(hook["counts"]) == {"created", "updated", "skipped", "failed"}
    headers, body = next(
        (h, b) for h, b in receiver.deliveries if json.loads(b)["kind"] == "run_failed"
    )
    timestamp = headers["X-Koppel-Timestamp"]
    expected = hmac.new(WEBHOOK_SECRET.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    assert headers["X-Koppel-Signature"] == "sha256=" + expected.hexdigest()
    assert headers["X-Koppel-Event"] == f"run-failed:{run.id}"

    mails = [m for m in inbox.messages if m["X-Koppel-Event"] == f"run-failed:{run.id}"]
    assert len(mails) == 1
    [mail] = mails
    assert (
        mail["Subject"] == f"Koppel: run {run.number} of {document['integration']}/products failed"
    )
    assert mail["To"] == "ops@example.com"
    content = mail.get_content()
    assert "credentials were refused" in content and f"/runs/{run.id}" in content
    # The connection's outage is told too, once; no secret is in any message or in the store.
    assert kinds(receiver).count("connection_down") == 1
    everything = "".join(b.decode() for _, b in receiver.deliveries) + "".join(
        m.as_string() for m in inbox.messages
    )
    for secret in (SMTP_PASSWORD, WEBHOOK_SECRET, "not-the-key"):
        assert secret not in everything
    database = (settings.home / "koppel.db").read_bytes()
    assert SMTP_PASSWORD.encode() not in database and WEBHOOK_SECRET.encode() not in database


async def test_fifty_failed_records_are_one_digest_per_flow(
    store: Store,
    settings: Settings,
    sandboxes: InProcessSandboxes,
    inbox: Inbox,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    document = sandboxes.integration({"products": PRODUCTS})
    document["notifications"] = {**notifications(inbox, receiver), "digest_every": "15m"}
    apply(store, tmp_path, document)
    plain = [p for p in sandboxes.partspim.store.all("products") if not p["variants"]][:50]
    assert len(plain) == 50
    for number, product in enumerate(plain):
        # 16 digits: longer than AccountView's article codes allow.
        long_sku = f"1{number:015d}"
        sandboxes.partspim.store.update("products", product["id"], {"sku": long_sku})
    assert await run_products(store, settings, sandboxes) == "partial"

    before_interval = await notify_once(store)
    assert "records_failed" not in kinds(receiver)  # the digest waits for its interval
    assert before_interval.failed == 0
    later = datetime.now(UTC) + timedelta(minutes=16)
    await notify_once(store, now=later)
    await notify_once(store, now=later + timedelta(minutes=16))  # nothing new failed: no digest

    digests = [d for d in receiver.documents() if d["kind"] == "records_failed"]
    assert len(digests) == 1
    [digest] = digests
    assert digest["counts"] == {"failed": 50} and digest["flow"] == "products"
    assert len(digest["records"]) == 5 and "ART_CODE" in digest["records"][0]["error"]
    assert "50 records of flow products" in digest["text"] and "45 more" in digest["text"]
    mails = [m for m in inbox.messages if str(m["X-Koppel-Event"]).startswith("records-failed")]
    assert len(mails) == 1 and mails[0]["Subject"].startswith("Koppel: 50 records of")


async def test_an_outage_over_ten_runs_is_one_down_and_one_recovered(
    store: Store,
    settings: Settings,
    sandboxes: InProcessSandboxes,
    inbox: Inbox,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    good = sandboxes.integration({"products": PRODUCTS})
    good["notifications"] = notifications(inbox, receiver)
    apply(store, tmp_path, good)
    assert await run_products(store, settings, sandboxes) == "succeeded"
    await notify_once(store)
    assert receiver.deliveries == []  # a good run tells nothing

    refused = json.loads(json.dumps(good))
    refused["connections"]["pim"]["credentials"]["api_key"] = "not-the-key"
    apply(store, tmp_path, refused)
    for _ in range(10):
        assert await run_products(store, settings, sandboxes) == "failed"
        await notify_once(store)
    apply(store, tmp_path, good)
    assert await run_products(store, settings, sandboxes) == "succeeded"
    await notify_once(store)
    await notify_once(store)

    told = kinds(receiver)
    assert told.count("connection_down") == 1 and told.count("connection_recovered") == 1
    assert told.count("run_failed") == 10
    down = next(d for d in receiver.documents() if d["kind"] == "connection_down")
    assert down["connection"] == "pim" and "credentials were refused" in down["error"]
    subjects = [str(m["Subject"]) for m in inbox.messages]
    assert subjects.count("Koppel: connection pim is down") == 1
    assert subjects.count("Koppel: connection pim works again") == 1


def kill_sender_mid_send(settings: Settings, receiver: Receiver) -> None:
    """Send the outbox in a process of its own and SIGKILL it once the receiver holds the
    first webhook: that one was delivered, and its record was never written."""
    receiver.hold = threading.Event()
    sender = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import asyncio; from koppel.store import open_store; "
            "from koppel.notify.outbox import send_due; asyncio.run(send_due(open_store()))",
        ],
        env={
            **os.environ,
            "KOPPEL_HOME": str(settings.home),
            "KOPPEL_DATABASE_URL": settings.store_url,
        },
    )
    try:
        # The e-mails go first; the first webhook is delivered and its answer held back.
        wait_for(lambda: len(receiver.deliveries) == 1, what="the first webhook delivery")
        os.kill(sender.pid, signal.SIGKILL)
    finally:
        sender.wait()
    receiver.hold.set()
    receiver.hold = None


async def test_a_sender_killed_between_send_and_record_never_sends_twice(
    store: Store,
    settings: Settings,
    sandboxes: InProcessSandboxes,
    inbox: Inbox,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    document = sandboxes.integration({"products": PRODUCTS})
    document["connections"]["pim"]["credentials"]["api_key"] = "not-the-key"
    document["notifications"] = notifications(inbox, receiver)
    apply(store, tmp_path, document)
    assert await run_products(store, settings, sandboxes) == "failed"
    [tenant] = store.tenants.list()
    assert queue_events(store, tenant.id, now=datetime.now(UTC)) == 4  # 2 events x 2 channels

    kill_sender_mid_send(settings, receiver)
    statuses = sorted(e.status for e in store.notifications.list_recent(tenant.id))
    assert statuses.count(OutboxStatus.SENDING) == 1

    # Another sender, after the lease: the delivered one is uncertain, not sent again.
    result = await send_due(store, now=datetime.now(UTC) + LEASE + timedelta(seconds=1))
    assert result.uncertain == 1 and result.sent == 2
    assert len(receiver.deliveries) == 2
    assert len({json.loads(body)["event"] for _, body in receiver.deliveries}) == 2
    assert len(inbox.messages) == 2
    entries = store.notifications.list_recent(tenant.id)
    [uncertain] = [e for e in entries if e.status == OutboxStatus.UNCERTAIN]
    assert uncertain.channel == "webhook"
    assert uncertain.last_error is not None and "may or may not" in uncertain.last_error


class QuietLog:
    """The worker's log; this test watches the receiver instead."""

    def run_finished(self, run: RunView) -> None:
        return

    def purged(self, result: PurgeResult) -> None:
        return

    def purge_failed(self, error: Exception) -> None:
        raise AssertionError(f"the purge failed: {error}")


async def test_the_worker_sends_the_notification_of_a_run_it_ran(
    store: Store,
    settings: Settings,
    sandboxes: InProcessSandboxes,
    inbox: Inbox,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    document = sandboxes.integration({"products": PRODUCTS})
    document["connections"]["pim"]["credentials"]["api_key"] = "not-the-key"
    document["notifications"] = notifications(inbox, receiver)
    apply(store, tmp_path, document)
    async with runs.started_runner(
        store, settings, handle_signals=False, transport=sandboxes.transport
    ) as runner:
        serving = asyncio.create_task(worker.serve(runner, store, QuietLog()))
        await asyncio.to_thread(
            wait_for, lambda: "run_failed" in kinds(receiver), what="the run's webhook"
        )
        runner.engine.request_stop()
        await asyncio.wait_for(serving, timeout=120)
    # One webhook per failed run: a test that spans a minute's turn has two runs, both failed.
    told = [d["run"]["id"] for d in receiver.documents() if d["kind"] == "run_failed"]
    failed = [run.id for run in store.runs.list(status=RunStatus.FAILED)]
    assert failed and sorted(told) == sorted(failed)
    assert any(str(m["Subject"]).endswith("failed") for m in inbox.messages)


async def test_the_daily_report_is_one_message_per_integration_for_the_day_before(
    store: Store,
    settings: Settings,
    sandboxes: InProcessSandboxes,
    inbox: Inbox,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    document = sandboxes.integration({"products": PRODUCTS})
    document["notifications"] = {**notifications(inbox, receiver), "daily_report": True}
    apply(store, tmp_path, document)
    assert await run_products(store, settings, sandboxes) == "succeeded"
    [run] = store.runs.list(limit=5)
    today = run.started_at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    await notify_once(store, now=run.started_at + timedelta(seconds=1))
    assert "daily_report" not in kinds(receiver)  # the day is not over
    tomorrow = today + timedelta(days=1, minutes=1)
    await notify_once(store, now=tomorrow)
    await notify_once(store, now=tomorrow + timedelta(hours=1))
    [report] = [d for d in receiver.documents() if d["kind"] == "daily_report"]
    assert report["day"] == f"{today:%Y-%m-%d}" and report["integration"] == "demo-pim-av"
    [flow] = report["flows"]
    assert flow["flow"] == "products" and flow["runs"] == {"succeeded": 1}
    assert flow["counts"]["created"] == run.counts["created"] > 0
    assert flow["dead_letters_waiting"] == 0
    assert "- products: runs succeeded 1; records created" in report["text"]
    reports = [m for m in inbox.messages if "daily-report" in str(m["X-Koppel-Event"])]
    assert len(reports) == 1


async def test_the_daily_report_tells_the_drift_its_last_reconciliation_found(
    store: Store,
    settings: Settings,
    sandboxes: InProcessSandboxes,
    inbox: Inbox,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    document = sandboxes.integration({"products": PRODUCTS})
    document["notifications"] = {**notifications(inbox, receiver), "daily_report": True}
    apply(store, tmp_path, document)
    assert await run_products(store, settings, sandboxes) == "succeeded"
    [article, *_] = sandboxes.accountview.rows("ARTICLE")
    sandboxes.accountview.edit("ARTICLE", article["ART_CODE"], {"ART_DESC1": "Met de hand"})
    [flow] = store.flows.list()
    [checked] = (await reconcile_flows(store, [flow], transport=sandboxes.transport)).flows
    assert checked.drift == 1
    tomorrow = checked.started_at.replace(hour=0, minute=0, second=0, microsecond=0)
    await notify_once(store, now=tomorrow + timedelta(days=1, minutes=1))
    [report] = [d for d in receiver.documents() if d["kind"] == "daily_report"]
    [line] = report["flows"]
    assert line["drift"]["differences"] == 1
    assert line["drift"]["compared"] == checked.compared > 0
    assert f": 1 difference in {checked.compared} records" in report["text"]
    assert report["title"].endswith("reconciliation found 1 difference")
    assert "/reconciliation" in report["text"]
