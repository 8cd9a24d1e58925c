"""Generated companies' books: realistic Dutch and German debtors, parts and orders.

Rows are inserted in bulk (not through the API's row-by-row checks) so 100,000 articles take
seconds; the generator only produces values the API's rules accept.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from faker import Faker

from koppel.sandbox.accountview import assumptions
from koppel.sandbox.accountview.store import COMPANY, format_rec_id, quote, table_sql

FIXTURE_ORDER = (
    "VAT",
    "PAY_COND",
    "PAY_MTH",
    "EMPLOYEE",
    "ART_GRP",
    "ARTICLE",
    "CONTACT",
    "DEL_ADDR",
    "SO_HDR",
)
"""Tables in the order their rows may refer to each other (fixtures are loaded in this order)."""

_CHUNK = 2000

_VAT = (
    ("0", "Geen BTW", 0.0, 0, False),
    ("1", "BTW laag tarief", 9.0, 1, False),
    ("2", "BTW hoog tarief", 21.0, 2, False),
    ("3", "BTW verlegd", 0.0, 2, True),
    ("4", "Export buiten de EU", 0.0, 0, False),
)
_PAY_COND = (
    ("01", "Betaling binnen 14 dagen", 14, 0, 0.0),
    ("02", "Betaling binnen 30 dagen", 30, 0, 0.0),
    ("03", "Contante betaling", 0, 0, 0.0),
    ("04", "30 dagen, 2% bij betaling binnen 8 dagen", 30, 8, 2.0),
)
_PAY_MTH = (
    ("IDEAL", "iDEAL"),
    ("BANK", "Bankoverschrijving"),
    ("PIN", "Pinbetaling"),
    ("CONTANT", "Contant"),
    ("CREDITCARD", "Creditcard"),
    ("PAYPAL", "PayPal"),
)
_GROUPS = (
    "Bouten",
    "Moeren",
    "Ringen",
    "Schroeven",
    "Lagers",
    "Afdichtingen",
    "Filters",
    "Riemen",
    "Kettingen",
    "Tandwielen",
    "Veren",
    "Slangen",
    "Koppelingen",
    "Kabels",
    "Schakelaars",
    "Sensoren",
    "Relais",
    "Zekeringen",
    "Pompen",
    "Kleppen",
    "Gereedschap",
    "Lijmen",
    "Smeermiddelen",
    "Verlichting",
    "Accu's",
)
_MATERIALS = ("RVS", "Staal", "Messing", "Nylon", "Verzinkt", "Aluminium", "Koper", "Rubber")
_UNITS = ("ST", "ST", "ST", "DOOS", "M", "KG", "SET")


def _ean13(rng: random.Random) -> str:
    digits = [8, 7] + [rng.randrange(10) for _ in range(10)]
    total = sum(d * (3 if i % 2 else 1) for i, d in enumerate(digits))
    return "".join(map(str, digits)) + str((10 - total % 10) % 10)


def _stamp(rng: random.Random, now: datetime) -> str:
    moment = now - timedelta(seconds=rng.randrange(1, 365 * 24 * 3600))
    return moment.strftime(assumptions.DATETIME_FORMAT)


def _insert_many(
    conn: sqlite3.Connection, company: str, table: str, rows: Iterable[dict[str, Any]]
) -> None:
    batch = list(rows)
    if not batch:
        return
    columns = list(batch[0])
    names = ", ".join([COMPANY, *(quote(c) for c in columns)])
    marks = ", ".join("?" for _ in range(len(columns) + 1))
    conn.executemany(
        f"INSERT INTO {table_sql(table)} ({names}) VALUES ({marks})",
        ([company, *(row[c] for c in columns)] for row in batch),
    )


def _audit(rng: random.Random, now: datetime) -> dict[str, Any]:
    inp = _stamp(rng, now)
    cng = max(inp, _stamp(rng, now))
    return {
        "INP_DATE": inp,
        "CNG_DATE": cng,
        "CNG_NR": rng.randint(1, 5),
        "INP_USR": "ADMIN",
        "CNG_USR": "ADMIN",
    }


def generate_company(
    conn: sqlite3.Connection,
    company: str,
    products: int,
    seed: int,
    now_text: str,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Fill one company: reference data, groups, `products` articles, debtors, orders."""
    if conn.execute(f"SELECT 1 FROM {table_sql('VAT')} WHERE {COMPANY} = ?", (company,)).fetchone():
        raise ValueError(f"company {company} already has data; generate into an empty sandbox")
    rng = random.Random(seed)
    fakers = {"NL": Faker("nl_NL"), "DE": Faker("de_DE")}
    for number, faker in enumerate(fakers.values()):
        faker.seed_instance(seed * 10 + number)
    now = datetime.strptime(now_text, assumptions.DATETIME_FORMAT)
    rec_ids: dict[str, int] = {}

    def rec_id(table: str) -> str:
        rec_ids[table] = rec_ids.get(table, 0) + 1
        return format_rec_id(rec_ids[table])

    _insert_many(
        conn,
        company,
        "VAT",
        (
            {
                "VAT_CODE": code,
                "VAT_NAME": name,
                "VAT_PCT": pct,
                "VAT_TYPE": vat_type,
                "CALC_TYPE": 1,
                "IS_REVERSE": reverse,
                "VAT_ACCT": "1600",
                "FRM_CODE": "1A" if pct else "1E",
                **_audit(rng, now),
            }
            for code, name, pct, vat_type, reverse in _VAT
        ),
    )
    _insert_many(
        conn,
        company,
        "PAY_COND",
        (
            {
                "DISC_CODE": code,
                "DISC_DESC": desc,
                "CRED_DAYS": days,
                "DISC_DAYS": disc_days,
                "DISC_PCT": pct,
                **_audit(rng, now),
            }
            for code, desc, days, disc_days, pct in _PAY_COND
        ),
    )
    _insert_many(
        conn,
        company,
        "PAY_MTH",
        ({"PAY_TYPE": code, "PAY_DESC": desc, **_audit(rng, now)} for code, desc in _PAY_MTH),
    )
    employees = [("999999", "Webshop", "webshop@example.nl")]
    employees += [
        (str(1001 + i), fakers["NL"].name()[:40], f"medewerker{i + 1}@example.nl") for i in range(4)
    ]
    _insert_many(
        conn,
        company,
        "EMPLOYEE",
        (
            {
                "EMP_NR": nr,
                "EMP_NAME": name,
                "MAIL_BUS": mail,
                **_audit(rng, now),
            }
            for nr, name, mail in employees
        ),
    )
    group_count = max(5, min(len(_GROUPS), products // 20 or 1))
    groups = [(f"G{i + 1:03d}", _GROUPS[i]) for i in range(group_count)]
    _insert_many(
        conn,
        company,
        "ART_GRP",
        ({"AG_CODE": code, "AG_DESC": desc, **_audit(rng, now)} for code, desc in groups),
    )
    memos = [fakers["NL"].paragraph(nb_sentences=3) for _ in range(40)]
    article_codes: list[tuple[str, str, float]] = []
    for start in range(0, products, _CHUNK):
        batch = []
        for index in range(start, min(products, start + _CHUNK)):
            if index % 10 == 9:
                code = f"{rng.choice('ABCDEFGHKLMNPRSTVWXZ')}{rng.choice('ABCDEFGHKLMNPRSTVWXZ')}"
                code += f"-{index + 1:06d}"
            else:
                code = str(100000 + index)
            group = rng.choice(groups)
            desc = f"{group[1]} {rng.choice(_MATERIALS)} M{rng.choice((3, 4, 5, 6, 8, 10, 12))}"
            desc += f"x{rng.choice((10, 16, 20, 25, 30, 40, 50, 60))}"
            price = round(rng.uniform(0.25, 450), 2)
            avail = rng.randint(0, 500)
            article_codes.append((code, desc, price))
            batch.append(
                {
                    "ART_CODE": code,
                    "ART_DESC1": desc[:40],
                    "ART_DESC2": "",
                    "ART_MEMO": rng.choice(memos),
                    "AG_CODE": group[0],
                    "PX_SELL": price,
                    "COST_PX": round(price * rng.uniform(0.4, 0.8), 2),
                    "CUR_CODE": "EUR",
                    "VAT_CODE": "2" if rng.random() < 0.9 else "1",
                    "UNIT_CODE": rng.choice(_UNITS),
                    "EAN_CODE": _ean13(rng),
                    "QTY_AVAIL": avail,
                    "QTY_FREE2": max(0, avail - rng.randint(0, 20)),
                    "ART_BLK": rng.random() < 0.02,
                    **_audit(rng, now),
                }
            )
        _insert_many(conn, company, "ARTICLE", batch)
        if progress is not None:
            progress(min(products, start + _CHUNK), products)
    debtors = _debtors(conn, company, max(8, products // 20), rng, fakers, now, rec_id)
    _orders(conn, company, max(4, products // 10), rng, now, debtors, article_codes, rec_id)
    if progress is not None:
        progress(products, products)


def _debtors(
    conn: sqlite3.Connection,
    company: str,
    count: int,
    rng: random.Random,
    fakers: dict[str, Faker],
    now: datetime,
    rec_id: Callable[[str], str],
) -> list[tuple[str, str]]:
    """Debtors (companies with a contact person, and persons), some with delivery addresses."""
    contacts, addresses = [], []
    debtors: list[tuple[str, str]] = []
    for index in range(count):
        country = "NL" if rng.random() < 0.7 else "DE"
        faker = fakers[country]
        sub_nr = str(assumptions.FIRST_SUB_NR + index)
        is_company = rng.random() < 0.6
        person = faker.name()
        name = faker.company() if is_company else person
        street, number = faker.street_name(), str(faker.building_number())
        postcode = faker.postcode().upper()
        if country == "NL" and len(postcode) == 6:
            postcode = f"{postcode[:4]} {postcode[4:]}"
        mail = f"{faker.user_name()}.{sub_nr}@{faker.free_email_domain()}".lower()
        search = "".join(ch for ch in name.upper() if ch.isalnum())[:10] or "-"
        debtors.append((sub_nr, mail))
        contacts.append(
            {
                "SUB_NR": sub_nr,
                "ACCT_NR": "1210",
                "SRC_CODE": search,
                "ACCT_NAME": name[:40],
                "ADDRESS1": f"{street} {number}"[:80],
                "ST_STREET": street[:60],
                "ST_NR": number[:10],
                "POST_CODE": postcode[:10],
                "CITY": faker.city()[:35],
                "CNT_CODE": country,
                "COUNTRY": "Nederland" if country == "NL" else "Duitsland",
                "MAIL_BUS": mail[:50],
                "TEL_BUS": faker.phone_number()[:20],
                "MAIN_CONT": person[:40] if is_company else "",
                "VAT_CODE": "2",
                "DISC_CODE": rng.choice(_PAY_COND)[0],
                "EMP_NR": "999999",
                "CUR_CODE": "EUR",
                "COC_CODE": str(rng.randrange(10**7, 10**8)) if is_company else "",
                **_audit(rng, now),
            }
        )
        for _ in range(rng.choice((0, 0, 1, 1, 2))):
            street2, number2 = faker.street_name(), str(faker.building_number())
            addresses.append(
                {
                    "REC_ID": rec_id("DEL_ADDR"),
                    "SUB_NR": sub_nr,
                    "DEL_NAME": name[:40],
                    "ADDRESS1": f"{street2} {number2}"[:80],
                    "ST_STREET": street2[:60],
                    "ST_NR": number2[:10],
                    "POST_CODE": postcode[:10],
                    "CITY": faker.city()[:35],
                    "CNT_CODE": country,
                    "MAIL_BUS": mail[:50],
                    **_audit(rng, now),
                }
            )
    for start in range(0, len(contacts), _CHUNK):
        _insert_many(conn, company, "CONTACT", contacts[start : start + _CHUNK])
    _insert_many(conn, company, "DEL_ADDR", addresses)
    return debtors


def _orders(
    conn: sqlite3.Connection,
    company: str,
    count: int,
    rng: random.Random,
    now: datetime,
    debtors: list[tuple[str, str]],
    articles: list[tuple[str, str, float]],
    rec_id: Callable[[str], str],
) -> None:
    headers, lines = [], []
    for index in range(count):
        sub_nr, mail = rng.choice(debtors)
        ord_nr = str(assumptions.FIRST_ORD_NR + index)
        audit = _audit(rng, now)
        headers.append(
            {
                "REC_ID": rec_id("SO_HDR"),
                "ORD_NR": ord_nr,
                "ORD_REF": f"WEB-{100000 + index}",
                "ORD_DATE": audit["INP_DATE"],
                "RPL_INV": sub_nr,
                "RPL_DEL": sub_nr,
                "COMMENT1": f"Webshoporder {100000 + index}",
                "TO_EMAIL": mail[:50],
                "EMP_NR": "999999",
                "DISC_CODE": "02",
                "PAY_TYPE": rng.choice(_PAY_MTH)[0],
                **audit,
            }
        )
        for code, desc, price in rng.sample(articles, k=min(len(articles), rng.randint(1, 4))):
            lines.append(
                {
                    "REC_ID": rec_id("SO_LINE"),
                    "ORD_NR": ord_nr,
                    "ART_CODE": code,
                    "ART_DESC": desc[:40],
                    "ORD_QTY": rng.randint(1, 10),
                    "ART_PX": price,
                    "VAT_CODE": "2",
                    **audit,
                }
            )
    _insert_many(conn, company, "SO_HDR", headers)
    _insert_many(conn, company, "SO_LINE", lines)


__all__ = ["FIXTURE_ORDER", "generate_company"]
