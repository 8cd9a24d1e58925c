"""Request bodies the sandbox accepts, with the field rules of the assumed Parts Pim contract.

Every field is optional here: the same model checks a create (the store then demands the required
fields) and a PATCH (only the fields sent). Pydantic's errors are turned into the contract's
`{"errors": [{"field", "code", "message"}]}` shape by `field_errors`.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

SKU_MAX_LENGTH = 20
_DIGITS = re.compile(r"[0-9]+")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_NL_POSTCODE = re.compile(r"[1-9][0-9]{3} ?[A-Z]{2}")
# ISO 3166-1 alpha-2, officially assigned codes.
_COUNTRY_TEXT = """
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ
BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM
DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS
GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN
KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ
MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM
PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV
SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI
VN VU WF WS YE YT ZA ZM ZW
"""
COUNTRY_CODES = frozenset(_COUNTRY_TEXT.split())


def check_sku(value: str) -> str:
    if not _DIGITS.fullmatch(value):
        raise ValueError("must contain only digits")
    if len(value) > SKU_MAX_LENGTH:
        raise ValueError(f"must be at most {SKU_MAX_LENGTH} digits")
    return value


def gtin_check_digit(body: str) -> int:
    """GS1 check digit of the digits before it: weights 3,1,3,... from the right."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10


def gtin_check_digit_ok(code: str) -> bool:
    return gtin_check_digit(code[:-1]) == int(code[-1])


def check_gtin(value: str) -> str:
    if not _DIGITS.fullmatch(value) or len(value) not in (8, 12, 13, 14):
        raise ValueError("must be a GTIN of 8, 12, 13 or 14 digits")
    if not gtin_check_digit_ok(value):
        raise ValueError("has a wrong check digit")
    return value


def check_email(value: str) -> str:
    if not _EMAIL.fullmatch(value):
        raise ValueError("must be a valid e-mail address")
    return value


def check_country(value: str) -> str:
    if value not in COUNTRY_CODES:
        raise ValueError("must be an ISO 3166-1 alpha-2 country code in capitals, e.g. NL")
    return value


def check_employee_number(value: str) -> str:
    if not _DIGITS.fullmatch(value):
        raise ValueError("must contain only digits")
    return value


Sku = Annotated[str, AfterValidator(check_sku)]
Gtin = Annotated[str, AfterValidator(check_gtin)]
Email = Annotated[str, Field(max_length=254), AfterValidator(check_email)]
Country = Annotated[str, AfterValidator(check_country)]
EmployeeNumber = Annotated[str, Field(max_length=10), AfterValidator(check_employee_number)]
Money = Annotated[Decimal, Field(max_digits=14, decimal_places=4)]
Quantity = Annotated[Decimal, Field(max_digits=14, decimal_places=3)]
VatRate = Annotated[Decimal, Field(ge=0, le=100, decimal_places=2)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
CustomFields = dict[str, Any]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class AddressIn(Body):
    street: str | None = Field(default=None, max_length=100)
    house_number: str | None = Field(default=None, max_length=10)
    house_number_addition: str | None = Field(default=None, max_length=10)
    postcode: str | None = Field(default=None, max_length=10)
    city: str | None = Field(default=None, max_length=60)
    country: Country | None = None

    @model_validator(mode="after")
    def dutch_postcode(self) -> AddressIn:
        if self.country == "NL" and self.postcode and not _NL_POSTCODE.fullmatch(self.postcode):
            raise ValueError("postcode must look like 1234 AB for country NL")
        return self


class ContactPersonIn(Body):
    first_name: str | None = Field(default=None, max_length=50)
    last_name: str | None = Field(default=None, max_length=80)
    email: Email | None = None
    phone: str | None = Field(default=None, max_length=30)


class VariantIn(Body):
    id: int | None = Field(default=None, description="ignored: variants are matched by SKU")
    sku: Sku | None = None
    name: str | None = Field(default=None, max_length=255)
    ean: Gtin | None = None
    price_excl_vat: Money | None = None
    price_incl_vat: Money | None = None
    attributes: dict[str, str] | None = None
    custom_fields: CustomFields | None = None


class ProductIn(Body):
    sku: Sku | None = None
    type: Literal["simple", "configurable"] | None = None
    name: str | None = Field(default=None, min_length=1, max_length=255)
    short_description: str | None = Field(default=None, max_length=1000)
    long_description: str | None = Field(default=None, max_length=20000)
    ean: Gtin | None = None
    price_excl_vat: Money | None = None
    price_incl_vat: Money | None = None
    vat_rate: VatRate | None = None
    currency: Currency | None = None
    category_ids: list[int] | None = None
    attributes: dict[str, str] | None = None
    variant_attributes: list[str] | None = None
    characteristics: dict[str, str] | None = None
    custom_fields: CustomFields | None = None
    variants: list[VariantIn] | None = None


class CategoryIn(Body):
    code: str | None = Field(default=None, min_length=1, max_length=50)
    name: str | None = Field(default=None, min_length=1, max_length=100)
    parent_id: int | None = None
    position: int | None = Field(default=None, ge=0)


class StockIn(Body):
    sku: Sku | None = None
    warehouse_id: int | None = None
    on_hand: Quantity | None = None
    reserved: Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=3)] | None = None
    incoming: Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=3)] | None = None


