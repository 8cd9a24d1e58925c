"""Process settings, read from KOPPEL_* environment variables.

Everything a process needs before it can open the store lives here; everything about an integration
lives in the store (applied from an integration file, see koppel.config).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    worker_id: str = Field(
        default="local",
        description="this process's name for run recovery; every worker sharing a PostgreSQL "
        "engine database needs its own, stable id",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_case_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

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
