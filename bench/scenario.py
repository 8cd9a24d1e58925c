"""One measured scenario: two sandboxes and a sync process, a first run and a rerun.

Figures per run: records (outcomes) per second, API calls per record by kind (from the sandboxes'
own request logs), the sync process's peak memory, and the ratio of the achieved throughput to
the bound the APIs allow:

- with latency L > 0: per connection, `concurrency / L / calls per record on that connection`;
  the bound is the smaller of the two connections' (every call waits L, at most `concurrency`
  calls of one connection are in flight, so no schedule of the same calls can go faster);
- with L = 0: a sandbox is one process answering one call at a time, so it serves at most
  `1 / service time` calls per second; its service time is its CPU seconds during the run over
  the calls it answered, and the bound is `1 / (service time * calls per record)`, the smaller of
  the two sandboxes'. That bound assumes the sandbox has a core to itself, which on 2 cores with
  three busy processes it has not: read the ratio as an upper estimate of what is left to gain.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.baseline import BaselineFigures, catalogue_articles, run_baseline
from bench.platform import RunFigures, SyncProcess
from bench.sandboxes import SandboxProcess
from koppel.services.demo import integration_document

__all__ = ["BaselineResult", "RunResult", "Scenario", "ScenarioResult", "run_scenario"]

DEFAULT_CONCURRENCY = 8


@dataclass(frozen=True)
class Scenario:
    name: str
    flow: dict[str, Any]
    """The flow's entry in the integration document (`from`, `to`, `entity`, `mapping`...)."""
    products: int
    latency_ms: float
    seed: int = 7
    settings: dict[str, Any] = field(default_factory=dict)
    concurrency: int = DEFAULT_CONCURRENCY
    trace_memory: bool = False
    profile_to: Path | None = None
    setup_flows: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Flows run once, unmeasured, before this one (articles must exist before stock)."""
    accountview_rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Rows the AccountView company has before the sync (table -> rows), e.g. a shipping article."""
    baseline: bool = False
    """Also run the per-record baseline (`bench/baseline.py`) on the same catalogue."""


