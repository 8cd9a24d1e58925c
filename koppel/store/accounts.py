"""Repositories for the web app's accounts: users, sessions, API tokens, failed sign-ins.

They store what they are given: hashing passwords and tokens, timeouts and rate limits are the
account rules in `koppel.accounts`. A tenant-scoped store sees only its workspace's users and
their tokens; sessions and failed sign-ins are looked up before anyone is known, so only a system
store reads them.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Executable,
    delete,
    exists,
    func,
    select,
    true,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstrumentedAttribute, Session

from koppel.errors import ErrorCategory
from koppel.store.context import NotFoundError, StoreContext, StoreError
from koppel.store.tables import ApiTokenRow, LoginFailureRow, UserRow, UserSessionRow, utc_now


class Role(StrEnum):
    ADMIN = "admin"
    """Changes things: users, and (later) connections, mappings, replays."""
    VIEWER = "viewer"
    """Reads everything of the workspace, changes nothing but their own account."""


@dataclass(frozen=True)
class User:
    id: int
    tenant_id: int
    email: str
    name: str
    role: Role
    locale: str | None
    created_at: datetime
    updated_at: datetime

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


@dataclass(frozen=True)
class UserSession:
    id: str
    """The SHA-256 of the cookie's token, never the token."""
    user_id: int
    created_at: datetime
    last_seen_at: datetime


@dataclass(frozen=True)
class ApiToken:
    id: int
    user_id: int
    name: str
    hint: str
    """The token's first characters, to tell tokens apart; not enough to use one."""
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None


class EmailTakenError(StoreError):
    """Another account (in any workspace) already signs in with this e-mail address."""

    category = ErrorCategory.CONFLICT


