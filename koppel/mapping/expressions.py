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

The interpreter costs about 0.1 ms per expression node, which made the few expressions of the
default mappings a third of the orders flow's CPU. So an expression made only of the plain parts
those use (paths of names, text literals, null, true and false, `? :`, `and`, `or`, `=`, `!=`,
`&`, array constructors with `[$]`, blocks, and `$trim`, `$join`, `$contains`,
`$substringBefore`, `$substringAfter`) is also compiled to Python functions that evaluate it
directly, with JSONata's rules for missing fields, null and truthiness, on texts short enough
that no limit can be reached. Any other value (a number, a list read from the record, a long
text) hands the whole evaluation to the interpreter, so every result and every error is the
interpreter's. The deadline is checked when a plain evaluation ends.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import Any, Protocol

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
        self._plain = _plain_evaluator(self._compiled.ast, limits)

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
        if self._plain is not None:
            started = time.monotonic()
            try:
                result = self._plain(data)
            except _NotPlain:
                return self._interpret(data)
            self._check_deadline(started)
            return result
        return self._interpret(data)

    def evaluate_record(self, source: RecordSource) -> Any:
        """Evaluate against a record as the mapping holds it: the plain evaluation reads it as it
        is (only texts, null and objects, which `to_json_value` keeps as they are), so the
        record is turned into JSON values only when the interpreter evaluates."""
        if self._plain is not None:
            started = time.monotonic()
            try:
                result = self._plain(source.record)
            except _NotPlain:
                return self._interpret(source.json)
            self._check_deadline(started)
            return result
        return self._interpret(source.json)

    def _check_deadline(self, started: float) -> None:
        if time.monotonic() - started > self.limits.timeout_s:
            raise ExpressionError(
                f"expression stopped: ran longer than its deadline of {self.limits.timeout_s:g} s"
            )

    def _interpret(self, data: Any) -> Any:
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


class RecordSource(Protocol):
    """A record to evaluate against, with its JSON shape (`to_json_value`) made on demand."""

    @property
    def record(self) -> Any: ...

    @property
    def json(self) -> Any: ...


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


class _NotPlain(Exception):
    """A value the plain evaluation does not model: the interpreter evaluates instead."""


class _JsonNull:
    """A field that is there with the value null (None): JSONata tells it from a missing one."""

    __slots__ = ()


_NULL = _JsonNull()
Plain = Callable[[Any], Any]
"""plain(data) -> str, bool, None (undefined), _NULL or a list of those; raises _NotPlain"""

_SHAPING = (
    "keep_array",
    "keep_singleton_array",
    "consarray",
    "focus",
    "index",
    "tuple",
    "ancestor",
    "stages",
    "group",
    "predicate",
    "seeking_parent",
)
"""Node attributes that change how a node's value is shaped (sequences, tuples, grouping)."""
_PLAIN_FUNCTIONS = {
    "trim": (1, 1),
    "join": (1, 2),
    "contains": (2, 2),
    "substringBefore": (2, 2),
    "substringAfter": (2, 2),
}
"""The functions evaluated plainly, with how many arguments they are given (fewer would use
the context in their place, which the plain evaluation does not)."""
_WHITESPACE = re.compile("[ \t\n\r]+")


