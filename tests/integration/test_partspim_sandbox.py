"""The Parts Pim sandbox over real HTTP: auth, resources, rules, paging, webhooks, faults."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

from koppel.connectors.partspim import WebhookSignatureError, verify_webhook
from koppel.sandbox.common import FaultConfig, SandboxServer
from koppel.sandbox.partspim import API_PREFIX, PartsPimSandbox


class Api:
    """A sandbox on a real port and an authenticated httpx client for it."""

    def __init__(self, sandbox: PartsPimSandbox, server: SandboxServer) -> None:
        self.sandbox = sandbox
        self.url = server.url
        key = sandbox.credentials(server.url)["api_key"]
        self.http = httpx.Client(base_url=server.url + API_PREFIX, headers={"X-Api-Key": key})

    def all_pages(self, path: str, **params: Any) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        query = dict(params)
        while True:
            body = self.http.get(path, params=query).json()
            rows += body["data"]
            if not body["next_cursor"]:
                return rows
            query["cursor"] = body["next_cursor"]


@pytest.fixture
def api() -> Iterator[Api]:
    sandbox = PartsPimSandbox(seed=3)
    sandbox.generate(200, seed=3)
    with SandboxServer(sandbox.asgi_app()) as server:
        client = Api(sandbox, server)
        yield client
        client.http.close()
    sandbox.close()


def errors_of(response: httpx.Response) -> list[tuple[str | None, str]]:
    return [(e["field"], e["message"]) for e in response.json()["errors"]]


def new_product(sku: str = "990001", **fields: Any) -> dict[str, Any]:
    return {"sku": sku, "name": "Remblokken set vooras", "price_excl_vat": "10.00", **fields}


def test_a_wrong_or_missing_api_key_is_401(api: Api) -> None:
    bare = httpx.get(api.url + API_PREFIX + "/products")
    wrong = httpx.get(api.url + API_PREFIX + "/products", headers={"X-Api-Key": "nope"})
    assert bare.status_code == wrong.status_code == 401
    assert errors_of(wrong)[0][1].startswith("missing or invalid API key")
    assert api.http.get("/account").json()["company"] == "Sandbox Onderdelen B.V."


def test_every_resource_lists_with_the_same_envelope(api: Api) -> None:
    for path in (
        "/products",
        "/categories",
        "/stock",
        "/relations",
        "/orders",
        "/invoices",
        "/payment-terms",
        "/payment-methods",
        "/warehouses",
        "/employees",
    ):
        body = api.http.get(path).json()
        assert set(body) == {"data", "next_cursor"}, path
        assert body["data"], path
    assert api.http.get("/webhooks").json() == {"data": [], "next_cursor": None}
    warehouses = api.http.get("/warehouses").json()["data"]
    assert [w["code"] for w in warehouses] == ["HOOFD", "VENLO"]
    assert "999999" in [e["number"] for e in api.http.get("/employees").json()["data"]]


def test_generated_catalogue_looks_like_parts(api: Api) -> None:
    products = api.all_pages("/products", limit=500)
    assert len(products) == 200
    configurable = [p for p in products if p["type"] == "configurable"]
    assert configurable and all(p["variants"] for p in configurable)
    assert any(len(p["name"]) > 40 for p in products)
    assert all(p["sku"].isdigit() for p in products)
    categories = api.http.get("/categories", params={"limit": 500}).json()["data"]
    assert any(c["parent_id"] is None for c in categories)
    assert any(c["parent_id"] is not None for c in categories)
    relations = api.all_pages("/relations")
    assert {r["type"] for r in relations} == {"company", "person"}


def test_product_create_get_patch_and_lookup_by_skus(api: Api) -> None:
    created = api.http.post("/products", json=new_product(ean="8712345678906"))
    assert created.status_code == 201, created.text
    product = created.json()
    assert product["price_incl_vat"] == "12.10"
    assert product["vat_rate"] == "21"
    got = api.http.get(f"/products/{product['id']}").json()
    assert got == product
    patched = api.http.patch(f"/products/{product['id']}", json={"price_incl_vat": "24.20"})
    assert patched.json()["price_excl_vat"] == "20.00"
    assert patched.json()["updated_at"] > product["updated_at"]
    first = api.http.get("/products", params={"limit": 2}).json()["data"]
    skus = ",".join([first[0]["sku"], first[1]["sku"], "990001", "123"])
    found = api.http.get("/products", params={"sku": skus}).json()["data"]
    assert sorted(p["sku"] for p in found) == sorted([first[0]["sku"], first[1]["sku"], "990001"])
    assert api.http.get("/products/999999999").status_code == 404


def test_configurable_product_variants_and_lookup_by_variant_sku(api: Api) -> None:
    body = new_product(
        "990100",
        type="configurable",
        variant_attributes=["maat", "kleur"],
        variants=[
            {"sku": "990101", "attributes": {"maat": "M", "kleur": "blauw"}},
            {"sku": "990102", "attributes": {"maat": "L", "kleur": "blauw"}},
        ],
    )
    product = api.http.post("/products", json=body).json()
    assert [v["sku"] for v in product["variants"]] == ["990101", "990102"]
    assert all(isinstance(v["id"], int) for v in product["variants"])
    patch = {"variants": [{"sku": "990102", "price_excl_vat": "11.00"}]}
    patched = api.http.patch(f"/products/{product['id']}", json=patch).json()
    assert [v["price_incl_vat"] for v in patched["variants"]] == [None, "13.31"]
    found = api.http.get("/products", params={"sku": "990102"}).json()["data"]
    assert [p["id"] for p in found] == [product["id"]]
    missing_axis = {"variants": [{"sku": "990103", "attributes": {"maat": "S"}}]}
    response = api.http.patch(f"/products/{product['id']}", json=missing_axis)
    assert errors_of(response) == [("variants[2].attributes", "must give a value for kleur")]


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"sku": "AB-12"}, "sku", "must contain only digits"),
        ({"ean": "8712345678901"}, "ean", "has a wrong check digit"),
        ({"ean": "12345"}, "ean", "must be a GTIN of 8, 12, 13 or 14 digits"),
        ({"price_incl_vat": "99.00"}, "price_incl_vat", "does not match"),
        ({"category_ids": [9999]}, "category_ids", "unknown category 9999"),
        ({"colour": "red"}, "colour", "is not a field of this resource"),
    ],
)
def test_product_validation_names_field_and_rule(
    api: Api, fields: dict[str, Any], field: str, message: str
) -> None:
    response = api.http.post("/products", json=new_product(**fields))
    assert response.status_code == 422
    (got_field, got_message), *_ = errors_of(response)
    assert got_field == field
    assert got_message.startswith(message)


def test_required_fields_and_duplicate_sku(api: Api) -> None:
    response = api.http.post("/products", json={"sku": "990200"})
    assert errors_of(response) == [("name", "is required")]
    existing = api.http.get("/products", params={"limit": 1}).json()["data"][0]
    duplicate = api.http.post("/products", json=new_product(existing["sku"]))
    assert duplicate.status_code == 409
    error = duplicate.json()["errors"][0]
    assert (error["field"], error["code"], error["existing_id"]) == (
        "sku",
        "duplicate",
        existing["id"],
    )


def test_categories_tree(api: Api) -> None:
    top = api.http.post("/categories", json={"code": "GER", "name": "Gereedschap"}).json()
    child = api.http.post(
        "/categories", json={"code": "GER-SLG", "name": "Sleutels", "parent_id": top["id"]}
    ).json()
    assert child["parent_id"] == top["id"]
    loop = api.http.patch(f"/categories/{top['id']}", json={"parent_id": child["id"]})
    assert errors_of(loop) == [("parent_id", "would make the category its own ancestor")]
    children = api.http.get("/categories", params={"parent_id": str(top["id"])}).json()["data"]
    assert [c["code"] for c in children] == ["GER-SLG"]
    assert api.http.post("/categories", json={"code": "GER", "name": "x"}).status_code == 409


def test_stock_per_warehouse_put_and_filters(api: Api) -> None:
    sku = api.http.get("/stock", params={"limit": 1}).json()["data"][0]["sku"]
    rows = api.http.get("/stock", params={"sku": sku}).json()["data"]
    assert {"on_hand", "reserved", "incoming", "warehouse_id"} <= set(rows[0])
    put = api.http.put(
        "/stock", json={"data": [{"sku": sku, "warehouse_id": 2, "on_hand": 7, "reserved": "2"}]}
    )
    assert put.status_code == 200, put.text
    row = put.json()["data"][0]
    assert (row["on_hand"], row["reserved"]) == ("7", "2")
    only_venlo = api.http.get("/stock", params={"sku": sku, "warehouse_id": "2"}).json()["data"]
    assert [r["on_hand"] for r in only_venlo] == ["7"]
    bad = api.http.put(
        "/stock",
        json={"data": [{"sku": sku, "warehouse_id": 1}, {"sku": "123", "warehouse_id": 1}]},
    )
    assert errors_of(bad) == [("data[1].sku", "unknown SKU")]


def test_relations_company_and_person_lookup_by_email(api: Api) -> None:
    company: dict[str, Any] = {
        "type": "company",
        "company_name": "Garage Jansen B.V.",
        "contact_person": {"first_name": "Piet", "last_name": "Jansen"},
        "email": "Info@Garage-Jansen.nl",
        "billing_address": {
            "street": "Dorpsstraat",
            "house_number": "12",
            "house_number_addition": "A",
            "postcode": "3511 AB",
            "city": "Utrecht",
            "country": "NL",
        },
        "payment_term_id": 2,
        "payment_method_id": 2,
    }
    created = api.http.post("/relations", json=company)
    assert created.status_code == 201, created.text
    found = api.http.get("/relations", params={"email": "info@garage-jansen.NL"}).json()["data"]
    assert [r["id"] for r in found] == [created.json()["id"]]
    person_without_name = api.http.post("/relations", json={"type": "person", "email": "a@b.nl"})
    assert errors_of(person_without_name) == [("last_name", "is required for a person")]
    same_email = api.http.post(
        "/relations", json={"type": "person", "last_name": "X", "email": "INFO@garage-jansen.nl"}
    )
    assert same_email.status_code == 409
    bad_address = dict(company, email="x@y.nl")
    bad_address["billing_address"] = dict(company["billing_address"], postcode="35111")
    response = api.http.post("/relations", json=bad_address)
    assert errors_of(response)[0][0] == "billing_address.postcode"


def test_orders_need_an_employee_number_and_find_back_by_reference(api: Api) -> None:
    relation = api.http.get("/relations", params={"limit": 1}).json()["data"][0]
    sku = api.http.get("/stock", params={"limit": 1}).json()["data"][0]["sku"]
    order = {
        "reference": "SHOP-1001",
        "relation_id": relation["id"],
        "lines": [{"sku": sku, "quantity": 2, "price": "10.00"}],
        "shipping_cost": "5.00",
    }
    missing = api.http.post("/orders", json=order)
    assert errors_of(missing) == [("employee_number", "is required")]
    unknown = api.http.post("/orders", json={**order, "employee_number": "123"})
    assert errors_of(unknown) == [("employee_number", "unknown employee number 123")]
    created = api.http.post("/orders", json={**order, "employee_number": "999999"})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["total_excl_vat"] == "25.00"
    assert body["status"] == "new"
    assert body["billing_address"] == relation["billing_address"]
    again = api.http.post("/orders", json={**order, "employee_number": "999999"})
    assert again.status_code == 409
    found = api.http.get("/orders", params={"reference": "SHOP-1001"}).json()["data"]
    assert [o["id"] for o in found] == [body["id"]]
    bad_line = api.http.post(
        "/invoices", json={**order, "employee_number": "999999", "lines": [{"sku": "1"}]}
    )
    assert errors_of(bad_line)[0] == ("lines[0].quantity", "is required")
    invoice = api.http.post(
        "/invoices", json={**order, "employee_number": "999999", "order_id": body["id"]}
    ).json()
    assert invoice["status"] == "open"
    assert invoice["number"].startswith("INV-")
    shipped = api.http.get("/orders", params={"status": "shipped,completed"}).json()["data"]
    assert shipped and {o["status"] for o in shipped} <= {"shipped", "completed"}


def test_list_parameters_are_checked(api: Api) -> None:
    assert errors_of(api.http.get("/products", params={"limit": 501}))[0][0] == "limit"
    assert errors_of(api.http.get("/products", params={"updated_after": "x"}))[0][0] == (
        "updated_after"
    )
    too_many = ",".join(str(n) for n in range(101))
    assert errors_of(api.http.get("/products", params={"sku": too_many}))[0][0] == "sku"
    assert errors_of(api.http.get("/products", params={"cursor": "garbage"}))[0][0] == "cursor"
    first = api.http.get("/products", params={"limit": 5}).json()
    other_filter = {"limit": 5, "cursor": first["next_cursor"], "updated_since": "2020-01-01"}
    assert errors_of(api.http.get("/products", params=other_filter))[0][0] == "cursor"


def test_updated_since_filters_and_after_id_resumes(api: Api) -> None:
    products = api.http.get("/products", params={"limit": 3}).json()["data"]
    since = api.sandbox.store.now()
    for product in reversed(products):
        api.http.patch(f"/products/{product['id']}", json={"name": product["name"] + " (nieuw)"})
    changed = api.all_pages("/products", updated_since=since)
    assert [p["id"] for p in changed] == [p["id"] for p in products]  # id order
    newest = max(changed, key=lambda p: p["updated_at"])
    inclusive = api.all_pages("/products", updated_since=newest["updated_at"])
    assert [p["id"] for p in inclusive] == [products[0]["id"]]
    resumed = api.all_pages("/products", updated_since=since, after_id=products[0]["id"])
    assert [p["id"] for p in resumed] == [p["id"] for p in products[1:]]


def test_paging_while_rows_change_misses_nothing_and_repeats_nothing(api: Api) -> None:
    """Full listing walks ids: every row once, whatever changes meanwhile."""
    expected = {p["id"] for p in api.all_pages("/products", limit=500)}
    seen: list[int] = []
    query: dict[str, Any] = {"limit": 20}
    pages = 0
    while True:
        body = api.http.get("/products", params=query).json()
        seen += [p["id"] for p in body["data"]]
        pages += 1
        for product_id in sorted(expected)[pages * 7 : pages * 7 + 7]:  # ahead and behind
            api.http.patch(f"/products/{product_id}", json={"short_description": "gewijzigd"})
        for product_id in seen[:3]:
            api.http.patch(f"/products/{product_id}", json={"short_description": "weer"})
        if not body["next_cursor"]:
            break
        query["cursor"] = body["next_cursor"]
    assert sorted(seen) == sorted(expected)


def test_incremental_paging_while_rows_change_defers_changed_rows(api: Api) -> None:
    """With updated_since each row comes at most once; rows changed behind come next time."""
    all_ids = {p["id"] for p in api.all_pages("/products", limit=500)}
    seen: list[int] = []
    touched: set[int] = set()
    started = api.sandbox.store.now()  # what a flow stores as the next run's `since`
    query: dict[str, Any] = {"limit": 25, "updated_since": "2000-01-01T00:00:00Z"}
    while True:
        body = api.http.get("/products", params=query).json()
        seen += [p["id"] for p in body["data"]]
        for product_id in sorted(all_ids)[len(seen) % 50 :: 40]:
            api.http.patch(f"/products/{product_id}", json={"short_description": "gewijzigd"})
            touched.add(product_id)
        if not body["next_cursor"]:
            break
        query["cursor"] = body["next_cursor"]
    assert sorted(seen) == sorted(all_ids)
    next_round = {p["id"] for p in api.all_pages("/products", updated_since=started)}
    assert next_round == touched


def test_fixture_loads_through_the_rules(tmp_path: Path) -> None:
    fixture = {
        "warehouses": [{"id": 1, "code": "HOOFD", "name": "Hoofdmagazijn"}],
        "employees": [{"number": "999999", "name": "Webshop"}],
        "payment-terms": [{"id": 1, "code": "30D", "name": "30 dagen", "days": 30}],
        "payment-methods": [{"id": 1, "code": "BANK", "name": "Bank"}],
        "categories": [{"id": 1, "code": "REM", "name": "Remmen"}],
        "products": [{"id": 1, "sku": "1001", "name": "Remblokken", "price_excl_vat": "19.95"}],
        "stock": [{"sku": "1001", "warehouse_id": 1, "on_hand": "12"}],
        "relations": [{"id": 1, "type": "person", "last_name": "Jansen", "email": "j@example.nl"}],
        "orders": [
            {
                "relation_id": 1,
                "employee_number": "999999",
                "reference": "WEB-1",
                "lines": [{"sku": "1001", "quantity": "2"}],
            }
        ],
    }
    path = tmp_path / "fixture.json"
    path.write_text(json.dumps(fixture))
    sandbox = PartsPimSandbox()
    sandbox.load_fixture(path)
    assert sandbox.store.all("orders")[0]["total_incl_vat"] == "48.28"
    fixture["products"] = [{"sku": "AB", "name": "x"}]
    path.write_text(json.dumps({"products": fixture["products"]}))
    with pytest.raises(ValueError, match=r"products\[0\].*must contain only digits"):
        PartsPimSandbox().load_fixture(path)


def receiver() -> tuple[FastAPI, list[tuple[bytes, dict[str, str]]], threading.Event]:
    received: list[tuple[bytes, dict[str, str]]] = []
    arrived = threading.Event()
    app = FastAPI()

    @app.post("/hook")
    async def hook(request: Request) -> dict[str, bool]:
        received.append((await request.body(), dict(request.headers)))
        arrived.set()
        return {"ok": True}

    return app, received, arrived


def test_webhooks_are_signed_and_verifiable(api: Api) -> None:
    app, received, _ = receiver()
    with SandboxServer(app) as hook_server:
        subscription = api.http.post(
            "/webhooks",
            json={"url": hook_server.url + "/hook", "events": ["product.updated", "order.created"]},
        )
        assert subscription.status_code == 201, subscription.text
        secret = subscription.json()["secret"]
        assert "secret" not in api.http.get("/webhooks").json()["data"][0]
        product = api.http.get("/products", params={"limit": 1}).json()["data"][0]
        api.http.patch(f"/products/{product['id']}", json={"name": "Gewijzigd"})
        api.http.post("/categories", json={"code": "NOHOOK", "name": "geen event"})
        assert api.sandbox.webhooks.wait_idle()
    assert len(received) == 1
    body, headers = received[0]
    event = verify_webhook(secret, body, httpx.Headers(headers))
    assert event["event"] == "product.updated"
    assert event["data"]["name"] == "Gewijzigd"
    with pytest.raises(WebhookSignatureError, match="does not match"):
        verify_webhook("whsec_other", body, httpx.Headers(headers))
    with pytest.raises(WebhookSignatureError, match="does not match"):
        verify_webhook(secret, body.replace(b"Gewijzigd", b"Vervalst"), httpx.Headers(headers))
    stamp = int(headers["x-partspim-timestamp"])
    with pytest.raises(WebhookSignatureError, match="off"):
        verify_webhook(secret, body, httpx.Headers(headers), now=stamp + 3600)
    bad_event = api.http.post("/webhooks", json={"url": "http://x/y", "events": ["product.gone"]})
    assert errors_of(bad_event)[0][0] == "events[0]"


def test_rate_limit_answers_429_with_retry_after(api: Api) -> None:
    api.sandbox.faults.configure(FaultConfig(rate_429=1.0, retry_after_s=3))
    response = api.http.get("/products")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "3"
    api.sandbox.faults.configure(FaultConfig())
    assert api.http.get("/products").status_code == 200
