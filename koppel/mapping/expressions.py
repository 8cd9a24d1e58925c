"""JSONata expressions in a sandbox: for what the function library does not cover.

JSONata (jsonata-python) can only read the JSON value it is given: it has no attribute access to
Python objects, no imports and no file access. What it can do is run long or build huge values, so
every evaluation runs under a guard of its own:

- a deadline and a nesting limit, checked on entry to and exit from every expression node (the
  library's own Timebox starts its clock when the expression is compiled, not per evaluation, so
  it cannot serve an expression compiled once and evaluated for many records);
- a size limit per value and a budget for all values an evaluation produces (strings in
  characters, lists in items), so doubling a string in a loop ends long before memory does;
- regular expressions run on the `regex` module with the time left as its timeout, because a
  backtracking pattern runs inside one native call where no node check can interrupt it;
- `$eval` is disabled (it would parse text built at run time) and `$pad` and `$replace` check the
  size of what they would build before building it.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import Any

import jsonata
import regex
from jsonata import functions as jsonata_functions
from jsonata import regex_engine as jsonata_regex


class ExpressionError(Exception):
    """An expression that does not parse, or an evaluation that failed or was stopped."""


@dataclass(frozen=True)
class ExpressionLimits:
    max_length: int = 2_000
    """characters of expression text"""
    timeout_s: float = 1.0
    """per evaluation, wall clock: generous, so a busy machine never fails a sound expression
    (the size budget below stops most runaways long before the deadline)"""
    max_depth: int = 200
    """nesting of expression nodes (recursion in user functions)"""
    max_value_size: int = 100_000
    """characters of one string or items of one list"""
    max_total_size: int = 2_000_000
    """characters and items of every value one evaluation produces"""


DEFAULT_LIMITS = ExpressionLimits()


class _Stopped(Exception):
    """Raised inside jsonata's evaluation to end a runaway expression."""


class _Guard:
    __slots__ = ("budget", "deadline", "depth", "limits", "reason")

    def __init__(self, limits: ExpressionLimits) -> None:
        self.limits = limits
        self.deadline = time.monotonic() + limits.timeout_s
        self.depth = 0
        self.budget = limits.max_total_size
        self.reason: str | None = None

    def stop(self, reason: str) -> None:
        self.reason = reason
        raise _Stopped(reason)

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            self.stop(f"ran longer than its deadline of {self.limits.timeout_s:g} s")

    def check_size(self, size: int, what: str) -> None:
        if size > self.limits.max_value_size:
            self.stop(f"{what} of {size} exceeds the limit of {self.limits.max_value_size}")

    def entry(self, _expr: Any, _input: Any, _env: Any) -> None:
        self.depth += 1
        if self.depth > self.limits.max_depth:
            self.stop(f"nests deeper than {self.limits.max_depth} levels")
        self.check_time()

    def exit(self, _expr: Any, _input: Any, _env: Any, result: Any) -> None:
        self.depth -= 1
        self.check_time()
        if isinstance(result, str | list | dict):
            size = len(result)
            self.check_size(size, "a value")
            self.budget -= size
            if self.budget < 0:
                self.stop(f"built more than {self.limits.max_total_size} characters and items")

    def remaining_s(self) -> float:
        return max(self.deadline - time.monotonic(), 0.001)


_current = threading.local()


def _active_guard() -> _Guard | None:
    guard: _Guard | None = getattr(_current, "guard", None)
    return guard


class _TimedPattern:
    """A `regex` pattern whose every match runs with the evaluation's remaining time as timeout."""

    def __init__(self, pattern: Any) -> None:
        self._pattern = pattern

    def _timeout(self) -> float | None:
        guard = _active_guard()
        return guard.remaining_s() if guard is not None else None

    def search(self, string: str) -> Any:
        return self._pattern.search(string, timeout=self._timeout())

    def finditer(self, string: str) -> Iterator[Any]:
        return iter(list(self._pattern.finditer(string, timeout=self._timeout())))

    def sub(self, repl: Any, string: str, count: int = 0) -> str:
        result: str = self._pattern.sub(repl, string, count=count, timeout=self._timeout())
        return result

    def split(self, string: str, maxsplit: int = 0) -> list[str]:
        parts: list[str] = self._pattern.split(string, maxsplit=maxsplit, timeout=self._timeout())
        return parts


def _regex_engine(pattern: str, flags: jsonata_regex.RegexFlags) -> _TimedPattern:
    regex_flags = regex.V0
    if flags.case_insensitive:
        regex_flags |= regex.IGNORECASE
    if flags.multiline:
        regex_flags |= regex.MULTILINE
    return _TimedPattern(regex.compile(pattern, regex_flags))


