"""A connection's options: how hard Koppel drives the API and how long it waits for it.

Every option has its type, rule and default here once; the integration file refuses an unknown
option or a wrong value (`connections.NAME.options`), and docs/config.md lists them all.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from koppel.connectors.base import ClientLimits


class ConnectionOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    concurrency: int = Field(
        default=8, ge=1, le=64, description="requests in flight at once on this connection"
    )
    rate_per_second: float | None = Field(
        default=None, gt=0, description="at most this many requests start per second (none: no cap)"
    )
    timeout_seconds: float = Field(
        default=30,
        gt=0,
        le=600,
        description="how long one request may take to answer (reading the answer included)",
    )
    connect_timeout_seconds: float = Field(
        default=5, gt=0, le=60, description="how long connecting to the host may take"
    )
    max_attempts: int = Field(
        default=8,
        ge=1,
        le=50,
        description="tries of one request that fails in a way worth retrying",
    )
    rate_limit_wait_seconds: float = Field(
        default=900,
        gt=0,
        le=86_400,
        description="how long one request may keep being refused with 429 (too many requests) "
        "before it fails; a 429 slows the connection down and is never counted as a try",
    )
    backoff_base_seconds: float = Field(
        default=0.1, ge=0, description="the first wait between tries; it doubles per try"
    )
    backoff_max_seconds: float = Field(
        default=10, ge=0, description="the longest wait between tries (Retry-After may be longer)"
    )
    down_after_seconds: float = Field(
        default=60,
        gt=0,
        le=3600,
        description="a connection that gives no answer for this long is marked down: the rest "
        "of the run fails at once with that reason",
    )
    authorize_url: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="AccountView only: its login page (default: /ams/authorize.aspx on the "
        "API's host)",
    )

    def limits(self) -> ClientLimits:
        return ClientLimits(
            concurrency=self.concurrency,
            rate_per_second=self.rate_per_second,
            timeout_s=self.timeout_seconds,
            connect_timeout_s=self.connect_timeout_seconds,
            max_attempts=self.max_attempts,
            rate_limit_wait_s=self.rate_limit_wait_seconds,
            backoff_base_s=self.backoff_base_seconds,
            backoff_max_s=self.backoff_max_seconds,
            down_after_s=self.down_after_seconds,
        )


__all__ = ["ConnectionOptions"]
