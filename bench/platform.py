"""The platform under measurement: a Koppel home in a process of its own, running flows for real.

The sync process applies an integration document, starts a `FlowRunner` (the durable engine, the
real path) and runs one flow several times; before each run it waits for the bench to say go, so
the bench can read and reset the sandboxes' request logs between runs. Its RSS high-water mark is
then the platform's alone: the sandboxes live in other processes.
"""

from __future__ import annotations

import asyncio
import cProfile
import multiprocessing
import re
import resource
import tempfile
import time
import tracemalloc
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["RunFigures", "SyncProcess"]

_RUN_TIMEOUT_S = 7200.0


@dataclass(frozen=True)
class RunFigures:
    """One run as the sync process saw it."""

    seconds: float
    cpu_seconds: float
    """The sync process's CPU time (all threads) during the run."""
    status: str
    counts: dict[str, int]
    api_calls: int
    rss_peak_mb: float
    tracemalloc_peak_mb: float | None
    failures: dict[str, int]
    """The most common reasons records failed (the start of the reason), with their number."""
    pickup_seconds: float | None = None
    """From submitting the run to its job's start (the run's row written): the engine's pick-up."""


def _failures(store: Any, run_id: str) -> dict[str, int]:
    from koppel.store.records import OutcomeKind

    failed = store.outcomes.list(run_id, outcome=OutcomeKind.FAILED, limit=1_000_000)
    reasons = Counter(re.sub(r"'[^']*'", "'…'", o.reason or "")[:100] for o in failed)
    return dict(reasons.most_common(3))


def _rss_now_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _rss_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _sync_main(
    document: dict[str, Any],
    setup_flows: list[str],
    flow_name: str,
    runs: int,
    trace_memory: bool,
    profile_to: Path | None,
    conn: Connection,
) -> None:
    """Child process: set up a home, start the runner, run the flow `runs` times on request."""
    from koppel.commands.collector import collector_paused

    with collector_paused():  # as `koppel sync` imports what it runs
        import yaml

        from koppel.config import apply_config, load_config
        from koppel.engine.runner import FlowRunner
        from koppel.settings import Settings
        from koppel.store import open_store

    with tempfile.TemporaryDirectory(prefix="koppel-bench-") as home_dir:
        home = Path(home_dir)
        settings = Settings(home=home / "koppel", secret_key=None)
        store = open_store(settings)
        path = home / "integration.yaml"
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        apply_config(store, load_config(path))
        [integration] = store.integrations.list()
        flow = store.flows.get_by_name(integration.id, flow_name)
        setups = [store.flows.get_by_name(integration.id, name) for name in setup_flows]
        assert flow is not None and None not in setups

        async def main() -> None:
            if trace_memory:
                tracemalloc.start()
            async with FlowRunner(store, settings, handle_signals=False) as runner:
                for setup in setups:
                    assert setup is not None
                    prepared = await runner.run(setup.id)
                    if prepared.error is not None:
                        raise RuntimeError(f"setup flow {setup.name}: {prepared.error}")
                conn.send({"ready": True, "rss_baseline_mb": _rss_now_mb()})
                for _ in range(runs):
                    conn.recv()
                    if trace_memory:
                        tracemalloc.reset_peak()
                    started, cpu_started = time.perf_counter(), _cpu_seconds()
                    submitted = time.time()
                    summary = await runner.run(flow.id)
                    seconds = time.perf_counter() - started
                    cpu_seconds = _cpu_seconds() - cpu_started
                    run = store.runs.get(summary.run_id)
                    conn.send(
                        RunFigures(
                            seconds=seconds,
                            cpu_seconds=cpu_seconds,
                            status=summary.status if summary.error is None else summary.error,
                            counts=dict(summary.counts),
                            api_calls=run.api_calls if run is not None else 0,
                            rss_peak_mb=_rss_peak_mb(),
                            tracemalloc_peak_mb=(
                                tracemalloc.get_traced_memory()[1] / 2**20 if trace_memory else None
                            ),
                            failures=_failures(store, summary.run_id),
                            pickup_seconds=(
                                run.started_at.timestamp() - submitted if run is not None else None
                            ),
                        )
                    )

        profiler = cProfile.Profile() if profile_to is not None else None
        try:
            if profiler is not None:
                profiler.enable()
            asyncio.run(main())
        finally:
            if profiler is not None and profile_to is not None:
                profiler.disable()
                profiler.dump_stats(profile_to)
            store.close()


@dataclass
class SyncProcess:
    """`with SyncProcess(document, "products", runs=2) as sync: figures = sync.run()`."""

    document: dict[str, Any]
    flow_name: str
    runs: int = 2
    setup_flows: list[str] = field(default_factory=list)
    """Flows run once, unmeasured, before the measured one (products before stock)."""
    trace_memory: bool = False
    profile_to: Path | None = None
    """Write a cProfile of the whole sync process here (for `python -m pstats`)."""
    rss_baseline_mb: float = 0.0
    _process: BaseProcess | None = field(default=None, repr=False)
    _conn: Connection | None = field(default=None, repr=False)

    def __enter__(self) -> SyncProcess:
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        self._process = context.Process(
            target=_sync_main,
            args=(
                self.document,
                self.setup_flows,
                self.flow_name,
                self.runs,
                self.trace_memory,
                self.profile_to,
                child,
            ),
            name="koppel-sync",
        )
        self._process.start()
        child.close()
        self._conn = parent
        ready = self._receive()
        self.rss_baseline_mb = float(ready["rss_baseline_mb"])
        return self

    def run(self) -> RunFigures:
        """One run of the flow, waited for."""
        assert self._conn is not None
        self._conn.send("go")
        figures = self._receive()
        assert isinstance(figures, RunFigures)
        return figures

    def _receive(self) -> Any:
        assert self._conn is not None and self._process is not None
        if not self._conn.poll(_RUN_TIMEOUT_S):
            raise RuntimeError("the sync process did not answer in time")
        try:
            return self._conn.recv()
        except EOFError:
            raise RuntimeError(
                f"the sync process ended (exit code {self._process.exitcode})"
            ) from None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._process is not None:
            self._process.join(timeout=60)
            if self._process.is_alive():
                self._process.terminate()
                self._process.join(timeout=10)
        if self._conn is not None:
            self._conn.close()