def _guarded_pad(limits: ExpressionLimits) -> Callable[..., Any]:
    def pad(string: Any, width: Any, char: Any = None) -> Any:
        if isinstance(width, int | float) and abs(width) > limits.max_value_size:
            raise _Stopped(f"$pad width {width:g} exceeds the limit of {limits.max_value_size}")
        return jsonata_functions.Functions.pad(string, width, char)

    return pad


def _guarded_replace(limits: ExpressionLimits) -> Callable[..., Any]:
    def replace(string: Any, pattern: Any, replacement: Any = None, limit: Any = None) -> Any:
        if isinstance(string, str) and isinstance(replacement, str):
            worst = len(string) * max(len(replacement), 1)
            if worst > limits.max_total_size:
                raise _Stopped(
                    f"$replace could build {worst} characters; the limit is {limits.max_total_size}"
                )
        return jsonata_functions.Functions.replace(string, pattern, replacement, limit)

    return replace


def to_json_value(value: Any) -> Any:
    """The JSON shape JSONata reads: Decimal as number, dates as ISO text, enums as their value."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, Enum):
        return to_json_value(value.value)
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(key): to_json_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_json_value(item) for item in value]
    return str(value)


def _from_json_value(value: Any) -> Any:
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ExpressionError(f"expression returned the number {value}, which has no value")
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {str(key): _from_json_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_from_json_value(item) for item in value]
    raise ExpressionError(f"expression returned a {type(value).__name__}, not a JSON value")


class Expression:
    """A compiled JSONata expression; evaluate it as often as needed, from any thread."""

    def __init__(self, source: str, limits: ExpressionLimits = DEFAULT_LIMITS) -> None:
        if not isinstance(source, str) or not source.strip():
            raise ExpressionError("an expression must be a non-empty text")
        if len(source) > limits.max_length:
            raise ExpressionError(
                f"expression is {len(source)} characters; the limit is {limits.max_length}"
            )
        self.source = source
        self.limits = limits
        try:
            self._compiled = jsonata.Jsonata(source, _regex_engine)
        except Exception as error:  # jsonata raises JException and assorted Python errors
            raise ExpressionError(f"expression does not parse: {error}") from None
        if self._compiled.get_errors():
            raise ExpressionError(f"expression does not parse: {self._compiled.get_errors()}")
        self._compiled.register_lambda("pad", _guarded_pad(limits))
        self._compiled.register_lambda("replace", _guarded_replace(limits))
        self._compiled.register_function("eval", None)
        self._compiled.set_validate_input(False)  # callers pass `to_json_value` output

    def record_fields(self) -> tuple[str, ...]:
        """The fields of the record the expression reads at its top (`name` of
        `name & ' ' & attributes.colour`, `attributes` too), so validation can name one that
        the source does not have. What is read relative to something else (a list's elements
        in a predicate or a later path step, a lambda's argument, a variable) is not listed."""
        found: list[str] = []
        _top_fields(self._compiled.ast, found)
        return tuple(dict.fromkeys(found))

    def evaluate(self, data: Any) -> Any:
        """Evaluate against `data` (already in JSON shape, see `to_json_value`)."""
        guard = _Guard(self.limits)
        bindings = {"__evaluate_entry": guard.entry, "__evaluate_exit": guard.exit}
        previous = _active_guard()
        _current.guard = guard
        jsonata.Jsonata.CURRENT.jsonata = self._compiled
        try:
            result = self._compiled.evaluate(data, bindings)
        except (Exception, RecursionError, MemoryError) as error:
            reason = guard.reason or _describe(error)
            raise ExpressionError(f"expression stopped: {reason}") from None
        finally:
            _current.guard = previous
        return _from_json_value(result)


_CHILDREN = ("lhs", "rhs", "condition", "then", "_else", "expression", "expressions")


def _top_fields(node: Any, found: list[str]) -> None:
    """Walk a parsed JSONata expression; the record's context stays the root's everywhere but
    in later path steps, predicates and lambdas, which are not entered."""
    if isinstance(node, list | tuple):
        for item in node:
            _top_fields(item, found)
        return
    kind = getattr(node, "type", None)
    if kind is None or kind == "lambda":
        return
    if kind == "name":
        found.append(str(node.value))
        return
    if kind == "path":
        first = (node.steps or [None])[0]
        if getattr(first, "type", None) == "name":
            found.append(str(first.value))
        else:
            _top_fields(first, found)
        return
    if kind == "function":
        _top_fields(node.arguments or [], found)
        return
    if kind == "unary" and node.value == "{":
        _top_fields(node.lhs or [], found)
        return
    for attribute in _CHILDREN:
        _top_fields(getattr(node, attribute, None), found)


def _describe(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "a regular expression ran longer than the deadline"
    if isinstance(error, RecursionError):
        return "it recursed too deeply"
    if isinstance(error, MemoryError):
        return "it ran out of memory"
    return str(error) or type(error).__name__


__all__ = ["DEFAULT_LIMITS", "Expression", "ExpressionError", "ExpressionLimits", "to_json_value"]
