"""Canonical records shared by every flow.

Amounts are Decimal (never float) so prices survive a round trip through both systems unchanged.
Optional fields are None when the source does not carry them: a send-side mapping then leaves the
target field alone instead of blanking it.

Numbers are finite and below `NUMBER_LIMIT` in size, and currencies are ISO 4217 codes: a record
with `1e308`, NaN or `€` fails alone when it is mapped, naming the field, before any arithmetic
(docs/flows.md, "Values Koppel refuses").
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Any

import pycountry
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

NUMBER_LIMIT = Decimal(10) ** 15
"""No amount or quantity of either system comes near this (AccountView's currency fields end
below 10^15); a larger one is a broken record, refused before a flow computes with it."""

Number = Annotated[Decimal, Field(gt=-NUMBER_LIMIT, lt=NUMBER_LIMIT)]
"""A finite Decimal (pydantic refuses NaN and Infinity) of a sane size."""

VatRate = Annotated[Decimal, Field(ge=0, le=100)]
"""A VAT percentage: 21 for 21%."""


def iso_currency(value: str) -> str:
    """The ISO 4217 code of a currency, in capitals; anything else is refused."""
    code = value.strip().upper()
    if len(code) != 3 or not _is_currency(code):
        raise ValueError(f"{value!r} is not an ISO 4217 currency code (such as EUR)")
    return code


@lru_cache(maxsize=1024)
def _is_currency(code: str) -> bool:
    """Remembered: pycountry's look-up ran for every product and order validated, and the codes
    a catalogue uses are few."""
    return pycountry.currencies.get(alpha_3=code) is not None


CurrencyCode = Annotated[str, AfterValidator(iso_currency)]


class CanonicalModel(BaseModel):
    """Base of every canonical record: strict about unknown fields so mapping typos surface.

    Validators are built on first use, not at import: a command that maps no record (a sync
    with nothing to do, a listing) never builds them."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, defer_build=True)


class ProductKind(StrEnum):
    SIMPLE = "simple"
    CONFIGURABLE = "configurable"


class OrderKind(StrEnum):
    ORDER = "order"
    INVOICE = "invoice"


class Category(CanonicalModel):
    key: str
    name: str
    parent_key: str | None = None
    updated_at: datetime | None = None


class Variant(CanonicalModel):
    """A sellable variant of a configurable product; its attributes tell it apart (size, colour)."""

    key: str
    sku: str
    name: str | None = None
    attributes: dict[str, str] = Field(default_factory=dict)
    price_excl_vat: Number | None = None
    price_incl_vat: Number | None = None
    ean: str | None = None
    quantity: Number | None = None
    custom_fields: dict[str, Any] = Field(default_factory=dict)


class Product(CanonicalModel):
    key: str
    sku: str
    name: str
    kind: ProductKind = ProductKind.SIMPLE
    short_description: str | None = None
    long_description: str | None = None
    price_excl_vat: Number | None = None
    price_incl_vat: Number | None = None
    vat_rate: VatRate | None = Field(default=None, description="percentage, e.g. 21 for 21%")
    currency: CurrencyCode = "EUR"
    ean: str | None = None
    quantity: Number | None = None
    category_keys: list[str] = Field(default_factory=list)
    attributes: dict[str, str] = Field(default_factory=dict)
    characteristics: dict[str, str] = Field(default_factory=dict)
    custom_fields: dict[str, Any] = Field(default_factory=dict)
    variants: list[Variant] = Field(default_factory=list)
    updated_at: datetime | None = None


class StockLevel(CanonicalModel):
    """Stock of one SKU in one warehouse; flows compute on hand / available / economic from it."""

    sku: str
    warehouse: str
    on_hand: Number = Decimal(0)
    reserved: Number = Decimal(0)
    incoming: Number = Decimal(0)
    updated_at: datetime | None = None


class Address(CanonicalModel):
    street: str | None = None
    house_number: str | None = None
    house_number_addition: str | None = None
    postcode: str | None = None
    city: str | None = None
    country: str | None = Field(default=None, description="ISO 3166-1 alpha-2 code")
    name: str | None = None


class Customer(CanonicalModel):
    """A relation. A company name makes it a company debtor with a contact person, none a person."""

    key: str
    email: str | None = None
    company_name: str | None = None
    contact_name: str | None = None
    phone: str | None = None
    vat_number: str | None = None
    billing_address: Address = Field(default_factory=Address)
    shipping_address: Address | None = None
    payment_term: str | None = None
    payment_method: str | None = None
    custom_fields: dict[str, Any] = Field(default_factory=dict)
    updated_at: datetime | None = None

    @property
    def is_company(self) -> bool:
        return bool(self.company_name and self.company_name.strip())


class OrderLine(CanonicalModel):
    sku: str
    quantity: Number
    unit_price: Number | None = None
    description: str | None = None
    vat_rate: VatRate | None = None


class Order(CanonicalModel):
    key: str
    reference: str = Field(description="the order number people see; stored in the target")
    kind: OrderKind = OrderKind.ORDER
    status: str | None = None
    order_date: date | None = None
    customer: Customer
    billing_address: Address = Field(default_factory=Address)
    shipping_address: Address | None = None
    lines: list[OrderLine] = Field(default_factory=list)
    shipping_cost: Number | None = None
    currency: CurrencyCode = "EUR"
    prices_include_vat: bool = False
    payment_term: str | None = None
    payment_method: str | None = None
    employee_number: str | None = None
    comment: str | None = None
    custom_fields: dict[str, Any] = Field(default_factory=dict)
    updated_at: datetime | None = None
