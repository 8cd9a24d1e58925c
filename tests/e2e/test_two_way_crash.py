"""A record that belongs to one system is never written back from the other, even after a crash.

The products flow (Parts Pim -> AccountView) is killed with SIGKILL after AccountView has taken
a batch of articles and before Koppel has recorded them; the products flow the other way runs
before the first one resumes. It must take none of those articles for AccountView's own: the
Parts Pim catalogue stays unchanged byte for byte. Then the killed run resumes and confirms its
links.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import yaml

from koppel.engine.runner import FlowRunner
from tests.e2e.conftest import Platform
from tests.e2e.gates import post_of
from tests.e2e.processes import KoppelProcess

FLOWS = {
    "products": {"from": "pim", "to": "av", "entity": "products", "schedule": "manual"},
    "products-from-av": {"from": "av", "to": "pim", "entity": "products", "schedule": "manual"},
}


def catalogue(platform: Platform) -> str:
    return json.dumps(platform.sandboxes.partspim.store.all("products"), sort_keys=True)


async def test_killed_between_write_and_record_the_reverse_flow_writes_nothing_back(
    platform_factory: Any, tmp_path: Path
) -> None:
    platform: Platform = platform_factory(30, gated=True, seed=23)
    assert platform.gates is not None
    document = platform.sandboxes.integration(FLOWS)
    config = tmp_path / "two-way.yaml"
    config.write_text(yaml.safe_dump(document, sort_keys=False))
    platform.apply(document)
    before = catalogue(platform)
    articles = platform.gates.accountview.hold(post_of("AK1"), answered=True)

    sync = KoppelProcess(
        platform.settings.home, "sync", "--config", str(config), "--flow", "products"
    )
    await articles.arrived()
    sync.send(signal.SIGKILL)
    sync.wait()
    articles.release()
    written = {a["ART_CODE"] for a in platform.sandboxes.accountview.rows("ARTICLE")}
    assert written, "AccountView took no article before the kill"
    integration_id = platform.flow("products").integration_id
    claimed = platform.store.links.find_by_target(integration_id, "products", sorted(written))
    assert {link.target_key for link in claimed} == written
    assert all(link.pending for link in claimed), "the batch was recorded before the kill"

    # Another executor id: this runner must not resume the killed run first.
    settings = platform.settings.model_copy(update={"worker_id": "reverse"})
    async with FlowRunner(platform.store, settings, handle_signals=False) as runner:
        back = await runner.run(platform.flow("products-from-av").id)
    assert back.status == "completed", back.error
    reasons = [o.reason for o in platform.store.outcomes.list(back.run_id, limit=10_000)]
    assert sum(1 for r in reasons if r and "came from Parts Pim" in r) >= len(written)
    assert catalogue(platform) == before, "a Parts Pim product was written back"

    resumed = KoppelProcess(
        platform.settings.home, "sync", "--config", str(config), "--flow", "products", name="again"
    )
    assert resumed.wait() in (0, 1), resumed.output()
    links = platform.store.links.find_by_target(integration_id, "products", sorted(written))
    assert links and not any(link.pending for link in links), "a link stayed pending"
    assert catalogue(platform) == before
