"""Process settings, read from KOPPEL_* environment variables.

Everything a process needs before it can open the store lives here; everything about an integration
lives in the store (applied from an integration file, see koppel.config).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from koppel.connectors.addresses import IPNetwork, parse_networks


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KOPPEL_", extra="ignore")

    home: Path = Field(
        default=Path(".koppel"), description="directory for the SQLite file and the secret key"
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; unset means the SQLite file {home}/koppel.db. "
        "PostgreSQL: postgresql+psycopg://user:password@host/db",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="comma-separated Fernet keys: the first encrypts, all decrypt (key rotation); "
        "unset means a key generated once into {home}/secret.key",
    )
    log_retention_days: int = Field(
        default=30, ge=1, description="days the activity log and payloads are kept (GDPR)"
    )
    payload_excerpts: bool = Field(
        default=True, description="keep an excerpt of each record's payload in the activity log"
    )
    engine_database_url: str | None = Field(
        default=None,
        description="the durable engine's (DBOS) system database; unset means the SQLite file "
        "{home}/dbos.sqlite. Use PostgreSQL when several workers share the load",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="WARNING",
        description="what the commands and the engine log to stderr; DEBUG shows every API "
        "request and retry (never a credential)",
    )
    worker_id: str | None = Field(
        default=None,
        description="this process's executor id (run recovery, heartbeats, `koppel workers`); "
        "unset means `local` with a SQLite engine database (one engine process), else "
        "host-pid, unique per process",
    )
    takeover_after_seconds: float = Field(
        default=30.0,
        ge=2.0,
        description="a worker silent for longer than this is taken for dead: a live one takes "
        "over its runs (at once when its process is known to have ended). Workers beat every "
        "sixth of it",
    )
    engine_concurrency: int = Field(
        default=4,
        ge=1,
        le=1000,
        description="flow runs in progress at once, over every process sharing the engine "
        "database (the last process to start sets it for all)",
    )
    worker_concurrency: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="flow runs in progress at once in each process; unset: only "
        "engine_concurrency. With several workers, engine_concurrency / workers spreads the "
        "runs over them (a worker otherwise takes every run it may); like engine_concurrency "
        "it is kept with the queue, and the last process to start sets it for all",
    )

    allowed_networks: str = Field(
        default="",
        description="comma-separated addresses or networks (127.0.0.1, 10.0.0.0/8) that base "
        "URLs entered on the web may point at besides public addresses; loopback and private "
        "ranges are refused otherwise, link-local and cloud metadata always",
    )

    web_https: bool = Field(
        default=False,
        description="the web app is reached over HTTPS (directly or behind a TLS proxy): "
        "__Host- session cookie with Secure, and HSTS",
    )
    web_allowed_hosts: str = Field(
        default="127.0.0.1,localhost,[::1]",
        description="comma-separated host names the web app answers to (the Host header); "
        "others get 400. `*` allows any",
    )
    web_session_idle_minutes: int = Field(
        default=30, ge=1, description="a web session ends after this many minutes unused"
    )
    web_session_absolute_hours: int = Field(
        default=12, ge=1, description="a web session ends this many hours after sign-in"
    )
    web_login_attempts_per_account: int = Field(
        default=5, ge=1, description="failed sign-ins per account in the window before refusal"
    )
    web_login_attempts_per_address: int = Field(
        default=20, ge=1, description="failed sign-ins per client address in the window"
    )
    web_login_window_minutes: int = Field(
        default=15, ge=1, description="the window of the sign-in rate limits"
    )
    web_timezone: str = Field(
        default="Europe/Amsterdam", description="the time zone dates are shown in on the web"
    )

    web_public_url: str | None = Field(
        default=None,
        description="the address Parts Pim reaches this `koppel serve` at (https://koppel.example"
        ".com): set, the server subscribes the Parts Pim connections of enabled flows to "
        "webhooks delivered there; unset, flows run on their schedules only",
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description="the bearer token Prometheus sends to /metrics "
        "(Authorization: Bearer ...); unset means /metrics is off (404)",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_case_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("web_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}; use a name such as Europe/Amsterdam"
            ) from None
        return value

    @field_validator("allowed_networks")
    @classmethod
    def _valid_networks(cls, value: str) -> str:
        parse_networks(value)
        return value

    @property
    def networks_allowed(self) -> tuple[IPNetwork, ...]:
        """`allowed_networks` parsed: what the address guard lets through beside the public."""
        return parse_networks(self.allowed_networks)

    @property
    def allowed_hosts(self) -> list[str]:
        return [host.strip() for host in self.web_allowed_hosts.split(",") if host.strip()]

    @property
    def heartbeat_seconds(self) -> float:
        """How often a process beats and looks for silent peers: the takeover's tick."""
        return self.takeover_after_seconds / 6

    @property
    def store_url(self) -> str:
        """The URL the store opens: `database_url`, else the SQLite file under `home`."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home / 'koppel.db'}"


def get_settings() -> Settings:
    """Read the settings afresh, so a changed environment (tests, reloads) is always seen."""
    return Settings()


__all__ = ["Settings", "get_settings"]
