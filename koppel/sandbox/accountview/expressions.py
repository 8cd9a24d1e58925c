"""`Filter=`: the subset of Visual FoxPro expressions public clients send, compiled to SQL.

The subset and its rules are assumptions.FILTER_EXPRESSION. Anything outside it is refused with
the AccountViewError body: a filter the sandbox cannot evaluate must never return unfiltered rows.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from koppel.sandbox.accountview import assumptions
from koppel.sandbox.accountview.dictionary import (
    DATE_TYPES,
    NUMBER_TYPES,
    TEXT_TYPES,
    FieldDef,
    TableDef,
)
from koppel.sandbox.accountview.errors import ApiError
from koppel.sandbox.accountview.store import COMPANY, quote, table_sql
from koppel.sandbox.accountview.values import parse_datetime

Resolver = Callable[[str], tuple[TableDef, FieldDef]]
"""A field name as a client writes it (bare or table-qualified) to its table and field."""

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<date>\{\^[^}]*\})
    | (?P<text>'[^']*'|"[^"]*")
    | (?P<number>\d+(?:\.\d+)?|\.\d+)
    | (?P<dotted>\.(?:T|F|AND|OR|NOT)\.)
    | (?P<op>==|!=|<>|<=|>=|=|<|>|\#)
    | (?P<bang>!)
    | (?P<paren>[()])
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)
    )""",
    re.VERBOSE | re.IGNORECASE,
)
_WORDS = {"AND": "and", "OR": "or", "NOT": "not", ".AND.": "and", ".OR.": "or", ".NOT.": "not"}
_SQL_OPERATORS = {
    "=": "=",
    "==": "=",
    "!=": "!=",
    "<>": "!=",
    "#": "!=",
    "<": "<",
    "<=": "<=",
    ">": ">",
    ">=": ">=",
}
_MIRRORED = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    position: int


@dataclass(frozen=True)
class _Literal:
    type: str
    """C text, N number, T date or datetime, L logical."""
    value: Any


def scoped(table: TableDef, header: TableDef, condition: str) -> str:
    """A condition on a row of `table` as a condition on a header row (alias h): a detail table's
    condition holds when one of the header's detail rows (alias d) meets it."""
    if table.name == header.name:
        return condition
    link = quote(assumptions.DETAIL_LINKS[table.name])
    return (
        f"EXISTS (SELECT 1 FROM {table_sql(table.name)} d WHERE d.{COMPANY} = h.{COMPANY} "
        f"AND d.{link} = h.{link} AND {condition})"
    )


def column(table: TableDef, header: TableDef, field: FieldDef) -> str:
    return f"{'h' if table.name == header.name else 'd'}.{quote(field.name)}"


def compile_filter(text: str, header: TableDef, resolve: Resolver) -> tuple[str, list[Any]]:
    """The SQL condition (on alias h) and its arguments; ApiError(400) names what is not
    supported and where."""
    return _Parser(text, header, resolve).parse()


