"""The per-record baseline: how a hosted connector moves the same records, for comparison.

Products: for each sellable article (a simple product, or each variant of a configurable one)
it looks the article up by its code, then posts it as a one-row write: two AccountView calls
per record, with 8 records in flight (each its look-up and its post in sequence).

Orders: for each order it reads the order's relation from Parts Pim, looks the debtor up by
e-mail address and posts it when there is none, looks each line's article up (the shipping
article too when the order has shipping costs), then posts the order as one row with its
lines: about seven calls per order, one after the other, 8 orders in flight. Orders of one
customer wait for each other at the debtor (a lock per e-mail address), or two of them would
both post it.

Either reads Parts Pim page by page (500 records) and starts the page's records as soon as the
page is there. It runs in a process of its own, so its CPU time is its own, over Koppel's own
HTTP clients (the same retries, auth and TCP settings): what differs from Koppel is the pattern
of calls.

The rows are the least a hosted connector sends: an article's code, description (cut to
AccountView's 40 characters), sell price excluding VAT and EAN; a debtor's name, search code,
e-mail address, collective account and address; an order's reference, date, debtor and lines
(article, quantity, price); no mapping engine, no activity log, no links, so its CPU per record
is a floor for a per-record connector, not a like-for-like one. It writes into an AccountView
company of its own (a fresh sandbox of the same seed; for orders with the catalogue's articles
in it, as after a products sync), so it starts from the same company as Koppel's first run, and
reads the same Parts Pim sandbox.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import resource
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from multiprocessing.connection import Connection
from typing import Any

from koppel.connectors.base import ClientLimits
from koppel.connectors.registry import ClientConnector, build_connector

__all__ = ["BASELINES", "BaselineFigures", "catalogue_articles", "run_baseline"]

_TIMEOUT_S = 7200.0
_PAGE_SIZE = 500
_COLLECTIVE_ACCOUNT = "1210"
"""The debtors' collective account, as Koppel's setting debtor_collective_account has it."""


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


def _source(pim: dict[str, Any], limits: ClientLimits) -> ClientConnector:
    return build_connector("partspim", pim["base_url"], {"api_key": pim["api_key"]}, limits=limits)


def _target(av: dict[str, Any], limits: ClientLimits) -> ClientConnector:
    return build_connector(
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


async def catalogue_articles(pim: dict[str, Any]) -> list[dict[str, Any]]:
    """The article rows of the whole catalogue, for an AccountView company set up as after a
    products sync (the orders baseline posts orders of these articles); as a sandbox takes
    rows before it serves, with JSON numbers."""
    source = _source(pim, ClientLimits())
    try:
        return [
            {**article, "PX_SELL": float(article["PX_SELL"])}
            async for page in source.read("products", page_size=_PAGE_SIZE)
            for product in page
            for article in _articles(product)
        ]
    finally:
        await source.aclose()


PerRecord = Callable[[ClientConnector, ClientConnector, dict[str, Any]], Awaitable[list[str]]]
"""One record synced the per-record way; returns its failures."""


async def _article(
    _source: ClientConnector, target: ClientConnector, article: dict[str, Any]
) -> list[str]:
    code = article["ART_CODE"]
    found = await target.lookup("articles", "ART_CODE", [code])
    results = await target.write("articles", [article], found={code: found[0] if found else None})
    return [str(r.error) for r in results if r.error]


def _debtor(relation: dict[str, Any], email: str) -> dict[str, Any]:
    person = relation.get("contact_person") or relation
    name = relation.get("company_name") or " ".join(
        str(part) for part in (person.get("first_name"), person.get("last_name")) if part
    )
    address = relation.get("billing_address") or {}
    street = " ".join(
        str(part)
        for part in (address.get("street"), address.get("house_number"))
        if part not in (None, "")
    )
    return {
        "ACCT_NAME": str(name)[:40],
        "SRC_CODE": "".join(c for c in str(name).upper() if c.isascii() and c.isalnum())[:10]
        or "-",
        "MAIL_BUS": email,
        "ACCT_NR": _COLLECTIVE_ACCOUNT,
        "ADDRESS1": street[:80],
        "POST_CODE": str(address.get("postcode") or "")[:10],
        "CITY": str(address.get("city") or "")[:35],
        "CNT_CODE": str(address.get("country") or "")[:2],
    }


def _order_lines(order: dict[str, Any], shipping_article: str) -> list[dict[str, Any]]:
    lines = [
        {
            "ART_CODE": str(line["sku"]).strip().upper(),
            "ORD_QTY": Decimal(str(line["quantity"])),
            "ART_PX": Decimal(str(line.get("price") or "0")),
        }
        for line in order.get("lines") or []
    ]
    shipping = Decimal(str(order.get("shipping_cost") or "0"))
    if shipping:
        lines.append({"ART_CODE": shipping_article, "ORD_QTY": Decimal(1), "ART_PX": shipping})
    return lines


def _order_syncer(shipping_article: str) -> PerRecord:
    """The per-record orders connector; orders of one e-mail address take turns at the debtor."""
    debtor_locks: dict[str, asyncio.Lock] = {}

    async def order(
        source: ClientConnector, target: ClientConnector, order: dict[str, Any]
    ) -> list[str]:
        label = f"order {order.get('number')}"
        relations = await source.lookup("relations", "id", [str(order["relation_id"])])
        if not relations:
            return [f"{label}: relation {order['relation_id']} does not exist"]
        relation = relations[0]
        email = str(relation.get("email") or "").strip()
        if not email:
            return [f"{label}: its relation has no e-mail address"]
        async with debtor_locks.setdefault(email.lower(), asyncio.Lock()):
            debtors = await target.lookup("debtors", "MAIL_BUS", [email])
            if debtors:
                number = str(debtors[0]["SUB_NR"])
            else:
                [posted] = await target.write(
                    "debtors", [_debtor(relation, email)], found={email: None}
                )
                if posted.error is not None or not posted.target_id:
                    return [f"{label}: debtor: {posted.error}"]
                number = posted.target_id
        lines = _order_lines(order, shipping_article)
        for line in lines:
            if not await target.lookup("articles", "ART_CODE", [line["ART_CODE"]]):
                return [f"{label}: article {line['ART_CODE']} is not in AccountView"]
        reference = str(order["number"])
        ordered = date.fromisoformat(str(order["order_date"]))
        row = {
            "ORD_REF": reference,
            "ORD_DATE": datetime(ordered.year, ordered.month, ordered.day),
            "RPL_INV": number,
            "SO_LINE": lines,
        }
        results = await target.write("sales_orders", [row], found={reference: None})
        return [f"{label}: {r.error}" for r in results if r.error]

    return order


@dataclass(frozen=True)
class _Baseline:
    source_entity: str
    """The Parts Pim entity read page by page."""
    records: Callable[[dict[str, Any]], list[dict[str, Any]]]
    """The records one source record is (a configurable product: an article per variant)."""
    syncer: Callable[[str], PerRecord]
    """The per-record sync, made with the AccountView code of the shipping article."""


BASELINES: dict[str, _Baseline] = {
    "products": _Baseline("products", _articles, lambda _shipping: _article),
    "orders": _Baseline("orders", lambda order: [order], _order_syncer),
}
"""The per-record connector of each flow entity the bench compares."""


async def _sync(
    entity: str,
    pim: dict[str, Any],
    av: dict[str, Any],
    concurrency: int,
    shipping_article: str,
) -> tuple[int, list[str]]:
    limits = ClientLimits(concurrency=concurrency)
    source, target = _source(pim, limits), _target(av, limits)
    baseline = BASELINES[entity]
    per_record = baseline.syncer(shipping_article)
    slots = asyncio.Semaphore(concurrency)
    failures: list[str] = []

    async def one(record: dict[str, Any]) -> None:
        async with slots:
            failures.extend(await per_record(source, target, record))

    tasks: list[asyncio.Task[None]] = []
    try:
        async for page in source.read(baseline.source_entity, page_size=_PAGE_SIZE):
            for source_record in page:
                tasks.extend(asyncio.ensure_future(one(r)) for r in baseline.records(source_record))
        await asyncio.gather(*tasks)
    finally:
        await source.aclose()
        await target.aclose()
    return len(tasks), failures


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _main(
    entity: str,
    pim: dict[str, Any],
    av: dict[str, Any],
    concurrency: int,
    shipping_article: str,
    conn: Connection,
) -> None:
    started, cpu_started = time.perf_counter(), _cpu_seconds()
    records, failures = asyncio.run(_sync(entity, pim, av, concurrency, shipping_article))
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


def run_baseline(
    entity: str,
    pim: dict[str, Any],
    av: dict[str, Any],
    concurrency: int,
    *,
    shipping_article: str = "",
) -> BaselineFigures:
    """Run the baseline of a flow entity (`BASELINES`) in a process of its own and wait for its
    figures; `shipping_article`: the AccountView article of orders' shipping costs."""
    context = multiprocessing.get_context("spawn")
    receiving, sending = context.Pipe(duplex=False)
    process = context.Process(
        target=_main,
        args=(entity, pim, av, concurrency, shipping_article, sending),
        name="koppel-baseline",
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
