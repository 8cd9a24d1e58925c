"""The integration file's shape (pydantic), documented with a full example in docs/config.md.

Connection `options` are typed here (`ConnectionOptions`). Flow `settings` and `mapping` depend
on the flow's type and connectors: they are checked before the file is applied
(`koppel.services.checks`), against the flow type's settings model and the connectors' schemas.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from koppel.connectors.options import ConnectionOptions
from koppel.store.records import Application

FlowEntity = Literal["products", "categories", "orders", "customers", "stock"]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")]
_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
MANUAL = "manual"


def parse_schedule(value: object) -> int | None:
    """`60s`, `5m`, `1h30m`, a number of seconds, or `manual` (None: no schedule)."""
    if value is None or value == MANUAL:
        return None
    if isinstance(value, bool):
        raise ValueError("write a duration such as 60s, 5m or 1h, or manual")
    if isinstance(value, int):
        seconds = value
    elif isinstance(value, str) and value.strip().isdigit():
        seconds = int(value.strip())
    elif isinstance(value, str) and (match := _DURATION.match(value.strip())) and value.strip():
        hours, minutes, secs = (int(part or 0) for part in match.groups())
        seconds = hours * 3600 + minutes * 60 + secs
    else:
        raise ValueError(f"{value!r} is not a duration; write e.g. 60s, 5m, 1h30m or manual")
    if seconds < 1:
        raise ValueError("must be at least 1s (or manual)")
    return seconds


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ConnectionConfig(_Strict):
    application: Application
    base_url: str
    # repr=False: printing a config (or an error about it) never shows a secret.
    credentials: dict[str, Any] = Field(default_factory=dict, repr=False)
    options: ConnectionOptions = Field(default_factory=ConnectionOptions)

    def declared_options(self) -> dict[str, Any]:
        """The options the file writes (the defaults stay defaults), as the store keeps them."""
        return self.options.model_dump(mode="json", exclude_unset=True)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value


class FlowConfig(_Strict):
    source: Name = Field(alias="from", description="name of the connection records come from")
    target: Name = Field(alias="to", description="name of the connection records go to")
    entity: FlowEntity
    schedule: Annotated[int | None, BeforeValidator(parse_schedule)] = Field(
        default=60, description="seconds between runs; None = manual (runs only when asked)"
    )
    enabled: bool = True
    settings: dict[str, Any] = Field(default_factory=dict)
    mapping: dict[str, Any] = Field(default_factory=dict)


class IntegrationConfig(_Strict):
    tenant: Name
    integration: Name
    connections: dict[Name, ConnectionConfig]
    settings: dict[str, Any] = Field(default_factory=dict)
    flows: dict[Name, FlowConfig] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _references(self) -> IntegrationConfig:
        """Cross-field rules; each problem is one line 'path: what to fix'."""
        problems: list[str] = []
        names = list(self.connections)
        if len(names) != 2:
            problems.append(
                f"connections: an integration has exactly two connections, found {len(names)}"
                + (f" ({', '.join(names)})" if names else "")
            )
        for flow_name, flow in self.flows.items():
            for side, name in (("from", flow.source), ("to", flow.target)):
                if name not in self.connections:
                    problems.append(
                        f"flows.{flow_name}.{side}: {name!r} is not a connection of this file; "
                        f"use one of: {', '.join(names) or '(none defined)'}"
                    )
            if flow.source == flow.target:
                problems.append(f"flows.{flow_name}.to: must differ from 'from' ({flow.source!r})")
        if problems:
            raise ValueError("\n".join(problems))
        return self


__all__ = ["MANUAL", "ConnectionConfig", "FlowConfig", "FlowEntity", "IntegrationConfig"]
