"""`python -m bench sandbox`: what the AccountView sandbox spends on a posted row, nothing else.

The benchmarks run the sandboxes on the same two cores as the sync process, so the sandbox's
own work per call is part of every figure at latency 50 ms (the printed "service time"). This
measures its write path alone, in this process: pages of 500 articles posted into an empty
company as a products run posts them (20 pages of new articles, then 5 pages again, which
update), through the same `run_post` an HTTP POST reaches. Printed: CPU per row, and
cProfile's count of Python function calls and SQL statements per row (a second pass), figures
the load of the machine does not move.
"""

from __future__ import annotations

import cProfile
import pstats
import time
from dataclasses import dataclass
from typing import Any

from koppel.sandbox.accountview import AccountViewSandbox

__all__ = ["SandboxPostFigures", "format_sandbox_posts", "run_sandbox_posts"]

PAGE = 500
NEW_PAGES = 20
UPDATED_PAGES = 5


@dataclass(frozen=True)
class SandboxPostFigures:
    rows: int
    cpu_us_per_row: float
    calls_per_row: float
    statements_per_row: float


def _articles(page: int) -> list[dict[str, Any]]:
    """A page of articles with the fields the products flow posts, in two groups."""
    return [
        {
            "ART_CODE": f"A{page:03d}{n:04d}",
            "ART_DESC1": f"Remschijf {page}-{n} geventileerd",
            "AG_CODE": "G001" if n % 2 else "G002",
            "VAT_CODE": "1",
            "PX_SELL": 42.5 + n,
            "EAN_CODE": f"87{page:03d}{n:06d}",
            "UNIT_CODE": "ST",
        }
        for n in range(PAGE)
    ]


def _post_all(sandbox: AccountViewSandbox) -> int:
    pages = [*range(NEW_PAGES), *range(UPDATED_PAGES)]
    for page in pages:
        sandbox.write("ARTICLE", _articles(page))
    return len(pages) * PAGE


def run_sandbox_posts() -> SandboxPostFigures:
    sandbox = AccountViewSandbox(seed=7)
    sandbox.generate(0, seed=7)
    started = time.process_time()
    rows = _post_all(sandbox)
    cpu = time.process_time() - started
    sandbox = AccountViewSandbox(seed=7)
    sandbox.generate(0, seed=7)
    profile = cProfile.Profile()
    profile.runcall(_post_all, sandbox)
    stats = pstats.Stats(profile)
    calls = sum(entry[1] for entry in stats.stats.values())  # type: ignore[attr-defined]
    statements = sum(
        entry[1]
        for (_, _, name), entry in stats.stats.items()  # type: ignore[attr-defined]
        if name == "<method 'execute' of 'sqlite3.Connection' objects>"
    )
    return SandboxPostFigures(rows, cpu / rows * 1e6, calls / rows, statements / rows)


def format_sandbox_posts(figures: SandboxPostFigures) -> str:
    return "\n".join(
        [
            f"== sandbox: AccountView posts of {PAGE} articles "
            f"({NEW_PAGES} pages new, {UPDATED_PAGES} again), {figures.rows:,} rows",
            f"  CPU {figures.cpu_us_per_row:.0f} us per row; per row "
            f"{figures.calls_per_row:.0f} Python function calls, "
            f"{figures.statements_per_row:.1f} SQL statements",
        ]
    )
