"""Batches in flight together, and the parts of each that must not overlap the one before.

A run keeps two pages in flight: while one posts and records, the next is read, mapped and
looked up. Two parts of a batch are taken in turns, in page order (a turn opens once the same
turn of the page before has closed):
- deciding: what a batch decides from the target and from our links (which records exist,
  which target keys are taken, which categories still need a group) must see every write the
  batch before it claimed by a pending link (guarantee 2), so the next batch's look-up of a key
  the previous batch is writing finds that claim and never makes a second record;
- writing: the posts to the target go out one batch at a time, so at most one batch is ever
  half-written, and a worker that is stopped or taken over while a post is on its way sends
  nothing after it (the next batch's post waits, and its recording is refused by the fence).
The rest (reading, mapping, recording) overlaps freely: pages hold different source records.

Nothing here moves the run's state: the engine still checkpoints a page only once it is
recorded, after every page before it, so a crash with two pages in flight resumes at the first
one not recorded and syncs both again (each is idempotent, as any batch cut short is).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, runtime_checkable

from koppel.connectors.base import Record

__all__ = ["TakesTurns", "Turn", "Turns"]


class Turn:
    """One batch's turn; it opens when the turn before it has closed (or there is none)."""

    def __init__(self, before: Turn | None = None) -> None:
        self._before = before
        self._closed = asyncio.Event()
        self._taken = asyncio.Event()
        self._next: Turn | None = None
        if before is not None:
            before._next = self

    async def __aenter__(self) -> Turn:
        if self._before is not None:
            await self._before._closed.wait()
            self._before = None  # the chain is not kept alive behind a long run
        self._taken.set()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Let the next batch take its turn; also for a batch that ended without taking its
        own (nothing to sync, or it failed before), so the next one is never kept waiting."""
        self._taken.set()
        self._closed.set()

    async def next_taken(self) -> None:
        """Return once the batch after this one has taken this turn (or closed it without);
        at once when no batch is in flight after this one."""
        if self._next is not None:
            await self._next._taken.wait()


@dataclass(frozen=True)
class Turns:
    """A page's turns to decide and to write."""

    decide: Turn
    write: Turn

    @classmethod
    def after(cls, before: Turns | None) -> Turns:
        """The turns of the page after `before` (None: a page with none in flight before it)."""
        if before is None:
            return cls(Turn(), Turn())
        return cls(Turn(before.decide), Turn(before.write))

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
