"""Crash test: `koppel sync` is killed with SIGKILL at random points of a large run, several times,
then run to the end. AccountView must hold exactly the expected articles and groups (none missing,
none twice) and every product must have exactly one outcome per run it was part of."""

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

from koppel.store import RunStatus
from tests.e2e.conftest import Platform
from tests.e2e.test_products_catalogue import ART_CODE_LENGTH, expected_articles

KILLS = 4


def sync_command(config: Path) -> list[str]:
    koppel = Path(sys.executable).with_name("koppel")
    return [str(koppel), "sync", "--config", str(config), "--flow", "products", "--json"]


def item_key(entry: dict[str, Any]) -> str:
    product, variant = entry["product"], entry["variant"]
    return f"{product['id']}/{variant['id']}" if variant else str(product["id"])


def test_sigkill_at_random_points_then_finish(platform_factory: Any, tmp_path: Path) -> None:
    platform: Platform = platform_factory(4_000, seed=8)
    flows = {"products": {"from": "pim", "to": "av", "entity": "products", "schedule": "60s"}}
    # Small pages and a little latency make the run long enough to be killed in many places.
    document = platform.sandboxes.integration(flows, settings={"page_size": 50})
    config = tmp_path / "crash.yaml"
    config.write_text(yaml.safe_dump(document, sort_keys=False))
    platform.sandboxes.accountview.faults.configure(
        platform.sandboxes.accountview.faults.config.model_copy(update={"latency_ms": 5})
    )
    env = {**os.environ, "KOPPEL_HOME": str(platform.settings.home)}
    existing_groups = {g["AG_CODE"] for g in platform.sandboxes.accountview.rows("ART_GRP")}
    chance = random.Random(8)
    killed = 0
    accountview = platform.sandboxes.accountview
    for _ in range(KILLS):
        written = len(accountview.rows("ARTICLE"))
        process = subprocess.Popen(
            sync_command(config), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        # Killed at a random point once it is writing: after some more articles, and some
        # milliseconds into what follows (a point in time alone depends on the machine's speed).
        goal = written + chance.randint(20, 400)
        deadline = time.monotonic() + 120  # for a broken build, not a measurement
        while process.poll() is None and len(accountview.rows("ARTICLE")) < goal:
            assert time.monotonic() < deadline, "the products run wrote nothing in two minutes"
            time.sleep(0.005)
        time.sleep(chance.uniform(0.0, 0.2))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            killed += 1
        process.wait(timeout=30)
    assert killed >= KILLS - 1, "the run finished before it could be killed; make it larger"

    final = subprocess.run(
        sync_command(config), env=env, capture_output=True, text=True, timeout=600
    )
    assert final.returncode in (0, 1), final.stderr[-2000:]

    expected = expected_articles(platform.sandboxes.partspim)
    syncable = {sku for sku in expected if len(sku) <= ART_CODE_LENGTH}
    articles = Counter(row["ART_CODE"] for row in platform.sandboxes.accountview.rows("ARTICLE"))
    assert set(articles) == syncable, "an article is missing or unexpected"
    assert max(articles.values()) == 1
    made = [
        g
        for g in platform.sandboxes.accountview.rows("ART_GRP")
        if g["AG_CODE"] not in existing_groups
    ]
    assert len(made) == len(platform.sandboxes.partspim.store.all("categories"))
    assert max(Counter(g["AG_DESC"] for g in made).values()) == 1, "a group was made twice"

    flow = platform.flow("products")
    runs = platform.store.runs.list(flow_id=flow.id, limit=100)
    assert runs, "no run was recorded"
    assert all(r.status in (RunStatus.SUCCEEDED, RunStatus.PARTIAL) for r in runs), [
        (r.id, r.status) for r in runs
    ]
    every_item = {item_key(e) for e in expected.values()}
    full_runs = 0
    for run in runs:
        outcomes = platform.store.outcomes.list(run.id, limit=100_000)
        keys = [o.source_key for o in outcomes if not o.source_key.startswith("category:")]
        assert len(keys) == len(set(keys)), f"run {run.id}: a product has two outcomes"
        assert set(keys) in (set(), every_item), f"run {run.id}: products without an outcome"
        full_runs += set(keys) == every_item
    assert full_runs >= 1
