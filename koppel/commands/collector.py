"""The cyclic garbage collector paused while the command line imports what it runs.

A module of its own, importing nothing but the standard library, so that `koppel.cli` can pause
the collector before its own imports (Typer, Rich, pydantic and the settings: 84 of the 135
collections an idle sync made, 40 to 50 ms of its CPU, were during them).
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """Imports a command's modules without the cyclic garbage collector running meanwhile.

    The imports of a sync make some 125,000 objects that live as long as the process; the
    collector, triggered by their number, scanned them again and again while they were made
    (0.3 s of CPU of a 2 s start, freeing almost nothing). What they made is then frozen
    (`gc.freeze`), so that the run's collections do not scan it all again either: it would
    otherwise go through each younger generation and make the next full collection come early.
    A command that imports nothing new (the second one of a test's process) freezes nothing:
    freezing also keeps any garbage of before for good."""
    enabled = gc.isenabled()
    modules = len(sys.modules)
    gc.disable()
    try:
        yield
    finally:
        if len(sys.modules) > modules:
            gc.freeze()
        if enabled:
            gc.enable()


__all__ = ["collector_paused"]
