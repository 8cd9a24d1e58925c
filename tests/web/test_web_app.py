"""The web app through HTTP (in-process): signing in and out, the first run, users, one's own
account, API tokens, the REST API, languages, and the security headers and cookies."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from koppel.accounts.signin import secret_hash
from koppel.errors import ErrorCategory, KoppelError
from koppel.settings import Settings
from koppel.store import Role, Store, User
from koppel.web import create_app
from koppel.web.errors import STATUS_FOR_CATEGORY, problem_for
from koppel.web.i18n import format_amount, format_count, negotiate
from koppel.web.templating import TEMPLATE_DIR
from tests.web.conftest import PASSWORD, Browser, World, form_token

Client = Callable[[User], Browser]


def sign_in_by_form(client: TestClient, email: str, password: str, next: str = "/") -> object:
    page = client.get(f"/login?next={next}")
    assert page.status_code == 200
    return client.post(
        "/login",
        data={
            "csrf_token": form_token(page.text),
            "email": email,
            "password": password,
            "next": next,
        },
    )


def test_signing_in_by_the_form_gives_a_new_http_only_lax_session_cookie(
    anonymous: Browser, world: World, store: Store
) -> None:
    page = anonymous.get("/login")
    assert "koppel_csrf" in page.headers["set-cookie"]
    response = sign_in_by_form(anonymous, world.a.admin.email, PASSWORD, next="/account")
    assert response.status_code == 303 and response.headers["location"] == "/account"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("koppel_session=")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain HTTP on 127.0.0.1: a Secure cookie would not come back
    token = cookie.split(";", 1)[0].split("=", 1)[1]
    assert store.user_sessions.get(secret_hash(token)) is not None
    home = anonymous.get("/")
    assert home.status_code == 200 and "Integrations of acme" in home.text


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "/\\evil.example"])
def test_after_sign_in_only_a_path_of_this_site_is_followed(
    anonymous: Browser, world: World, target: str
) -> None:
    response = sign_in_by_form(anonymous, world.a.admin.email, PASSWORD, next=target)
    assert response.headers["location"] == "/"


def test_a_wrong_password_then_too_many_show_the_form_again_with_the_reason(
    anonymous: Browser, world: World
) -> None:
    wrong = sign_in_by_form(anonymous, world.a.viewer.email, "not the password")
    assert wrong.status_code == 403
    assert "The e-mail address or the password is not right." in wrong.text
    assert 'value="viewer@acme.example"' in wrong.text  # the address stays filled in
    for _ in range(4):
        sign_in_by_form(anonymous, world.a.viewer.email, "not the password")
    limited = sign_in_by_form(anonymous, world.a.viewer.email, PASSWORD)
    assert limited.status_code == 409
    assert re.search(r"Too many failed sign-ins; try again in \d+ minutes\.", limited.text)


def test_signing_out_ends_the_session_on_the_server(
    client_for: Client, world: World, store: Store
) -> None:
    client = client_for(world.a.viewer)
    stolen = client.cookies["koppel_session"]
    assert client.get("/").status_code == 200
    response = client.form("/logout")
    assert (
        response.status_code == 303 and response.headers["location"] == "/login?notice=signed-out"
    )
    assert store.user_sessions.get(secret_hash(stolen)) is None
    replayed = Browser(client.app, follow_redirects=False)
    replayed.cookies.set("koppel_session", stolen)
    assert replayed.get("/").headers["location"] == "/login"
    signed_out = client.get("/login?notice=signed-out")
    assert "You are signed out." in signed_out.text


def test_over_https_the_cookie_is_host_prefixed_and_secure_and_hsts_is_sent(
    web_settings: Settings, store: Store, world: World
) -> None:
    settings = web_settings.model_copy(update={"web_https": True})
    app = create_app(settings, store=store)
    with TestClient(app, base_url="https://testserver", follow_redirects=False) as client:
        page = client.get("/login")
        assert page.headers["strict-transport-security"].startswith("max-age=63072000")
        response = client.post(
            "/login",
            data={
                "csrf_token": form_token(page.text),
                "email": world.a.admin.email,
                "password": PASSWORD,
            },
        )
        cookie = response.headers["set-cookie"]
        assert cookie.startswith("__Host-koppel_session=")
        assert "Secure" in cookie and "Path=/" in cookie and "Domain" not in cookie
        assert client.get("/").status_code == 200


def test_every_answer_carries_the_security_headers(
    anonymous: Browser, client_for: Client, world: World
) -> None:
    admin = client_for(world.a.admin)
    answers = [
        anonymous.get("/login"),
        anonymous.get("/api/v1/me"),
        admin.get("/"),
        admin.get("/no-such-page"),
        admin.get("/api/v1/me"),
        anonymous.get("/static/koppel.css"),
    ]
    for response in answers:
        policy = response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy
        assert "unsafe-inline" not in policy
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "same-origin"
        assert "strict-transport-security" not in response.headers  # plain HTTP
    assert answers[2].headers["cache-control"] == "no-store"


def test_templates_have_no_inline_script_or_style_which_the_policy_would_block() -> None:
    for template in Path(TEMPLATE_DIR).glob("*.html"):
        text = template.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), template.name
        assert " style=" not in text and "<style" not in text, template.name
        assert not re.search(r"\son[a-z]+=", text), f"{template.name}: inline event handler"


def test_an_unknown_host_name_is_refused(anonymous: Browser) -> None:
    assert anonymous.get("/login", headers={"Host": "evil.example"}).status_code == 400


def test_the_first_run_makes_the_first_admin_once_with_the_printed_token(
    web_settings: Settings, store: Store
) -> None:
    store.tenants.ensure("acme")
    app = create_app(web_settings, store=store)
    token = app.state.koppel.first_run.token
    assert token
    with Browser(app, follow_redirects=False) as client:
        login = client.get("/login")
        assert "first-run link that the server printed" in login.text
        page = client.get(f"/first-run?token={token}")
        assert 'value="acme"' in page.text  # the only tenant is offered
        fields = {
            "csrf_token": form_token(page.text),
            "workspace": "acme",
            "email": "owner@acme.example",
            "name": "Owner",
            "password": PASSWORD,
        }
        wrong = client.post("/first-run", data={**fields, "token": "guessed"})
        assert wrong.status_code == 404 and "one-time token is not right" in wrong.text
        assert store.users.count() == 0
        made = client.post("/first-run", data={**fields, "token": token})
        assert made.status_code == 303 and made.headers["location"] == "/"
        home = client.get("/")
        assert home.status_code == 200 and "owner@acme.example" in home.text
        owner = store.users.get_by_email("owner@acme.example")
        assert owner is not None and owner.role is Role.ADMIN
        assert client.get(f"/first-run?token={token}").status_code == 404
        again = client.post("/first-run", data={**fields, "token": token, "email": "x@y.example"})
        assert again.status_code == 404 and store.users.count() == 1


def test_with_accounts_there_is_no_first_run(app: FastAPI, anonymous: Browser) -> None:
    assert app.state.koppel.first_run.token is None
    assert anonymous.get("/first-run?token=anything").status_code == 404


def test_an_admin_adds_a_user_changes_the_role_and_removes_them_all_audited(
    client_for: Client, world: World, store: Store
) -> None:
    admin = client_for(world.a.admin)
    page = admin.get("/users")
    assert page.status_code == 200 and world.a.viewer.email in page.text
    assert world.b.admin.email not in page.text
    short = admin.form("/users", {"email": "new@acme.example", "password": "short"})
    assert short.status_code == 422 and "at least 12 characters" in short.text
    added = admin.form(
        "/users",
        {"email": "New@Acme.example", "name": "New One", "role": "viewer", "password": PASSWORD},
    )
    assert added.headers["location"] == "/users?notice=user-created"
    new = store.users.get_by_email("new@acme.example")
    assert new is not None and new.tenant_id == world.a.tenant_id
    assert admin.form(f"/users/{new.id}/role", {"role": "admin"}).status_code == 303
    assert store.users.require(new.id).role is Role.ADMIN
    taken = admin.form("/users", {"email": world.b.viewer.email, "password": PASSWORD})
    assert taken.status_code == 409 and "exists already" in taken.text
    assert admin.form(f"/users/{new.id}/remove").headers["location"].endswith("user-removed")
    assert store.users.get(new.id) is None
    entries = store.audit.list(world.a.tenant_id, limit=20)
    mine = [(e.action, e.actor) for e in entries if e.subject == f"user:{new.id}"]
    assert mine == [
        ("user.remove", world.a.admin.email),
        ("user.role", world.a.admin.email),
        ("user.create", world.a.admin.email),
    ]


def test_the_only_admin_cannot_demote_themselves(client_for: Client, world: World) -> None:
    admin = client_for(world.a.admin)
    response = admin.form(f"/users/{world.a.admin.id}/role", {"role": "viewer"})
    assert response.status_code == 409
    assert "is the workspace&#39;s only admin; make someone else admin first." in response.text


def test_a_viewer_sees_no_admin_menu_and_no_users_page(client_for: Client, world: World) -> None:
    viewer = client_for(world.a.viewer)
    home = viewer.get("/")
    assert 'href="/users"' not in home.text
    refused = viewer.get("/users")
    assert refused.status_code == 403 and 'data-problem="permission"' in refused.text


def test_changing_the_password_ends_the_other_sessions(
    client_for: Client, world: World, store: Store, app: FastAPI
) -> None:
    here, elsewhere = client_for(world.a.viewer), client_for(world.a.viewer)
    wrong = here.form(
        "/account/password", {"current_password": "nope", "new_password": "a brand new password"}
    )
    assert wrong.status_code == 422 and "current password is not right" in wrong.text
    done = here.form(
        "/account/password",
        {"current_password": PASSWORD, "new_password": "a brand new password"},
    )
    assert done.headers["location"] == "/account?notice=password-changed"
    assert here.get("/account").status_code == 200
    assert elsewhere.get("/account").status_code == 303
    fresh = Browser(app, follow_redirects=False)
    assert sign_in_by_form(fresh, world.a.viewer.email, "a brand new password").status_code == 303


def test_the_language_follows_the_browser_then_the_users_choice(
    anonymous: Browser, client_for: Client, world: World
) -> None:
    assert (
        "Inloggen bij Koppel" in anonymous.get("/login", headers={"Accept-Language": "nl-NL"}).text
    )
    german = anonymous.get("/login", headers={"Accept-Language": "fr;q=1, de;q=0.8, en;q=0.5"})
    assert "Bei Koppel anmelden" in german.text and '<html lang="de">' in german.text
    viewer = client_for(world.a.viewer)
    assert viewer.form("/account/language", {"locale": "nl"}).status_code == 303
    page = viewer.get("/account?notice=language-changed", headers={"Accept-Language": "de"})
    assert "Mijn account" in page.text and "Uw taal is opgeslagen." in page.text
    assert viewer.form("/account/language", {"locale": "fr"}).status_code == 422
    problem = viewer.get("/api/v1/users")
    assert problem.json()["detail"] == "Alleen een beheerder van de werkruimte mag dit doen."


def test_numbers_and_dates_are_in_the_users_locale(client_for: Client, world: World) -> None:
    assert format_amount(1234.56, "nl") == "1.234,56"
    assert format_amount(1234.56, "en") == "1,234.56"
    assert format_amount(1234.56, "de") == "1.234,56"
    assert format_count(1000000, "nl") == "1.000.000"
    assert (
        negotiate("nl-BE,nl;q=0.9") == "nl" and negotiate("fr") == "en" and negotiate(None) == "en"
    )
    viewer = client_for(world.a.viewer)
    viewer.form("/account/language", {"locale": "nl"})
    tokens = viewer.get("/account/tokens").text
    assert re.search(r"gemaakt \d{1,2} [a-z]{3}\.? \d{4} ·", tokens), tokens  # 1 dec. 2026
    home = viewer.get("/").text
    assert "elke 1 minuut" in home  # the seeded flow's 60 s schedule, in words


def test_an_api_token_is_shown_once_works_for_the_api_only_and_can_be_revoked(
    client_for: Client, world: World, anonymous: Browser, store: Store
) -> None:
    viewer = client_for(world.a.viewer)
    made = viewer.form("/account/tokens", {"name": "report script", "days": "90"})
    assert made.status_code == 200
    secret = re.search(r'value="(kpl_[^"]+)"', made.text)
    assert secret
    listed = viewer.get("/account/tokens").text
    assert "report script" in listed and secret.group(1) not in listed
    bearer = {"Authorization": f"Bearer {secret.group(1)}"}
    me = anonymous.get("/api/v1/me", headers=bearer)
    assert me.status_code == 200 and me.json()["email"] == world.a.viewer.email
    assert me.json()["workspace"] == "acme" and me.json()["role"] == "viewer"
    assert anonymous.get("/", headers=bearer).status_code == 303  # pages need a session
    (token,) = [t for t in store.api_tokens.list(world.a.viewer.id) if t.name == "report script"]
    assert viewer.form(f"/account/tokens/{token.id}/revoke").status_code == 303
    assert anonymous.get("/api/v1/me", headers=bearer).status_code == 401
    bad = viewer.form("/account/tokens", {"name": "", "days": "7"})
    assert bad.status_code == 422 and "Name the token" in bad.text


def test_the_api_pages_users_by_cursor_and_answers_problems(
    anonymous: Browser, world: World, store: Store
) -> None:
    admin = {"Authorization": f"Bearer {world.a.admin_token.secret}"}
    first = anonymous.get("/api/v1/users?limit=1", headers=admin).json()
    assert [u["email"] for u in first["items"]] == [world.a.admin.email]
    second = anonymous.get(f"/api/v1/users?limit=1&cursor={first['next_cursor']}", headers=admin)
    assert [u["email"] for u in second.json()["items"]] == [world.a.viewer.email]
    assert second.json()["next_cursor"] is None
    bad = anonymous.get("/api/v1/users?cursor=bm9wZQ", headers=admin)
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
    assert bad.json()["type"] == "urn:koppel:problem:configuration"
    assert "cursor" in bad.json()["detail"]
    too_many = anonymous.get("/api/v1/users?limit=100000", headers=admin)
    assert too_many.status_code == 422 and too_many.json()["errors"][0]["field"] == "query.limit"
    foreign = anonymous.get(f"/api/v1/users/{world.b.admin.id}", headers=admin)
    assert foreign.status_code == 404 and foreign.json()["title"] == "Not found"
    viewer = {"Authorization": f"Bearer {world.a.viewer_token.secret}"}
    assert anonymous.get("/api/v1/users", headers=viewer).status_code == 403
    schema = anonymous.get("/api/v1/openapi.json", headers=viewer).json()
    assert {
        "/api/v1/me",
        "/api/v1/users",
        "/api/v1/users/{user_id}",
        "/api/v1/integrations",
        "/api/v1/integrations/{integration_id}",
        "/api/v1/flows",
        "/api/v1/runs",
        "/api/v1/runs/{run_id}",
        "/api/v1/connections",
        "/api/v1/connections/{connection_id}/test",
    } <= set(schema["paths"])
    assert anonymous.get("/api/v1/openapi.json").status_code == 401


def test_every_error_category_has_its_status_and_message() -> None:
    assert set(STATUS_FOR_CATEGORY) == set(ErrorCategory)
    expected = {"configuration": 422, "not_found": 404, "permission": 403, "conflict": 409}
    for category in ErrorCategory:

        class Raised(KoppelError):
            pass

        Raised.category = category
        problem = problem_for(Raised("the flow 'x' has no mapping"), "en", for_page=False)
        assert problem.status == STATUS_FOR_CATEGORY[category]
        assert problem.kind == category.value
        assert problem.detail == "the flow 'x' has no mapping"
        if category.value in expected:
            assert problem.status == expected[category.value]
