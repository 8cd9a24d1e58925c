"""The per-record baseline: how a hosted connector moves the same catalogue, for comparison.

For each sellable article (a simple product, or each variant of a configurable one) it looks
the article up by its code, then posts it as a one-row write: two AccountView calls per
record, with 8 records in flight (each its look-up and its post in sequence). It reads Parts
Pim page by page (500 products) and starts the page's records as soon as the page is there.
It runs in a process of its own, so its CPU time is its own, over Koppel's own HTTP clients
(the same retries, auth and TCP settings): what differs from Koppel is the pattern of calls.

The article row is the least a hosted connector sends: code, description (cut to AccountView's
40 characters), sell price excluding VAT and EAN; no mapping engine, no activity log, no links,
so its CPU per record is a floor for a per-record connector, not a like-for-like one. It
writes into an AccountView company of its own (a fresh sandbox of the same seed), so it starts
from the same empty company as Koppel's first run, and reads the same Parts Pim sandbox.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import resource
import time
from dataclasses import dataclass
from decimal import Decimal
from multiprocessing.connection import Connection
from typing import Any

__all__ = ["BaselineFigures", "run_baseline"]

_TIMEOUT_S = 7200.0


@dataclass(frozen=True)
class BaselineFigures:
    seconds: float
    cpu_seconds: float
    records: int
    failed: int
    first_failure: str | None


def _articles(product: dict[str, Any]) -> list[dict[str, Any]]:
    """The product's articles: itself, or each of its variants."""
    variants = product.get("variants") or []
    sources = variants if product.get("type") == "configurable" and variants else [product]
    articles = []
    for source in sources:
        price = source.get("price_excl_vat") or product.get("price_excl_vat")
        article: dict[str, Any] = {
            "ART_CODE": str(source["sku"]),
            "ART_DESC1": str(source.get("name") or product["name"])[:40],
            "PX_SELL": Decimal(str(price or "0")),
        }
        if source.get("ean") or product.get("ean"):
            article["EAN_CODE"] = str(source.get("ean") or product.get("ean"))
        articles.append(article)
    return articles


async def _sync(pim: dict[str, Any], av: dict[str, Any], concurrency: int) -> tuple[int, list[str]]:
    from koppel.connectors.base import ClientLimits
    from koppel.connectors.registry import build_connector

    limits = ClientLimits(concurrency=concurrency)
    source = build_connector(
        "partspim", pim["base_url"], {"api_key": pim["api_key"]}, limits=limits
    )
    target = build_connector(
        "accountview",
        av["base_url"],
        {
            "client_id": av["client_id"],
            "client_secret": av["client_secret"],
            "company_id": av["company_id"],
            "refresh_token": av["refresh_token"],
            "access_token": av["access_token"],
            "expires_at": time.time() + float(av["expires_in"]),
        },
        limits=limits,
    )
    slots = asyncio.Semaphore(concurrency)
    failures: list[str] = []

    async def one(article: dict[str, Any]) -> None:
        async with slots:
            code = article["ART_CODE"]
            found = await target.lookup("articles", "ART_CODE", [code])
            results = await target.write(
                "articles", [article], found={code: found[0] if found else None}
            )
            failures.extend(str(r.error) for r in results if r.error)

    tasks: list[asyncio.Task[None]] = []
    try:
        async for page in source.read("products", page_size=500):
            for product in page:
                tasks.extend(asyncio.ensure_future(one(a)) for a in _articles(product))
        await asyncio.gather(*tasks)
    finally:
        await source.aclose()
        await target.aclose()
    return len(tasks), failures


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _main(pim: dict[str, Any], av: dict[str, Any], concurrency: int, conn: Connection) -> None:
    started, cpu_started = time.perf_counter(), _cpu_seconds()
    records, failures = asyncio.run(_sync(pim, av, concurrency))
    conn.send(
        BaselineFigures(
            seconds=time.perf_counter() - started,
            cpu_seconds=_cpu_seconds() - cpu_started,
            records=records,
            failed=len(failures),
            first_failure=failures[0] if failures else None,
        )
    )
    conn.close()


def run_baseline(pim: dict[str, Any], av: dict[str, Any], concurrency: int) -> BaselineFigures:
    """Run the baseline in a process of its own and wait for its figures."""
    context = multiprocessing.get_context("spawn")
    receiving, sending = context.Pipe(duplex=False)
    process = context.Process(
        target=_main, args=(pim, av, concurrency, sending), name="koppel-baseline"
    )
    process.start()
    sending.close()
    try:
        if not receiving.poll(_TIMEOUT_S):
            raise RuntimeError("the baseline did not finish in time")
        try:
            figures = receiving.recv()
        except EOFError:
            raise RuntimeError(f"the baseline ended (exit code {process.exitcode})") from None
    finally:
        process.join(timeout=60)
        if process.is_alive():
            process.terminate()
    assert isinstance(figures, BaselineFigures)
    return figures
