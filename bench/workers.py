"""`python -m bench.workers` (`make bench-workers`): several `koppel worker` processes on
PostgreSQL, for docs/performance.md ("Several workers").

Six integrations (workspaces, each with its own connections) of 5,000 products each sync Parts
Pim -> AccountView at a sandbox latency of 50 ms, with 1, 2 and 3 workers sharing one store and
one engine database on PostgreSQL (databases of their own on KOPPEL_BENCH_POSTGRES_URL's server,
dropped after). One Parts Pim sandbox serves every workspace (the products flow only reads it);
each workspace writes into an AccountView sandbox of its own, new for every worker count. The
workers are real `koppel worker` processes (`engine_concurrency` = the number of integrations,
`worker_concurrency` = that over the workers, so the runs spread); the clock runs from the first
run's start to the last run's end as the store recorded them.

Printed per measurement: the runs each worker made, records (outcomes), seconds, records/s, the
CPU seconds of the workers, the sandboxes and the PostgreSQL backends of the bench's databases,
how busy the machine's cores were (every process on it, other users of the machine too), and the
most calls either sandbox had in flight; then per worker count the median records/s and its
ratio to one worker's.
`--quick`: 1,000 products per integration; `--rounds 3`: every worker count three times, the
counts interleaved (on a shared machine one measurement says little).
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography.fernet import Fernet
from sqlalchemy import make_url

from bench.sandboxes import SandboxProcess, process_cpu_seconds
from bench.web import postgres_database
from koppel.config import apply_config, load_config
from koppel.services.demo import integration_document
from koppel.settings import Settings
from koppel.store import open_store

FLOW = {"from": "pim", "to": "av", "entity": "products", "schedule": "24h"}
STARTED = "stop with Ctrl-C or SIGTERM"
"""The worker's line once its engine runs (tests/e2e/processes.py waits for the same)."""
RUN_TIMEOUT_S = 3600.0
FINISHED = ("succeeded", "partial", "failed")


@dataclass(frozen=True)
class WorkerFigures:
    workers: int
    runs_by_worker: dict[str, int]
    records: int
    failed: int
    seconds: float
    worker_cpu_seconds: float
    sandbox_cpu_seconds: float
    postgres_cpu_seconds: float
    """Of the PostgreSQL backends serving the bench's two databases (the store's writes)."""
    machine_busy: float
    """The share of the machine's CPU time that was busy during the runs (every process, the
    other users of the machine too): near 1.0, more workers can only share the same cores."""
    max_in_flight_pim: int
    max_in_flight_av: int

    @property
    def records_per_s(self) -> float:
        return self.records / self.seconds


def _machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU ticks of the whole machine so far (Linux /proc/stat)."""
    with open("/proc/stat", encoding="ascii") as stat:
        ticks = [float(n) for n in stat.readline().split()[1:]]
    idle = ticks[3] + ticks[4]  # idle and iowait
    return sum(ticks) - idle, sum(ticks)


def _postgres_cpu(databases: tuple[str, ...]) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend connected to one of `databases` (its
    process title names the database; Linux /proc, the server on this machine)."""
    seconds: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().decode(errors="replace")
            if title.startswith("postgres: ") and any(name in title for name in databases):
                seconds[int(entry.name)] = process_cpu_seconds(int(entry.name))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return seconds


def _max_in_flight(sandbox: SandboxProcess) -> int:
    import json
    import urllib.request

    with urllib.request.urlopen(f"{sandbox.url}/_admin/requests", timeout=30) as answer:
        return int(json.load(answer)["max_in_flight"])


def _apply(settings: Settings, home: Path, documents: list[dict[str, Any]], enabled: bool) -> None:
    store = open_store(settings)
    try:
        for number, document in enumerate(documents):
            path = home / f"workspace-{number}.yaml"
            flows = {"products": {**FLOW, "enabled": enabled}}
            path.write_text(yaml.safe_dump({**document, "flows": flows}, sort_keys=False))
            apply_config(store, load_config(path))
    finally:
        store.close()


def _runs(settings: Settings) -> list[Any]:
    store = open_store(settings, migrate=False)
    try:
        return store.runs.list(limit=10_000)
    finally:
        store.close()


