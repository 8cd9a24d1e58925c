"""The account rules over a real store: who may be made, the last admin, the sign-in rate limit,
session timeouts, hashed secrets, and an audit entry for every change."""

from __future__ import annotations

from datetime import timedelta

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select, text, update

from koppel.accounts.errors import (
    FirstRunClosed,
    InvalidAccountInput,
    LastAdminError,
    SignInRefused,
    TooManySignInAttempts,
)
from koppel.accounts.signin import (
    SignInPolicy,
    end_session,
    issue_token,
    purge_expired_sessions,
    revoke_token,
    secret_hash,
    session_for,
    sign_in,
    start_session,
    user_for_token,
)
from koppel.accounts.users import (
    EmailInUse,
    change_password,
    change_role,
    create_first_admin,
    create_user,
    remove_user,
)
from koppel.secrets import verify_password
from koppel.store import NotFoundError, Role, Store, User
from koppel.store.tables import ApiTokenRow, LoginFailureRow, UserRow, UserSessionRow, utc_now

PASSWORD = "correct horse battery staple"
POLICY = SignInPolicy(
    idle=timedelta(minutes=30),
    absolute=timedelta(hours=12),
    per_account=3,
    per_address=5,
    window=timedelta(minutes=15),
)


def user(store: Store, email: str, role: Role = Role.VIEWER, workspace: str = "acme") -> User:
    tenant = store.tenants.ensure(workspace)
    return create_user(
        store,
        actor="test",
        tenant_id=tenant.id,
        email=email,
        name="",
        password=PASSWORD,
        role=role,
    )


def test_a_user_is_made_with_a_normalised_address_an_argon2id_hash_and_an_audit_entry(
    store: Store,
) -> None:
    made = user(store, "  Ann.Smith@Example.COM ", Role.ADMIN)
    assert made.email == "ann.smith@example.com" and made.name == "ann.smith"
    stored = store.users.password_hash(made.id)
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert verify_password(stored, PASSWORD)
    (entry,) = store.audit.list(made.tenant_id)
    assert (entry.actor, entry.action, entry.subject) == ("test", "user.create", f"user:{made.id}")
    assert entry.detail == {"email": "ann.smith@example.com", "role": "admin"}


@pytest.mark.parametrize(
    ("email", "password", "message"),
    [
        ("not-an-address", PASSWORD, "Enter an e-mail address such as name@example.com."),
        ("a@example.com", "too short", "The password needs at least 12 characters."),
        ("a@example.com", "x" * 257, "The password may have at most 256 characters."),
        ("long.enough@example.com", "Long.Enough@Example.com", "may not be the e-mail address"),
    ],
)
def test_bad_input_is_refused_with_the_rule(
    store: Store, email: str, password: str, message: str
) -> None:
    tenant = store.tenants.ensure("acme")
    with pytest.raises(InvalidAccountInput, match=message.replace(".", r"\.")):
        create_user(
            store,
            actor="test",
            tenant_id=tenant.id,
            email=email,
            name="",
            password=password,
            role=Role.VIEWER,
        )
    assert store.users.count() == 0


def test_one_account_per_address_across_workspaces(store: Store) -> None:
    user(store, "ann@example.com", workspace="acme")
    with pytest.raises(EmailInUse, match=r"ann@example\.com exists already"):
        user(store, "ANN@example.com", workspace="globex")


def test_the_last_admin_can_be_neither_demoted_nor_removed(store: Store) -> None:
    admin = user(store, "admin@example.com", Role.ADMIN)
    with pytest.raises(LastAdminError, match="only admin"):
        change_role(store, admin, admin.id, Role.VIEWER)
    with pytest.raises(LastAdminError):
        remove_user(store, admin, admin.id)
    second = user(store, "second@example.com", Role.VIEWER)
    change_role(store, admin, second.id, Role.ADMIN)
    change_role(store, admin, admin.id, Role.VIEWER)
    assert store.users.require(admin.id).role is Role.VIEWER
    actions = [entry.action for entry in store.audit.list(admin.tenant_id)]
    assert actions.count("user.role") == 2


