"""The transform library: named, composable, safe functions a mapping calls by name.

A step is written as a bare name (`trim`), a name with one argument (`{truncate: 40}`), with
positional arguments (`{pad: [6, "0"]}`) or with named ones (`{pad: {length: 6, char: "0"}}`).
Arguments are checked when the mapping is compiled, never while a record is mapped.

Rules every function follows, so chains stay predictable:
- None (an absent value) passes through unchanged; only `default` replaces it.
- A function marked "per element" applied to a list maps every element (`lines[].sku` +
  `digits_only` cleans every SKU).
- Numbers come out as Decimal, never float, so amounts keep their cents.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final

import regex

from koppel.mapping.countries import country_code
from koppel.mapping.paths import PathSyntaxError, Reader, SourcePath, parse_source_path
from koppel.model.schema import FieldType

Tables = Mapping[str, Mapping[str, Any]]
Impl = Callable[[Any, Any], Any]
"""impl(value, source_record) -> new value"""

_REQUIRED: Final = object()
_ABSENT: Final = object()
"""default of an optional argument that has no default value (e.g. lookup's `default`)"""
_REGEX_TIMEOUT_S: Final = 0.1


class TransformError(ValueError):
    """A function could not transform a value; the message names the value and the way out."""


class ArgumentError(ValueError):
    """A function was given arguments it cannot use; found when the mapping is compiled."""


@dataclass(frozen=True)
class Param:
    """One argument. `kind`: int, text, char, number, choice, table, pattern, any, flag, part."""

    name: str
    kind: str
    default: Any = _REQUIRED
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    variadic: bool = False

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED and not self.variadic


@dataclass(frozen=True)
class Example:
    """A worked example for the docs and the tests: `step` as written in YAML, input -> output."""

    step: str
    value: Any
    result: Any
    record: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TransformFunction:
    name: str
    params: tuple[Param, ...]
    build: Callable[[dict[str, Any], Tables], Impl]
    per_element: bool
    summary: str
    example: Example
    output: FieldType | None = None
    """type of the result (None: same as the input); validation uses it to spot mismatches"""
    length: Callable[[dict[str, Any], int | None], int | None] = lambda _args, _n: None
    """longest text the function can return given the longest input (None: cannot tell)"""
    convert_text: Callable[[str], str] | None = None
    """for a function of a text alone (trim, upper): what it makes of a text, which a step
    given a text calls directly, without the wrappers around `build`'s function"""


@dataclass(frozen=True)
class SourceRef:
    """An argument written `{from: path}`: read from the source record when the step runs."""

    path: SourcePath
    read: Reader


@dataclass(frozen=True)
class CompiledStep:
    """One step of a chain, ready to run; `refs` are the source paths its arguments read."""

    function: TransformFunction
    args: dict[str, Any]
    run: Impl
    refs: tuple[SourcePath, ...] = ()

    @property
    def name(self) -> str:
        return self.function.name


CATALOGUE: dict[str, TransformFunction] = {}


def _register(function: TransformFunction) -> None:
    CATALOGUE[function.name] = function


# --- helpers --------------------------------------------------------------------------------


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise TransformError(f"expects text, got {_describe(value)}")
    return str(value)


def _number(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise TransformError(f"expects a number, got {_describe(value)}")
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    raise TransformError(
        f"expects a number, got {_describe(value)}: add `parse_decimal` before this step"
    )


def _describe(value: Any) -> str:
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"text {shown!r}"
    if isinstance(value, bool):
        return f"yes/no value {value}"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    return f"{type(value).__name__} {value!r}"


def _keep_length(_args: dict[str, Any], longest: int | None) -> int | None:
    return longest


def _text_function(
    name: str, convert: Callable[[str], str], summary: str, example: Example
) -> TransformFunction:
    def build(_args: dict[str, Any], _tables: Tables) -> Impl:
        return lambda value, _record: convert(_text(value))

    return TransformFunction(
        name, (), build, True, summary, example, FieldType.STRING, _keep_length, convert
    )


# --- text -----------------------------------------------------------------------------------

_register(
    _text_function(
        "trim",
        lambda text: " ".join(text.split()),
        "Removes spaces at both ends and collapses runs of spaces, tabs and newlines into one.",
        Example("trim", "  Bout   M8 verzinkt ", "Bout M8 verzinkt"),
    )
)
_register(
    _text_function(
        "upper",
        str.upper,
        "Upper case (AccountView codes are upper case).",
        Example("upper", "deb-amsterdam", "DEB-AMSTERDAM"),
    )
)
_register(
    _text_function(
        "lower",
        str.lower,
        "Lower case, e.g. for e-mail addresses.",
        Example("lower", "Inkoop@Bakkerij-DeVries.NL", "inkoop@bakkerij-devries.nl"),
    )
)
_register(
    _text_function(
        "digits_only",
        lambda text: "".join(char for char in text if char.isdigit()),
        "Keeps only the digits 0-9; Parts Pim SKUs may only contain digits.",
        Example("digits_only", "ART-00123/B", "00123"),
    )
)


def _build_truncate(args: dict[str, Any], _tables: Tables) -> Impl:
    length: int = args["length"]
    return lambda value, _record: _text(value)[:length]


_register(
    TransformFunction(
        "truncate",
        (Param("length", "int", minimum=1),),
        _build_truncate,
        True,
        "Cuts text to at most `length` characters (AccountView ART_DESC1 holds 40).",
        Example("{truncate: 20}", "Zeskantbout M8x40 verzinkt DIN 933", "Zeskantbout M8x40 ve"),
        FieldType.STRING,
        lambda args, longest: args["length"] if longest is None else min(longest, args["length"]),
    )
)


def _build_pad(args: dict[str, Any], _tables: Tables) -> Impl:
    length: int = args["length"]
    char: str = args["char"]
    left = args["side"] == "left"

    def pad(value: Any, _record: Any) -> str:
        text = _text(value)
        return text.rjust(length, char) if left else text.ljust(length, char)

    return pad


_register(
    TransformFunction(
        "pad",
        (
            Param("length", "int", minimum=1),
            Param("char", "char", default=" "),
            Param("side", "choice", default="left", choices=("left", "right")),
        ),
        _build_pad,
        True,
        "Pads text to `length` with `char` on the `side` (default left); longer text is kept.",
        Example('{pad: [6, "0"]}', "1234", "001234"),
        FieldType.STRING,
        lambda args, longest: None if longest is None else max(longest, args["length"]),
    )
)


def _build_replace(args: dict[str, Any], _tables: Tables) -> Impl:
    old: str = args["old"]
    new: str = args["new"]
    if not old:
        raise ArgumentError("`old` must not be empty")
    return lambda value, _record: _text(value).replace(old, new)


_register(
    TransformFunction(
        "replace",
        (Param("old", "text"), Param("new", "text", default="")),
        _build_replace,
        True,
        "Replaces every occurrence of the text `old` by `new` (literal text, not a pattern).",
        Example('{replace: [" / ", "-"]}', "Rood / Wit", "Rood-Wit"),
        FieldType.STRING,
    )
)


def _build_regex_extract(args: dict[str, Any], _tables: Tables) -> Impl:
    try:
        pattern = regex.compile(args["pattern"])
    except regex.error as error:
        raise ArgumentError(f"pattern {args['pattern']!r} does not compile: {error}") from None
    group: int | str = args["group"]
    if isinstance(group, int) and group > pattern.groups:
        raise ArgumentError(f"pattern has {pattern.groups} groups; group {group} does not exist")
    if isinstance(group, str) and group not in pattern.groupindex:
        raise ArgumentError(f"pattern has no group named {group!r}")

    def extract(value: Any, _record: Any) -> str | None:
        try:
            match = pattern.search(_text(value), timeout=_REGEX_TIMEOUT_S)
        except TimeoutError:
            raise TransformError(
                f"pattern {pattern.pattern!r} ran longer than {_REGEX_TIMEOUT_S} s on "
                f"{_describe(value)}"
            ) from None
        if match is None:
            return None
        found: str | None = match.group(group)
        return found

    return extract


_register(
    TransformFunction(
        "regex_extract",
        (Param("pattern", "pattern"), Param("group", "group", default=0)),
        _build_regex_extract,
        True,
        "The part of the text that matches `pattern` (or its `group`, by number or name); "
        "None when it does not match. Each match has a time limit of 0.1 s.",
        Example(r"{regex_extract: ['(\d+) ?(ml|l)', 1]}", "Lijm 250 ml tube", "250"),
        FieldType.STRING,
    )
)


def _build_split(args: dict[str, Any], _tables: Tables) -> Impl:
    separator: str = args["separator"]
    if not separator:
        raise ArgumentError("`separator` must not be empty")
    return lambda value, _record: _text(value).split(separator)


_register(
    TransformFunction(
        "split",
        (Param("separator", "text", default=","),),
        _build_split,
        True,
        "Splits text into a list at every `separator` (default a comma); follow with `trim`.",
        Example('{split: ";"}', "rood;wit;blauw", ["rood", "wit", "blauw"]),
        FieldType.LIST,
    )
)


def _build_join(args: dict[str, Any], _tables: Tables) -> Impl:
    separator: str = args["separator"]

    def join(value: Any, _record: Any) -> str:
        if not isinstance(value, list):
            return _text(value)
        return separator.join(_text(item) for item in value if item is not None and item != "")

    return join


_register(
    TransformFunction(
        "join",
        (Param("separator", "text", default=" "),),
        _build_join,
        False,
        "Joins a list into one text with `separator` (default a space), skipping empty items.",
        Example('{join: ", "}', ["Hoofdstraat 12", "", "Utrecht"], "Hoofdstraat 12, Utrecht"),
        FieldType.STRING,
    )
)


def _build_concat(args: dict[str, Any], _tables: Tables) -> Impl:
    parts: list[Any] = args["parts"]

    def concat(value: Any, record: Any) -> str:
        pieces = [_text(value)]
        for part in parts:
            if isinstance(part, SourceRef):
                found = part.read(record)
                pieces.append("" if found is None else _text(found))
            else:
                pieces.append(part)
        return "".join(pieces)

    return concat


_register(
    TransformFunction(
        "concat",
        (Param("parts", "part", variadic=True),),
        _build_concat,
        True,
        "Appends texts to the value; a part written `{from: path}` is read from the source "
        "record (absent reads as empty).",
        Example(
            '{concat: [" ", {from: attributes.kleur}]}',
            "Regenjas",
            "Regenjas rood",
            {"attributes": {"kleur": "rood"}},
        ),
        FieldType.STRING,
    )
)


# --- presence and tables --------------------------------------------------------------------


def _build_default(args: dict[str, Any], _tables: Tables) -> Impl:
    fallback = args["value"]
    return lambda value, _record: fallback if value is None or value in ("", []) else value


_register(
    TransformFunction(
        "default",
        (Param("value", "any"),),
        _build_default,
        False,
        "Replaces an absent value, empty text or empty list by `value`.",
        Example("{default: NL}", "", "NL"),
    )
)


def _build_lookup(args: dict[str, Any], tables: Tables) -> Impl:
    name: str = args["table"]
    if name not in tables:
        known = ", ".join(sorted(tables)) or "none"
        raise ArgumentError(
            f"there is no table {name!r} (tables: {known}): define it under `tables:` in the "
            "mapping or in the flow settings"
        )
    table = {str(key): mapped for key, mapped in tables[name].items()}
    fallback = args["default"]

    def lookup(value: Any, _record: Any) -> Any:
        key = _text(value)
        if key in table:
            return table[key]
        if fallback is not _ABSENT:
            return fallback
        known = ", ".join(sorted(table)[:10]) + (", ..." if len(table) > 10 else "")
        raise TransformError(
            f"value {key!r} is not in table {name} (known: {known or 'none'}): add it to "
            f"tables.{name} or give lookup a default"
        )

    return lookup


_register(
    TransformFunction(
        "lookup",
        (Param("table", "table"), Param("default", "any", default=_ABSENT)),
        _build_lookup,
        True,
        "Translates a value with a table from the mapping's `tables:` or the flow settings "
        "(payment terms, payment methods); an unmapped value fails the record unless a "
        "`default` is given.",
        Example("{lookup: betaaltermijnen}", "30", "T30"),
        None,
    )
)


# --- numbers --------------------------------------------------------------------------------

_PLAIN_NUMBER = re.compile(r"[+-]?(\d+)?(\.\d+)?")


def parse_decimal_text(text: str, separator: str) -> Decimal | None:
    """'1.234,56' (Dutch), '1,234.56' and '1234.56' to Decimal; '' to None."""
    cleaned = text.strip().replace(" ", "").replace("\u00a0", "").replace("€", "")
    if not cleaned:
        return None
    if separator == "auto":
        comma, dot = cleaned.rfind(","), cleaned.rfind(".")
        if comma >= 0 and dot >= 0:
            separator = "," if comma > dot else "."
        elif comma >= 0 or cleaned.count(".") > 1:
            separator = ","
        else:
            separator = "."
    thousands = "." if separator == "," else ","
    normal = cleaned.replace(thousands, "").replace(separator, ".")
    if not _PLAIN_NUMBER.fullmatch(normal) or normal in ("", "+", "-", "."):
        raise TransformError(f"cannot read {_describe(text)} as a number")
    return Decimal(normal)


def _build_parse_decimal(args: dict[str, Any], _tables: Tables) -> Impl:
    separator: str = args["decimal_separator"]

    def parse(value: Any, _record: Any) -> Decimal | None:
        if isinstance(value, str):
            return parse_decimal_text(value, separator)
        return _number(value)

    return parse


_register(
    TransformFunction(
        "parse_decimal",
        (Param("decimal_separator", "choice", default="auto", choices=("auto", ",", ".")),),
        _build_parse_decimal,
        True,
        "Reads a number from text: Dutch '1.234,56', '1234,56', English '1,234.56' and "
        "'1234.56'. With `auto` (default) the last of ',' and '.' is the decimal separator "
        "and a lone ',' is decimal; set `decimal_separator` when '1.234' means 1234.",
        Example("parse_decimal", "€ 1.234,56", Decimal("1234.56")),
        FieldType.DECIMAL,
    )
)


def _to_integer(value: Any, _record: Any) -> int:
    if type(value) is int:  # a whole number already (ids read from JSON): nothing to check
        return value
    number = parse_decimal_text(value, "auto") if isinstance(value, str) else _number(value)
    if number is None:
        raise TransformError("expects a whole number, got empty text")
    if number != number.to_integral_value():
        raise TransformError(f"{number} is not a whole number: add `round: 0` before this step")
    return int(number)


_register(
    TransformFunction(
        "to_integer",
        (),
        lambda _args, _tables: _to_integer,
        True,
        "A whole number from a number or text; a value with decimals fails (round first).",
        Example("to_integer", "12", 12),
        FieldType.INTEGER,
    )
)


def _to_string(value: Any, _record: Any) -> str:
    if type(value) is int:  # ids read from JSON, first: the most common value to convert
        return str(value)
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        return str(value)
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return _text(value)  # raises, naming what the value is


_register(
    TransformFunction(
        "to_string",
        (),
        lambda _args, _tables: _to_string,
        True,
        "Text from a number, date or yes/no value (dates as ISO 8601, yes/no as true/false).",
        Example("to_string", Decimal("12.50"), "12.50"),
        FieldType.STRING,
    )
)

_TRUE_WORDS = frozenset({"true", "1", "yes", "y", "ja", "j", "waar", "on"})
_FALSE_WORDS = frozenset({"false", "0", "no", "n", "nee", "onwaar", "off", ""})


def _to_boolean(value: Any, _record: Any) -> bool:
    if isinstance(value, bool):
        return value
    word = _text(value).strip().casefold()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    raise TransformError(f"cannot read {_describe(value)} as yes/no (ja/nee, true/false, 1/0)")


_register(
    TransformFunction(
        "to_boolean",
        (),
        lambda _args, _tables: _to_boolean,
        True,
        "Yes/no from ja/nee, j/n, yes/no, true/false, 1/0 (any case).",
        Example("to_boolean", "Ja", True),
        FieldType.BOOLEAN,
    )
)


def _build_round(args: dict[str, Any], _tables: Tables) -> Impl:
    quantum = Decimal(1).scaleb(-args["digits"])
    return lambda value, _record: _number(value).quantize(quantum, rounding=ROUND_HALF_UP)


_register(
    TransformFunction(
        "round",
        (Param("digits", "int", default=2, minimum=0),),
        _build_round,
        True,
        "Rounds to `digits` decimals (default 2), halves away from zero as invoices do.",
        Example("{round: 2}", Decimal("10.745"), Decimal("10.75")),
        FieldType.DECIMAL,
    )
)


def _vat_rate(rate: Any, record: Any) -> Decimal:
    if isinstance(rate, SourceRef):
        found = rate.read(record)
        if found is None:
            raise TransformError(f"the VAT rate at {rate.path.text} is absent")
        rate = found
    number = parse_decimal_text(rate, "auto") if isinstance(rate, str) else _number(rate)
    if number is None or number < 0:
        raise TransformError(f"VAT rate {rate!r} is not a percentage such as 21")
    return number


def _build_vat(including: bool) -> Callable[[dict[str, Any], Tables], Impl]:
    def build(args: dict[str, Any], _tables: Tables) -> Impl:
        rate = args["rate"]

        def convert(value: Any, record: Any) -> Decimal:
            factor = 1 + _vat_rate(rate, record) / 100
            amount = _number(value)
            return amount * factor if including else amount / factor

        return convert

    return build


_register(
    TransformFunction(
        "excl_vat",
        (Param("rate", "rate"),),
        _build_vat(including=False),
        True,
        "A price including VAT to the price excluding it; `rate` is a percentage (21) or "
        "`{from: vat_rate}`. Not rounded: follow with `round`.",
        Example("[{excl_vat: 21}, {round: 2}]", Decimal("121.00"), Decimal("100.00")),
        FieldType.DECIMAL,
    )
)
_register(
    TransformFunction(
        "incl_vat",
        (Param("rate", "rate"),),
        _build_vat(including=True),
        True,
        "A price excluding VAT to the price including it; `rate` as for `excl_vat`.",
        Example("[{incl_vat: 9}, {round: 2}]", Decimal("10.00"), Decimal("10.90")),
        FieldType.DECIMAL,
    )
)


# --- dates ----------------------------------------------------------------------------------


def _parse_moment(value: Any, fmt: str) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)
    text = _text(value).strip()
    try:
        if fmt == "iso":
            return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        return dt.datetime.strptime(text, fmt)
    except ValueError:
        expected = "ISO 8601 (2024-03-31)" if fmt == "iso" else repr(fmt)
        raise TransformError(f"cannot read {_describe(value)} as a date in {expected}") from None


def _check_format(fmt: str) -> None:
    if fmt != "iso" and "%" not in fmt:
        raise ArgumentError(f"format {fmt!r} has no % codes: write it like '%d-%m-%Y' or 'iso'")


def _build_parse_date(args: dict[str, Any], _tables: Tables) -> Impl:
    fmt: str = args["format"]
    _check_format(fmt)
    return lambda value, _record: _parse_moment(value, fmt).date()


def _build_parse_datetime(args: dict[str, Any], _tables: Tables) -> Impl:
    fmt: str = args["format"]
    _check_format(fmt)
    return lambda value, _record: _parse_moment(value, fmt)


def _build_format_date(args: dict[str, Any], _tables: Tables) -> Impl:
    fmt: str = args["format"]
    _check_format(fmt)
    if fmt == "iso":
        return lambda value, _record: _parse_moment(value, "iso").isoformat()
    return lambda value, _record: _parse_moment(value, "iso").strftime(fmt)


_register(
    TransformFunction(
        "parse_date",
        (Param("format", "text", default="iso"),),
        _build_parse_date,
        True,
        "A date from text in `format` (Python strftime codes, default ISO 8601).",
        Example('{parse_date: "%d-%m-%Y"}', "31-03-2024", dt.date(2024, 3, 31)),
        FieldType.DATE,
    )
)
_register(
    TransformFunction(
        "parse_datetime",
        (Param("format", "text", default="iso"),),
        _build_parse_datetime,
        True,
        "A date and time from text in `format` (default ISO 8601).",
        Example(
            '{parse_datetime: "%d-%m-%Y %H:%M"}',
            "31-03-2024 14:30",
            dt.datetime(2024, 3, 31, 14, 30),
        ),
        FieldType.DATETIME,
    )
)
_register(
    TransformFunction(
        "format_date",
        (Param("format", "text"),),
        _build_format_date,
        True,
        "Writes a date (or ISO text) in `format`, e.g. '%d-%m-%Y' for Dutch dates.",
        Example('{format_date: "%d-%m-%Y"}', dt.date(2024, 3, 31), "31-03-2024"),
        FieldType.STRING,
    )
)


# --- addresses ------------------------------------------------------------------------------

_DUTCH_POSTCODE = re.compile(r"([1-9]\d{3})\s*([A-Za-z]{2})")


def _build_dutch_postcode(args: dict[str, Any], _tables: Tables) -> Impl:
    strict: bool = args["strict"]

    def postcode(value: Any, _record: Any) -> str:
        text = _text(value).strip()
        match = _DUTCH_POSTCODE.fullmatch(text)
        if match is not None:
            return f"{match.group(1)} {match.group(2).upper()}"
        if strict:
            raise TransformError(f"{_describe(value)} is not a Dutch postcode such as 1234 AB")
        return text

    return postcode


_register(
    TransformFunction(
        "dutch_postcode",
        (Param("strict", "flag", default=False),),
        _build_dutch_postcode,
        True,
        "Writes a Dutch postcode as '1234 AB'. Other text (foreign postcodes) is kept, unless "
        "`strict: true`, which fails the record.",
        Example("dutch_postcode", "3511ax", "3511 AX"),
        FieldType.STRING,
        lambda _args, longest: None if longest is None else max(longest, 7),
    )
)


def _country_code(value: Any, _record: Any) -> str:
    text = _text(value)
    code = country_code(text)
    if code is None:
        raise TransformError(f"{_describe(value)} is not a country name or ISO code")
    return code


_register(
    TransformFunction(
        "country_code",
        (),
        lambda _args, _tables: _country_code,
        True,
        "ISO 3166-1 alpha-2 code from a country name in Dutch, German or English, or from an "
        "alpha-3 or alpha-2 code; an unknown name fails the record.",
        Example("country_code", "Duitsland", "DE"),
        FieldType.STRING,
        lambda _args, _longest: 2,
    )
)

_HOUSE_NUMBER = re.compile(
    r"(?P<street>.*?\S)[\s,]+(?P<number>\d+)(?:\s*[-/]?\s*(?P<addition>[A-Za-z0-9]{1,6}"
    r"(?:[\s-]?[A-Za-z0-9]{1,4})?))?\s*"
)


def split_house_number(address: str) -> tuple[str, str, str]:
    """'Hoofdstraat 12a' -> ('Hoofdstraat', '12', 'a'); the number is the last number group."""
    text = " ".join(address.split())
    match = _HOUSE_NUMBER.fullmatch(text)
    if match is None:
        return text, "", ""
    return match.group("street"), match.group("number"), match.group("addition") or ""


def _build_split_house_number(args: dict[str, Any], _tables: Tables) -> Impl:
    index = ("street", "number", "addition").index(args["part"])
    return lambda value, _record: split_house_number(_text(value))[index]


_register(
    TransformFunction(
        "split_house_number",
        (Param("part", "choice", choices=("street", "number", "addition")),),
        _build_split_house_number,
        True,
        "One part of a Dutch street line: `street`, house `number` or `addition` "
        "('Hoofdstraat 12a' -> 'Hoofdstraat', '12', 'a'). Map each part to its own field.",
        Example("{split_house_number: number}", "Hoofdstraat 12a", "12"),
        FieldType.STRING,
        _keep_length,
    )
)


# --- compiling steps ------------------------------------------------------------------------


def _check_arg(function: str, param: Param, value: Any) -> Any:
    where = f"{function}: argument `{param.name}`"
    kind = param.kind
    if kind in ("int",):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ArgumentError(f"{where} must be a whole number, got {value!r}")
        if param.minimum is not None and value < param.minimum:
            raise ArgumentError(f"{where} must be at least {param.minimum}, got {value}")
        return value
    if kind in ("text", "pattern", "table"):
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise ArgumentError(f"{where} must be text, got {value!r}")
        return str(value)
    if kind == "char":
        if not isinstance(value, str | int) or isinstance(value, bool) or len(str(value)) != 1:
            raise ArgumentError(f"{where} must be one character, got {value!r}")
        return str(value)
    if kind == "choice":
        if value not in param.choices:
            raise ArgumentError(f"{where} must be one of {', '.join(param.choices)}, got {value!r}")
        return value
    if kind == "flag":
        if not isinstance(value, bool):
            raise ArgumentError(f"{where} must be true or false, got {value!r}")
        return value
    if kind == "group":
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ArgumentError(f"{where} must be a group number or name, got {value!r}")
        return value
    if kind in ("rate", "part"):
        if isinstance(value, dict):
            if set(value) != {"from"}:
                raise ArgumentError(f"{where} must be a value or {{from: path}}, got {value!r}")
            try:
                path = parse_source_path(value["from"])
            except PathSyntaxError as error:
                raise ArgumentError(f"{where}: {error}") from None
            return SourceRef(path, path.reader())
        if kind == "rate":
            if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
                raise ArgumentError(f"{where} must be a percentage such as 21, got {value!r}")
            if value < 0:
                raise ArgumentError(f"{where} must not be negative, got {value}")
            return Decimal(str(value))
        if not isinstance(value, str | int | float | Decimal) or isinstance(value, bool):
            raise ArgumentError(f"{where} must be text or {{from: path}}, got {value!r}")
        return str(value)
    return value  # "any"


def _bind(function: TransformFunction, raw: Any) -> dict[str, Any]:
    params = function.params
    if raw is None:
        positional: list[Any] = []
        named: dict[str, Any] = {}
    elif isinstance(raw, dict) and set(raw) != {"from"}:
        positional, named = [], dict(raw)
    elif isinstance(raw, list):
        positional, named = list(raw), {}
    else:
        positional, named = [raw], {}
    args: dict[str, Any] = {}
    for param in params:
        if param.variadic:
            args[param.name] = positional
            positional = []
        elif positional:
            args[param.name] = positional.pop(0)
    if positional:
        raise ArgumentError(
            f"{function.name} takes {len(params)} argument(s), got {len(positional) + len(args)}"
        )
    for name, value in named.items():
        known = {param.name for param in params}
        if name not in known:
            expected = ", ".join(sorted(known)) or "no arguments"
            raise ArgumentError(f"{function.name} has no argument {name!r} (takes: {expected})")
        if name in args:
            raise ArgumentError(f"{function.name}: argument {name!r} given twice")
        args[name] = value
    for param in params:
        if param.name not in args:
            if param.required:
                raise ArgumentError(f"{function.name} needs the argument `{param.name}`")
            args[param.name] = [] if param.variadic else param.default
        elif param.variadic:
            args[param.name] = [_check_arg(function.name, param, item) for item in args[param.name]]
        elif args[param.name] is not param.default:
            args[param.name] = _check_arg(function.name, param, args[param.name])
    return args


def compile_step(raw: Any, tables: Tables) -> CompiledStep:
    """Resolve one step as written in a mapping; ArgumentError says what is wrong with it."""
    if isinstance(raw, str):
        name, raw_args = raw, None
    elif isinstance(raw, dict) and len(raw) == 1:
        ((name, raw_args),) = raw.items()
    else:
        raise ArgumentError(
            f"a transform step is a function name or {{name: arguments}}, got {raw!r}"
        )
    function = CATALOGUE.get(str(name))
    if function is None:
        raise ArgumentError(f"unknown function {name!r}{_suggest(str(name))}")
    args = _bind(function, raw_args)
    impl = function.build(args, tables)
    refs = tuple(
        value.path
        for arg in args.values()
        for value in (arg if isinstance(arg, list) else [arg])
        if isinstance(value, SourceRef)
    )
    return CompiledStep(function, args, _wrap(function, impl), refs)


def _suggest(name: str) -> str:
    close = difflib.get_close_matches(name, CATALOGUE, n=1)
    return f": did you mean {close[0]!r}?" if close else f" (known: {', '.join(sorted(CATALOGUE))})"


def _wrap(function: TransformFunction, impl: Impl) -> Impl:
    if function.name == "default":
        return impl
    convert = function.convert_text
    if convert is not None:

        def per_text(value: Any, record: Any) -> Any:
            if isinstance(value, str):  # nearly always: one call for the step
                return convert(value)
            if value is None:
                return None
            if isinstance(value, list):
                return [None if item is None else impl(item, record) for item in value]
            return impl(value, record)

        return per_text
    if function.per_element:

        def per_element(value: Any, record: Any) -> Any:
            if value is None:
                return None
            if isinstance(value, list):
                return [None if item is None else impl(item, record) for item in value]
            return impl(value, record)

        return per_element

    def whole(value: Any, record: Any) -> Any:
        return None if value is None else impl(value, record)

    return whole


def run_chain(steps: Sequence[CompiledStep], value: Any, record: Any) -> Any:
    for step in steps:
        value = step.run(value, record)
    return value


__all__ = [
    "CATALOGUE",
    "ArgumentError",
    "CompiledStep",
    "Example",
    "Param",
    "Tables",
    "TransformError",
    "TransformFunction",
    "compile_step",
    "parse_decimal_text",
    "run_chain",
    "split_house_number",
]
