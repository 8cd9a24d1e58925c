"""End-to-end ground: both sandboxes served over real HTTP, a real store and the durable engine."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from koppel.config import apply_config, load_config
from koppel.engine.runner import FlowRunner
from koppel.services.demo import DemoSandboxes, running_sandboxes
from koppel.settings import Settings
from koppel.store import Store, open_store
from koppel.store.records import Flow
from tests.e2e.gates import Gates, gated_sandboxes

if TYPE_CHECKING:
    from tests.e2e.cli import Setup


@dataclass
class Platform:
    """A Koppel installation in a temporary home, connected to the sandboxes."""

    home: Path
    sandboxes: DemoSandboxes
    settings: Settings
    store: Store
    gates: Gates | None = None
    """With `platform_factory(..., gated=True)`: requests the test may hold at each sandbox."""

    def apply(self, document: dict[str, Any]) -> None:
        path = self.home / "integration.yaml"
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        apply_config(self.store, load_config(path))

    def flow(self, name: str) -> Flow:
        [integration] = self.store.integrations.list()
        flow = self.store.flows.get_by_name(integration.id, name)
        assert flow is not None
        return flow

    def runner(self) -> FlowRunner:
        return FlowRunner(self.store, self.settings, handle_signals=False)


@pytest.fixture
def platform_factory(tmp_path: Path) -> Iterator[Any]:
    stack: list[Any] = []

    def make(products: int, *, gated: bool = False, **kwargs: Any) -> Platform:
        gates: Gates | None = None
        if gated:
            gated_context = gated_sandboxes(products, **kwargs)
            sandboxes, gates = gated_context.__enter__()
            stack.append(gated_context)
        else:
            context = running_sandboxes(products, **kwargs)
            sandboxes = context.__enter__()
            stack.append(context)
        settings = Settings(home=tmp_path / "koppel", secret_key=None)
        store = open_store(settings)
        stack.append(store)
        return Platform(tmp_path, sandboxes, settings, store, gates)

    yield make
    for item in reversed(stack):
        if isinstance(item, Store):
            item.close()
        else:
            item.__exit__(None, None, None)


@pytest.fixture
def cli_setup(platform_factory: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Setup:
    """A platform with 60 products for the command line: KOPPEL_HOME set, the integration file
    at tmp_path/acme.yaml (tests.e2e.cli.Setup)."""
    from tests.e2e.cli import Setup  # it builds on Platform, defined here

    platform: Platform = platform_factory(60)
    for name in ("KOPPEL_DATABASE_URL", "KOPPEL_ENGINE_DATABASE_URL", "KOPPEL_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KOPPEL_HOME", str(platform.settings.home))
    return Setup(platform, tmp_path / "acme.yaml")
