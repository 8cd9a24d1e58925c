"""Users of a workspace: who may do what, and the changes to accounts, each one audited.

Every function takes the store it may use: the workspace-scoped store of the signed-in user, so a
user id of another workspace is simply not found (NotFoundError), never changed.
"""

from __future__ import annotations

import re

from koppel.accounts.errors import (
    N_,
    AccountError,
    FirstRunClosed,
    InvalidAccountInput,
    LastAdminError,
    PermissionDenied,
)
from koppel.errors import ErrorCategory
from koppel.secrets import hash_password, verify_password
from koppel.store import EmailTakenError, Role, Store, User

EMAIL_MAX = 100
PASSWORD_MIN = 12
PASSWORD_MAX = 256
NAME_MAX = 100
LOCALES = ("en", "nl", "de")
"""The languages the web app speaks; the first is the fallback."""
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")


class EmailInUse(AccountError):
    category = ErrorCategory.CONFLICT


def can_manage_users(user: User) -> bool:
    return user.is_admin


def require_admin(user: User) -> None:
    if not user.is_admin:
        raise PermissionDenied(N_("Only an admin of the workspace may do this."))


def normalise_email(email: str) -> str:
    address = email.strip().lower()
    if len(address) > EMAIL_MAX:
        raise InvalidAccountInput(
            N_("The e-mail address may have at most %(max)s characters."), max=EMAIL_MAX
        )
    if not _EMAIL.match(address):
        raise InvalidAccountInput(N_("Enter an e-mail address such as name@example.com."))
    return address


def check_password(password: str, *, email: str) -> None:
    """Length is the rule (ASVS 6.2): at least 12 characters, no composition rules."""
    if len(password) < PASSWORD_MIN:
        raise InvalidAccountInput(
            N_("The password needs at least %(min)s characters."), min=PASSWORD_MIN
        )
    if len(password) > PASSWORD_MAX:
        raise InvalidAccountInput(
            N_("The password may have at most %(max)s characters."), max=PASSWORD_MAX
        )
    if password.strip().lower() == email:
        raise InvalidAccountInput(N_("The password may not be the e-mail address."))


def _name(name: str, email: str) -> str:
    cleaned = " ".join(name.split())
    if len(cleaned) > NAME_MAX:
        raise InvalidAccountInput(N_("The name may have at most %(max)s characters."), max=NAME_MAX)
    return cleaned or email.split("@", 1)[0]


def parse_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise InvalidAccountInput(N_("The role must be admin or viewer.")) from None


def parse_locale(value: str) -> str | None:
    """A language the app speaks, or None (empty: follow the browser)."""
    if not value:
        return None
    if value not in LOCALES:
        raise InvalidAccountInput(N_("The language must be one of en, nl, de."))
    return value


def create_user(
    store: Store,
    *,
    actor: str,
    tenant_id: int,
    email: str,
    name: str,
    password: str,
    role: Role,
    locale: str | None = None,
) -> User:
    address = normalise_email(email)
    check_password(password, email=address)
    try:
        user = store.users.add(
            tenant_id,
            email=address,
            name=_name(name, address),
            role=role,
            password_hash=hash_password(password),
            locale=locale,
        )
    except EmailTakenError:
        raise EmailInUse(
            N_("An account with the e-mail address %(email)s exists already."), email=address
        ) from None
    store.audit.record(
        tenant_id,
        actor=actor,
        action="user.create",
        subject=f"user:{user.id}",
        detail={"email": user.email, "role": user.role.value},
    )
    return user


def add_user(
    store: Store, admin: User, *, email: str, name: str, password: str, role: Role
) -> User:
    """An admin adds a user to their own workspace."""
    require_admin(admin)
    return create_user(
        store,
        actor=admin.email,
        tenant_id=admin.tenant_id,
        email=email,
        name=name,
        password=password,
        role=role,
    )


def create_first_admin(
    store: Store, *, workspace: str, email: str, name: str, password: str
) -> User:
    """The very first account of the installation: an admin, in a workspace made if new.

    `store` is the system store; once any user exists this is refused.
    """
    if store.users.count() > 0:
        raise FirstRunClosed(N_("The first admin exists already; sign in instead."))
    workspace_name = " ".join(workspace.split())
    if not workspace_name or len(workspace_name) > NAME_MAX:
        raise InvalidAccountInput(
            N_("Name the workspace (at most %(max)s characters)."), max=NAME_MAX
        )
    address = normalise_email(email)
    check_password(password, email=address)
    tenant = store.tenants.ensure(workspace_name)
    return create_user(
        store,
        actor=address,
        tenant_id=tenant.id,
        email=address,
        name=name,
        password=password,
        role=Role.ADMIN,
    )


def _other_admins(store: Store, user: User) -> int:
    return store.users.count(user.tenant_id, role=Role.ADMIN) - (1 if user.is_admin else 0)


def change_role(store: Store, admin: User, user_id: int, role: Role) -> User:
    require_admin(admin)
    user = store.users.require(user_id)
    if user.role is role:
        return user
    if user.is_admin and _other_admins(store, user) == 0:
        raise LastAdminError(
            N_("%(email)s is the workspace's only admin; make someone else admin first."),
            email=user.email,
        )
    changed = store.users.set_role(user.id, role)
    store.audit.record(
        admin.tenant_id,
        actor=admin.email,
        action="user.role",
        subject=f"user:{user.id}",
        detail={"email": user.email, "from": user.role.value, "to": role.value},
    )
    return changed


def remove_user(store: Store, admin: User, user_id: int) -> User:
    """Delete the account; its sessions and API tokens end with it."""
    require_admin(admin)
    user = store.users.require(user_id)
    if user.is_admin and _other_admins(store, user) == 0:
        raise LastAdminError(
            N_("%(email)s is the workspace's only admin; make someone else admin first."),
            email=user.email,
        )
    store.users.remove(user.id)
    store.audit.record(
        admin.tenant_id,
        actor=admin.email,
        action="user.remove",
        subject=f"user:{user.id}",
        detail={"email": user.email, "role": user.role.value},
    )
    return user


def change_password(
    store: Store, user: User, *, current: str, new: str, keep_session: str | None
) -> int:
    """Change one's own password; every other session of the user ends. Returns how many."""
    if not verify_password(store.users.password_hash(user.id), current):
        raise InvalidAccountInput(N_("The current password is not right."))
    check_password(new, email=user.email)
    store.users.set_password_hash(user.id, hash_password(new))
    ended = store.user_sessions.end_for_user(user.id, keep=keep_session)
    store.audit.record(
        user.tenant_id,
        actor=user.email,
        action="user.password",
        subject=f"user:{user.id}",
        detail={"other_sessions_ended": ended},
    )
    return ended


def set_language(store: Store, user: User, locale: str | None) -> User:
    if locale is not None and locale not in LOCALES:
        raise InvalidAccountInput(N_("The language must be one of en, nl, de."))
    if user.locale == locale:
        return user
    changed = store.users.set_locale(user.id, locale)
    store.audit.record(
        user.tenant_id,
        actor=user.email,
        action="user.language",
        subject=f"user:{user.id}",
        detail={"from": user.locale, "to": locale},
    )
    return changed


__all__ = [
    "LOCALES",
    "PASSWORD_MIN",
    "EmailInUse",
    "add_user",
    "can_manage_users",
    "change_password",
    "change_role",
    "check_password",
    "create_first_admin",
    "create_user",
    "normalise_email",
    "parse_locale",
    "parse_role",
    "remove_user",
    "require_admin",
    "set_language",
]
