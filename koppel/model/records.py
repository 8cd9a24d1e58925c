"""Canonical records shared by every flow.

Amounts are Decimal (never float) so prices survive a round trip through both systems unchanged.
Optional fields are None when the source does not carry them: a send-side mapping then leaves the
target field alone instead of blanking it.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class CanonicalModel(BaseModel):
    """Base of every canonical record: strict about unknown fields so mapping typos surface."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


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
    price_excl_vat: Decimal | None = None
    price_incl_vat: Decimal | None = None
    ean: str | None = None
    quantity: Decimal | None = None
    custom_fields: dict[str, Any] = Field(default_factory=dict)


class Product(CanonicalModel):
    key: str
    sku: str
    name: str
    kind: ProductKind = ProductKind.SIMPLE
    short_description: str | None = None
    long_description: str | None = None
    price_excl_vat: Decimal | None = None
    price_incl_vat: Decimal | None = None
    vat_rate: Decimal | None = Field(default=None, description="percentage, e.g. 21 for 21%")
    currency: str = "EUR"
    ean: str | None = None
    quantity: Decimal | None = None
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
    on_hand: Decimal = Decimal(0)
    reserved: Decimal = Decimal(0)
    incoming: Decimal = Decimal(0)
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
    quantity: Decimal
    unit_price: Decimal | None = None
    description: str | None = None
    vat_rate: Decimal | None = None


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
    shipping_cost: Decimal | None = None
    currency: str = "EUR"
    prices_include_vat: bool = False
    payment_term: str | None = None
    payment_method: str | None = None
    employee_number: str | None = None
    comment: str | None = None
    custom_fields: dict[str, Any] = Field(default_factory=dict)
    updated_at: datetime | None = None
