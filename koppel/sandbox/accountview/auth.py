"""OAuth2 as AccountView.Net does it: authorization code, expiring access tokens, rotating refresh.

Only hashes of codes and tokens are stored. Time comes from a clock the sandbox can be given, so
tests make tokens expire by telling the sandbox, not by sleeping.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from koppel.sandbox.accountview import assumptions
from koppel.sandbox.accountview.store import Store

SCOPES = "readaccountviewdata updateaccountviewdata deleteaccountviewdata"


class OAuthError(Exception):
    """An RFC 6749 error answer of the token endpoint."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


@dataclass(frozen=True)
class ClientApp:
    client_id: str
    client_secret: str
    name: str


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Auth:
    """Client apps, authorization codes and tokens of one sandbox."""

    def __init__(
        self,
        store: Store,
        *,
        access_token_lifetime_s: float = assumptions.ACCESS_TOKEN_LIFETIME_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self.access_token_lifetime_s = access_token_lifetime_s
        self.clock = clock

    def ensure_client(self, name: str) -> ClientApp:
        """The registered app (one per sandbox: only one id/secret pair is active at a time)."""
        with self._store.transaction() as conn:
            row = conn.execute("SELECT * FROM oauth_clients ORDER BY rowid LIMIT 1").fetchone()
            if row is None:
                client_id = f"av-sandbox-{secrets.token_hex(6)}"
                conn.execute(
                    "INSERT INTO oauth_clients VALUES (?, ?, ?)",
                    (client_id, secrets.token_urlsafe(24), name),
                )
                row = conn.execute(
                    "SELECT * FROM oauth_clients WHERE client_id = ?", (client_id,)
                ).fetchone()
        return ClientApp(row["client_id"], row["client_secret"], row["name"])

    def client(self, client_id: str) -> ClientApp | None:
        with self._store.transaction() as conn:
            row = conn.execute(
                "SELECT * FROM oauth_clients WHERE client_id = ?", (client_id,)
            ).fetchone()
        return None if row is None else ClientApp(row[0], row[1], row[2])

    def grant_code(self, client_id: str, redirect_uri: str, scope: str) -> str:
        code = secrets.token_urlsafe(24)
        expires = self.clock() + assumptions.AUTHORIZATION_CODE_LIFETIME_S
        with self._store.transaction() as conn:
            conn.execute(
                "INSERT INTO oauth_codes VALUES (?, ?, ?, ?, ?)",
                (_hash(code), client_id, redirect_uri, scope, expires),
            )
        return code

    def issue_tokens(self, client_id: str, scope: str = SCOPES) -> dict[str, Any]:
        """A new access token and refresh token, as the token endpoint answers them."""
        access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        lifetime = self.access_token_lifetime_s
        with self._store.transaction() as conn:
            conn.execute(
                "INSERT INTO oauth_tokens VALUES (?, 'access', ?, ?, ?)",
                (_hash(access), client_id, scope, self.clock() + lifetime),
            )
            conn.execute(
                "INSERT INTO oauth_tokens VALUES (?, 'refresh', ?, ?, NULL)",
                (_hash(refresh), client_id, scope),
            )
        return {
            "access_token": access,
            "token_type": "bearer",
            "expires_in": int(lifetime),
            "refresh_token": refresh,
            "scope": scope,
        }

    def token(self, form: dict[str, str]) -> dict[str, Any]:
        """POST /token: credentials in the body, authorization_code or refresh_token grant."""
        client = self.client(form.get("client_id", ""))
        if client is None or not secrets.compare_digest(
            client.client_secret, form.get("client_secret", "")
        ):
            raise OAuthError(401, "invalid_client", "Unknown client_id or wrong client_secret")
        grant = form.get("grant_type", "")
        with self._store.transaction() as conn:
            if grant == "authorization_code":
                row = conn.execute(
                    "SELECT * FROM oauth_codes WHERE code_hash = ?", (_hash(form.get("code", "")),)
                ).fetchone()
                conn.execute(
                    "DELETE FROM oauth_codes WHERE code_hash = ?", (_hash(form.get("code", "")),)
                )
                if row is None or row["expires_at"] < self.clock():
                    raise OAuthError(400, "invalid_grant", "The code is unknown, used or expired")
                if row["client_id"] != client.client_id or row["redirect_uri"] != form.get(
                    "redirect_uri", ""
                ):
                    raise OAuthError(400, "invalid_grant", "The code was granted to another app")
                scope = row["scope"]
            elif grant == "refresh_token":
                token_hash = _hash(form.get("refresh_token", ""))
                row = conn.execute(
                    "SELECT * FROM oauth_tokens WHERE token_hash = ? AND kind = 'refresh'",
                    (token_hash,),
                ).fetchone()
                if row is None or row["client_id"] != client.client_id:
                    raise OAuthError(400, "invalid_grant", "The refresh token is unknown or used")
                conn.execute("DELETE FROM oauth_tokens WHERE token_hash = ?", (token_hash,))
                scope = row["scope"]
            else:
                raise OAuthError(400, "unsupported_grant_type", f"grant_type '{grant}'")
            return self.issue_tokens(client.client_id, scope)

    def access_valid(self, token: str) -> bool:
        with self._store.transaction() as conn:
            row = conn.execute(
                "SELECT expires_at FROM oauth_tokens WHERE token_hash = ? AND kind = 'access'",
                (_hash(token),),
            ).fetchone()
        return row is not None and row["expires_at"] > self.clock()

    def expire_access_tokens(self) -> None:
        """Make every access token expired now (tests: the next call must refresh)."""
        with self._store.transaction() as conn:
            conn.execute(
                "UPDATE oauth_tokens SET expires_at = ? WHERE kind = 'access'", (self.clock(),)
            )


__all__ = ["SCOPES", "Auth", "ClientApp", "OAuthError"]