@dataclass(frozen=True)
class RunResult:
    seconds: float
    cpu_seconds: float
    """The sync process's CPU time during the run."""
    records: int
    counts: dict[str, int]
    calls: dict[str, dict[str, int]]
    """Sandbox -> kind -> calls answered during the run."""
    service_ms: dict[str, float]
    """Sandbox -> CPU milliseconds per answered call."""
    rss_peak_mb: float
    tracemalloc_peak_mb: float | None
    failures: dict[str, int]
    pickup_seconds: float | None = None
    """Submit to the job's start, as the sync process saw it."""

    @property
    def records_per_s(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0

    def calls_per_record(self, sandbox: str | None = None) -> float:
        if not self.records:
            return 0.0
        sandboxes = [sandbox] if sandbox else list(self.calls)
        return sum(sum(self.calls[s].values()) for s in sandboxes) / self.records

    def total_calls(self) -> int:
        return sum(sum(kinds.values()) for kinds in self.calls.values())

    def bound(self, latency_ms: float, concurrency: int) -> tuple[float | None, str]:
        """The throughput the APIs allow (records/s) and what it is bound by."""
        bounds: list[tuple[float, str]] = []
        for sandbox in self.calls:
            per_record = self.calls_per_record(sandbox)
            if per_record == 0:
                continue
            if latency_ms > 0:
                bounds.append(
                    (concurrency / (latency_ms / 1000) / per_record, f"{sandbox} latency")
                )
            elif self.service_ms.get(sandbox):
                service_s = self.service_ms[sandbox] / 1000
                bounds.append((1 / (service_s * per_record), f"{sandbox} service time"))
        if not bounds:
            return None, "n/a: no calls"
        return min(bounds)


@dataclass(frozen=True)
class BaselineResult:
    """The per-record baseline's run: its own figures and the calls the sandboxes answered."""

    figures: BaselineFigures
    calls: dict[str, dict[str, int]]

    @property
    def records_per_s(self) -> float:
        return self.figures.records / self.figures.seconds if self.figures.seconds else 0.0

    def calls_per_record(self) -> float:
        total = sum(sum(kinds.values()) for kinds in self.calls.values())
        return total / self.figures.records if self.figures.records else 0.0


@dataclass(frozen=True)
class ScenarioResult:
    scenario: Scenario
    rss_baseline_mb: float
    runs: list[RunResult]
    baseline: BaselineResult | None = None

    def to_json(self) -> dict[str, Any]:
        runs = []
        for run in self.runs:
            bound, bound_by = run.bound(self.scenario.latency_ms, self.scenario.concurrency)
            runs.append(
                {
                    **asdict(run),
                    "records_per_s": run.records_per_s,
                    "calls_per_record": run.calls_per_record(),
                    "bound_records_per_s": bound,
                    "bound_by": bound_by,
                }
            )
        return {
            "scenario": {**asdict(self.scenario), "profile_to": None},
            "rss_baseline_mb": self.rss_baseline_mb,
            "runs": runs,
            "baseline": None if self.baseline is None else asdict(self.baseline),
        }


def run_scenario(
    scenario: Scenario,
    *,
    runs: int = 2,
    before_run: Callable[[int, dict[str, SandboxProcess]], None] | None = None,
) -> ScenarioResult:
    """Start both sandboxes and a sync process; run the flow `runs` times and measure each."""
    pim = SandboxProcess(
        "partspim", products=scenario.products, seed=scenario.seed, latency_ms=scenario.latency_ms
    )
    av = SandboxProcess(
        "accountview",
        seed=scenario.seed,
        latency_ms=scenario.latency_ms,
        rows=scenario.accountview_rows,
    )
    with pim, av:
        sandboxes = {"partspim": pim, "accountview": av}
        document = integration_document(
            pim.credentials,
            av.credentials,
            {**scenario.setup_flows, scenario.name: scenario.flow},
            tenant="bench",
            name="bench-pim-av",
            settings=scenario.settings,
            options={"concurrency": scenario.concurrency},
        )
        results: list[RunResult] = []
        sync = SyncProcess(
            document,
            scenario.name,
            runs=runs,
            setup_flows=list(scenario.setup_flows),
            trace_memory=scenario.trace_memory,
            profile_to=scenario.profile_to,
        )
        with sync:
            for number in range(runs):
                if before_run is not None:
                    before_run(number, sandboxes)
                for sandbox in sandboxes.values():
                    sandbox.clear_requests()
                cpu_before = {n: s.cpu_seconds() for n, s in sandboxes.items()}
                figures: RunFigures = sync.run()
                calls = {n: s.request_counts() for n, s in sandboxes.items()}
                service_ms = {
                    n: 1000 * (s.cpu_seconds() - cpu_before[n]) / max(1, sum(calls[n].values()))
                    for n, s in sandboxes.items()
                }
                if figures.status != "completed":
                    raise RuntimeError(f"{scenario.name}: the run ended {figures.status}")
                results.append(
                    RunResult(
                        seconds=figures.seconds,
                        cpu_seconds=figures.cpu_seconds,
                        records=sum(figures.counts.values()),
                        counts=figures.counts,
                        calls=calls,
                        service_ms=service_ms,
                        rss_peak_mb=figures.rss_peak_mb,
                        tracemalloc_peak_mb=figures.tracemalloc_peak_mb,
                        failures=figures.failures,
                        pickup_seconds=figures.pickup_seconds,
                    )
                )
        baseline = _run_baseline(scenario, pim) if scenario.baseline else None
        return ScenarioResult(scenario, sync.rss_baseline_mb, results, baseline)


def _run_baseline(scenario: Scenario, pim: SandboxProcess) -> BaselineResult:
    """The baseline into a fresh AccountView company (a sandbox of the same seed and latency),
    reading the Parts Pim sandbox Koppel read; for a flow that needs what a setup flow made
    (orders need the articles), the company starts with the catalogue's articles."""
    rows = dict(scenario.accountview_rows)
    if "products" in scenario.setup_flows:
        articles = asyncio.run(catalogue_articles(pim.credentials))
        rows["ARTICLE"] = [*rows.get("ARTICLE", []), *articles]
    shipping_article = str(scenario.flow.get("settings", {}).get("shipping_article_code", ""))
    with SandboxProcess(
        "accountview", seed=scenario.seed, latency_ms=scenario.latency_ms, rows=rows
    ) as av:
        pim.clear_requests()
        figures = run_baseline(
            scenario.name,
            pim.credentials,
            av.credentials,
            scenario.concurrency,
            shipping_article=shipping_article,
        )
        calls = {"partspim": pim.request_counts(), "accountview": av.request_counts()}
    return BaselineResult(figures, calls)
