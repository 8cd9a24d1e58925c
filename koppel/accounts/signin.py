"""Signing in: passwords checked under a rate limit, server-side sessions with an idle and an
absolute timeout, and API tokens for scripts.

Session and token secrets are 256-bit random strings handed to the browser or the script once;
the store keeps only their SHA-256 (a high-entropy secret needs no slow hash), so a copy of the
database lets nobody in.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from koppel.accounts.errors import N_, InvalidAccountInput, SignInRefused, TooManySignInAttempts
from koppel.accounts.users import NAME_MAX, normalise_email
from koppel.secrets import hash_password, password_needs_rehash, verify_password
from koppel.settings import Settings
from koppel.store import ApiToken, Store, User, UserSession
from koppel.store.tables import utc_now

logger = logging.getLogger(__name__)

TOKEN_PREFIX = "kpl_"
TOKEN_HINT_LENGTH = len(TOKEN_PREFIX) + 6
TOUCH_EVERY = timedelta(seconds=60)
"""How stale a session's or token's last use may be before it is written again."""
# Verified when the e-mail is unknown, so a wrong address costs as long as a wrong password.
_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class SignInPolicy:
    idle: timedelta
    absolute: timedelta
    per_account: int
    per_address: int
    window: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> SignInPolicy:
        return cls(
            idle=timedelta(minutes=settings.web_session_idle_minutes),
            absolute=timedelta(hours=settings.web_session_absolute_hours),
            per_account=settings.web_login_attempts_per_account,
            per_address=settings.web_login_attempts_per_address,
            window=timedelta(minutes=settings.web_login_window_minutes),
        )


@dataclass(frozen=True)
class SignedIn:
    """A valid session: its user, and the session's row."""

    user: User
    session: UserSession


def _throttle_keys(email: str, address: str) -> tuple[str, str]:
    return secret_hash(f"account:{email}"), secret_hash(f"address:{address}")


