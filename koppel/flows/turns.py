"""Batches in flight together, and the parts of each that must not overlap the one before.

A run keeps several pages in flight (`koppel.engine.flow_jobs.PAGES_AHEAD` after the engine's
batch): while one records, the next posts, the one after it looks up and the next is read.
Two parts of a batch are taken in turns, in page order (a turn opens once the same turn of the
page before has closed):
- deciding: what a batch decides from the target and from our links (which records exist,
  which target keys are taken, which categories still need a group, which debtors exist) must
  see every write the batch before it made or claimed by a pending link (guarantee 2), so the
  next batch's plan for a key the previous batch is writing finds that claim or that record
  and never makes a second one. The look-up in the target may be asked before the turn; the
  plan then asks again for every key that a link names by then (`TargetWriter.plan`). A write
  whose key the target gives only when it takes the post (a debtor's number) is made and
  recorded within this turn, so the next batch finds its link;
- writing: the main posts to the target (articles, orders) go out one batch at a time, so the
  main posts of at most one batch are ever half-written.
A worker that is stopped or taken over while a request is on its way sends nothing after it:
each request made in either turn is sent only once `Store.check_owner` has found the run still
its worker's, and the recording is refused by the fence. The rest (reading, mapping,
recording) overlaps freely: pages hold different source records. A batch's recording waits
until the next batch's post is on its way (`Turn.next_sent`).

Nothing here moves the run's state: the engine still checkpoints a page only once it is
recorded, after every page before it, so a crash with pages in flight resumes at the first
one not recorded and syncs the others again (each is idempotent, as any batch cut short is).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, runtime_checkable

from koppel.connectors.base import Record
from koppel.connectors.requests_out import RequestsOut

__all__ = ["TakesTurns", "Turn", "Turns"]


class Turn:
    """One batch's turn; it opens when the turn before it has closed (or there is none)."""

    def __init__(
        self, before: Turn | None = None, *, before_request: Callable[[], None] | None = None
    ) -> None:
        self._before = before
        self._closed = asyncio.Event()
        self._taken = asyncio.Event()
        self._out = RequestsOut(before_request)
        """The requests the batch makes in its turn: on their way, work that makes none goes
        on (`next_sent`). `before_request` is called before each of them is sent; what it
        raises ends the batch there (the fence of a run taken over, before a post)."""
        self._next: Turn | None = None
        if before is not None:
            before._next = self

    async def __aenter__(self) -> Turn:
        if self._before is not None:
            await self._before._closed.wait()
            self._before = None  # the chain is not kept alive behind a long run
        self._out.__enter__()
        self._taken.set()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._out.__exit__(kind, error, trace)
        self.close()

    def close(self) -> None:
        """Let the next batch take its turn; also for a batch that ended without taking its
        own (nothing to sync, or it failed before), so the next one is never kept waiting."""
        self._taken.set()
        self._out.done()
        self._closed.set()

    async def next_sent(self) -> None:
        """Return once the batch after this one has taken this turn and the requests it makes
        in it are on their way (or it closed the turn); at once when no batch is in flight
        after this one. Our own work that waits for this runs while the API answers them,
        instead of delaying them (`koppel.connectors.requests_out`)."""
        if self._next is not None:
            await self._next._taken.wait()
            await self._next._out.wait()


@dataclass(frozen=True)
class Turns:
    """A page's turns to decide and to write."""

    decide: Turn
    write: Turn

    @classmethod
    def after(
        cls, before: Turns | None, *, before_each_request: Callable[[], None] | None = None
    ) -> Turns:
        """The turns of the page after `before` (None: a page with none in flight before it);
        `before_each_request` is called before each request the page makes in either turn."""
        return cls(
            Turn(before.decide if before else None, before_request=before_each_request),
            Turn(before.write if before else None, before_request=before_each_request),
        )

    def close(self) -> None:
        self.decide.close()
        self.write.close()


@runtime_checkable
class TakesTurns(Protocol):
    """A phase's sync that takes its turns only for the parts that must not overlap the batch
    before it; a sync without this method is run whole within both (one batch at a time)."""

    async def sync_in_turns(
        self, run_id: str, records: Sequence[Record], turns: Turns
    ) -> dict[str, int]: ...
