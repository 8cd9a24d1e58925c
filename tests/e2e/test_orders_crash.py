"""Crash test for orders: `koppel sync --flow orders` is killed with SIGKILL at random points,
several times, then run to the end. No order and no debtor may exist twice in AccountView, and
every Parts Pim order must be there or on the dead-letter list with its reason (none lost)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from koppel.services.demo import DEMO_SETTINGS, SHIPPING_ARTICLE
from koppel.store import DeadLetterStatus
from tests.e2e.conftest import Platform

KILLS = 4


def sync(config: Path, flow: str) -> list[str]:
    koppel = Path(sys.executable).with_name("koppel")
    return [str(koppel), "sync", "--config", str(config), "--flow", flow, "--json"]


def test_orders_sigkill_at_random_points_then_finish(platform_factory: Any, tmp_path: Path) -> None:
    platform: Platform = platform_factory(3_000, seed=13)
    accountview = platform.sandboxes.accountview
    accountview.write("ARTICLE", [SHIPPING_ARTICLE])
    flows = {
        "products": {"from": "pim", "to": "av", "entity": "products", "schedule": "manual"},
        "orders": {
            "from": "pim",
            "to": "av",
            "entity": "orders",
            "schedule": "manual",
            "settings": {"shipping_article_code": SHIPPING_ARTICLE["ART_CODE"], "page_size": 5},
        },
    }
    document = platform.sandboxes.integration(flows, settings=DEMO_SETTINGS)
    config = tmp_path / "orders.yaml"
    config.write_text(yaml.safe_dump(document, sort_keys=False))
    env = {**os.environ, "KOPPEL_HOME": str(platform.settings.home)}
    products = subprocess.run(
        sync(config, "products"), env=env, capture_output=True, text=True, timeout=600
    )
    assert products.returncode in (0, 1), products.stderr[-2000:]
    debtors_before = {d["SUB_NR"] for d in accountview.rows("CONTACT")}
    accountview.faults.configure(accountview.faults.config.model_copy(update={"latency_ms": 5}))

    chance = random.Random(13)
    killed = 0
    for _ in range(KILLS):
        booked = len(accountview.rows("SO_HDR"))
        process = subprocess.Popen(
            sync(config, "orders"), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        # Killed at a random point once it is writing: after a few more orders, and some
        # milliseconds into the next one (a point in time alone depends on the machine's speed).
        goal = booked + chance.randint(1, 4)
        deadline = time.monotonic() + 120  # for a broken build, not a measurement
        while process.poll() is None and len(accountview.rows("SO_HDR")) < goal:
            assert time.monotonic() < deadline, "the orders run wrote nothing in two minutes"
            time.sleep(0.005)
        time.sleep(chance.uniform(0.0, 0.05))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            killed += 1
        process.wait(timeout=30)
    assert killed >= KILLS - 1, "the run finished before it could be killed; make it larger"
    final = subprocess.run(
        sync(config, "orders"), env=env, capture_output=True, text=True, timeout=600
    )
    assert final.returncode in (0, 1), final.stderr[-2000:]

    orders = platform.sandboxes.partspim.store.all("orders")
    assert len(orders) >= 50
    posted = Counter(h["ORD_REF"] for h in accountview.rows("SO_HDR") if h["ORD_REF"])
    assert posted, "no order reached AccountView"
    assert max(posted.values()) == 1, "an order was posted twice"
    new_debtors = [d for d in accountview.rows("CONTACT") if d["SUB_NR"] not in debtors_before]
    mails = Counter((d["MAIL_BUS"] or "").strip().lower() for d in new_debtors)
    assert max(mails.values(), default=1) == 1, "a debtor was created twice"

    flow = platform.flow("orders")
    pending = {
        d.source_key: d
        for d in platform.store.dead_letters.list(
            flow.id, status=DeadLetterStatus.PENDING, limit=10_000
        )
    }
    for order in orders:
        if order["number"] in posted:
            continue
        letter = pending.get(str(order["id"]))
        assert letter is not None and letter.reason, f"order {order['number']} was lost"