class _Parser:
    def __init__(self, text: str, header: TableDef, resolve: Resolver) -> None:
        self.text = text
        self.header = header
        self.resolve = resolve
        self.tokens = self._tokens(text)
        self.index = 0
        self.args: list[Any] = []

    def fail(self, rule: str, token: _Token | None = None) -> ApiError:
        where = token.position if token is not None else len(self.text)
        return ApiError(400, f"Filter: {rule} at position {where + 1} of '{self.text}'")

    def _tokens(self, text: str) -> list[_Token]:
        tokens: list[_Token] = []
        position = 0
        while position < len(text):
            if not text[position:].strip():
                break
            match = _TOKEN.match(text, position)
            if match is None or match.lastgroup is None:
                start = len(text) - len(text[position:].lstrip())
                raise ApiError(
                    400,
                    f"Filter: '{text[start]}' is not supported at position {start + 1} of "
                    f"'{text}' (the sandbox evaluates comparisons, EMPTY(), AND, OR, NOT)",
                )
            group = match.lastgroup
            value = match.group(group)
            kind = group
            if group == "name" and value.upper() in _WORDS:
                kind = _WORDS[value.upper()]
            elif group == "dotted":
                kind = _WORDS.get(value.upper(), "logical")
            tokens.append(_Token(kind, value, match.start(group)))
            position = match.end()
        return tokens

    def peek(self) -> _Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self, kind: str | None = None) -> _Token:
        token = self.peek()
        if token is None:
            raise self.fail("the expression ends too early")
        if kind is not None and token.kind != kind:
            raise self.fail(f"'{token.text}' where {kind} was expected", token)
        self.index += 1
        return token

    def parse(self) -> tuple[str, list[Any]]:
        if not self.tokens:
            raise self.fail("the expression is empty")
        sql = self.disjunction()
        extra = self.peek()
        if extra is not None:
            raise self.fail(f"'{extra.text}' is not expected", extra)
        return sql, self.args

    def disjunction(self) -> str:
        parts = [self.conjunction()]
        while (token := self.peek()) is not None and token.kind == "or":
            self.take()
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"

    def conjunction(self) -> str:
        parts = [self.negation()]
        while (token := self.peek()) is not None and token.kind == "and":
            self.take()
            parts.append(self.negation())
        return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"

    def negation(self) -> str:
        token = self.peek()
        if token is not None and token.kind in ("not", "bang"):
            self.take()
            return f"NOT {self.negation()}"
        return self.primary()

    def primary(self) -> str:
        token = self.take()
        if token.kind == "paren" and token.text == "(":
            inner = self.disjunction()
            closing = self.take("paren")
            if closing.text != ")":
                raise self.fail("')' was expected", closing)
            return f"({inner})"
        following = self.peek()
        if token.kind == "name" and following is not None and following.text == "(":
            return self.function(token)
        if following is not None and following.kind == "op":
            return self.comparison(token)
        if token.kind == "name":
            table, field = self.field(token)
            if field.type != "L":
                raise self.fail(
                    f"{field.name} is not a logical field, so it needs a comparison", token
                )
            return scoped(table, self.header, f"{column(table, self.header, field)} != 0")
        raise self.fail(f"'{token.text}' is not a condition", token)

    def function(self, name: _Token) -> str:
        if name.text.upper() != "EMPTY":
            raise self.fail(f"function {name.text.upper()}() is not supported (only EMPTY())", name)
        self.take("paren")
        table, field = self.field(self.take("name"))
        closing = self.take("paren")
        if closing.text != ")":
            raise self.fail("EMPTY() takes one field", closing)
        empty = "0" if field.type in NUMBER_TYPES or field.type in ("I", "L") else "''"
        return scoped(table, self.header, f"{column(table, self.header, field)} = {empty}")

    def comparison(self, left: _Token) -> str:
        operator = self.take("op")
        right = self.take()
        symbol = operator.text
        if left.kind == "name" and right.kind != "name":
            field_token, value_token = left, right
        elif right.kind == "name" and left.kind != "name":
            field_token, value_token = right, left
            symbol = _MIRRORED.get(symbol, symbol)
        else:
            raise self.fail("a comparison needs one field and one value", left)
        table, field = self.field(field_token)
        literal = self.literal(value_token)
        value = self.compatible(field, literal, value_token)
        if field.type == "L" and symbol in _MIRRORED:
            raise self.fail(
                f"logical field {field.name} cannot be compared with {symbol}", operator
            )
        self.args.append(value)
        condition = f"{column(table, self.header, field)} {_SQL_OPERATORS[symbol]} ?"
        return scoped(table, self.header, condition)

    def field(self, token: _Token) -> tuple[TableDef, FieldDef]:
        if token.kind != "name":
            raise self.fail(f"'{token.text}' is not a field", token)
        try:
            return self.resolve(token.text)
        except ApiError as error:
            raise self.fail(error.message, token) from None

    def literal(self, token: _Token) -> _Literal:
        if token.kind == "text":
            return _Literal("C", token.text[1:-1].rstrip())
        if token.kind == "number":
            return _Literal("N", float(token.text))
        if token.kind == "logical":
            return _Literal("L", int(token.text.upper() == ".T."))
        if token.kind == "date":
            parsed = parse_datetime(token.text)
            if parsed is None:
                raise self.fail(f"{token.text} is not a date like {{^2020-01-01}}", token)
            return _Literal("T", parsed)
        raise self.fail(f"'{token.text}' is not a value", token)

    def compatible(self, field: FieldDef, literal: _Literal, token: _Token) -> Any:
        if field.type in TEXT_TYPES:
            expected = "C"
        elif field.type in NUMBER_TYPES or field.type == "I":
            expected = "N"
        elif field.type in DATE_TYPES:
            expected = "T"
        else:
            expected = "L"
        if literal.type != expected:
            raise self.fail(
                f"operator/operand type mismatch: {field.name} is of type {field.type}", token
            )
        return literal.value


__all__ = ["Resolver", "column", "compile_filter", "scoped"]
