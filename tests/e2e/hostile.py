"""Hostile records seeded into the Parts Pim sandbox as a lax or foreign Parts Pim might hold
them: stored as given, past the contract's rules, so the flows meet them over real HTTP."""

from __future__ import annotations

import json
import random
from typing import Any

from koppel.sandbox.partspim.store import PartsPimStore


def seed_unchecked(store: PartsPimStore, resource: str, records: list[dict[str, Any]]) -> None:
    """Insert `records` (each with its `id`) into a resource's table without any rule checked."""
    definition = PartsPimStore.resource(resource)
    columns, table = definition.columns, definition.table
    taken = {
        column: {row["v"] for row in store.sql(f"SELECT {column} AS v FROM {table}")}
        for column in definition.unique
    }
    now = store.now()
    rows = []
    for record in records:
        values = []
        for column in columns:
            value = _column(record, column)
            if column in taken:  # a value used twice is kept in the record, not in the index
                value = None if value in taken[column] else value
                taken[column].add(value)
            values.append(value)
        data = json.dumps({k: v for k, v in record.items() if k != "id"})
        rows.append((record["id"], data, now, now, *values))
    store.bulk_insert(table, ("id", "data", "created_at", "updated_at", *columns), rows)
    if resource == "products":
        skus = [
            (str(sku), record["id"])
            for record in records
            for sku in [record.get("sku"), *(v.get("sku") for v in record.get("variants") or [])]
            if isinstance(sku, str) and sku
        ]
        store.bulk_insert("product_skus", ("sku", "product_id"), list(dict(skus).items()))


def _column(record: dict[str, Any], column: str) -> Any:
    if column == "email_lower":
        email = record.get("email")
        return email.lower() if isinstance(email, str) else None
    value = record.get(column)
    return value if isinstance(value, str | int | float) or value is None else json.dumps(value)


def corrupt(store: PartsPimStore, resource: str, record_id: int, changes: dict[str, Any]) -> None:
    """Overwrite fields of a stored record past the contract's rules (and mark it changed)."""
    table = PartsPimStore.resource(resource).table
    [row] = store.sql(f"SELECT data FROM {table} WHERE id = ?", (record_id,))
    data = {**json.loads(row["data"]), **changes}
    store.sql(
        f"UPDATE {table} SET data = ?, updated_at = ? WHERE id = ?",
        (json.dumps(data), store.now(), record_id),
    )


# -- hostile values ---------------------------------------------------------------------------

TEXTS: tuple[Any, ...] = (
    "",
    " ",
    None,
    "x" * 10_000,
    "NUL\x00BEL\x07ESC\x1b[2J DEL\x7f",
    "\u202eevil\u202c \u200fright-to-left\u200e",
    "emoji 🚗🔧👍🏽",
    "'; DROP TABLE products; --",
    "{{7*7}} ${7*7} <%= 7*7 %>",
    "<script>alert(1)</script>",
    "名前 Ünïcödé",
    "\ufeffBOM",
    "   padded   ",
    12345,
    ["a", "list"],
    {"an": "object"},
)
NUMBERS: tuple[Any, ...] = (
    "NaN",
    "Infinity",
    "-Infinity",
    "1e308",
    "-1e308",
    "-1",
    "0",
    "-0.0001",
    "9999999999.9999",
    "10.12345",
    "abc",
    "",
    None,
    1e308,
    -5,
    0,
    "12,50",
    True,
)
EMAILS: tuple[Any, ...] = (
    "",
    None,
    "no-at-sign",
    "a@b",
    "@example.nl",
    "x@y..nl",
    "drop@table'; --.nl",
    "a b@c.nl",
    "🚗@example.nl",
    "x" * 300 + "@example.nl",
    "Upper@Example.NL",
    "nul\x00@example.nl",
)
DATES: tuple[Any, ...] = (
    "",
    None,
    "2024-02-30",
    "yesterday",
    "0000-00-00",
    "9999-12-31T99:99:99Z",
    "2024-13-01",
    12345,
    "2024-05-01",
)
IDS: tuple[Any, ...] = ("abc", -1, 0, 1e308, None, "", "1,2", 999_999_999, "7")