def _plain_evaluator(ast: Any, limits: ExpressionLimits) -> Plain | None:
    """Python functions for an expression made only of the plain parts, or None. Texts longer
    than the bound computed here hand the evaluation to the interpreter: below it no value can
    exceed `max_value_size` and all of them together not `max_total_size`, and the nesting is
    checked here against `max_depth`, so the limits need no checks during the evaluation."""
    nodes = _count_nodes(ast, 1)
    if nodes is None or nodes[1] * 2 > limits.max_depth:
        return None
    longest = min(limits.max_value_size, limits.max_total_size // (4 * nodes[0] + 4))
    if longest < 1:
        return None
    try:
        plain = _PlainCompiler(longest).compile(ast)
    except _NotPlain:
        return None

    def evaluate(data: Any) -> Any:
        value = plain(data)
        if value is _NULL:
            return None  # the interpreter's result turns JSON null into None as well
        if type(value) is list and _NULL in value:
            raise _NotPlain
        return value

    return evaluate


def _count_nodes(node: Any, depth: int) -> tuple[int, int] | None:
    """(nodes, deepest nesting) of an expression tree, None when it is not a tree of Symbols."""
    children = [
        child
        for attribute in ("steps", "lhs", "rhs", "condition", "then", "_else", "expressions")
        for child in _as_list(getattr(node, attribute, None))
    ] + _as_list(getattr(node, "arguments", None))
    count, deepest = 1, depth
    for child in children:
        counted = _count_nodes(child, depth + 1)
        if counted is None:
            return None
        count, deepest = count + counted[0], max(deepest, counted[1])
    return count, deepest + 1


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _truth(value: Any) -> bool:
    """JSONata's boolean value of a plain value (a list's is left to the interpreter)."""
    if type(value) is str:
        return value != ""
    if value is None or value is _NULL:
        return False
    if type(value) is bool:
        return value
    raise _NotPlain


class _PlainCompiler:
    def __init__(self, longest: int) -> None:
        self.longest = longest

    def compile(self, node: Any) -> Plain:
        kind = getattr(node, "type", None)
        shaped = [a for a in _SHAPING if getattr(node, a, None)]
        if kind == "unary" and node.value == "[":
            if shaped not in ([], ["predicate"]):
                raise _NotPlain
            return self._array(node)
        if kind == "block":
            if shaped not in ([], ["predicate"]):
                raise _NotPlain
            return self._filtered(node, self._block(node))
        if shaped:
            raise _NotPlain
        if kind == "path":
            return self._path(node)
        if kind == "string":
            return self._text(node)
        if kind == "value":  # null, true, false
            literal = _NULL if node.value is None else node.value
            if literal is not _NULL and type(literal) is not bool:
                raise _NotPlain
            return lambda _data: literal
        if kind == "condition":
            return self._condition(node)
        if kind == "binary":
            return self._binary(node)
        if kind == "function":
            return self._function(node)
        raise _NotPlain

    def _text(self, node: Any) -> Plain:
        value = node.value
        if type(value) is not str or len(value) > self.longest:
            raise _NotPlain
        return lambda _data: value

    def _path(self, node: Any) -> Plain:
        names: list[str] = []
        for step in node.steps or ():
            if step.type != "name" or any(getattr(step, a, None) for a in _SHAPING):
                raise _NotPlain
            names.append(str(step.value))
        if not names:
            raise _NotPlain
        longest = self.longest

        def read(data: Any) -> Any:
            value = data
            for name in names:
                if type(value) is not dict:
                    if value is None or value is _NULL:
                        return None  # a step into nothing (or null) is nothing
                    raise _NotPlain
                if name in value:
                    value = value[name]
                    if value is None:
                        value = _NULL
                elif all(type(key) is str for key in value):
                    return None
                else:
                    raise _NotPlain  # `to_json_value` would make its other keys texts
            if value is _NULL or (type(value) is str and len(value) <= longest):
                return value
            raise _NotPlain

        return read

    def _condition(self, node: Any) -> Plain:
        condition = self.compile(node.condition)
        then = self.compile(node.then)
        if node._else is None:
            return lambda data: then(data) if _truth(condition(data)) else None
        otherwise = self.compile(node._else)
        return lambda data: then(data) if _truth(condition(data)) else otherwise(data)

    def _binary(self, node: Any) -> Plain:
        lhs, rhs = self.compile(node.lhs), self.compile(node.rhs)
        operator = node.value
        if operator == "and":
            return lambda data: _truth(lhs(data)) and _truth(rhs(data))
        if operator == "or":
            return lambda data: _truth(lhs(data)) or _truth(rhs(data))
        if operator in ("=", "!="):
            equal = operator == "="

            def compare(data: Any) -> bool:
                left, right = lhs(data), rhs(data)
                if left is None or right is None:
                    return False  # undefined equals nothing, and differs from nothing
                if type(left) is str and type(right) is str:
                    return (left == right) is equal
                if (left is _NULL and type(right) is str) or (right is _NULL and type(left) is str):
                    return not equal
                raise _NotPlain

            return compare
        if operator == "&":
            longest = self.longest

            def concatenate(data: Any) -> str:
                left, right = lhs(data), rhs(data)
                if (left is not None and type(left) is not str) or (
                    right is not None and type(right) is not str
                ):
                    raise _NotPlain
                joined = (left or "") + (right or "")
                if len(joined) > longest:
                    raise _NotPlain
                return joined

            return concatenate
        raise _NotPlain

    def _array(self, node: Any) -> Plain:
        items = [self.compile(item) for item in node.expressions or ()]
        nested = any(getattr(item, "value", None) == "[" for item in node.expressions or ())
        if nested or len(items) > self.longest:
            raise _NotPlain

        def build(data: Any) -> list[Any]:
            built: list[Any] = []
            for item in items:
                value = item(data)
                if value is None:
                    continue  # undefined items are left out
                if type(value) is not str and value is not _NULL:
                    raise _NotPlain
                built.append(value)
            return built

        return self._filtered(node, build)

    def _block(self, node: Any) -> Plain:
        expressions = [self.compile(item) for item in node.expressions or ()]
        if not expressions:
            raise _NotPlain

        def run(data: Any) -> Any:
            value = None
            for expression in expressions:
                value = expression(data)
            return value

        return run

    def _filtered(self, node: Any, produce: Plain) -> Plain:
        """`[$]` after an array or a block: its items that are true, as a sequence (none is
        nothing, one is that item)."""
        predicates = node.predicate or []
        if not predicates:
            return produce
        for predicate in predicates:
            expr: Any = getattr(predicate, "expr", None)
            if (
                getattr(predicate, "type", None) != "filter"
                or getattr(expr, "type", None) != "variable"
                or expr.value != ""
                or any(getattr(expr, a, None) for a in _SHAPING)
            ):
                raise _NotPlain
        rounds = len(predicates)

        def keep_true(data: Any) -> Any:
            value = produce(data)
            for _ in range(rounds):
                if value is None:
                    return None
                items = value if type(value) is list else [value]
                kept = [item for item in items if _truth(item)]
                value = None if not kept else kept[0] if len(kept) == 1 else kept
            return value

        return keep_true

    def _function(self, node: Any) -> Plain:
        procedure = node.procedure
        name = getattr(procedure, "value", None)
        arguments = [self.compile(argument) for argument in node.arguments or ()]
        if (
            getattr(procedure, "type", None) != "variable"
            or any(getattr(procedure, a, None) for a in _SHAPING)
            or name not in _PLAIN_FUNCTIONS
        ):
            raise _NotPlain
        fewest, most = _PLAIN_FUNCTIONS[name]
        if not fewest <= len(arguments) <= most:
            raise _NotPlain
        if name == "join":
            return self._join(arguments)
        first = arguments[0]
        if name == "trim":

            def trim(data: Any) -> str | None:
                text = first(data)
                if text is None:
                    return None
                if type(text) is not str:
                    raise _NotPlain
                return _WHITESPACE.sub(" ", text).strip(" ")

            return trim
        second = arguments[1]
        if name == "contains":

            def contains(data: Any) -> bool | None:
                text, part = first(data), second(data)
                if type(part) is not str or (text is not None and type(text) is not str):
                    raise _NotPlain
                return None if text is None else part in text

            return contains
        before = name == "substringBefore"

        def substring(data: Any) -> str | None:
            text, part = first(data), second(data)
            if type(part) is not str or (text is not None and type(text) is not str):
                raise _NotPlain
            if text is None:
                return None
            position = text.find(part)
            if position < 0:
                return text
            return text[:position] if before else text[position + len(part) :]

        return substring

    def _join(self, arguments: list[Plain]) -> Plain:
        items = arguments[0]
        separator = arguments[1] if len(arguments) > 1 else (lambda _data: "")
        longest = self.longest

        def join(data: Any) -> str | None:
            texts, between = items(data), separator(data)
            if type(between) is not str:
                raise _NotPlain
            if texts is None:
                return None
            if type(texts) is str:
                return texts
            if type(texts) is not list or any(type(text) is not str for text in texts):
                raise _NotPlain
            joined = between.join(texts)
            if len(joined) > longest:
                raise _NotPlain
            return joined

        return join


__all__ = [
    "DEFAULT_LIMITS",
    "Expression",
    "ExpressionError",
    "ExpressionLimits",
    "RecordSource",
    "to_json_value",
]
