"""Reading an integration file: YAML, `${ENV}` references, validation with errors that say where.

Every problem is reported as `file: path.inside.file: what to fix`, and never quotes a value from
the file (it may be a secret): `${NAME}` lets the file be committed without secrets.
"""

from __future__ import annotations

import difflib
import os
import re
import typing
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from koppel.config.model import IntegrationConfig
from koppel.errors import ErrorCategory, KoppelError

# `${NAME}` is replaced by the environment variable; `$${...}` stays a literal `${...}`.
_ENV_REFERENCE = re.compile(r"\$(\$?)\{([^}]*)\}")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ConfigError(KoppelError):
    """A problem in an integration file; `problems` are (path inside the file, what to fix)."""

    category = ErrorCategory.CONFIGURATION

    def __init__(self, file: Path | str, problems: Sequence[tuple[str, str]]) -> None:
        self.file = str(file)
        self.problems = list(problems)
        super().__init__(
            "\n".join(
                f"{self.file}: {path}: {message}" if path else f"{self.file}: {message}"
                for path, message in self.problems
            )
        )


def load_config(path: Path | str, *, environ: Mapping[str, str] | None = None) -> IntegrationConfig:
    """Read and validate an integration file; `environ` defaults to the process environment."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(file, [("", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(file, [("", f"cannot read the file ({type(error).__name__})")]) from None
    return parse_config(text, file, environ=os.environ if environ is None else environ)


def parse_config(text: str, file: Path | str, *, environ: Mapping[str, str]) -> IntegrationConfig:
    """Validate integration-file text; `file` names it in errors."""
    try:
        document = yaml.load(text, Loader=_ConfigLoader)  # a SafeLoader: no object tags
    except yaml.MarkedYAMLError as error:
        raise ConfigError(file, [("", _yaml_problem(error, text))]) from None
    except yaml.YAMLError as error:
        raise ConfigError(file, [("", f"not valid YAML ({type(error).__name__})")]) from None
    if not isinstance(document, dict):
        raise ConfigError(
            file, [("", "the file must be a mapping with tenant, integration, connections, flows")]
        )
    problems: list[tuple[str, str]] = []
    resolved = _substitute(document, (), environ, problems)
    if problems:
        raise ConfigError(file, problems)
    try:
        return IntegrationConfig.model_validate(resolved)
    except ValidationError as error:
        raise ConfigError(file, _validation_problems(error)) from None


class _ConfigLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans that refuses a key given twice.

    YAML 1.1 reads `on`, `no`, `yes` as booleans, which would break the mapping rule key `on:`
    and the country code `NO`; and PyYAML silently keeps the last of two equal keys.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[Any] = set()
        for key_node, _value in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice in one mapping", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_BOOL_TAG = "tag:yaml.org,2002:bool"
# Dates stay text (`retrieve_from: 2024-01-01`): the settings models read them, the store keeps
# JSON, which has no dates.
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_ConfigLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag not in (_BOOL_TAG, _TIMESTAMP_TAG)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_ConfigLoader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _yaml_problem(error: yaml.MarkedYAMLError, text: str) -> str:
    # Only the problem and position: str(error) would quote the line, which may hold a secret.
    where = ""
    if error.problem_mark is not None:
        where = f" at line {error.problem_mark.line + 1}, column {error.problem_mark.column + 1}"
    problem = error.problem or error.context or "invalid YAML"
    hint = '; inside { } write ${NAME} references in quotes: "${NAME}"' if "${" in text else ""
    return f"not valid YAML{where}: {problem}{hint}"


def _format_path(loc: Sequence[int | str]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def _substitute(
    value: Any,
    loc: tuple[int | str, ...],
    environ: Mapping[str, str],
    problems: list[tuple[str, str]],
) -> Any:
    if isinstance(value, dict):
        return {k: _substitute(v, (*loc, str(k)), environ, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, (*loc, i), environ, problems) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        escaped, name = match.group(1), match.group(2)
        if escaped:
            return "${" + name + "}"
        if not _ENV_NAME.match(name):
            problems.append(
                (_format_path(loc), f"${{{name}}} is not a valid environment variable name")
            )
            return ""
        if name not in environ:
            problems.append(
                (
                    _format_path(loc),
                    f"environment variable {name} is not set; export it or write the value here",
                )
            )
            return ""
        return environ[name]

    return _ENV_REFERENCE.sub(replace, value)


def _validation_problems(error: ValidationError) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for detail in error.errors(include_input=False, include_url=False):
        loc = detail["loc"]
        message = str(detail["msg"])
        kind = detail["type"]
        if not loc and kind == "value_error":
            # Cross-field rules from IntegrationConfig: one "path: message" per line.
            for line in message.removeprefix("Value error, ").splitlines():
                path, _, text = line.partition(": ")
                problems.append((path, text))
            continue
        if kind == "missing":
            message = "missing; add it"
        elif kind == "extra_forbidden":
            allowed = _allowed_fields(loc[:-1])
            message = unknown_key(str(loc[-1]), allowed, "field")
        else:
            message = message.removeprefix("Value error, ")
        problems.append((_format_path(loc), message))
    return problems


def unknown_key(key: str, allowed: Sequence[str], what: str) -> str:
    """`unknown field (did you mean schedule?); allowed: ...` for a key the file misspelt."""
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    guess = f" (did you mean {close[0]}?)" if close else ""
    return f"unknown {what}{guess}" + (f"; allowed: {', '.join(allowed)}" if allowed else "")


def _allowed_fields(loc: Sequence[int | str]) -> list[str]:
    """The field names allowed at `loc`, following nested models and dicts of models."""
    model: type[BaseModel] = IntegrationConfig
    index = 0
    while index < len(loc):
        fields = {(f.alias or name): f for name, f in model.model_fields.items()}
        field = fields.get(str(loc[index]))
        if field is None:
            return []
        annotation = field.annotation
        if typing.get_origin(annotation) is dict:
            annotation = typing.get_args(annotation)[1]
            index += 1  # skip the dict key (a connection's or flow's name)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
        index += 1
    return sorted((f.alias or name) for name, f in model.model_fields.items())


__all__ = ["ConfigError", "load_config", "parse_config", "unknown_key"]
