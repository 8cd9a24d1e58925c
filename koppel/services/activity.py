"""What moved and why: the runs, and a run's activity log (one outcome per source record).

Lists that grow without end page by key, not by offset: a page stays right while new runs and
outcomes are written, and costs the same at the millionth entry as at the first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from koppel.services.errors import InvalidRequest, NotFound
from koppel.store import Flow, Outcome, OutcomeKind, Run, RunStatus, Store

UNKNOWN_FLOW = "?"


@dataclass(frozen=True)
class RunView:
    """A run with the name of its flow."""

    id: str
    flow_id: int
    flow: str
    status: RunStatus
    counts: Mapping[str, int]
    """created / updated / skipped / failed: so far while it runs (after each batch), counted
    from its outcomes when it ended."""
    api_calls: int
    mapping_version: int
    started_at: datetime
    finished_at: datetime | None
    error: str | None
    """Why a failed run failed: the cause and the fix, in one or two plain lines."""
    number: int | None = None
    """1, 2, 3... in the order runs started: what `find_run` takes, as well as the id."""


@dataclass(frozen=True)
class RunPage:
    runs: tuple[RunView, ...]
    next_before: str | None
    """Pass as `before` for the next page; None when this page is the last."""


@dataclass(frozen=True)
class OutcomePage:
    run: RunView
    outcomes: tuple[Outcome, ...]
    next_after: int | None
    """Pass as `after` for the next page; None when this page is the last."""


def run_view(run: Run, flow_names: Mapping[int, str]) -> RunView:
    """The run with its flow's name from `flow_names` (flow id -> name)."""
    return RunView(
        id=run.id,
        flow_id=run.flow_id,
        flow=flow_names.get(run.flow_id, UNKNOWN_FLOW),
        status=run.status,
        counts=dict(run.counts),
        api_calls=run.api_calls,
        mapping_version=run.mapping_version,
        started_at=run.started_at,
        finished_at=run.finished_at,
        error=run.error,
        number=run.number,
    )


def _flow_names(store: Store) -> dict[int, str]:
    return {flow.id: flow.name for flow in store.flows.list()}


def recent_runs(
    store: Store,
    *,
    flows: Sequence[Flow] | None = None,
    status: RunStatus | None = None,
    started_from: datetime | None = None,
    started_until: datetime | None = None,
    limit: int = 20,
    before: str | None = None,
) -> RunPage:
    """The runs newest first: of these flows, or of every flow the store (workspace) holds;
    of one status; started from (inclusive) and until (exclusive) a moment."""
    found = store.runs.list(
        flow_ids=None if flows is None else [flow.id for flow in flows],
        status=status,
        started_from=started_from,
        started_until=started_until,
        limit=limit,
        before=before,
    )
    names = _flow_names(store)
    runs = tuple(run_view(run, names) for run in found)
    return RunPage(runs, runs[-1].id if len(runs) == limit else None)


def run(store: Store, run_id: str) -> RunView:
    """The run with exactly this id."""
    found = store.runs.get(run_id)
    if found is None:
        raise NotFound(f"no run {run_id!r}; list the recent runs with: koppel runs")
    return run_view(found, _flow_names(store))


def find_run(store: Store, id_or_prefix: str) -> RunView:
    """The run with this number (`17`, `#17`) or id, or the one run whose id starts with it
    (people type a number or a prefix)."""
    found = store.runs.find(id_or_prefix)
    if not found:
        raise NotFound(f"no run {id_or_prefix!r}; list the recent runs with: koppel runs")
    if len(found) > 1:
        raise InvalidRequest(
            f"{id_or_prefix!r} starts {len(found)} run ids "
            f"({', '.join(r.id for r in found[:3])}, ...); type more of it"
        )
    return run_view(found[0], _flow_names(store))


def run_log(
    store: Store,
    run_id: str,
    *,
    outcome: OutcomeKind | None = None,
    limit: int = 100,
    after: int | None = None,
) -> OutcomePage:
    """A page of the run's outcomes in the order they were recorded, of one kind or all."""
    found = run(store, run_id)
    outcomes = tuple(store.outcomes.list(run_id, outcome=outcome, limit=limit, after_id=after))
    return OutcomePage(found, outcomes, outcomes[-1].id if len(outcomes) == limit else None)


__all__ = [
    "OutcomePage",
    "RunPage",
    "RunView",
    "find_run",
    "recent_runs",
    "run",
    "run_log",
    "run_view",
]