def _user(row: UserRow) -> User:
    return User(
        id=row.id,
        tenant_id=row.tenant_id,
        email=row.email,
        name=row.name,
        role=Role(row.role),
        locale=row.locale,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _session(row: UserSessionRow) -> UserSession:
    return UserSession(
        id=row.id, user_id=row.user_id, created_at=row.created_at, last_seen_at=row.last_seen_at
    )


def _token(row: ApiTokenRow) -> ApiToken:
    return ApiToken(
        id=row.id,
        user_id=row.user_id,
        name=row.name,
        hint=row.hint,
        created_at=row.created_at,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
    )


def _affected(session: Session, statement: Executable) -> int:
    """How many rows an UPDATE or DELETE touched."""
    result = cast(CursorResult[Any], session.execute(statement))
    return result.rowcount or 0


def _in_tenant_users(
    context: StoreContext, column: InstrumentedAttribute[int]
) -> ColumnElement[bool]:
    if context.tenant_id is None:
        return true()
    return column.in_(select(UserRow.id).where(UserRow.tenant_id == context.tenant_id))


class UserRepository:
    def __init__(self, context: StoreContext) -> None:
        self._context = context

    def add(
        self,
        tenant_id: int,
        *,
        email: str,
        name: str,
        role: Role,
        password_hash: str,
        locale: str | None = None,
    ) -> User:
        self._context.require_tenant(tenant_id)
        try:
            with self._context.write() as session:
                taken = session.scalar(select(exists().where(UserRow.email == email)))
                if taken:
                    raise EmailTakenError(f"an account with the e-mail address {email} exists")
                row = UserRow(
                    tenant_id=tenant_id,
                    email=email,
                    name=name,
                    role=role.value,
                    locale=locale,
                    password_hash=password_hash,
                )
                session.add(row)
                session.flush()
                return _user(row)
        except IntegrityError:  # a concurrent add of the same address won
            raise EmailTakenError(f"an account with the e-mail address {email} exists") from None

    def get(self, user_id: int) -> User | None:
        with self._context.read() as session:
            row = self._row(session, user_id)
            return None if row is None else _user(row)

    def require(self, user_id: int) -> User:
        """The user, or NotFoundError (also for a user of another workspace)."""
        user = self.get(user_id)
        if user is None:
            raise NotFoundError(f"user {user_id} not found")
        return user

    def get_by_email(self, email: str) -> User | None:
        with self._context.read() as session:
            row = session.scalar(
                select(UserRow).where(
                    UserRow.email == email, self._context.in_tenant(UserRow.tenant_id)
                )
            )
            return None if row is None else _user(row)

    def password_hash(self, user_id: int) -> str:
        with self._context.read() as session:
            return self._require(session, user_id).password_hash

    def list(
        self, tenant_id: int, *, after_id: int | None = None, limit: int = 100
    ) -> builtins.list[User]:
        """By id, from after `after_id` (keyset paging)."""
        self._context.require_tenant(tenant_id)
        query = select(UserRow).where(UserRow.tenant_id == tenant_id)
        if after_id is not None:
            query = query.where(UserRow.id > after_id)
        with self._context.read() as session:
            return [_user(row) for row in session.scalars(query.order_by(UserRow.id).limit(limit))]

    def count(self, tenant_id: int | None = None, *, role: Role | None = None) -> int:
        query = select(func.count()).select_from(UserRow)
        query = query.where(self._context.in_tenant(UserRow.tenant_id))
        if tenant_id is not None:
            query = query.where(UserRow.tenant_id == tenant_id)
        if role is not None:
            query = query.where(UserRow.role == role.value)
        with self._context.read() as session:
            return int(session.scalar(query) or 0)

    def set_role(self, user_id: int, role: Role) -> User:
        return self._set(user_id, role=role.value)

    def set_locale(self, user_id: int, locale: str | None) -> User:
        return self._set(user_id, locale=locale)

    def set_password_hash(self, user_id: int, password_hash: str) -> User:
        return self._set(user_id, password_hash=password_hash)

    def remove(self, user_id: int) -> None:
        """Delete the user; their sessions and API tokens go with them."""
        with self._context.write() as session:
            session.delete(self._require(session, user_id))

    def _set(self, user_id: int, **values: object) -> User:
        with self._context.write() as session:
            row = self._require(session, user_id)
            for name, value in values.items():
                setattr(row, name, value)
            row.updated_at = utc_now()
            session.flush()
            return _user(row)

    def _row(self, session: Session, user_id: int) -> UserRow | None:
        return session.scalar(
            select(UserRow).where(UserRow.id == user_id, self._context.in_tenant(UserRow.tenant_id))
        )

    def _require(self, session: Session, user_id: int) -> UserRow:
        row = self._row(session, user_id)
        if row is None:
            raise NotFoundError(f"user {user_id} not found")
        return row


class UserSessionRepository:
    def __init__(self, context: StoreContext) -> None:
        self._context = context

    def add(self, session_id: str, user_id: int) -> UserSession:
        with self._context.write() as session:
            if session.scalar(select(UserRow.id).where(UserRow.id == user_id)) is None:
                raise NotFoundError(f"user {user_id} not found")
            now = utc_now()
            row = UserSessionRow(id=session_id, user_id=user_id, created_at=now, last_seen_at=now)
            session.add(row)
            session.flush()
            return _session(row)

    def get(self, session_id: str) -> UserSession | None:
        with self._context.read() as session:
            row = session.scalar(
                select(UserSessionRow).where(
                    UserSessionRow.id == session_id,
                    _in_tenant_users(self._context, UserSessionRow.user_id),
                )
            )
            return None if row is None else _session(row)

    def touch(self, session_id: str, at: datetime) -> None:
        with self._context.write() as session:
            session.execute(
                update(UserSessionRow)
                .where(UserSessionRow.id == session_id)
                .values(last_seen_at=at)
            )

    def end(self, session_id: str) -> None:
        with self._context.write() as session:
            session.execute(delete(UserSessionRow).where(UserSessionRow.id == session_id))

    def end_for_user(self, user_id: int, *, keep: str | None = None) -> int:
        """End every session of the user (but `keep`); returns how many ended."""
        query = delete(UserSessionRow).where(UserSessionRow.user_id == user_id)
        if keep is not None:
            query = query.where(UserSessionRow.id != keep)
        with self._context.write() as session:
            return _affected(session, query)

    def list(self, user_id: int) -> builtins.list[UserSession]:
        with self._context.read() as session:
            rows = session.scalars(
                select(UserSessionRow)
                .where(
                    UserSessionRow.user_id == user_id,
                    _in_tenant_users(self._context, UserSessionRow.user_id),
                )
                .order_by(UserSessionRow.created_at)
            )
            return [_session(row) for row in rows]

    def purge(self, *, seen_before: datetime, created_before: datetime) -> int:
        """Delete the sessions past their idle or absolute timeout."""
        with self._context.write() as session:
            return _affected(
                session,
                delete(UserSessionRow).where(
                    (UserSessionRow.last_seen_at < seen_before)
                    | (UserSessionRow.created_at < created_before)
                ),
            )


class ApiTokenRepository:
    def __init__(self, context: StoreContext) -> None:
        self._context = context

    def add(
        self, user_id: int, *, name: str, token_hash: str, hint: str, expires_at: datetime | None
    ) -> ApiToken:
        with self._context.write() as session:
            owner = session.scalar(
                select(UserRow.id).where(
                    UserRow.id == user_id, self._context.in_tenant(UserRow.tenant_id)
                )
            )
            if owner is None:
                raise NotFoundError(f"user {user_id} not found")
            row = ApiTokenRow(
                user_id=user_id, name=name, token_hash=token_hash, hint=hint, expires_at=expires_at
            )
            session.add(row)
            session.flush()
            return _token(row)

    def list(self, user_id: int) -> builtins.list[ApiToken]:
        with self._context.read() as session:
            rows = session.scalars(
                select(ApiTokenRow)
                .where(
                    ApiTokenRow.user_id == user_id,
                    _in_tenant_users(self._context, ApiTokenRow.user_id),
                )
                .order_by(ApiTokenRow.id)
            )
            return [_token(row) for row in rows]

    def get_by_hash(self, token_hash: str) -> ApiToken | None:
        with self._context.read() as session:
            row = session.scalar(
                select(ApiTokenRow).where(
                    ApiTokenRow.token_hash == token_hash,
                    _in_tenant_users(self._context, ApiTokenRow.user_id),
                )
            )
            return None if row is None else _token(row)

    def touch(self, token_id: int, at: datetime) -> None:
        with self._context.write() as session:
            session.execute(
                update(ApiTokenRow).where(ApiTokenRow.id == token_id).values(last_used_at=at)
            )

    def revoke(self, user_id: int, token_id: int) -> ApiToken:
        """Delete one of the user's tokens; a token of anyone else is not found."""
        with self._context.write() as session:
            row = session.scalar(
                select(ApiTokenRow).where(
                    ApiTokenRow.id == token_id,
                    ApiTokenRow.user_id == user_id,
                    _in_tenant_users(self._context, ApiTokenRow.user_id),
                )
            )
            if row is None:
                raise NotFoundError(f"API token {token_id} not found")
            token = _token(row)
            session.delete(row)
            return token


class LoginFailureRepository:
    """Failed sign-ins per hashed key (an account, an address), for the rate limit."""

    def __init__(self, context: StoreContext) -> None:
        self._context = context

    def record(self, key_hashes: Sequence[str], at: datetime) -> None:
        with self._context.write() as session:
            session.add_all(LoginFailureRow(key_hash=key, failed_at=at) for key in key_hashes)

    def count_since(self, key_hash: str, since: datetime) -> int:
        with self._context.read() as session:
            return int(
                session.scalar(
                    select(func.count()).where(
                        LoginFailureRow.key_hash == key_hash, LoginFailureRow.failed_at >= since
                    )
                )
                or 0
            )

    def oldest_since(self, key_hash: str, since: datetime) -> datetime | None:
        with self._context.read() as session:
            return session.scalar(
                select(func.min(LoginFailureRow.failed_at)).where(
                    LoginFailureRow.key_hash == key_hash, LoginFailureRow.failed_at >= since
                )
            )

    def clear(self, key_hash: str) -> None:
        with self._context.write() as session:
            session.execute(delete(LoginFailureRow).where(LoginFailureRow.key_hash == key_hash))

    def purge(self, before: datetime) -> int:
        with self._context.write() as session:
            return _affected(
                session, delete(LoginFailureRow).where(LoginFailureRow.failed_at < before)
            )


__all__ = [
    "ApiToken",
    "ApiTokenRepository",
    "EmailTakenError",
    "LoginFailureRepository",
    "Role",
    "User",
    "UserRepository",
    "UserSession",
    "UserSessionRepository",
]
