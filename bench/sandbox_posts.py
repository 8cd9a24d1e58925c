"""`python -m bench sandbox`: what the AccountView sandbox spends on a posted row, nothing else.

The benchmarks run the sandboxes on the same two cores as the sync process, so the sandbox's
own work per call is part of every figure at latency 50 ms (the printed "service time"). This
measures its write path alone, in this process: pages of 500 rows posted into an empty company
(20 pages of new rows, then 5 pages again, which update), through the same `run_post` an HTTP
POST reaches, whose answer renders every posted row: articles as a products run posts them
(ARTICLE, 22 fields), and debtors as the customers and orders runs do (CONTACT, 189 fields,
numbered by the sandbox when new). Printed per kind: CPU per row, and cProfile's count of
Python function calls and SQL statements per row (a second pass), figures the load of the
machine does not move.
"""

from __future__ import annotations

import cProfile
import pstats
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from koppel.sandbox.accountview import AccountViewSandbox

__all__ = ["SandboxPostFigures", "format_sandbox_posts", "run_sandbox_posts"]

PAGE = 500
NEW_PAGES = 20
UPDATED_PAGES = 5


@dataclass(frozen=True)
class SandboxPostFigures:
    kind: str
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


def _debtors(page: int) -> list[dict[str, Any]]:
    """A page of debtors with the fields the customers flow posts on create, without SUB_NR
    for new ones (the sandbox numbers them) and with it for the pages posted again."""
    return [
        {
            "ACCT_NR": "1210",
            "SRC_CODE": f"K{page:02d}{n:04d}",
            "ACCT_NAME": f"Klant {page}-{n} B.V.",
            "MAIL_BUS": f"klant{page}-{n}@example.nl",
            "TEL_BUS": "030 123 45 67",
            "ADDRESS1": f"Dorpsstraat {n}",
            "ST_STREET": "Dorpsstraat",
            "ST_NR": str(n),
            "POST_CODE": "3511 AB",
            "CITY": "Utrecht",
            "CNT_CODE": "NL",
        }
        for n in range(PAGE)
    ]


_KINDS: dict[str, tuple[str, Callable[[int], list[dict[str, Any]]]]] = {
    "articles": ("ARTICLE", _articles),
    "debtors": ("CONTACT", _debtors),
}


def _post_all(sandbox: AccountViewSandbox, kind: str) -> int:
    table, page_of = _KINDS[kind]
    numbers: dict[str, str] = {}
    for page in range(NEW_PAGES):
        answer = sandbox.write(table, page_of(page))
        if table == "CONTACT":
            numbers.update({row["MAIL_BUS"]: row["SUB_NR"] for row in answer[table]})
    for page in range(UPDATED_PAGES):
        rows = page_of(page)
        if table == "CONTACT":
            rows = [{**row, "SUB_NR": numbers[row["MAIL_BUS"]]} for row in rows]
        sandbox.write(table, rows)
    return (NEW_PAGES + UPDATED_PAGES) * PAGE


def _empty_sandbox() -> AccountViewSandbox:
    sandbox = AccountViewSandbox(seed=7)
    sandbox.generate(0, seed=7)
    return sandbox


def _figures(kind: str) -> SandboxPostFigures:
    sandbox = _empty_sandbox()
    started = time.process_time()
    rows = _post_all(sandbox, kind)
    cpu = time.process_time() - started
    profile = cProfile.Profile()
    profile.runcall(_post_all, _empty_sandbox(), kind)
    stats = pstats.Stats(profile)
    calls = sum(entry[1] for entry in stats.stats.values())  # type: ignore[attr-defined]
    statements = sum(
        entry[1]
        for (_, _, name), entry in stats.stats.items()  # type: ignore[attr-defined]
        if name == "<method 'execute' of 'sqlite3.Connection' objects>"
    )
    return SandboxPostFigures(kind, rows, cpu / rows * 1e6, calls / rows, statements / rows)


def run_sandbox_posts() -> list[SandboxPostFigures]:
    return [_figures(kind) for kind in _KINDS]


def format_sandbox_posts(figures: list[SandboxPostFigures]) -> str:
    lines = [
        f"== sandbox: AccountView posts of pages of {PAGE} "
        f"({NEW_PAGES} pages new, {UPDATED_PAGES} again)"
    ]
    for kind in figures:
        lines.append(
            f"  {kind.kind}: {kind.rows:,} rows; CPU {kind.cpu_us_per_row:.0f} us per row; "
            f"per row {kind.calls_per_row:.0f} Python function calls, "
            f"{kind.statements_per_row:.1f} SQL statements"
        )
    return "\n".join(lines)
