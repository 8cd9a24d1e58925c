"""The services on a real store, with both sandboxes served in-process (tests/
sandboxes_inprocess.py): what the CLI tests do not pin (paging, workspace scope, the connection's
limits, every flow's problem at once, the transport seam under a run, the audit of a restore)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from koppel.config import ConfigError, IntegrationConfig, apply_config, load_config
from koppel.errors import ErrorCategory
from koppel.sandbox.common import FaultConfig
from koppel.services import activity, checks, connections, mappings, runs, setup, worker
from koppel.services.activity import RunView
from koppel.services.demo import apply_demo, set_up_demo
from koppel.services.errors import Busy, FlowsCannotRun, InvalidRequest, NotFound
from koppel.services.runs import FlowReport
from koppel.settings import Settings
from koppel.store import Flow, OutcomeEntry, OutcomeKind, PurgeResult, RunStatus, Store, open_store
from tests.fixtures_store import seed_integration
from tests.sandboxes_inprocess import InProcessSandboxes, inprocess_sandboxes

PRODUCTS = {"from": "pim", "to": "av", "entity": "products", "schedule": "60s"}


@pytest.fixture
def sandboxes() -> Iterator[InProcessSandboxes]:
    with inprocess_sandboxes(12, seed=4) as served:
        yield served


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "koppel", database_url=None, secret_key=None)


@pytest.fixture
def platform_store(settings: Settings) -> Iterator[Store]:
    store = open_store(settings)
    yield store
    store.close()


def applied(store: Store, tmp_path: Path, document: dict[str, Any]) -> IntegrationConfig:
    file = tmp_path / "integration.yaml"
    file.write_text(yaml.safe_dump(document, sort_keys=False))
    config = load_config(file)
    setup.apply_file(store, config, file, actor="test")
    return config


def finished_run(store: Store, flow: Flow, outcomes: list[OutcomeKind]) -> str:
    run = store.runs.start(flow.id)
    store.outcomes.record_many(
        run.id, [OutcomeEntry(f"key-{n}", kind) for n, kind in enumerate(outcomes)]
    )
    store.runs.finish(run.id, RunStatus.SUCCEEDED)
    return run.id


def test_runs_and_the_activity_log_page_by_key_within_a_workspace(store: Store) -> None:
    acme, other = seed_integration(store, "acme"), seed_integration(store, "other")
    acme_runs = [finished_run(store, acme.flow, [OutcomeKind.CREATED]) for _ in range(5)]
    other_run = finished_run(store, other.flow, [OutcomeKind.FAILED])
    scoped = store.scoped(acme.tenant.id)

    pages: list[list[str]] = []
    before: str | None = None
    while True:
        page = activity.recent_runs(scoped, limit=2, before=before)
        pages.append([run.id for run in page.runs])
        if page.next_before is None:
            break
        before = page.next_before
    assert pages == [acme_runs[::-1][:2], acme_runs[::-1][2:4], acme_runs[::-1][4:]]
    assert activity.recent_runs(store, flows=[other.flow]).runs[0].id == other_run
    with pytest.raises(NotFound):
        activity.run(scoped, other_run)
    with pytest.raises(NotFound):
        activity.find_run(scoped, other_run[:6])

    kinds = [OutcomeKind.CREATED, OutcomeKind.FAILED] * 3
    logged = finished_run(store, acme.flow, kinds)
    failed = activity.run_log(scoped, logged, outcome=OutcomeKind.FAILED, limit=2)
    assert [o.source_key for o in failed.outcomes] == ["key-1", "key-3"]
    assert failed.run.flow == "products" and failed.run.counts["failed"] == 3
    rest = activity.run_log(scoped, logged, outcome=OutcomeKind.FAILED, after=failed.next_after)
    assert [o.source_key for o in rest.outcomes] == ["key-5"] and rest.next_after is None


def test_the_integration_is_chosen_by_name_or_id_and_only_in_its_workspace(store: Store) -> None:
    with pytest.raises(NotFound, match="no integration is set up yet"):
        setup.choose_integration(store, None)
    acme, other = seed_integration(store, "acme"), seed_integration(store, "other")
    with pytest.raises(InvalidRequest, match="acme/acme-pim-av, other/other-pim-av") as several:
        setup.choose_integration(store, None)
    assert several.value.category is ErrorCategory.CONFIGURATION
    assert setup.choose_integration(store, "other-pim-av").id == other.integration.id
    assert setup.choose_integration(store, "acme/acme-pim-av").id == acme.integration.id
    scoped = store.scoped(acme.tenant.id)
    assert setup.choose_integration(scoped, None).id == acme.integration.id
    with pytest.raises(NotFound) as missing:
        setup.integration(scoped, other.integration.id)
    assert missing.value.category is ErrorCategory.NOT_FOUND
    with pytest.raises(NotFound, match="its flows: products"):
        setup.choose_flows(scoped, acme.integration, ["orders"])


async def test_a_connection_test_runs_within_the_connections_limits(
    platform_store: Store, sandboxes: InProcessSandboxes, tmp_path: Path
) -> None:
    document = sandboxes.integration({"products": PRODUCTS})
    document["connections"]["pim"]["options"] = {"max_attempts": 1}
    config = applied(platform_store, tmp_path, document)
    file = tmp_path / "integration.yaml"

    async def check(name: str) -> connections.ConnectionCheck:
        return await connections.check_file_connection(
            platform_store, config, file, name, actor="test", transport=sandboxes.transport
        )

    works = await check("av")
    assert works.works and "AccountView company" in works.message and works.category is None

    sandboxes.partspim.faults.configure(FaultConfig(error_rate=1.0))
    broken = await check("pim")
    assert not broken.works and broken.category is ErrorCategory.CONNECTION
    assert broken.description == "connection pim (partspim, http://partspim.sandbox)"
    # max_attempts 1: the one factory honours the connection's options (the default is 8).
    assert sum(sandboxes.partspim.faults.log.counts().values()) == 1

    sandboxes.partspim.faults.configure(FaultConfig())
    document["connections"]["pim"]["credentials"]["api_key"] = "not-the-key"
    config = applied(platform_store, tmp_path, document)
    refused = await check("pim")
    assert refused.category is ErrorCategory.AUTHORISATION and "not-the-key" not in refused.message
    with pytest.raises(NotFound, match="its connections: pim, av"):
        await check("erp")


async def test_every_flow_that_cannot_run_is_named_before_any_runs(
    platform_store: Store, sandboxes: InProcessSandboxes, tmp_path: Path
) -> None:
    flows = {
        "products": {**PRODUCTS, "mapping": {"send": {"fields": {"ART_DESC9": "name"}}}},
        "av-stock": {"from": "av", "to": "pim", "entity": "stock"},
    }
    file = tmp_path / "integration.yaml"
    file.write_text(yaml.safe_dump(sandboxes.integration(flows), sort_keys=False))
    with pytest.raises(ConfigError) as not_applied:
        setup.apply_file(platform_store, load_config(file), file, actor="test")
    paths = [path for path, _ in not_applied.value.problems]
    assert paths == ["flows.products.mapping.send", "flows.av-stock.entity"]
    assert "ART_DESC9" in str(not_applied.value) and platform_store.integrations.list() == []
    # What the store holds from before the file was checked (or restored since) is checked too.
    apply_config(platform_store, load_config(file))
    chosen = setup.choose_flows(platform_store, setup.choose_integration(platform_store, None), [])
    with pytest.raises(FlowsCannotRun) as refused:
        await runs.check_flows_can_run(platform_store, chosen)
    problems = {problem.flow: problem for problem in refused.value.problems}
    assert set(problems) == {"products", "av-stock"}
    assert "ART_DESC9" in problems["products"].message
    assert problems["products"].hint is not None and "mapping validate" in problems["products"].hint
    assert "no get-side mapping for stock" in problems["av-stock"].message
    assert refused.value.category is ErrorCategory.CONFIGURATION


class Recorded:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.totals: dict[str, Mapping[str, int]] = {}

    def started(self, flow: Flow) -> None:
        self.events.append(("started", flow.name))

    def advanced(self, flow: Flow, totals: Mapping[str, int]) -> None:
        self.totals[flow.name] = totals

    def finished(self, flow: Flow, report: FlowReport) -> None:
        self.events.append(("finished", report.status))


async def test_flows_run_through_the_engine_with_the_sandboxes_in_process(
    platform_store: Store, settings: Settings, sandboxes: InProcessSandboxes, tmp_path: Path
) -> None:
    applied(platform_store, tmp_path, sandboxes.integration({"products": PRODUCTS}))
    [flow] = setup.choose_flows(platform_store, setup.choose_integration(platform_store, None), [])
    progress = Recorded()
    await runs.check_flows_can_run(platform_store, [flow])
    async with runs.started_runner(
        platform_store, settings, handle_signals=False, transport=sandboxes.transport
    ) as runner:
        [report] = await runs.run_flows(runner, platform_store, [flow], progress=progress)
    assert report.ok and report.status == "succeeded" and report.api_calls > 0
    articles = sandboxes.accountview.rows("ARTICLE")  # the company started without any
    assert articles and report.counts["created"] == len(articles)
    groups = [g for g in sandboxes.accountview.rows("ART_GRP") if g["CNG_NR"] == 1]
    assert report.counts["categories.created"] == len(groups) > 0  # counted as such
    assert progress.events == [("started", "products"), ("finished", "succeeded")]
    assert progress.totals["products"] == report.counts  # the progress ends as the summary
    [listed] = activity.recent_runs(platform_store, flows=[flow]).runs
    assert listed.id == report.run_id and listed.counts == report.counts


async def test_stock_read_in_pieces_ends_its_progress_at_the_summary(
    platform_store: Store, settings: Settings, sandboxes: InProcessSandboxes, tmp_path: Path
) -> None:
    stock = {"from": "pim", "to": "av", "entity": "stock", "settings": {"page_size": 1}}
    applied(platform_store, tmp_path, sandboxes.integration({"stock": stock}))
    [flow] = platform_store.flows.list()
    rows = sandboxes.partspim.store.all("stock")
    assert len(rows) > len({row["sku"] for row in rows})  # some SKUs in several warehouses
    progress = Recorded()
    async with runs.started_runner(
        platform_store, settings, handle_signals=False, transport=sandboxes.transport
    ) as runner:
        [report] = await runs.run_flows(runner, platform_store, [flow], progress=progress)
    assert sum(report.counts.values()) == len({row["sku"] for row in rows})  # one per SKU
    assert progress.totals["stock"] == report.counts


async def test_a_mapping_is_previewed_on_a_sample_and_restored_with_an_audit_entry(
    platform_store: Store, sandboxes: InProcessSandboxes, tmp_path: Path
) -> None:
    description = {"from": "name", "transform": ["upper"], "overflow": "truncate"}
    upper = {"send": {"fields": {"ART_DESC1": description}}}
    document = sandboxes.integration({"products": {**PRODUCTS, "mapping": upper}})
    config = applied(platform_store, tmp_path, document)
    file = tmp_path / "integration.yaml"
    view = checks.inspect_file_mapping(config, file, "products")
    assert not view.has_errors() and view.applications == {"get": "partspim", "send": "accountview"}

    sample = await mappings.sample_record(
        platform_store, config, file, "products", transport=sandboxes.transport
    )
    previewed = mappings.preview_record(view, sample)
    assert previewed.preview.error is None and previewed.preview.target is not None
    assert previewed.preview.target["ART_DESC1"] == str(sample["name"]).upper()[:40]
    assert "AG_CODE" in previewed.resolved  # looked up in the target during a run

    second = {"send": {"fields": {"ART_DESC2": {"from": "name", "overflow": "truncate"}}}}
    document["flows"]["products"]["mapping"] = second
    applied(platform_store, tmp_path, document)
    document["flows"]["products"]["mapping"] = {"send": {"fields": {"ART_DESC9": "name"}}}
    file.write_text(yaml.safe_dump(document, sort_keys=False))
    config = load_config(file)  # not applied: a file with mapping errors is refused
    broken = checks.inspect_file_mapping(config, file, "products")
    assert broken.has_errors(["send"]) and not broken.has_errors(["get"])
    with pytest.raises(InvalidRequest, match="fix the mapping errors"):
        mappings.preview_record(broken, sample)
    with pytest.raises(NotFound, match="no flow named 'stock'"):
        checks.inspect_file_mapping(config, file, "stock")

    integration = setup.choose_integration(platform_store, None)
    [flow] = setup.choose_flows(platform_store, integration, ["products"])
    history = mappings.mapping_versions(platform_store, flow)
    assert [(v.version, v.current, v.overrides) for v in history] == [
        (1, False, {"send": ("ART_DESC1",)}),
        (2, True, {"send": ("ART_DESC2",)}),
    ]
    restored = mappings.restore_mapping(platform_store, flow, 1, actor="anna")
    assert (restored.restored, restored.version, restored.mapping) == (1, 3, upper)
    [entry] = platform_store.audit.list(integration.tenant_id, subject="flow:demo-pim-av/products")[
        :1
    ]
    assert (entry.actor, entry.action, entry.detail) == (
        "anna",
        "flow.mapping_restored",
        {"restored": 1, "version": 3},
    )
    with pytest.raises(NotFound, match="mapping version 9"):
        mappings.restore_mapping(platform_store, flow, 9, actor="anna")


class Log:
    def __init__(self) -> None:
        self.finished: list[RunView] = []
        self.first_run = asyncio.Event()

    def run_finished(self, run: RunView) -> None:
        self.finished.append(run)
        self.first_run.set()

    def purged(self, result: PurgeResult) -> None:
        raise AssertionError(f"nothing is old enough to purge: {result}")

    def purge_failed(self, error: Exception) -> None:
        raise AssertionError(f"the purge failed: {error}")


async def test_the_worker_runs_flows_on_schedule_and_reports_each_finished_run(
    platform_store: Store, settings: Settings, sandboxes: InProcessSandboxes, tmp_path: Path
) -> None:
    applied(platform_store, tmp_path, sandboxes.integration({"products": PRODUCTS}))
    log = Log()
    [flow] = platform_store.flows.list()
    async with runs.started_runner(
        platform_store, settings, handle_signals=False, transport=sandboxes.transport
    ) as runner:
        serving = asyncio.create_task(worker.serve(runner, platform_store, log))
        # Another worker's run, finished while this one serves: not this worker's to report.
        other = platform_store.runs.start(flow.id, executor="another-worker")
        platform_store.runs.finish(other.id, RunStatus.SUCCEEDED)
        await asyncio.wait_for(log.first_run.wait(), timeout=120)
        runner.engine.request_stop()
        await asyncio.wait_for(serving, timeout=120)
    [run] = log.finished
    assert (run.flow, run.status) == ("products", RunStatus.SUCCEEDED)
    assert run.counts["created"] > 0 and run.api_calls > 0


def test_the_demo_is_set_up_once_per_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with set_up_demo(home, 5, seed=2) as demo:
        assert demo.file == home / "demo.yaml" and demo.file.stat().st_mode & 0o777 == 0o600
        assert demo.settings.home == home / "demo"
        with (
            pytest.raises(Busy, match="another koppel demo is running") as busy,
            set_up_demo(home, 5),
        ):
            pass
        assert busy.value.category is ErrorCategory.CONFLICT
        store = open_store(demo.settings)
        try:
            flows = apply_demo(store, demo)
        finally:
            store.close()
        assert [flow.name for flow in flows][:2] == ["categories", "products"]
    with set_up_demo(home, 5, seed=2):  # the lock went with the first demo
        pass


async def test_a_stored_flow_with_a_wrong_setting_fails_its_run_at_once_with_the_reason(
    platform_store: Store, settings: Settings, sandboxes: InProcessSandboxes, tmp_path: Path
) -> None:
    flows = {"products": {**PRODUCTS, "settings": {"sell_price": "gross"}}}
    file = tmp_path / "integration.yaml"
    file.write_text(yaml.safe_dump(sandboxes.integration(flows), sort_keys=False))
    with pytest.raises(ConfigError, match=r"flows\.products\.settings\.sell_price"):
        setup.apply_file(platform_store, load_config(file), file, actor="test")
    apply_config(platform_store, load_config(file))  # stored before settings were checked
    [flow] = platform_store.flows.list()
    async with runs.started_runner(
        platform_store, settings, handle_signals=False, transport=sandboxes.transport
    ) as runner:
        [report] = await runs.run_flows(runner, platform_store, [flow])
    assert report.status == "failed" and report.api_calls == 0
    assert report.error == (
        "flow products: setting sell_price: Input should be 'excl_vat' or 'incl_vat'"
    )
    assert sum(report.counts.values()) == 0
    assert platform_store.dead_letters.list(flow.id) == []
    [listed] = activity.recent_runs(platform_store, flows=[flow]).runs
    assert listed.error == report.error
