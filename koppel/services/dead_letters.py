"""The records that failed and wait for a retry: listed, replayed with today's mapping and
settings, or discarded with a reason. Every replay and discard is written to the workspace's
audit log with the user as actor.

The CLI (`koppel dead-letters`, `koppel replay`), the web pages and the REST API all use these
functions; a replay started from the web runs on this process's engine and is waited for only
briefly (`REPLAY_WAIT_S`): its run shows the rest in the activity log.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from koppel.accounts.errors import N_
from koppel.accounts.users import require_admin
from koppel.engine.runner import FlowRunner
from koppel.errors import ErrorCategory, KoppelError
from koppel.services.errors import NotFound
from koppel.services.runs import check_flows_can_run
from koppel.store import DeadLetter, DeadLetterStatus, Flow, Store, User

REPLAY_WAIT_S = 20.0
"""How long a replay started from the web is waited for before the answer goes back."""
DISCARD_REASON_MAX = 500
LIST_LIMIT = 100


class DeadLetterRefused(KoppelError):
    """What was asked of the dead letters cannot be done as asked; the message says what to do.
    Its text is a catalogue entry (`message_id % params`), shown in the user's language."""

    category = ErrorCategory.CONFIGURATION

    def __init__(self, message_id: str, **params: str | int) -> None:
        self.message_id = message_id
        self.params = params
        super().__init__(message_id % params if params else message_id)


class NoEngineHere(DeadLetterRefused):
    """This server runs no flows (`koppel serve --no-worker`), so it cannot replay."""

    category = ErrorCategory.CONFLICT


@dataclass(frozen=True)
class DeadLetterView:
    id: int
    flow_id: int
    flow: str
    source_key: str
    reason: str
    attempts: int
    next_attempt_at: datetime
    since: datetime
    status: DeadLetterStatus = DeadLetterStatus.PENDING
    payload_kept: bool = True
    """False once the retention window cleared the record's copy (a replay reads it again)."""
    last_outcome_id: int | None = None
    """The record's newest activity entry (its failure, with the payloads), while kept."""


@dataclass(frozen=True)
class DeadLetterPage:
    letters: tuple[DeadLetterView, ...]
    next_after: int | None
    """Pass as `after` for the next page; None when this page is the last."""


@dataclass(frozen=True)
class ReplayStarted:
    """A replay run of one flow: finished (`finished`) or still going when the wait ended."""

    flow: str
    run_id: str
    dead_letters: int
    finished: bool


def _view(letter: DeadLetter, flow_name: str, last_outcome_id: int | None = None) -> DeadLetterView:
    return DeadLetterView(
        id=letter.id,
        flow_id=letter.flow_id,
        flow=flow_name,
        source_key=letter.source_key,
        reason=letter.reason,
        attempts=letter.attempts,
        next_attempt_at=letter.next_attempt_at,
        since=letter.created_at,
        status=letter.status,
        payload_kept=letter.payload is not None,
        last_outcome_id=last_outcome_id,
    )


def pending(
    store: Store, flows: Sequence[Flow], *, limit_per_flow: int = LIST_LIMIT
) -> list[DeadLetterView]:
    """The pending dead letters of these flows, flow by flow, oldest first within a flow."""
    return [
        _view(letter, flow.name)
        for flow in flows
        for letter in store.dead_letters.list(
            flow.id, status=DeadLetterStatus.PENDING, limit=limit_per_flow
        )
    ]


def waiting(
    store: Store, *, flow_id: int | None = None, after: int | None = None, limit: int = LIST_LIMIT
) -> DeadLetterPage:
    """The workspace's pending dead letters (of one flow, or all), oldest first, by key."""
    names = {flow.id: flow.name for flow in store.flows.list()}
    if flow_id is not None and flow_id not in names:
        raise NotFound(f"no flow {flow_id}; choose one of the workspace's flows")
    found = store.dead_letters.search(
        flow_ids=None if flow_id is None else [flow_id],
        status=DeadLetterStatus.PENDING,
        after_id=after,
        limit=limit + 1,
    )
    page = found[:limit]
    last: dict[tuple[int, str], int] = {}
    for letter_flow in {letter.flow_id for letter in page}:
        keys = [letter.source_key for letter in page if letter.flow_id == letter_flow]
        newest = store.outcomes.latest_ids(letter_flow, keys)
        last.update(((letter_flow, key), outcome_id) for key, outcome_id in newest.items())
    letters = tuple(
        _view(
            letter,
            names.get(letter.flow_id, "?"),
            last.get((letter.flow_id, letter.source_key)),
        )
        for letter in page
    )
    return DeadLetterPage(letters, page[-1].id if len(found) > limit else None)