def test_removing_a_user_ends_their_sessions_and_tokens(store: Store) -> None:
    admin = user(store, "admin@example.com", Role.ADMIN)
    gone = user(store, "gone@example.com")
    session = start_session(store, gone)
    token = issue_token(store, gone, name="script", days=0)
    remove_user(store, admin, gone.id)
    assert session_for(store, POLICY, session) is None
    assert user_for_token(store, token.secret) is None
    with store.engine.connect() as connection:
        assert connection.scalar(select(ApiTokenRow.id)) is None


def test_sign_in_is_refused_alike_for_a_wrong_password_and_an_unknown_address(
    store: Store,
) -> None:
    user(store, "ann@example.com")
    for email, password in (("ann@example.com", "wrong password!"), ("who@example.com", PASSWORD)):
        with pytest.raises(SignInRefused, match="The e-mail address or the password is not right"):
            sign_in(store, POLICY, email=email, password=password, address="10.0.0.1")
    assert sign_in(store, POLICY, email="ANN@example.com", password=PASSWORD, address="10.0.0.1")


def test_sign_in_is_limited_per_account_even_with_the_right_password_then_again_later(
    store: Store,
) -> None:
    ann = user(store, "ann@example.com")
    for number in range(POLICY.per_account):
        with pytest.raises(SignInRefused):
            sign_in(store, POLICY, email=ann.email, password="guess", address=f"10.0.0.{number}")
    with pytest.raises(TooManySignInAttempts, match=r"try again in \d+ minutes"):
        sign_in(store, POLICY, email=ann.email, password=PASSWORD, address="10.9.9.9")
    # The window passes: the failures age out and the right password works again.
    with store.engine.begin() as connection:
        connection.execute(
            update(LoginFailureRow).values(failed_at=utc_now() - POLICY.window - timedelta(1))
        )
    assert sign_in(store, POLICY, email=ann.email, password=PASSWORD, address="10.9.9.9")


def test_sign_in_is_limited_per_address_across_accounts(store: Store) -> None:
    user(store, "ann@example.com")
    for number in range(POLICY.per_address):
        with pytest.raises(SignInRefused):
            sign_in(store, POLICY, email=f"n{number}@example.com", password="x", address="10.0.0.7")
    with pytest.raises(TooManySignInAttempts):
        sign_in(store, POLICY, email="ann@example.com", password=PASSWORD, address="10.0.0.7")
    assert sign_in(store, POLICY, email="ann@example.com", password=PASSWORD, address="10.0.0.8")


def test_failed_sign_ins_keep_neither_the_typed_address_nor_the_client_address(
    store: Store,
) -> None:
    with pytest.raises(SignInRefused):
        sign_in(store, POLICY, email="my-password-typed-here", password="x", address="192.0.2.7")
    with store.engine.connect() as connection:
        keys = list(connection.scalars(select(LoginFailureRow.key_hash)))
    assert len(keys) == 2  # one for the account, one for the address
    assert all(len(key) == 64 and "192.0.2.7" not in key for key in keys)
    assert not any("my-password" in key for key in keys)


def test_a_session_ends_when_idle_too_long_or_too_old_and_at_sign_out(store: Store) -> None:
    ann = user(store, "ann@example.com")
    idle, old, signed_out = (start_session(store, ann) for _ in range(3))
    with store.engine.connect() as connection:
        stored = " ".join(str(row) for row in connection.execute(select(UserSessionRow)))
    assert idle not in stored and old not in stored  # only hashes are kept
    assert session_for(store, POLICY, idle) is not None
    now = utc_now()
    with store.engine.begin() as connection:
        connection.execute(
            update(UserSessionRow)
            .where(UserSessionRow.id == secret_hash(idle))
            .values(last_seen_at=now - POLICY.idle - timedelta(seconds=1))
        )
        connection.execute(
            update(UserSessionRow)
            .where(UserSessionRow.id == secret_hash(old))
            .values(created_at=now - POLICY.absolute - timedelta(seconds=1))
        )
    assert session_for(store, POLICY, idle) is None
    assert session_for(store, POLICY, old) is None
    end_session(store, signed_out)
    assert session_for(store, POLICY, signed_out) is None
    assert store.user_sessions.list(ann.id) == []
    assert store.audit.list(ann.tenant_id)[0].action == "user.sign_out"


