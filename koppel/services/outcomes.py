"""The activity log across runs: what happened to each record, found by its key, with what came
from the source and what was sent to the target while the payloads are kept.

The web pages and the REST API both read it through here. Pages are keyset-paged, newest first
(`before`: the last entry's id), so they stay right while runs write and cost the same at the
millionth outcome as at the first.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from koppel.accounts.errors import N_
from koppel.mapping.preview import flatten
from koppel.services.activity import RunView, run
from koppel.services.errors import NotFound
from koppel.store import Outcome, OutcomeKind, Store

DEFAULT_LIMIT = 50


class EntryExpired(NotFound):
    """No such activity entry in the workspace: gone with the retention window, or never
    there. Its text is a catalogue entry (`message_id % params`), shown in the user's language."""

    def __init__(self, outcome_id: int, retention_days: int) -> None:
        self.message_id = N_(
            "Activity entry %(id)s does not exist: entries are kept %(days)s days after their "
            "run (KOPPEL_LOG_RETENTION_DAYS). Search the activity log for the record's key."
        )
        self.params = {"id": outcome_id, "days": retention_days}
        super().__init__(self.message_id % self.params)


@dataclass(frozen=True)
class OutcomeFilter:
    """What the log is narrowed to; None (or empty) leaves a filter off."""

    key: str | None = None
    """A record key (SKU, e-mail address, order number) or a source or target key."""
    flow_id: int | None = None
    outcome: OutcomeKind | None = None
    run_id: str | None = None

    @property
    def active(self) -> bool:
        return any(
            value is not None for value in (self.key, self.flow_id, self.outcome, self.run_id)
        )


@dataclass(frozen=True)
class PayloadField:
    """One leaf of a payload: its path (`lines[0].sku`) and its value as JSON text."""

    path: str
    value: str


@dataclass(frozen=True)
class ActivityEntry:
    """One record's outcome in one run, with its flow's name and the run's number."""

    id: int
    run_id: str
    run_number: int | None
    flow_id: int
    flow: str
    source_key: str
    target_key: str | None
    outcome: OutcomeKind
    reason: str | None
    warnings: tuple[str, ...]
    created_at: datetime
    payload_kept: bool
    """False when the payloads are gone (KOPPEL_PAYLOAD_EXCERPTS off when it ran)."""
    source: Any
    """What came from the source (an excerpt: long texts cut); None when not kept."""
    sent: Any
    """What was sent to the target; None when nothing was (a skip, a failure before the write)."""

    def fields(self, side: str) -> tuple[PayloadField, ...]:
        """The leaves of the source (`side="source"`) or sent payload, to read side by side."""
        value = self.source if side == "source" else self.sent
        if value is None:
            return ()
        return tuple(PayloadField(path, _json(item)) for path, item in flatten(value))


@dataclass(frozen=True)
class ActivityPage:
    entries: tuple[ActivityEntry, ...]
    next_before: int | None
    """Pass as `before` for the next (older) page; None when this page is the last."""
    run: RunView | None = None
    """The run the log is narrowed to, if it is."""


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _entry(
    outcome: Outcome, flow_names: Mapping[int, str], run_numbers: Mapping[str, int | None]
) -> ActivityEntry:
    excerpt = outcome.payload_excerpt
    return ActivityEntry(
        id=outcome.id,
        run_id=outcome.run_id,
        run_number=run_numbers.get(outcome.run_id),
        flow_id=outcome.flow_id,
        flow=flow_names.get(outcome.flow_id, "?"),
        source_key=outcome.source_key,
        target_key=outcome.target_key,
        outcome=outcome.outcome,
        reason=outcome.reason,
        warnings=tuple(outcome.warnings),
        created_at=outcome.created_at,
        payload_kept=excerpt is not None,
        source=None if excerpt is None else excerpt.get("source"),
        sent=None if excerpt is None else excerpt.get("sent"),
    )


def search(
    store: Store,
    where: OutcomeFilter,
    *,
    before: int | None = None,
    limit: int = DEFAULT_LIMIT,
) -> ActivityPage:
    """The workspace's outcomes newest first, narrowed by `where`. A flow or run that is not
    the workspace's is NotFound, like one that does not exist."""
    flows = {flow.id: flow.name for flow in store.flows.list()}
    if where.flow_id is not None and where.flow_id not in flows:
        raise NotFound(f"no flow {where.flow_id}; choose one of the workspace's flows")
    chosen_run = None if where.run_id is None else run(store, where.run_id)
    key = where.key.strip() if where.key else None
    found = store.outcomes.search(
        flow_ids=None if where.flow_id is None else [where.flow_id],
        run_id=where.run_id,
        outcome=where.outcome,
        key=key or None,
        before_id=before,
        limit=limit + 1,
    )
    page = found[:limit]
    numbers = store.runs.numbers([outcome.run_id for outcome in page])
    entries = tuple(_entry(outcome, flows, numbers) for outcome in page)
    return ActivityPage(entries, page[-1].id if len(found) > limit else None, chosen_run)


def entry(store: Store, outcome_id: int, *, retention_days: int) -> ActivityEntry:
    """One outcome with its payloads. One that is gone was older than the retention window
    (KOPPEL_LOG_RETENTION_DAYS), or is not the workspace's: EntryExpired says so."""
    found = store.outcomes.get(outcome_id)
    if found is None:
        raise EntryExpired(outcome_id, retention_days)
    flows = {flow.id: flow.name for flow in store.flows.list()}
    return _entry(found, flows, store.runs.numbers([found.run_id]))


__all__ = [
    "DEFAULT_LIMIT",
    "ActivityEntry",
    "ActivityPage",
    "EntryExpired",
    "OutcomeFilter",
    "PayloadField",
    "entry",
    "search",
]
