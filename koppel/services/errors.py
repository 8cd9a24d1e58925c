"""What the services raise beyond the errors of the layers below (config, store, connectors).

`NotFound` is the root's (`koppel.errors`), shared with the store's NotFoundError: catch it to
catch anything that does not exist.

Each has a category, so a face needs no table of classes: the CLI maps the category to an exit
code, the web app to an HTTP status. Messages say what to change and never hold a secret.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from koppel.errors import ErrorCategory, KoppelError, NotFound


class InvalidRequest(KoppelError):
    """What was asked cannot be done as asked (a name that fits several things, a choice that
    leaves nothing to do): the message says what to ask instead."""

    category = ErrorCategory.CONFIGURATION


class Busy(KoppelError):
    """Another process holds what this needs (the engine, the demo's state); try again later."""

    category = ErrorCategory.CONFLICT


@dataclass(frozen=True)
class FlowProblem:
    """Why one flow cannot run; `hint` names the check that shows more, if there is one."""

    flow: str
    message: str
    hint: str | None = None

    def __str__(self) -> str:
        return f"flow {self.flow}: {self.message}" + (f"\n  {self.hint}" if self.hint else "")


class FlowsCannotRun(InvalidRequest):
    """Some of the chosen flows cannot run as configured (connections, mapping, flow type); every
    problem is listed, before any flow runs."""

    def __init__(self, problems: Sequence[FlowProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


__all__ = ["Busy", "FlowProblem", "FlowsCannotRun", "InvalidRequest", "NotFound"]