def dead_letter(store: Store, dead_letter_id: int) -> DeadLetterView:
    found = store.dead_letters.get(dead_letter_id)
    if found is None:
        raise NotFound(f"no dead letter {dead_letter_id}; see the list of dead letters")
    flow = store.flows.get(found.flow_id)
    newest = store.outcomes.latest_ids(found.flow_id, [found.source_key])
    return _view(found, flow.name if flow else "?", newest.get(found.source_key))


def flows_to_replay(store: Store, flows: Sequence[Flow]) -> list[Flow]:
    """Those of the flows that have pending dead letters: the ones a replay runs."""
    return [
        flow
        for flow in flows
        if store.dead_letters.list(flow.id, status=DeadLetterStatus.PENDING, limit=1)
    ]


def _pending_letters(store: Store, ids: Sequence[int]) -> list[DeadLetterView]:
    """The chosen dead letters, each of the workspace and still waiting; else a clear error."""
    if not ids:
        raise DeadLetterRefused(N_("No dead letter is chosen; tick the ones to act on."))
    letters = [dead_letter(store, i) for i in dict.fromkeys(ids)]
    closed = [letter for letter in letters if letter.status is not DeadLetterStatus.PENDING]
    if closed:
        raise DeadLetterRefused(
            N_("%(keys)s no longer waits: it was synced or discarded already. Reload the list."),
            keys=", ".join(letter.source_key for letter in closed),
        )
    return letters


def _engine(runner: FlowRunner | None) -> FlowRunner:
    if runner is None:
        raise NoEngineHere(
            N_(
                "This server runs no flows (koppel serve --no-worker), so it cannot replay. "
                "Run koppel replay --flow NAME where the worker runs, or serve without "
                "--no-worker."
            )
        )
    return runner


async def replay(
    store: Store,
    runner: FlowRunner | None,
    user: User,
    *,
    dead_letter_ids: Sequence[int] = (),
    flow_id: int | None = None,
) -> list[ReplayStarted]:
    """Replay the chosen dead letters, or (`flow_id`) every pending one of that flow, through
    today's mapping and settings: one replay run per flow, audited as `dead_letter.replay`."""
    require_admin(user)
    if flow_id is not None:
        page = waiting(store, flow_id=flow_id, limit=1)
        if not page.letters:
            raise DeadLetterRefused(N_("This flow has no dead letters waiting; nothing to replay."))
        chosen: dict[int, list[DeadLetterView]] = {flow_id: []}
    else:
        chosen = {}
        for letter in _pending_letters(store, dead_letter_ids):
            chosen.setdefault(letter.flow_id, []).append(letter)
    engine = _engine(runner)
    flows = [flow for flow in store.flows.list() if flow.id in chosen]
    await check_flows_can_run(store, flows)
    started: list[ReplayStarted] = []
    for flow in flows:
        letters = chosen[flow.id]
        run_id = await engine.start_replay(flow.id, [letter.id for letter in letters] or None)
        store.audit.record(
            user.tenant_id,
            actor=user.email,
            action="dead_letter.replay",
            subject=f"flow:{flow.id}",
            detail={
                "flow": flow.name,
                "run_id": run_id,
                "dead_letters": [letter.id for letter in letters] or "all",
                "source_keys": [letter.source_key for letter in letters],
            },
        )
        finished = False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(engine.follow(run_id)), REPLAY_WAIT_S)
            finished = True
        started.append(ReplayStarted(flow.name, run_id, len(letters), finished))
    return started


def discard(
    store: Store, user: User, dead_letter_ids: Sequence[int], reason: str
) -> list[DeadLetterView]:
    """Give up on the chosen dead letters (they are not retried again), each audited as
    `dead_letter.discard` with the reason; a record that fails again starts over."""
    require_admin(user)
    reason = " ".join(reason.split())
    if not reason:
        raise DeadLetterRefused(N_("Say why the dead letters are discarded: the reason is kept."))
    if len(reason) > DISCARD_REASON_MAX:
        raise DeadLetterRefused(
            N_("The reason is longer than %(max)s characters."), max=DISCARD_REASON_MAX
        )
    letters = _pending_letters(store, dead_letter_ids)
    with store.transaction() as tx:
        for letter in letters:
            tx.dead_letters.resolve_many(
                letter.flow_id, [letter.source_key], status=DeadLetterStatus.ABANDONED
            )
            tx.audit.record(
                user.tenant_id,
                actor=user.email,
                action="dead_letter.discard",
                subject=f"dead_letter:{letter.id}",
                detail={"flow": letter.flow, "source_key": letter.source_key, "reason": reason},
            )
    return letters


__all__ = [
    "REPLAY_WAIT_S",
    "DeadLetterPage",
    "DeadLetterRefused",
    "DeadLetterView",
    "NoEngineHere",
    "ReplayStarted",
    "dead_letter",
    "discard",
    "flows_to_replay",
    "pending",
    "replay",
    "waiting",
]
