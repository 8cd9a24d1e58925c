"""A workspace whose products flow really ran against both sandboxes (served in-process): every
product synced but one whose SKU AccountView refuses, which failed and waits as a dead letter.

The web tests of the activity log and the dead letters use it, with an app whose engine runs
over the same sandboxes, so a replay from a page or the API is a real run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from koppel.accounts.users import create_user
from koppel.config import load_config
from koppel.engine.runner import FlowRunner
from koppel.services import runs, setup
from koppel.settings import Settings
from koppel.store import DeadLetter, DeadLetterStatus, Flow, Outcome, OutcomeKind, Role, Store, User
from tests.sandboxes_inprocess import InProcessSandboxes, inprocess_sandboxes
from tests.web.conftest import PASSWORD

TOO_LONG_SKUS = ("12345678901234567", "12345678901234568")
"""Parts Pim takes them; AccountView's ART_CODE holds 15 characters, so these records fail."""
FIXED_SKUS = ("98765432", "98765433")
WORKSPACE = "initech"


@dataclass(frozen=True)
class Shop:
    sandboxes: InProcessSandboxes
    settings: Settings
    tenant_id: int
    admin: User
    viewer: User
    flow: Flow
    bad_products: tuple[dict[str, Any], ...]
    failed: Outcome
    """The first bad product's outcome."""
    dead_letter: DeadLetter
    """The first bad product's dead letter; the second one's waits too."""

    def runner(self, store: Store) -> FlowRunner:
        """The engine for the web app, over the same sandboxes."""
        return FlowRunner(
            store, self.settings, handle_signals=False, transport=self.sandboxes.transport
        )

    def fix_the_sku(self, which: int = 0) -> str:
        """The cause fixed where it lies: the product's SKU in Parts Pim; returns the new SKU."""
        sku = FIXED_SKUS[which]
        self.sandboxes.partspim.store.update(
            "products", self.bad_products[which]["id"], {"sku": sku}
        )
        return sku

    def articles(self) -> set[str]:
        return {row["ART_CODE"] for row in self.sandboxes.accountview.rows("ARTICLE")}

    def pending(self, store: Store) -> list[DeadLetter]:
        return store.dead_letters.list(self.flow.id, status=DeadLetterStatus.PENDING)


async def _sync(
    store: Store, settings: Settings, flow: Flow, sandboxes: InProcessSandboxes
) -> None:
    async with runs.started_runner(
        store, settings, handle_signals=False, transport=sandboxes.transport
    ) as runner:
        await runs.run_flows(runner, store, [flow])


@contextmanager
def synced_shop(store: Store, settings: Settings, tmp_path: Path) -> Iterator[Shop]:
    with inprocess_sandboxes(3, seed=7) as sandboxes:
        document = sandboxes.integration(
            {"products": {"from": "pim", "to": "av", "entity": "products", "schedule": "manual"}},
            tenant=WORKSPACE,
            name="initech-shop",
        )
        file = tmp_path / "initech.yaml"
        file.write_text(yaml.safe_dump(document, sort_keys=False))
        applied = setup.apply_file(store, load_config(file), file, actor="test")
        (flow,) = store.flows.list(applied.integration.id)
        bad = tuple(
            sandboxes.partspim.store.create(
                "products",
                {"sku": sku, "name": "Remschijf te lang", "price_excl_vat": "1234.56"},
                over_api=False,
            )
            for sku in TOO_LONG_SKUS
        )
        # In a thread of its own: the caller may be in an event loop (Playwright's is).
        with ThreadPoolExecutor(1) as thread:
            thread.submit(asyncio.run, _sync(store, settings, flow, sandboxes)).result()
        tenant_id = applied.integration.tenant_id
        users = {
            role: create_user(
                store,
                actor="test",
                tenant_id=tenant_id,
                email=f"{role.value}@initech.example",
                name=f"Initech {role.value}",
                password=PASSWORD,
                role=role,
            )
            for role in (Role.ADMIN, Role.VIEWER)
        }
        failed = store.outcomes.search(key=TOO_LONG_SKUS[0], outcome=OutcomeKind.FAILED)[0]
        letter = next(
            d
            for d in store.dead_letters.list(flow.id, status=DeadLetterStatus.PENDING)
            if d.source_key == str(bad[0]["id"])
        )
        yield Shop(
            sandboxes=sandboxes,
            settings=settings,
            tenant_id=tenant_id,
            admin=users[Role.ADMIN],
            viewer=users[Role.VIEWER],
            flow=flow,
            bad_products=bad,
            failed=failed,
            dead_letter=letter,
        )