class HostileRecords:
    """Records from a seeded generator (the same seed gives the same records, so a failure can
    be replayed): a quarter of them clean, so that writes happen too, the others with a hostile
    value in each field at `hostile_share`."""

    def __init__(self, seed: int, *, hostile_share: float = 0.2) -> None:
        self.rng = random.Random(seed)
        self.hostile_share = hostile_share
        self.share = hostile_share
        self._emails: list[Any] = list(EMAILS)

    def pick(self, good: Any, pool: tuple[Any, ...]) -> Any:
        return self.rng.choice(pool) if self.rng.random() < self.share else good

    def record(self) -> None:
        """Start a record: clean or hostile."""
        self.share = 0.0 if self.rng.random() < 0.25 else self.hostile_share

    def categories(self, first_id: int, count: int) -> list[dict[str, Any]]:
        return [
            {
                "id": self._next(first_id + n),
                "code": self.pick(f"FZ{n}", TEXTS),
                "name": self.pick(f"Categorie {n}", TEXTS),
                "parent_id": self.pick(None, (*IDS, first_id)),
                "position": self.pick(n, NUMBERS),
            }
            for n in range(count)
        ]

    def products(self, first_id: int, count: int, category_ids: list[int]) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        for n in range(count):
            self.record()
            sku = str(880_000 + n)
            configurable = n % 10 == 0
            variants = [
                {
                    "id": 10_000 + first_id + n * 10 + v,
                    "sku": self.pick(f"{sku}{v}", TEXTS),
                    "name": self.pick(f"Variant {v}", TEXTS),
                    "ean": self.pick(None, TEXTS),
                    "price_excl_vat": self.pick("12.00", NUMBERS),
                    "price_incl_vat": None,
                    "attributes": self.pick({"maat": "M"}, TEXTS),
                    "custom_fields": {},
                }
                for v in range(2 if configurable else 0)
            ]
            records.append(
                {
                    "id": first_id + n,
                    "sku": self.pick(sku, TEXTS),
                    "type": "configurable" if configurable else self.pick("simple", TEXTS),
                    "name": self.pick(f"Product {n}", TEXTS),
                    "short_description": self.pick(None, TEXTS),
                    "long_description": self.pick(None, TEXTS),
                    "ean": self.pick(None, (*TEXTS, "8712345678900", "8712345678906")),
                    "price_excl_vat": self.pick("10.00", NUMBERS),
                    "price_incl_vat": self.pick(None, NUMBERS),
                    "vat_rate": self.pick("21.00", NUMBERS),
                    "currency": self.pick("EUR", (*TEXTS, "€", "eur", "XYZ")),
                    "category_ids": self.pick(
                        [self.rng.choice(category_ids)], ([*IDS[:3]], [None], "abc", None)
                    ),
                    "variant_attributes": ["maat"] if configurable else [],
                    "variants": variants,
                    "attributes": self.pick({}, TEXTS),
                    "characteristics": self.pick({"Land van herkomst": "NL"}, TEXTS),
                    "custom_fields": self.pick({}, TEXTS),
                }
            )
        return records

    def _next(self, key: Any) -> Any:
        """The first field of a record: `key`, and the record's start."""
        self.record()
        return key

    def email(self, n: int) -> Any:
        """A good address, or one of the hostile ones, each used once (Parts Pim keeps them
        unique)."""
        if self._emails and self.rng.random() < self.share:
            return self._emails.pop(self.rng.randrange(len(self._emails)))
        return f"klant{n}@example.nl"

    def relations(self, first_id: int, count: int) -> list[dict[str, Any]]:
        return [
            {
                "id": self._next(first_id + n),
                "number": f"9{n:05d}",
                "type": self.pick("company", TEXTS),
                "role": self.pick("customer", TEXTS),
                "company_name": self.pick(f"Garage {n}", TEXTS),
                "first_name": self.pick("Jan", TEXTS),
                "last_name": self.pick("Jansen", TEXTS),
                "contact_person": self.pick(None, TEXTS),
                "email": self.email(n),
                "phone": self.pick(None, TEXTS),
                "vat_number": self.pick(None, TEXTS),
                "billing_address": self.pick(
                    {
                        "street": self.pick("Dorpsstraat", TEXTS),
                        "house_number": self.pick("1", TEXTS),
                        "postcode": self.pick("3511 AB", TEXTS),
                        "city": self.pick("Utrecht", TEXTS),
                        "country": self.pick("NL", (*TEXTS, "XX", "nl", "Nederland")),
                    },
                    TEXTS,
                ),
                "payment_term_id": self.pick(None, IDS),
                "payment_method_id": self.pick(None, IDS),
                "custom_fields": {},
            }
            for n in range(count)
        ]

    def orders(
        self, first_id: int, count: int, relation_ids: list[int], skus: list[str]
    ) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        for n in range(count):
            self.record()
            lines = [
                {
                    "sku": self.pick(self.rng.choice(skus), TEXTS),
                    "quantity": self.pick("2", NUMBERS),
                    "price": self.pick("10.00", NUMBERS),
                    "vat_rate": self.pick("21.00", NUMBERS),
                    "description": self.pick("Regel", TEXTS),
                }
                for _ in range(self.rng.choice((0, 1, 2, 3)))
            ]
            records.append(
                {
                    "id": first_id + n,
                    "number": f"FZ-{n:06d}",
                    "reference": None,
                    "relation_id": self.pick(self.rng.choice(relation_ids), IDS),
                    "employee_number": self.pick("999999", TEXTS),
                    "status": self.pick("new", TEXTS),
                    "order_date": self.pick("2026-11-30", DATES),
                    "currency": self.pick("EUR", (*TEXTS, "€")),
                    "prices_include_vat": self.pick(False, TEXTS),
                    "lines": self.pick(lines, TEXTS),
                    "shipping_cost": self.pick(None, NUMBERS),
                    "billing_address": None,
                    "shipping_address": self.pick(None, TEXTS),
                    "comment": self.pick(None, TEXTS),
                }
            )
        return records

    def stock(
        self, first_id: int, count: int, skus: list[str], warehouse_ids: list[int]
    ) -> list[dict[str, Any]]:
        return [
            {
                "id": self._next(first_id + n),
                "sku": self.pick(skus[n % len(skus)], TEXTS),
                "warehouse_id": self.pick(self.rng.choice(warehouse_ids), IDS),
                "on_hand": self.pick("5", NUMBERS),
                "reserved": self.pick("1", NUMBERS),
                "incoming": self.pick("0", NUMBERS),
            }
            for n in range(count)
        ]

    def articles(self, count: int) -> list[dict[str, Any]]:
        """AccountView articles within what its API stores (it checks types and lengths)."""
        return [
            {
                "ART_CODE": self.pick(
                    self._next(str(770_000 + n)), ("", "AB-12", "🚗", "'; DROP", "{{7*7}}")
                ),
                "ART_DESC1": _fit(self.pick(f"Artikel {n}", TEXTS), 40),
                "ART_DESC2": _fit(self.pick("", TEXTS), 40),
                "PX_SELL": self.pick(10.5, (1e308, -1e308, -5, 0, 9999999999.9999, 10.12345)),
                "EAN_CODE": _fit(self.pick("", TEXTS), 14),
                "CUR_CODE": self.pick("EUR", ("€", "XYZ", "", "E")),
            }
            for n in range(count)
        ]


def _fit(value: Any, length: int) -> str:
    """A hostile text as AccountView would hold it: text, upper case kept, within the field."""
    return str(value if value is not None else "")[:length]