def measure(
    workers: int, pim: SandboxProcess, integrations: int, latency_ms: float
) -> WorkerFigures:
    with ExitStack() as stack:
        home = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "koppel"
        home.mkdir()
        store_url = stack.enter_context(postgres_database("koppel_bench_workers_store"))
        engine_url = stack.enter_context(postgres_database("koppel_bench_workers_engine"))
        env = {
            **os.environ,
            "KOPPEL_HOME": str(home),
            "KOPPEL_DATABASE_URL": store_url,
            "KOPPEL_ENGINE_DATABASE_URL": engine_url,
            "KOPPEL_SECRET_KEY": Fernet.generate_key().decode(),
            "KOPPEL_ENGINE_CONCURRENCY": str(integrations),
            "KOPPEL_WORKER_CONCURRENCY": str(math.ceil(integrations / workers)),
        }
        settings = Settings(home=home, database_url=store_url, secret_key=env["KOPPEL_SECRET_KEY"])
        avs = [
            stack.enter_context(SandboxProcess("accountview", latency_ms=latency_ms))
            for _ in range(integrations)
        ]
        documents = [
            integration_document(
                pim.credentials,
                av.credentials,
                {},
                tenant=f"workspace-{number}",
                name=f"workspace-{number}-pim-av",
            )
            for number, av in enumerate(avs)
        ]
        _apply(settings, home, documents, enabled=False)
        processes = []
        for number in range(workers):
            log = (home.parent / f"worker-{number}.log").open("wb")
            stack.callback(log.close)
            process = subprocess.Popen(
                [str(Path(sys.executable).parent / "koppel"), "worker"],
                env={**env, "KOPPEL_WORKER_ID": f"worker-{number}"},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            stack.callback(_stop, process)
            processes.append(process)
        for number, process in enumerate(processes):
            log_path = home.parent / f"worker-{number}.log"
            _wait(
                lambda path=log_path: STARTED in path.read_text(),
                process,
                f"worker {number} to start",
            )
        pim.clear_requests()
        sandboxes = [pim, *avs]
        cpu_before = sum(process_cpu_seconds(p.pid) for p in processes)
        sandbox_cpu_before = sum(sandbox.cpu_seconds() for sandbox in sandboxes)
        machine_before = _machine_cpu()
        databases = tuple(str(make_url(url).database) for url in (store_url, engine_url))
        postgres_before = _postgres_cpu(databases)
        _apply(settings, home, documents, enabled=True)
        _wait(
            lambda: len([r for r in _runs(settings) if r.status.value in FINISHED]) >= integrations,
            processes[0],
            "every integration's run",
        )
        cpu = sum(process_cpu_seconds(p.pid) for p in processes) - cpu_before
        sandbox_cpu = sum(sandbox.cpu_seconds() for sandbox in sandboxes) - sandbox_cpu_before
        busy, total = (a - b for a, b in zip(_machine_cpu(), machine_before, strict=True))
        postgres_cpu = sum(
            seconds - postgres_before.get(pid, 0.0)
            for pid, seconds in _postgres_cpu(databases).items()
        )
        runs = _runs(settings)
        started = min(r.started_at for r in runs)
        finished = max(r.finished_at for r in runs if r.finished_at is not None)
        records = sum(sum(r.counts.values()) for r in runs)
        failed = sum(n for r in runs for kind, n in r.counts.items() if kind.endswith("failed"))
        return WorkerFigures(
            workers=workers,
            runs_by_worker=dict(Counter(str(r.executor) for r in runs)),
            records=records,
            failed=failed,
            seconds=(finished - started).total_seconds(),
            worker_cpu_seconds=cpu,
            sandbox_cpu_seconds=sandbox_cpu,
            postgres_cpu_seconds=postgres_cpu,
            machine_busy=busy / total,
            max_in_flight_pim=_max_in_flight(pim),
            max_in_flight_av=max(_max_in_flight(av) for av in avs),
        )


def _wait(condition: Any, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while not condition():
        if process.poll() is not None:
            raise RuntimeError(f"a worker exited (code {process.returncode}) waiting for {what}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"waited {RUN_TIMEOUT_S:g} s for {what}")
        time.sleep(0.2)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()


def format_figures(results: list[WorkerFigures], products: int, latency_ms: float) -> str:
    """Every measurement in the order made, then per worker count the median records/s and
    its ratio to one worker's median (rounds interleave the counts, so a change in the
    machine's other load falls on all of them alike)."""
    lines = [
        f"{products:,} products per integration, latency {latency_ms:g} ms",
        "| workers | runs per worker | records | failed | seconds | records/s "
        "| CPU s: workers / sandboxes / PostgreSQL | machine busy | max in flight (Parts Pim / "
        "an AccountView) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        spread = " / ".join(str(n) for _, n in sorted(r.runs_by_worker.items()))
        lines.append(
            f"| {r.workers} | {spread} | {r.records:,} | {r.failed} | {r.seconds:.1f} "
            f"| {r.records_per_s:.0f} | {r.worker_cpu_seconds:.1f} / "
            f"{r.sandbox_cpu_seconds:.1f} / {r.postgres_cpu_seconds:.1f} | {r.machine_busy:.0%} "
            f"| {r.max_in_flight_pim} / {r.max_in_flight_av} |"
        )
    medians = {
        workers: statistics.median(r.records_per_s for r in results if r.workers == workers)
        for workers in sorted({r.workers for r in results})
    }
    lines += [
        "",
        "| workers | measurements | median records/s | ratio to 1 |",
        "| --- | --- | --- | --- |",
    ]
    for workers, median in medians.items():
        ratio = f"{median / medians[1]:.2f} x" if 1 in medians else "-"
        runs = sum(1 for r in results if r.workers == workers)
        lines.append(f"| {workers} | {runs} | {median:.0f} | {ratio} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.workers", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1,000 products per integration")
    parser.add_argument("--products", type=int, default=None, help="per integration")
    parser.add_argument("--integrations", type=int, default=6)
    parser.add_argument("--latency", type=float, default=50.0, help="ms per sandbox call")
    parser.add_argument("--workers", default="1,2,3", help="the worker counts, e.g. 1,2,3")
    parser.add_argument(
        "--rounds", type=int, default=1, help="measure every worker count this many times"
    )
    args = parser.parse_args(argv)
    products = args.products or (1_000 if args.quick else 5_000)
    counts = [int(n) for n in args.workers.split(",")]
    started = time.monotonic()
    results: list[WorkerFigures] = []
    with SandboxProcess("partspim", products=products, seed=7, latency_ms=args.latency) as pim:
        for round_number in range(args.rounds):
            for workers in counts:
                results.append(measure(workers, pim, args.integrations, args.latency))
                done = results[-1]
                print(
                    f"round {round_number + 1}: {workers} worker(s), {done.records:,} records "
                    f"in {done.seconds:.1f} s, {done.records_per_s:.0f} records/s",
                    flush=True,
                )
    print(format_figures(results, products, args.latency))
    print(f"bench-workers took {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
