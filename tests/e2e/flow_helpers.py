"""Small helpers the flow end-to-end tests share: run a flow, read its outcomes, count posts."""

from __future__ import annotations

from typing import Any

from koppel.engine.jobs import RunSummary
from koppel.store.records import Outcome
from tests.e2e.conftest import Platform


async def run_flow(platform: Platform, name: str, *, replay: bool = False) -> RunSummary:
    flow = platform.flow(name)
    async with platform.runner() as runner:
        summary = await (runner.replay(flow.id) if replay else runner.run(flow.id))
    assert summary.status == "completed", summary.error
    return summary


def outcomes(platform: Platform, summary: RunSummary) -> dict[str, Outcome]:
    return {o.source_key: o for o in platform.store.outcomes.list(summary.run_id, limit=100_000)}


def counts(platform: Platform, summary: RunSummary) -> dict[str, int]:
    run = platform.store.runs.get(summary.run_id)
    assert run is not None
    return {kind: n for kind, n in run.counts.items() if n}


def requests(sandbox: Any, prefix: str) -> int:
    """Requests of a kind the sandbox answered, e.g. "POST accountviewdata AK1"."""
    return sum(n for kind, n in sandbox.faults.log.counts().items() if kind.startswith(prefix))