def _refuse_if_throttled(
    store: Store, policy: SignInPolicy, key: str, limit: int, now: datetime
) -> None:
    since = now - policy.window
    if store.login_failures.count_since(key, since) < limit:
        return
    oldest = store.login_failures.oldest_since(key, since) or now
    minutes = max(1, int(((oldest + policy.window) - now).total_seconds() // 60) + 1)
    raise TooManySignInAttempts(
        N_("Too many failed sign-ins; try again in %(minutes)s minutes."), minutes=minutes
    )


def sign_in(store: Store, policy: SignInPolicy, *, email: str, password: str, address: str) -> User:
    """The user whose e-mail and password these are, or SignInRefused / TooManySignInAttempts.

    `store` is the system store. Failures count per account and per client address; while a
    limit is reached the password is not even checked, so guessing gains nothing.
    """
    now = utc_now()
    try:
        account = normalise_email(email)
    except InvalidAccountInput:
        account = email.strip().lower()
    account_key, address_key = _throttle_keys(account, address)
    _refuse_if_throttled(store, policy, address_key, policy.per_address, now)
    _refuse_if_throttled(store, policy, account_key, policy.per_account, now)
    user = store.users.get_by_email(account)
    stored_hash = store.users.password_hash(user.id) if user is not None else _DUMMY_HASH
    if user is None or not verify_password(stored_hash, password):
        store.login_failures.record([account_key, address_key], now)
        store.login_failures.purge(now - policy.window)
        logger.warning("failed sign-in from %s", address)
        raise SignInRefused(N_("The e-mail address or the password is not right."))
    store.login_failures.clear(account_key)
    if password_needs_rehash(stored_hash):
        store.users.set_password_hash(user.id, hash_password(password))
    store.audit.record(
        user.tenant_id, actor=user.email, action="user.sign_in", subject=f"user:{user.id}"
    )
    return user


def start_session(store: Store, user: User) -> str:
    """A new session for the user; returns the token for the cookie (the store keeps its hash)."""
    token = secrets.token_urlsafe(32)
    store.user_sessions.add(secret_hash(token), user.id)
    return token


def session_for(store: Store, policy: SignInPolicy, token: str) -> SignedIn | None:
    """The session the cookie's token opens, or None: unknown, idle too long, or too old
    (an expired session is deleted on the way)."""
    if not token:
        return None
    session_id = secret_hash(token)
    session = store.user_sessions.get(session_id)
    if session is None:
        return None
    now = utc_now()
    if now - session.last_seen_at > policy.idle or now - session.created_at > policy.absolute:
        store.user_sessions.end(session_id)
        return None
    user = store.users.get(session.user_id)
    if user is None:
        return None
    if now - session.last_seen_at > TOUCH_EVERY:
        store.user_sessions.touch(session_id, now)
    return SignedIn(user, session)


def end_session(store: Store, token: str) -> None:
    """Sign out: the session is deleted on the server, so the cookie opens nothing any more."""
    session = store.user_sessions.get(secret_hash(token))
    if session is None:
        return
    store.user_sessions.end(session.id)
    user = store.users.get(session.user_id)
    if user is not None:
        store.audit.record(
            user.tenant_id, actor=user.email, action="user.sign_out", subject=f"user:{user.id}"
        )


def csrf_token(session_token: str) -> str:
    """The anti-forgery token of a session: derived from its secret, so nothing is stored and
    no other session's forms can be forged with it."""
    return hmac.new(session_token.encode(), b"koppel-csrf", hashlib.sha256).hexdigest()


def purge_expired_sessions(store: Store, policy: SignInPolicy) -> int:
    now = utc_now()
    return store.user_sessions.purge(
        seen_before=now - policy.idle, created_before=now - policy.absolute
    )


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    secret: str
    """Shown once, to copy; never again."""


TOKEN_LIFETIMES_DAYS = (30, 90, 365, 0)
"""The choices offered; 0 means the token does not expire."""


def issue_token(store: Store, user: User, *, name: str, days: int) -> IssuedToken:
    cleaned = " ".join(name.split())
    if not cleaned or len(cleaned) > NAME_MAX:
        raise InvalidAccountInput(
            N_("Name the token (at most %(max)s characters), e.g. after the script using it."),
            max=NAME_MAX,
        )
    if days not in TOKEN_LIFETIMES_DAYS:
        raise InvalidAccountInput(N_("Choose how long the token stays valid."))
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires_at = utc_now() + timedelta(days=days) if days else None
    token = store.api_tokens.add(
        user.id,
        name=cleaned,
        token_hash=secret_hash(secret),
        hint=secret[:TOKEN_HINT_LENGTH],
        expires_at=expires_at,
    )
    store.audit.record(
        user.tenant_id,
        actor=user.email,
        action="token.create",
        subject=f"token:{token.id}",
        detail={"name": token.name, "expires_at": expires_at.isoformat() if expires_at else None},
    )
    return IssuedToken(token, secret)


def revoke_token(store: Store, user: User, token_id: int) -> ApiToken:
    """Delete one of the user's own tokens; anyone else's is not found."""
    token = store.api_tokens.revoke(user.id, token_id)
    store.audit.record(
        user.tenant_id,
        actor=user.email,
        action="token.revoke",
        subject=f"token:{token.id}",
        detail={"name": token.name},
    )
    return token


def user_for_token(store: Store, secret: str) -> User | None:
    """The user an API token acts for, or None: unknown, or expired. `store`: the system store."""
    if not secret.startswith(TOKEN_PREFIX):
        return None
    token = store.api_tokens.get_by_hash(secret_hash(secret))
    if token is None:
        return None
    now = utc_now()
    if token.expires_at is not None and token.expires_at <= now:
        return None
    if token.last_used_at is None or now - token.last_used_at > TOUCH_EVERY:
        store.api_tokens.touch(token.id, now)
    return store.users.get(token.user_id)


__all__ = [
    "TOKEN_LIFETIMES_DAYS",
    "IssuedToken",
    "SignInPolicy",
    "SignedIn",
    "csrf_token",
    "end_session",
    "issue_token",
    "purge_expired_sessions",
    "revoke_token",
    "secret_hash",
    "session_for",
    "sign_in",
    "start_session",
    "user_for_token",
]
