"""The integration file's shape (pydantic), documented with a full example in docs/config.md.

Connection `options` are typed here (`ConnectionOptions`). Flow `settings` and `mapping` depend
on the flow's type and connectors: they are checked before the file is applied
(`koppel.services.checks`), against the flow type's settings model and the connectors' schemas.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

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


def parse_interval(value: object) -> int:
    """A duration as for a schedule (`15m`), never `manual`."""
    seconds = parse_schedule(value)
    if seconds is None:
        raise ValueError("write a duration such as 15m or 1h")
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


DIGEST_EVERY_S = 900
"""Failed records are told in one digest per flow every 15 minutes unless the file says."""
WEBHOOK_SECRET_MIN = 16


class EmailSettings(_Strict):
    host: str = Field(min_length=1)
    port: int = Field(default=587, ge=1, le=65535)
    starttls: bool = True
    user: str | None = None
    # repr=False and SecretStr: never printed, never in an error message.
    password: SecretStr | None = Field(default=None, repr=False)
    sender: str = Field(alias="from", min_length=3)
    to: list[str] = Field(min_length=1)
    ca_file: str | None = Field(
        default=None, description="a CA bundle for a server whose certificate is your own"
    )


class WebhookSettings(_Strict):
    # A chat tool's webhook URL is itself a credential (its path is the token): kept encrypted,
    # shown and told in errors only as its origin.
    url: SecretStr = Field(repr=False)
    secret: SecretStr = Field(repr=False)

    def origin(self) -> str:
        """scheme://host[:port] of the URL: what pages and errors may show."""
        parts = urlsplit(self.url.get_secret_value())
        return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @field_validator("secret")
    @classmethod
    def _long_secret(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < WEBHOOK_SECRET_MIN:
            raise ValueError(f"must be at least {WEBHOOK_SECRET_MIN} characters, for signing")
        return value


class NotificationSettings(_Strict):
    link_base: str = Field(
        default="http://127.0.0.1:8000",
        description="the web app's address, for the links to a run's page",
    )
    digest_every: Annotated[int, BeforeValidator(parse_interval)] = DIGEST_EVERY_S
    daily_report: bool = Field(
        default=False, description="one report per integration after each day (UTC)"
    )
    email: EmailSettings | None = None
    webhook: WebhookSettings | None = None

    @field_validator("link_base")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    def channels(self) -> list[str]:
        return [name for name in ("email", "webhook") if getattr(self, name) is not None]

    def stored(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """(settings without secrets, secrets) as the store keeps them."""
        plain = self.model_dump(
            mode="json",
            by_alias=True,
            exclude={"email": {"password"}, "webhook": {"url", "secret"}},
        )
        secrets: dict[str, Any] = {}
        if self.email is not None and self.email.password is not None:
            secrets["email_password"] = self.email.password.get_secret_value()
        if self.webhook is not None:
            secrets["webhook_url"] = self.webhook.url.get_secret_value()
            secrets["webhook_secret"] = self.webhook.secret.get_secret_value()
        return plain, secrets

    @classmethod
    def from_stored(cls, settings: dict[str, Any], secrets: dict[str, Any]) -> NotificationSettings:
        document = dict(settings)
        if document.get("email") is not None:
            document["email"] = {**document["email"], "password": secrets.get("email_password")}
        if document.get("webhook") is not None:
            document["webhook"] = {
                **document["webhook"],
                "url": secrets.get("webhook_url"),
                "secret": secrets.get("webhook_secret"),
            }
        return cls.model_validate(document)


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
    notifications: NotificationSettings | None = Field(
        default=None, description="the workspace's notification channels (docs/monitoring.md)"
    )

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


__all__ = [
    "DIGEST_EVERY_S",
    "MANUAL",
    "ConnectionConfig",
    "EmailSettings",
    "FlowConfig",
    "FlowEntity",
    "IntegrationConfig",
    "NotificationSettings",
    "WebhookSettings",
]