class RelationIn(Body):
    type: Literal["company", "person"] | None = None
    role: Literal["customer", "supplier"] | None = None
    company_name: str | None = Field(default=None, max_length=100)
    first_name: str | None = Field(default=None, max_length=50)
    last_name: str | None = Field(default=None, max_length=80)
    contact_person: ContactPersonIn | None = None
    email: Email | None = None
    phone: str | None = Field(default=None, max_length=30)
    vat_number: str | None = Field(default=None, max_length=20)
    billing_address: AddressIn | None = None
    shipping_address: AddressIn | None = None
    payment_term_id: int | None = None
    payment_method_id: int | None = None
    custom_fields: CustomFields | None = None


class LineIn(Body):
    sku: str | None = Field(default=None, max_length=SKU_MAX_LENGTH)
    quantity: Annotated[Decimal, Field(gt=0, max_digits=14, decimal_places=3)] | None = None
    price: Money | None = None
    vat_rate: VatRate | None = None
    description: str | None = Field(default=None, max_length=255)


class DocumentIn(Body):
    """An order or an invoice; `order_id` and `due_date` belong to invoices only."""

    reference: str | None = Field(default=None, min_length=1, max_length=50)
    relation_id: int | None = None
    employee_number: EmployeeNumber | None = None
    status: str | None = None
    order_date: date | None = None
    currency: Currency | None = None
    prices_include_vat: bool | None = None
    lines: list[LineIn] | None = None
    billing_address: AddressIn | None = None
    shipping_address: AddressIn | None = None
    payment_term_id: int | None = None
    payment_method_id: int | None = None
    shipping_cost: Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=4)] | None = None
    comment: str | None = Field(default=None, max_length=2000)
    custom_fields: CustomFields | None = None
    order_id: int | None = None
    due_date: date | None = None


class WarehouseIn(Body):
    code: str | None = Field(default=None, min_length=1, max_length=20)
    name: str | None = Field(default=None, min_length=1, max_length=100)


class EmployeeIn(Body):
    number: EmployeeNumber | None = None
    name: str | None = Field(default=None, min_length=1, max_length=100)
    active: bool | None = None


class PaymentTermIn(Body):
    code: str | None = Field(default=None, min_length=1, max_length=20)
    name: str | None = Field(default=None, min_length=1, max_length=100)
    days: int | None = Field(default=None, ge=0, le=365)


class PaymentMethodIn(Body):
    code: str | None = Field(default=None, min_length=1, max_length=20)
    name: str | None = Field(default=None, min_length=1, max_length=100)


class WebhookIn(Body):
    url: Annotated[str, Field(pattern=r"^https?://\S+$", max_length=500)] | None = None
    events: list[str] | None = None


def field_path(location: tuple[int | str, ...]) -> str | None:
    """("lines", 0, "sku") -> "lines[0].sku"; the contract's way to name a nested field."""
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path or None


def field_errors(error: ValidationError) -> list[dict[str, Any]]:
    """Pydantic's errors in the contract's shape: one entry per field, naming the rule."""
    errors: list[dict[str, Any]] = []
    for item in error.errors(include_url=False):
        location = tuple(item["loc"])
        message = str(item["msg"]).removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "is not a field of this resource"
        field = field_path(location)
        if field and field.endswith("_address") and message.startswith("postcode "):
            field, message = f"{field}.postcode", message.removeprefix("postcode ")
        errors.append({"field": field, "code": "invalid", "message": message})
    return errors


__all__ = [
    "COUNTRY_CODES",
    "SKU_MAX_LENGTH",
    "AddressIn",
    "CategoryIn",
    "DocumentIn",
    "EmployeeIn",
    "PaymentMethodIn",
    "PaymentTermIn",
    "ProductIn",
    "RelationIn",
    "StockIn",
    "WarehouseIn",
    "WebhookIn",
    "check_gtin",
    "field_errors",
    "field_path",
    "gtin_check_digit",
    "gtin_check_digit_ok",
]
