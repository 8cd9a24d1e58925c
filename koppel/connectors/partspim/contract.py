"""The Parts Pim API as Koppel assumes it: paths, field names, limits, webhook signing.

No public documentation of the Parts Pim API exists, so this module is the contract we ask the
vendor to confirm (docs/connectors/partspim.md). It is the single place on the client side to
change once the real documentation is available; the sandbox (koppel/sandbox/partspim) is the
other place, as it implements the same contract as a server.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from koppel.model.schema import FieldSpec, FieldType, RecordSchema

API_PREFIX = "/api/v1"
API_KEY_HEADER = "X-Api-Key"
ACCOUNT_PATH = "/account"
WEBHOOKS_PATH = "/webhooks"
STOCK_PATH = "/stock"  # PUT {"data": [rows]}: set stock rows by (warehouse_id, sku)

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 500
MAX_FILTER_VALUES = 100  # values in one list filter (?sku=1,2,3)
MAX_STOCK_BATCH = 100  # rows in one PUT /stock
UPDATED_SINCE_PARAM = "updated_since"  # inclusive: updated_at >= updated_since
AFTER_ID_PARAM = "after_id"  # exclusive: start the listing after this id (listings walk id)
CURSOR_PARAM = "cursor"
LIMIT_PARAM = "limit"
NEXT_CURSOR_FIELD = "next_cursor"
DATA_FIELD = "data"
ERRORS_FIELD = "errors"  # [{"field": "sku", "code": "invalid", "message": "..."}]
EXISTING_ID_FIELD = "existing_id"  # in a 409 error: the record that holds the value already

SIGNATURE_HEADER = "X-PartsPim-Signature"  # "sha256=" + hex HMAC-SHA256(secret, f"{ts}.{body}")
TIMESTAMP_HEADER = "X-PartsPim-Timestamp"  # Unix seconds of the delivery attempt
EVENT_HEADER = "X-PartsPim-Event"
DELIVERY_HEADER = "X-PartsPim-Delivery"
SIGNATURE_TOLERANCE_S = 300
WEBHOOK_EVENTS = tuple(
    f"{event}.{action}"
    for event in ("product", "category", "stock", "relation", "order", "invoice")
    for action in ("created", "updated")
)

SKU_RULE = "digits only, at most 20"
ID_LOOKUPS = frozenset({"id", "warehouse_id", "relation_id", "parent_id"})
ID_MAX_DIGITS = 18
"""Ids are whole numbers that fit 64 bits: at most 18 digits."""
SKU_MAX_DIGITS = 20


def lookup_value_possible(parameter: str, value: str) -> bool:
    """Whether a list filter's value can name a record at all: ids and SKUs are digits only
    (ids at most `ID_MAX_DIGITS`, SKUs at most `SKU_MAX_DIGITS`). A lookup leaves any other value
    out instead of sending a filter that the API refuses for the whole call."""
    if parameter not in ID_LOOKUPS and parameter != "sku":
        return True
    longest = ID_MAX_DIGITS if parameter in ID_LOOKUPS else SKU_MAX_DIGITS
    return value.isascii() and value.isdigit() and len(value) <= longest


DEFAULT_EMPLOYEE_NUMBER = "999999"
TIMESTAMP_FIELDS = ("created_at", "updated_at")


@dataclass(frozen=True)
class Resource:
    """One collection of the API, as the connector uses it."""

    entity: str  # the connector's entity name
    path: str  # under API_PREFIX
    key_field: str  # natural key: how a record is found again (lookup before create)
    record_label: str  # names a record in errors: "SKU '123'", "order 'WEB-1'"
    lookup_params: Mapping[str, str]  # record field -> list filter of the listing
    read_only_fields: tuple[str, ...] = ("id", *TIMESTAMP_FIELDS)
    writable: bool = True


_DOCUMENT_READ_ONLY = (
    "id",
    "number",
    "total_excl_vat",
    "total_vat",
    "total_incl_vat",
    *TIMESTAMP_FIELDS,
)
RESOURCES: dict[str, Resource] = {
    r.entity: r
    for r in (
        Resource("products", "/products", "sku", "SKU", {"id": "id", "sku": "sku"}),
        Resource(
            "categories",
            "/categories",
            "code",
            "category",
            {"id": "id", "code": "code", "parent_id": "parent_id"},
        ),
        Resource(
            "stock",
            STOCK_PATH,
            "sku",
            "stock of SKU",
            {"id": "id", "sku": "sku", "warehouse_id": "warehouse_id"},
        ),
        Resource(
            "relations",
            "/relations",
            "email",
            "relation",
            {"id": "id", "email": "email", "number": "number"},
            ("id", "number", *TIMESTAMP_FIELDS),
        ),
        Resource(
            "orders",
            "/orders",
            "reference",
            "order",
            {"id": "id", "reference": "reference", "number": "number", "status": "status"},
            _DOCUMENT_READ_ONLY,
        ),
        Resource(
            "invoices",
            "/invoices",
            "reference",
            "invoice",
            {"id": "id", "reference": "reference", "number": "number", "status": "status"},
            _DOCUMENT_READ_ONLY,
        ),
        Resource(
            "payment_terms",
            "/payment-terms",
            "code",
            "payment term",
            {"id": "id", "code": "code"},
            writable=False,
        ),
        Resource(
            "payment_methods",
            "/payment-methods",
            "code",
            "payment method",
            {"id": "id", "code": "code"},
            writable=False,
        ),
        Resource(
            "warehouses",
            "/warehouses",
            "code",
            "warehouse",
            {"id": "id", "code": "code"},
            writable=False,
        ),
        Resource(
            "employees",
            "/employees",
            "number",
            "employee",
            {"id": "id", "number": "number"},
            writable=False,
        ),
    )
}

S, INT, D, B = FieldType.STRING, FieldType.INTEGER, FieldType.DECIMAL, FieldType.BOOLEAN
OBJ, LST, DT, DAY = FieldType.OBJECT, FieldType.LIST, FieldType.DATETIME, FieldType.DATE


def _f(
    path: str,
    kind: FieldType = S,
    max_length: int | None = None,
    *,
    required: bool = False,
    upper_case: bool = False,
    description: str = "",
) -> FieldSpec:
    return FieldSpec(path, kind, max_length, required, upper_case, description)


def _common(*specs: FieldSpec) -> list[FieldSpec]:
    return [
        _f("id", INT, description="Parts Pim's id (read only)"),
        *specs,
        _f("created_at", DT, description="read only"),
        _f("updated_at", DT, description="read only; changes on every change"),
    ]


def _address(prefix: str) -> list[FieldSpec]:
    return [
        _f(prefix, OBJ, description="null, or an address; replaced as a whole by PATCH"),
        _f(f"{prefix}.street", S, 100),
        _f(f"{prefix}.house_number", S, 10),
        _f(f"{prefix}.house_number_addition", S, 10),
        _f(f"{prefix}.postcode", S, 10, description="NL: 1234 AB"),
        _f(f"{prefix}.city", S, 60),
        _f(f"{prefix}.country", S, 2, upper_case=True, description="ISO 3166-1 alpha-2"),
    ]


_SKU = _f("sku", S, 20, required=True, description=f"SKU: {SKU_RULE}; unique")
_PRICES = [
    _f("price_excl_vat", D, description="string amount; the other price follows from vat_rate"),
    _f("price_incl_vat", D, description="must agree with price_excl_vat within 0.01"),
]
_DOCUMENT = [
    _f("reference", S, 50, required=True, description="external reference, unique"),
    _f("number", S, 20, description="Parts Pim's number (read only)"),
    _f("relation_id", INT, required=True),
    _f("employee_number", S, 10, required=True, description="digits; an existing employee"),
    _f("status", S, 20),
    _f("order_date", DAY),
    _f("currency", S, 3, upper_case=True),
    _f("prices_include_vat", B),
    _f("lines", LST, required=True),
    _f("lines[].sku", S, 20, required=True),
    _f("lines[].quantity", D, required=True),
    _f("lines[].price", D, description="unit price; default the product's price"),
    _f("lines[].vat_rate", D),
    _f("lines[].description", S, 255),
    *_address("billing_address"),
    *_address("shipping_address"),
    _f("payment_term_id", INT),
    _f("payment_method_id", INT),
    _f("shipping_cost", D),
    _f("comment", S, 2000),
    _f("custom_fields", OBJ),
    _f("total_excl_vat", D, description="read only"),
    _f("total_vat", D, description="read only"),
    _f("total_incl_vat", D, description="read only"),
]

SCHEMAS: dict[str, RecordSchema] = {
    "products": RecordSchema.of(
        "partspim.product",
        _common(
            _SKU,
            _f("type", S, 12, description="simple | configurable; fixed after create"),
            _f("name", S, 255, required=True),
            _f("short_description", S, 1000),
            _f("long_description", S, 20000),
            _f("ean", S, 14, description="GTIN-8/12/13/14 with a valid check digit"),
            *_PRICES,
            _f("vat_rate", D, description="percentage, e.g. 21"),
            _f("currency", S, 3, upper_case=True),
            _f("category_ids", LST),
            _f("attributes", OBJ, description="name -> value"),
            _f("variant_attributes", LST, description="attribute names variants differ in"),
            _f("characteristics", OBJ, description="name -> value: origin, type, delivery"),
            _f("custom_fields", OBJ),
            _f("variants", LST, description="configurable only; PATCH upserts by SKU"),
            _f("variants[].id", INT, description="read only"),
            _f("variants[].sku", S, 20, required=True),
            _f("variants[].name", S, 255),
            _f("variants[].ean", S, 14),
            _f("variants[].price_excl_vat", D),
            _f("variants[].price_incl_vat", D),
            _f("variants[].attributes", OBJ),
            _f("variants[].custom_fields", OBJ),
        ),
        open_paths=(
            "attributes",
            "characteristics",
            "custom_fields",
            "variants[].attributes",
            "variants[].custom_fields",
        ),
    ),
    "categories": RecordSchema.of(
        "partspim.category",
        _common(
            _f("code", S, 50, description="unique; how Koppel finds a category again"),
            _f("name", S, 100, required=True),
            _f("parent_id", INT, description="null for a top category"),
            _f("position", INT),
        ),
    ),
    "stock": RecordSchema.of(
        "partspim.stock",
        _common(
            _f("sku", S, 20, required=True),
            _f("warehouse_id", INT, required=True),
            _f("on_hand", D),
            _f("reserved", D, description="reserved for sales orders"),
            _f("incoming", D, description="on purchase orders"),
        ),
    ),
    "relations": RecordSchema.of(
        "partspim.relation",
        _common(
            _f("number", S, 20, description="Parts Pim's relation number (read only)"),
            _f("type", S, 10, required=True, description="company | person"),
            _f("role", S, 10, description="customer | supplier"),
            _f("company_name", S, 100, description="required for a company"),
            _f("first_name", S, 50),
            _f("last_name", S, 80, description="required for a person"),
            _f("contact_person", OBJ, description="company only"),
            _f("contact_person.first_name", S, 50),
            _f("contact_person.last_name", S, 80),
            _f("contact_person.email", S, 254),
            _f("contact_person.phone", S, 30),
            _f("email", S, 254, description="unique, case-insensitive"),
            _f("phone", S, 30),
            _f("vat_number", S, 20),
            *_address("billing_address"),
            *_address("shipping_address"),
            _f("payment_term_id", INT),
            _f("payment_method_id", INT),
            _f("custom_fields", OBJ),
        ),
        open_paths=("custom_fields",),
    ),
    "orders": RecordSchema.of("partspim.order", _common(*_DOCUMENT), ("custom_fields",)),
    "invoices": RecordSchema.of(
        "partspim.invoice",
        _common(*_DOCUMENT, _f("order_id", INT), _f("due_date", DAY)),
        ("custom_fields",),
    ),
    "payment_terms": RecordSchema.of(
        "partspim.payment_term", _common(_f("code", S, 20), _f("name", S, 100), _f("days", INT))
    ),
    "payment_methods": RecordSchema.of(
        "partspim.payment_method", _common(_f("code", S, 20), _f("name", S, 100))
    ),
    "warehouses": RecordSchema.of(
        "partspim.warehouse", _common(_f("code", S, 20), _f("name", S, 100))
    ),
    "employees": RecordSchema.of(
        "partspim.employee",
        _common(_f("number", S, 10), _f("name", S, 100), _f("active", B)),
    ),
}


__all__ = [
    "ACCOUNT_PATH",
    "AFTER_ID_PARAM",
    "API_KEY_HEADER",
    "API_PREFIX",
    "CURSOR_PARAM",
    "DATA_FIELD",
    "DEFAULT_EMPLOYEE_NUMBER",
    "DEFAULT_PAGE_SIZE",
    "DELIVERY_HEADER",
    "ERRORS_FIELD",
    "EVENT_HEADER",
    "EXISTING_ID_FIELD",
    "ID_LOOKUPS",
    "ID_MAX_DIGITS",
    "LIMIT_PARAM",
    "MAX_FILTER_VALUES",
    "MAX_PAGE_SIZE",
    "MAX_STOCK_BATCH",
    "NEXT_CURSOR_FIELD",
    "RESOURCES",
    "SCHEMAS",
    "SIGNATURE_HEADER",
    "SIGNATURE_TOLERANCE_S",
    "SKU_MAX_DIGITS",
    "SKU_RULE",
    "STOCK_PATH",
    "TIMESTAMP_HEADER",
    "UPDATED_SINCE_PARAM",
    "WEBHOOKS_PATH",
    "WEBHOOK_EVENTS",
    "Resource",
    "lookup_value_possible",
]