def test_expired_sessions_are_purged(store: Store) -> None:
    ann = user(store, "ann@example.com")
    start_session(store, ann)
    kept = start_session(store, ann)
    with store.engine.begin() as connection:
        connection.execute(
            text("UPDATE user_sessions SET last_seen_at = :at WHERE id <> :kept"),
            {"at": (utc_now() - timedelta(days=2)).replace(tzinfo=None), "kept": secret_hash(kept)},
        )
    assert purge_expired_sessions(store, POLICY) == 1
    assert [s.id for s in store.user_sessions.list(ann.id)] == [secret_hash(kept)]


def test_changing_the_password_needs_the_current_one_and_ends_the_other_sessions(
    store: Store,
) -> None:
    ann = user(store, "ann@example.com")
    here, elsewhere = start_session(store, ann), start_session(store, ann)
    with pytest.raises(InvalidAccountInput, match="current password is not right"):
        change_password(store, ann, current="wrong", new="a new long password", keep_session=None)
    ended = change_password(
        store, ann, current=PASSWORD, new="a new long password", keep_session=secret_hash(here)
    )
    assert ended == 1
    assert session_for(store, POLICY, here) is not None
    assert session_for(store, POLICY, elsewhere) is None
    assert sign_in(store, POLICY, email=ann.email, password="a new long password", address="x")


def test_api_tokens_are_stored_hashed_expire_and_are_revoked_only_by_their_owner(
    store: Store,
) -> None:
    ann, bob = user(store, "ann@example.com"), user(store, "bob@example.com")
    issued = issue_token(store, ann, name="nightly export", days=30)
    assert issued.secret.startswith("kpl_") and issued.token.hint == issued.secret[:10]
    with store.engine.connect() as connection:
        stored = " ".join(str(row) for row in connection.execute(select(ApiTokenRow)))
    assert issued.secret not in stored
    found = user_for_token(store, issued.secret)
    assert found is not None and found.id == ann.id
    assert user_for_token(store, issued.secret + "x") is None
    with pytest.raises(NotFoundError):
        revoke_token(store, bob, issued.token.id)
    with store.engine.begin() as connection:
        connection.execute(update(ApiTokenRow).values(expires_at=utc_now() - timedelta(1)))
    assert user_for_token(store, issued.secret) is None
    revoke_token(store, ann, issued.token.id)
    assert store.api_tokens.list(ann.id) == []


def test_a_hash_with_old_parameters_is_replaced_at_sign_in(store: Store) -> None:
    ann = user(store, "ann@example.com")
    old = PasswordHasher(time_cost=3, memory_cost=65536, parallelism=4).hash(PASSWORD)
    with store.engine.begin() as connection:
        connection.execute(update(UserRow).values(password_hash=old))
    sign_in(store, POLICY, email=ann.email, password=PASSWORD, address="x")
    assert store.users.password_hash(ann.id).startswith("$argon2id$v=19$m=19456,t=2,p=1$")


def test_the_first_admin_is_made_once(store: Store) -> None:
    first = create_first_admin(
        store, workspace="  Acme  ", email="ann@example.com", name="Ann", password=PASSWORD
    )
    tenant = store.tenants.get(first.tenant_id)
    assert first.is_admin and tenant is not None and tenant.name == "Acme"
    with pytest.raises(FirstRunClosed, match="The first admin exists already"):
        create_first_admin(
            store, workspace="Other", email="bob@example.com", name="", password=PASSWORD
        )


def test_a_scoped_store_sees_only_its_workspace_users(store: Store) -> None:
    ann = user(store, "ann@example.com", Role.ADMIN, workspace="acme")
    bob = user(store, "bob@example.com", Role.ADMIN, workspace="globex")
    acme = store.scoped(ann.tenant_id)
    assert acme.users.get(bob.id) is None
    with pytest.raises(NotFoundError):
        change_role(acme, ann, bob.id, Role.VIEWER)
    with pytest.raises(NotFoundError):
        remove_user(acme, ann, bob.id)
    token = issue_token(store, bob, name="b", days=0)
    assert acme.api_tokens.list(bob.id) == []
    assert acme.api_tokens.get_by_hash(secret_hash(token.secret)) is None
