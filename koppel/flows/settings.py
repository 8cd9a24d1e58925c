"""Flow settings, typed per flow type: every setting once, with its type, rule and default.

An integration file's settings are checked against these models when it is applied (unknown
keys and wrong values are refused, every problem at once, `koppel.services.checks`), a run
validates them again when it opens the flow, and the web app can build its form from them
(`model_json_schema()`; every field has a description). docs/flows.md lists them.

The integration's `settings` are shared by its flows: each flow takes those its model knows,
and its own `settings` win over them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

DEFAULT_EMPLOYEE_NUMBER = "999999"
"""The employee (AccountView EMP_NR, Parts Pim's mandatory employee number) of an order whose
mapping gives none: the sandboxes' webshop employee."""


class FlowSettings(BaseModel):
    """Settings every flow has."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    page_size: int = Field(
        default=500,
        ge=1,
        le=1000,
        description="records read per page (one checkpoint, one transaction per page); Parts "
        "Pim's largest page is 500",
    )
    cursor_margin_seconds: int = Field(
        default=120,
        ge=0,
        description="the cursor moves to the run's start less this much, for clock differences",
    )
    retrieve_from: datetime | None = Field(
        default=None,
        description="a date or time (ISO 8601, UTC without a zone): a flow with no cursor yet "
        "reads only records changed since then",
    )
    tables: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="lookup tables for the mappings, by name"
    )

    @field_validator("retrieve_from")
    @classmethod
    def _in_utc(cls, value: datetime | None) -> datetime | None:
        if value is None or value.tzinfo is not None:
            return value
        return value.replace(tzinfo=UTC)


class PriceSettings(FlowSettings):
    """Settings of the flows that put prices into AccountView (products, orders)."""

    allow_negative_prices: bool = Field(
        default=False,
        description="write negative prices (sell prices, order line prices, shipping costs) "
        "instead of failing the record",
    )


class ProductSettings(PriceSettings):
    """Products (and their categories), Parts Pim -> AccountView."""

    allow_zero_prices: bool = Field(
        default=False,
        description="write articles whose sell price is missing or 0 (sold for 0.00) instead of "
        "failing the product",
    )

    sell_price: Literal["excl_vat", "incl_vat"] = Field(
        default="excl_vat", description="which price AccountView's PX_SELL holds"
    )
    variant_name_attributes: list[str] | None = Field(
        default=None,
        description="attributes whose values follow the parent's name in a variant's article "
        "name, in this order (none: the variant's own name)",
    )


class CustomerSettings(FlowSettings):
    """Customers, Parts Pim -> AccountView (and the customers the orders flow writes)."""

    debtor_collective_account: str = Field(
        default="1210",
        min_length=1,
        max_length=10,
        description="ACCT_NR of a new debtor: the collective (accounts receivable) account",
    )
    customer_lock_wait_seconds: float = Field(
        default=30,
        ge=0,
        description="how long a writer waits for another flow writing a debtor with the same "
        "e-mail; then the record fails and is retried later",
    )


class OrderSettings(CustomerSettings, PriceSettings):
    """Orders, Parts Pim -> AccountView."""

    employee_number: str = Field(
        default=DEFAULT_EMPLOYEE_NUMBER,
        min_length=1,
        max_length=10,
        description="EMP_NR (sales employee) of the orders",
    )
    default_customer: str | None = Field(
        default=None,
        min_length=1,
        max_length=10,
        description="SUB_NR for orders whose customer has no e-mail address",
    )
    default_customer_always: bool = Field(
        default=False, description="use default_customer for every order (no debtors written)"
    )
    order_statuses: list[str] = Field(
        default_factory=lambda: ["new", "processing", "shipped", "completed"],
        description="Parts Pim statuses that are posted",
    )
    shipping_article_code: str | None = Field(
        default=None,
        min_length=1,
        max_length=15,
        description="ART_CODE of the shipping-cost line; an order with shipping cost fails "
        "until it is set",
    )
    shipping_description: str = Field(
        default="Verzendkosten", max_length=40, description="ART_DESC of the shipping line"
    )
    shipping_vat_rate: Decimal = Field(
        default=Decimal(21), ge=0, description="VAT % of the shipping cost"
    )
    accountview_prices_include_vat: bool = Field(
        default=False, description="whether AccountView's order prices include VAT"
    )


class OrdersToPartsPimSettings(FlowSettings):
    """Orders, AccountView -> Parts Pim."""

    document_type: Literal["order", "invoice"] = Field(
        default="order", description="which Parts Pim document an AccountView order becomes"
    )
    employee_number: str = Field(
        default=DEFAULT_EMPLOYEE_NUMBER,
        min_length=1,
        description="Parts Pim's mandatory employee number, when the mapping gives none",
    )
    prices_include_vat: bool = Field(
        default=False, description="whether AccountView's line prices (ART_PX) include VAT"
    )
    default_customer: str | None = Field(
        default=None,
        min_length=1,
        description="Parts Pim relation (e-mail address or relation number) for orders without "
        "an e-mail address",
    )
    order_statuses: list[str] | None = Field(
        default=None, description="statuses that are sent, when the get mapping maps a status"
    )


class StockSettings(FlowSettings):
    """Stock, Parts Pim -> AccountView."""

    manage_stock: bool = Field(
        default=True, description="whether AccountView's stock is kept by this flow at all"
    )
    stock_calculation: Literal["on_hand", "available", "economic"] = Field(
        default="available",
        description="on_hand; available = on hand - reserved; economic = on hand + incoming - "
        "reserved",
    )
    stock_warehouses: list[str] = Field(
        default_factory=list, description="Parts Pim warehouse codes to sum (none: all)"
    )
    missing_article: Literal["fail", "skip"] = Field(
        default="fail",
        description="fail (retried) or skip a SKU that AccountView has no article for",
    )
    allow_negative_stock: bool = Field(
        default=False,
        description="sum a warehouse's negative on-hand quantity instead of failing the SKU",
    )


SETTINGS_MODELS: dict[tuple[str, str], type[FlowSettings]] = {
    ("partspim", "products"): ProductSettings,
    ("partspim", "categories"): FlowSettings,
    ("partspim", "customers"): CustomerSettings,
    ("partspim", "orders"): OrderSettings,
    ("partspim", "stock"): StockSettings,
    ("accountview", "orders"): OrdersToPartsPimSettings,
    ("accountview", "products"): FlowSettings,
}
"""The settings of each flow type, by (source application, entity) as `FLOW_TYPES`."""


def settings_model(source_application: str, entity: str) -> type[FlowSettings]:
    """The settings model of a flow type (the shared ones for a type Koppel does not have: that
    flow is refused for its type, not for its settings)."""
    return SETTINGS_MODELS.get((source_application, entity), FlowSettings)


def shared_setting_names() -> set[str]:
    """Every setting some flow type has: what an integration's shared `settings` may hold."""
    return {name for model in SETTINGS_MODELS.values() for name in model.model_fields}


def flow_settings(
    model: type[FlowSettings],
    integration_settings: Mapping[str, Any],
    own_settings: Mapping[str, Any],
) -> FlowSettings:
    """A flow's settings: the integration's that its model knows, with its own over them;
    a ValidationError names every setting that is unknown or wrong."""
    shared = {k: v for k, v in integration_settings.items() if k in model.model_fields}
    return model.model_validate({**shared, **own_settings})


def retrieve_from_date(settings: FlowSettings) -> date | None:
    """`retrieve_from` as the date that order dates are compared with."""
    return settings.retrieve_from.date() if settings.retrieve_from else None


__all__ = [
    "DEFAULT_EMPLOYEE_NUMBER",
    "SETTINGS_MODELS",
    "CustomerSettings",
    "FlowSettings",
    "OrderSettings",
    "OrdersToPartsPimSettings",
    "PriceSettings",
    "ProductSettings",
    "StockSettings",
    "flow_settings",
    "retrieve_from_date",
    "settings_model",
    "shared_setting_names",
]
