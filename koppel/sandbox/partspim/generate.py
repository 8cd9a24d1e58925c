"""Realistic parts data for the sandbox: a catalogue as a Dutch/German parts wholesaler has it.

Products go in with bulk inserts (100,000 in seconds) and are built in exactly the shape the API
stores, so they read back like records created over the API. Master data, relations and orders
go through the store's normal create path, so they obey every rule of the contract.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from faker import Faker

from koppel.sandbox.partspim.models import gtin_check_digit
from koppel.sandbox.partspim.store import PartsPimStore, money, timestamp

Progress = Callable[[int, int], None]
CHUNK = 5000
WAREHOUSES = (("HOOFD", "Hoofdmagazijn Utrecht"), ("VENLO", "Magazijn Venlo"))
EMPLOYEES = (
    ("999999", "Webshop (API)"),
    ("100001", "Anouk de Vries"),
    ("100002", "Jeroen Bakker"),
    ("100003", "Sabine Müller"),
)
PAYMENT_TERMS = (("DIR", "Direct", 0), ("14D", "14 dagen", 14), ("30D", "30 dagen", 30))
PAYMENT_METHODS = (
    ("IDEAL", "iDEAL"),
    ("BANK", "Bankoverschrijving"),
    ("PIN", "Pin"),
    ("CREDIT", "Creditcard"),
    ("REMBOURS", "Rembours"),
)
BRANDS = (
    "Bosch",
    "Brembo",
    "ATE",
    "TRW",
    "Mann-Filter",
    "Mahle",
    "Febi Bilstein",
    "SKF",
    "FAG",
    "Gates",
    "Continental",
    "NGK",
    "Valeo",
    "Elring",
    "Würth",
)
VEHICLES = (
    "VW Golf VII 1.6 TDI",
    "Opel Astra K 1.4 Turbo",
    "Ford Focus III 1.0 EcoBoost",
    "Renault Clio IV 0.9 TCe",
    "BMW 3er (F30) 320d",
    "Mercedes-Benz C-Klasse (W205) C 200",
    "Toyota Yaris 1.5 Hybrid",
    "Peugeot 308 1.2 PureTech",
    "Audi A4 (B9) 2.0 TDI",
    "Skoda Octavia III 1.5 TSI",
)
ORIGINS = ("DE", "NL", "IT", "FR", "CZ", "PL", "CN", "JP", "SE")
DELIVERY_TIMES = ("Op voorraad", "1-2 werkdagen", "3-5 werkdagen", "2 weken")
SIZES = ("S", "M", "L", "XL", "XXL")
COLOURS = ("zwart", "blauw", "grijs", "oranje")
WIPER_LENGTHS = ("350 mm", "400 mm", "450 mm", "500 mm", "550 mm", "600 mm", "650 mm")


@dataclass(frozen=True)
class Leaf:
    """A category that holds products, and how its products are named and priced."""

    code: str
    name: str
    parent: str
    names: tuple[tuple[str, str], ...]  # (Dutch, German) names of the part
    spec: Callable[[random.Random], str]
    price: tuple[float, float]
    axes: tuple[str, ...] = ()  # variant attributes: makes the products configurable


def _pad(r: random.Random) -> str:
    return f"P {r.randint(10, 99)} {r.randint(100, 999):03d}"


def _disc(r: random.Random) -> str:
    return f"{r.choice((256, 280, 288, 312, 330))}x{r.choice((12, 22, 25, 28))} mm"


def _filter(r: random.Random) -> str:
    return f"{r.choice('WHCP')}{r.choice('KU ')}{r.randint(600, 999)}/{r.randint(1, 99)}"


def _bearing(r: random.Random) -> str:
    return f"{r.choice(('6201', '6202', '6204', '6205', '6301', '6305', '6006'))}-2RS"


def _belt(r: random.Random) -> str:
    return f"{r.randint(4, 8)}PK{r.randint(800, 2200)}"


def _plug(r: random.Random) -> str:
    return f"BKR{r.randint(5, 7)}E{r.choice(('', '-11', 'IX'))}".strip()


def _bolt(r: random.Random) -> str:
    return f"M{r.choice((5, 6, 8, 10, 12))}x{r.choice((16, 20, 25, 30, 40))} DIN 933 8.8"


def _none(_: random.Random) -> str:
    return ""


LEAVES = (
    Leaf(
        "REM-BLK",
        "Remblokken",
        "REM",
        (
            ("Remblokken set vooras", "Bremsbelagsatz vorne"),
            ("Remblokken set achteras", "Bremsbelagsatz hinten"),
        ),
        _pad,
        (18, 95),
    ),
    Leaf(
        "REM-SCH",
        "Remschijven",
        "REM",
        (
            ("Remschijf geventileerd", "Bremsscheibe belüftet"),
            ("Remschijf massief", "Bremsscheibe voll"),
        ),
        _disc,
        (25, 160),
    ),
    Leaf("FLT-OLI", "Oliefilters", "FLT", (("Oliefilter", "Ölfilter"),), _filter, (4, 28)),
    Leaf("FLT-LCH", "Luchtfilters", "FLT", (("Luchtfilter", "Luftfilter"),), _filter, (8, 45)),
    Leaf(
        "FLT-BRS",
        "Brandstoffilters",
        "FLT",
        (("Brandstoffilter", "Kraftstofffilter"),),
        _filter,
        (9, 60),
    ),
    Leaf(
        "FLT-INT",
        "Interieurfilters",
        "FLT",
        (("Interieurfilter actieve kool", "Innenraumfilter Aktivkohle"),),
        _filter,
        (9, 40),
    ),
    Leaf(
        "LAG-KOG",
        "Kogellagers",
        "LAG",
        (("Groefkogellager", "Rillenkugellager"),),
        _bearing,
        (3, 35),
    ),
    Leaf("LAG-WIE", "Wiellagers", "LAG", (("Wiellagerset", "Radlagersatz"),), _bearing, (30, 180)),
    Leaf(
        "MOT-RIE",
        "Riemen",
        "MOT",
        (("Poly-V-riem", "Keilrippenriemen"), ("Distributieriem set", "Zahnriemensatz")),
        _belt,
        (12, 240),
    ),
    Leaf("MOT-BOU", "Bougies", "MOT", (("Bougie", "Zündkerze"),), _plug, (4, 22)),
    Leaf(
        "MOT-PAK",
        "Pakkingen",
        "MOT",
        (("Koppakking", "Zylinderkopfdichtung"), ("Carterpakking", "Ölwannendichtung")),
        _none,
        (6, 120),
    ),
    Leaf(
        "BEV-BTN",
        "Bouten",
        "BEV",
        (("Zeskantbout verzinkt (100 stuks)", "Sechskantschraube verzinkt (100 Stück)"),),
        _bolt,
        (6, 40),
    ),
    Leaf(
        "PBM-HND",
        "Handschoenen",
        "PBM",
        (
            ("Werkhandschoenen nitril", "Arbeitshandschuhe Nitril"),
            ("Montagehandschoenen", "Montagehandschuhe"),
        ),
        _none,
        (3, 19),
        ("maat", "kleur"),
    ),
    Leaf(
        "PBM-KLD",
        "Werkkleding",
        "PBM",
        (("Overall katoen/polyester", "Overall Baumwolle/Polyester"),),
        _none,
        (29, 89),
        ("maat", "kleur"),
    ),
    Leaf(
        "RUI-WIS",
        "Ruitenwissers",
        "RUI",
        (("Ruitenwisserblad flat", "Scheibenwischer flach"),),
        _none,
        (7, 35),
        ("lengte",),
    ),
)
TOP_CATEGORIES = (
    ("REM", "Remmen"),
    ("FLT", "Filters"),
    ("LAG", "Lagers"),
    ("MOT", "Motor"),
    ("BEV", "Bevestigingsmaterialen"),
    ("PBM", "Persoonlijke bescherming"),
    ("RUI", "Ruitenwissers en verlichting"),
)


def ean13(r: random.Random) -> str:
    body = f"{r.choice(('87', '40', '41', '42'))}{r.randrange(10**10):010d}"
    return f"{body}{gtin_check_digit(body)}"


def _price(r: random.Random, low: float, high: float) -> tuple[str, str]:
    excl = Decimal(str(round(r.uniform(low, high), 2)))
    incl = (excl * Decimal("1.21")).quantize(Decimal("0.01"), ROUND_HALF_UP)
    return money(excl), money(incl)


class CatalogueGenerator:
    """Fills one store; ids and SKUs continue after what the store holds already."""

    def __init__(self, store: PartsPimStore, seed: int) -> None:
        self.store = store
        self.random = random.Random(seed)
        self.faker = {"nl": Faker("nl_NL"), "de": Faker("de_DE")}
        for index, fake in enumerate(self.faker.values()):
            fake.seed_instance(seed + index)
        self.now = datetime.now(UTC)

    def run(self, products: int, progress: Progress | None) -> None:
        master = self._master_data()
        leaves = self._categories()
        sellable: list[str] = []
        for done in self._products(products, leaves, sellable):
            if progress is not None:
                progress(done, products)
        self._stock(sellable, master["warehouses"])
        relations = self._relations(max(10, products // 20), master)
        self._documents("orders", max(10, products // 20), relations, sellable)
        self._documents("invoices", max(5, products // 80), relations, sellable)

    def _master_data(self) -> dict[str, list[int]]:
        store = self.store
        ids: dict[str, list[int]] = {}
        if not store.count("warehouses"):
            for code, name in WAREHOUSES:
                store.create("warehouses", {"code": code, "name": name}, over_api=False)
            for number, name in EMPLOYEES:
                store.create("employees", {"number": number, "name": name}, over_api=False)
            for code, name, days in PAYMENT_TERMS:
                body = {"code": code, "name": name, "days": days}
                store.create("payment-terms", body, over_api=False)
            for code, name in PAYMENT_METHODS:
                store.create("payment-methods", {"code": code, "name": name}, over_api=False)
        for resource in ("warehouses", "payment-terms", "payment-methods"):
            ids[resource] = [r["id"] for r in store.all(resource)]
        return ids

    def _categories(self) -> dict[str, tuple[Leaf, list[int]]]:
        store = self.store
        existing = {c["code"]: c["id"] for c in store.all("categories") if c["code"]}
        for position, (code, name) in enumerate(TOP_CATEGORIES):
            if code not in existing:
                body = {"code": code, "name": name, "position": position}
                existing[code] = store.create("categories", body)["id"]
        leaves: dict[str, tuple[Leaf, list[int]]] = {}
        for position, leaf in enumerate(LEAVES):
            if leaf.code not in existing:
                body = {
                    "code": leaf.code,
                    "name": leaf.name,
                    "parent_id": existing[leaf.parent],
                    "position": position,
                }
                existing[leaf.code] = store.create("categories", body)["id"]
            leaves[leaf.code] = (leaf, [existing[leaf.parent], existing[leaf.code]])
        return leaves

    def _moment(self, days_back_low: int, days_back_high: int) -> datetime:
        seconds = self.random.uniform(days_back_low * 86400, days_back_high * 86400)
        return self.now - timedelta(seconds=seconds)

    def _products(
        self, count: int, leaves: dict[str, tuple[Leaf, list[int]]], sellable: list[str]
    ) -> Iterator[int]:
        store = self.store
        r = self.random
        first_id = int(store.sql("SELECT coalesce(max(id), 0) AS m FROM products")[0]["m"]) + 1
        sku_id = int(store.sql("SELECT coalesce(max(id), 0) AS m FROM product_skus")[0]["m"]) + 1
        next_sku = 10_000_000 + sku_id
        leaf_list = list(leaves.values())
        simple_leaves = [item for item in leaf_list if not item[0].axes]
        configurable_leaves = [item for item in leaf_list if item[0].axes]
        done = 0
        while done < count:
            rows: list[tuple[Any, ...]] = []
            sku_rows: list[tuple[int, str, int]] = []
            for product_id in range(first_id + done, first_id + min(count, done + CHUNK)):
                configurable = product_id != first_id and r.random() < 0.05
                pool = configurable_leaves if configurable else simple_leaves
                leaf, category_ids = r.choice(pool)
                sku = str(next_sku)
                sku_rows.append((sku_id, sku, product_id))
                next_sku, sku_id = next_sku + 1, sku_id + 1
                product = self._product(leaf, category_ids, sku)
                for variant in product["variants"]:
                    variant["sku"] = str(next_sku)
                    variant["id"] = sku_id
                    sku_rows.append((sku_id, variant["sku"], product_id))
                    sellable.append(variant["sku"])
                    next_sku, sku_id = next_sku + 1, sku_id + 1
                if not product["variants"]:
                    sellable.append(sku)
                created = self._moment(30, 700)
                updated = created + (self.now - created) * r.random() * 0.9
                rows.append(
                    (product_id, json.dumps(product), timestamp(created), timestamp(updated))
                )
            store.bulk_insert("products", ("id", "data", "created_at", "updated_at"), rows)
            store.bulk_insert("product_skus", ("id", "sku", "product_id"), sku_rows)
            done += len(rows)
            yield done

    def _product(self, leaf: Leaf, category_ids: list[int], sku: str) -> dict[str, Any]:
        r = self.random
        german = r.random() < 0.3
        base = r.choice(leaf.names)[1 if german else 0]
        brand = r.choice(BRANDS)
        spec = leaf.spec(r)
        vehicle = r.choice(VEHICLES)
        fits = f"{'für' if german else 'voor'} {vehicle}"
        name = " ".join(p for p in (brand, base, spec) if p)
        if leaf.code.startswith(("REM", "FLT", "MOT", "LAG-WIE")) and r.random() < 0.6:
            name = f"{name} {fits}"  # long names: many are over 40 characters
        excl, incl = _price(r, *leaf.price)
        part = " ".join(p for p in (base, spec) if p)
        if german:
            short = f"{base} von {brand}, passend {fits}."
            long = (
                f"{part} in Erstausrüsterqualität von {brand}. Geprüft nach ECE R90 "
                f"wo zutreffend. Passend {fits} und weitere Modelle laut Vergleichsliste."
            )
        else:
            short = f"{base} van {brand}, geschikt {fits}."
            long = (
                f"{part} in OE-kwaliteit van {brand}. Getest volgens de geldende normen. "
                f"Geschikt {fits} en andere modellen volgens de vergelijkingslijst."
            )
        product: dict[str, Any] = {
            "sku": sku,
            "type": "configurable" if leaf.axes else "simple",
            "name": name[:255],
            "short_description": short,
            "long_description": long,
            "ean": ean13(r) if r.random() < 0.9 and not leaf.axes else None,
            "price_excl_vat": excl,
            "price_incl_vat": incl,
            "vat_rate": "21",
            "currency": "EUR",
            "category_ids": category_ids,
            "attributes": {},
            "variant_attributes": list(leaf.axes),
            "characteristics": {
                "Merk": brand,
                "Land van herkomst": r.choice(ORIGINS),
                "Type": spec or base,
                "Levertijd": r.choice(DELIVERY_TIMES),
            },
            "custom_fields": {
                "leverancier_artikelnummer": f"{brand[:3].upper()}-{r.randint(10000, 99999)}",
                "gewicht_kg": f"{r.uniform(0.05, 12):.2f}",
            },
            "variants": [],
        }
        if leaf.axes:
            product["variants"] = self._variants(leaf, name, excl, incl)
        return product

    def _variants(self, leaf: Leaf, name: str, excl: str, incl: str) -> list[dict[str, Any]]:
        r = self.random
        if leaf.axes == ("lengte",):
            combos = [{"lengte": length} for length in r.sample(WIPER_LENGTHS, r.randint(3, 6))]
        else:
            sizes = r.sample(SIZES, r.randint(2, 4))
            colours = r.sample(COLOURS, r.randint(1, 2))
            combos = [{"maat": s, "kleur": c} for c in colours for s in sizes]
        return [
            {
                "sku": "",
                "name": f"{name} {' '.join(combo.values())}",
                "ean": ean13(r),
                "price_excl_vat": excl,
                "price_incl_vat": incl,
                "attributes": combo,
                "custom_fields": {},
                "id": 0,
            }
            for combo in combos
        ]

    def _stock(self, skus: list[str], warehouses: list[int]) -> None:
        r = self.random
        first = int(self.store.sql("SELECT coalesce(max(id), 0) AS m FROM stock")[0]["m"]) + 1
        rows: list[tuple[Any, ...]] = []
        for sku in skus:
            for index, warehouse_id in enumerate(warehouses[:2]):
                if index == 1 and r.random() < 0.4:
                    continue
                on_hand = r.randint(0, 250)
                data = {
                    "sku": sku,
                    "warehouse_id": warehouse_id,
                    "on_hand": str(on_hand),
                    "reserved": str(r.randint(0, min(on_hand, 20))),
                    "incoming": str(r.choice((0, 0, 0, r.randint(10, 100)))),
                }
                moment = timestamp(self._moment(1, 60))
                rows.append(
                    (first + len(rows), json.dumps(data), moment, moment, sku, warehouse_id)
                )
        columns = ("id", "data", "created_at", "updated_at", "sku", "warehouse_id")
        for start in range(0, len(rows), CHUNK * 4):
            self.store.bulk_insert("stock", columns, rows[start : start + CHUNK * 4])

    def _relations(self, count: int, master: dict[str, list[int]]) -> list[int]:
        r = self.random
        ids: list[int] = []
        start = self.store.count("relations")
        for index in range(start, start + count):
            language = "nl" if r.random() < 0.75 else "de"
            fake = self.faker[language]
            country = "NL" if language == "nl" else "DE"
            if country == "NL":
                letters = "".join(r.choice("ABCEGHJKLNPRSTVWXZ") for _ in range(2))
                postcode = f"{r.randint(1000, 9999)} {letters}"
            else:
                postcode = f"{r.randint(10000, 99999)}"
            address = {
                "street": fake.street_name(),
                "house_number": str(r.randint(1, 250)),
                "house_number_addition": r.choice((None, None, None, "A", "B", "bis")),
                "postcode": postcode,
                "city": fake.city(),
                "country": country,
            }
            first, last = fake.first_name(), fake.last_name()
            body: dict[str, Any] = {
                "billing_address": address,
                "phone": fake.phone_number()[:30],
                "payment_term_id": r.choice(master["payment-terms"]),
                "payment_method_id": r.choice(master["payment-methods"]),
            }
            if r.random() < 0.65:
                company = fake.company()[:100]
                domain = "".join(c for c in company.lower() if c.isalnum())[:20] or "bedrijf"
                body.update(
                    type="company",
                    company_name=company,
                    contact_person={"first_name": first, "last_name": last},
                    email=f"info{index}@{domain}.{'nl' if country == 'NL' else 'de'}",
                    vat_number=f"{country}{r.randint(100000000, 999999999)}B01"
                    if country == "NL"
                    else f"DE{r.randint(100000000, 999999999)}",
                )
            else:
                local = "".join(c for c in f"{first}.{last}".lower() if c.isalnum() or c == ".")
                body.update(
                    type="person",
                    first_name=first,
                    last_name=last,
                    email=f"{local}{index}@{fake.free_email_domain()}",
                )
            if r.random() < 0.2:
                body["shipping_address"] = {**address, "street": fake.street_name()}
            ids.append(self.store.create("relations", body)["id"])
        return ids

    def _documents(self, name: str, count: int, relations: list[int], skus: list[str]) -> None:
        r = self.random
        statuses: tuple[str, ...] = ("new", "processing", "shipped", "completed")
        if name == "invoices":
            statuses = ("open", "open", "paid")
        year = self.now.year
        start = self.store.count(name)
        prefix = "WEB" if name == "orders" else "FAC"
        for index in range(start, start + count):
            lines = [
                {"sku": r.choice(skus), "quantity": str(r.randint(1, 10))}
                for _ in range(r.randint(1, 5))
            ]
            body: dict[str, Any] = {
                "relation_id": r.choice(relations),
                "employee_number": r.choice(EMPLOYEES)[0],
                "status": r.choice(statuses),
                "order_date": (self.now - timedelta(days=r.randint(0, 90))).date().isoformat(),
                "lines": lines,
                "shipping_cost": r.choice(("0", "6.95", "12.50")),
            }
            if r.random() < 0.7:
                body["reference"] = f"{prefix}-{year}-{index + 1:06d}"
            self.store.create(name, body)


__all__ = ["CatalogueGenerator", "ean13"]
