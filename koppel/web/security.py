"""Browser-facing security: the cookies, the anti-forgery check and the response headers.

Sessions are cookies holding a random token (the store keeps its hash). Over HTTPS the cookie is
`__Host-` prefixed and Secure; always HttpOnly and SameSite=Lax. Every state-changing request of
a browser carries an anti-forgery token: a signed-in user's is derived from the session, an
anonymous visitor's (sign-in, first run) is a random cookie repeated in the form (double submit).
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from koppel.accounts.errors import N_
from koppel.errors import ErrorCategory, KoppelError
from koppel.settings import Settings

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HSTS = "max-age=63072000; includeSubDomains"


class CsrfRejected(KoppelError):
    """A state-changing request without the right anti-forgery token (or from another site)."""

    category = ErrorCategory.PERMISSION
    problem = "csrf"
    message_id = N_(
        "This form has expired or came from another site; reload the page and try again."
    )

    def __init__(self) -> None:
        super().__init__(self.message_id)


def is_https(request: Request, settings: Settings) -> bool:
    return settings.web_https or request.url.scheme == "https"


def session_cookie_name(request: Request, settings: Settings) -> str:
    return "__Host-koppel_session" if is_https(request, settings) else "koppel_session"


def anonymous_cookie_name(request: Request, settings: Settings) -> str:
    return "__Host-koppel_csrf" if is_https(request, settings) else "koppel_csrf"


def set_cookie(
    response: Response, request: Request, settings: Settings, name: str, value: str
) -> None:
    """A browser-session cookie (no expiry: the server decides when it ends)."""
    response.set_cookie(
        name,
        value,
        path="/",
        secure=is_https(request, settings),
        httponly=True,
        samesite="lax",
    )


def delete_cookie(response: Response, request: Request, settings: Settings, name: str) -> None:
    response.delete_cookie(
        name, path="/", secure=is_https(request, settings), httponly=True, samesite="lax"
    )


def new_anonymous_token() -> str:
    return secrets.token_urlsafe(32)


def _same_origin(request: Request) -> bool:
    """A browser names the page a request came from in Origin; it must be this site."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host", "")


async def require_csrf(request: Request, expected: str) -> None:
    """Refuse a state-changing request whose form field or header lacks the expected token."""
    if request.method in SAFE_METHODS:
        return
    given = request.headers.get(CSRF_HEADER, "")
    content_type = request.headers.get("content-type", "")
    if not given and content_type.startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        value = (await request.form()).get(CSRF_FIELD, "")
        given = value if isinstance(value, str) else ""
    if not expected or not given or not _same_origin(request):
        raise CsrfRejected()
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise CsrfRejected()


class SecurityHeaders:
    """Adds the security headers to every response; `no-store` to all but static files."""

    def __init__(self, app: ASGIApp, *, https: bool) -> None:
        self.app = app
        self.https = https

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith("/static/")
        https = self.https or scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
                headers["X-Content-Type-Options"] = "nosniff"
                headers["X-Frame-Options"] = "DENY"
                headers["Referrer-Policy"] = "same-origin"
                headers["Cross-Origin-Opener-Policy"] = "same-origin"
                headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
                if not static:
                    headers["Cache-Control"] = "no-store"
                if https:
                    headers["Strict-Transport-Security"] = HSTS
            await send(message)

        await self.app(scope, receive, send_with_headers)


__all__ = [
    "CSRF_FIELD",
    "SAFE_METHODS",
    "CsrfRejected",
    "SecurityHeaders",
    "anonymous_cookie_name",
    "delete_cookie",
    "is_https",
    "new_anonymous_token",
    "require_csrf",
    "session_cookie_name",
    "set_cookie",
]
