"""The setup wizard's service layer against both sandboxes over real HTTP (the address guard
resolves the address, so the sandboxes are served on 127.0.0.1, which the tests allow): an
integration made in the wizard, with its settings answers, exported and applied with
`koppel config apply` to an empty home is the same; a refused or failed authorisation leaves
no connection behind."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from typer.testing import CliRunner

from koppel.cli import app
from koppel.connectors.addresses import parse_networks
from koppel.errors import KoppelError
from koppel.sandbox.accountview.app import API
from koppel.services import authorization, config_export, wizard
from koppel.services.authorization import AuthorizationRefused
from koppel.services.demo import DemoSandboxes, running_sandboxes
from koppel.services.wizard import SetupDraft
from koppel.settings import Settings
from koppel.store import Application, Store, open_store
from tests.integration.test_config_export import _picture

ALLOWED = parse_networks("127.0.0.1")
REDIRECT_URI = "http://127.0.0.1:8080/setup/authorized"


@pytest.fixture(scope="module")
def sandboxes() -> Iterator[DemoSandboxes]:
    with running_sandboxes(3) as served:
        yield served


def av_url(sandboxes: DemoSandboxes) -> str:
    return sandboxes.accountview_url.rstrip("/") + API


def login_answer(start_url: str, decision: str) -> dict[str, str]:
    """What the sandbox's login page sends back to the callback when the person chooses
    `decision` (allow or deny): the callback's query."""
    query = {k: v[0] for k, v in parse_qs(urlsplit(start_url).query).items()}
    parts = urlsplit(start_url)
    with httpx.Client(base_url=f"{parts.scheme}://{parts.netloc}") as http:
        assert http.get(parts.path, params=query).status_code == 200
        answer = http.post(
            parts.path,
            data={
                "client_id": query["client_id"],
                "redirect_uri": query["redirect_uri"],
                "state": query["state"],
                "decision": decision,
            },
        )
    assert answer.status_code == 302, answer.text
    return {k: v[0] for k, v in parse_qs(urlsplit(answer.headers["location"]).query).items()}


def connect_both(
    store: Store, tenant_id: int, draft: SetupDraft, sandboxes: DemoSandboxes, secret: str
) -> dict[str, str]:
    """Parts Pim with its key, AccountView up to its login page's answer (allowed)."""
    check, stored = asyncio.run(
        wizard.connect_with_key(
            store,
            tenant_id,
            "partspim",
            sandboxes.partspim_url,
            {"api_key": sandboxes.partspim.store.api_key},
            allowed=ALLOWED,
        )
    )
    assert check.works and stored is not None, check
    draft.connections["partspim"] = stored.id
    draft.tested_as("partspim", True)
    client = sandboxes.accountview.client_app
    connection = asyncio.run(
        wizard.prepare_authorisation(
            store,
            draft,
            tenant_id,
            "accountview",
            av_url(sandboxes),
            {"client_id": client.client_id, "client_secret": secret},
            allowed=ALLOWED,
        )
    )
    draft.connections["accountview"] = connection.id
    started = authorization.start(store, connection, REDIRECT_URI)
    return login_answer(started.url, "allow")


def test_an_integration_made_in_the_wizard_round_trips_through_its_file(
    store: Store, sandboxes: DemoSandboxes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = store.tenants.ensure("acme")
    draft = SetupDraft(applications=wizard.choose_applications(["partspim", "accountview"]))
    answer = connect_both(
        store, tenant.id, draft, sandboxes, sandboxes.accountview.client_app.client_secret
    )
    result = asyncio.run(
        wizard.authorised(store, draft, state=answer["state"], code=answer.get("code"), error=None)
    )
    av = store.connections.get(draft.connections["accountview"])
    assert av is not None
    check = asyncio.run(wizard.choose_company(store, av, result.companies[0].id))
    assert check.works, check
    draft.tested_as("accountview", True)

    # The settings answers: orders prices incl. VAT, the long description updated on later
    # syncs, the short description sent on create only.
    draft.flows = ("products", "customers", "orders", "av-orders")
    assert wizard.create_only_fields(draft) == {"ART_MEMO"}  # docs/flows.md's default
    assert "ART_CODE" not in {r.target for r in wizard.product_send_rules(draft)}
    draft.settings.update(
        accountview_prices_include_vat=True,
        create_only=["ART_DESC2"],
        payment_terms={"14D": "01"},
        shipping_article_code="VERZEND",
    )
    draft.schedule = "15m"
    flows = wizard.activate(store, "acme", draft, actor="test")
    (integration,) = store.integrations.list(tenant.id)
    applied = {f.name: f for f in flows}
    assert applied["orders"].settings["accountview_prices_include_vat"] is True
    assert applied["av-orders"].settings["prices_include_vat"] is True
    assert applied["products"].mapping == {
        "send": {
            "fields": {
                "ART_DESC2": {
                    "from": "short_description",
                    "transform": ["trim"],
                    "overflow": "truncate",
                    "on": "create",
                },
                "ART_MEMO": {"from": "long_description", "on": "always"},
            }
        }
    }
    assert integration.settings["tables"]["payment_terms"] == {"14D": "01"}
    before = _picture(store, integration)

    exported = config_export.export_integration(store, integration)
    connections = store.connections.list(tenant.id)
    credentials = {c.name: store.connections.get_credentials(c.id) for c in connections}
    file = tmp_path / "wizard.yaml"
    file.write_text(exported.text)
    for values in credentials.values():
        for name in ("api_key", "client_secret", "refresh_token", "access_token"):
            if name in values:
                assert str(values[name]) not in exported.text, f"{name} is in the file"
    empty_home = tmp_path / "empty-home"
    environment = {"KOPPEL_HOME": str(empty_home), "COLUMNS": "200"}
    for connection in connections:
        for field in config_export.EXPORTED_CREDENTIALS[connection.application]:
            variable = config_export.variable_name(connection.name, field)
            environment[variable] = credentials[connection.name][field]
    assert set(exported.variables) <= set(environment)
    for name in ("KOPPEL_DATABASE_URL", "KOPPEL_ENGINE_DATABASE_URL", "KOPPEL_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    applied_again = CliRunner().invoke(app, ["config", "apply", str(file)], env=environment)
    assert applied_again.exit_code == 0, applied_again.output

    with open_store(Settings(home=empty_home, database_url=None, secret_key=None)) as other:
        (copy,) = other.integrations.list()
        assert _picture(other, copy) == before
        for connection in other.connections.list():
            stored = other.connections.get_credentials(connection.id)
            for name in config_export.EXPORTED_CREDENTIALS[connection.application]:
                expected = credentials[connection.name][name]
                assert stored[name] == expected, f"{connection.name}.{name}"


@pytest.mark.parametrize(
    ("decision", "secret", "because"),
    [
        ("deny", None, "did not grant access (access_denied)"),
        ("allow", "not-the-secret", "refused the credentials"),
    ],
)
def test_a_refused_or_failed_authorisation_leaves_no_connection(
    store: Store, sandboxes: DemoSandboxes, decision: str, secret: str | None, because: str
) -> None:
    tenant = store.tenants.ensure("acme")
    draft = SetupDraft(applications=("partspim", "accountview"))
    client = sandboxes.accountview.client_app
    connection = asyncio.run(
        wizard.prepare_authorisation(
            store,
            draft,
            tenant.id,
            "accountview",
            av_url(sandboxes),
            {"client_id": client.client_id, "client_secret": secret or client.client_secret},
            allowed=ALLOWED,
        )
    )
    draft.connections["accountview"] = connection.id
    started = authorization.start(store, connection, REDIRECT_URI)
    answer = login_answer(started.url, decision)
    with pytest.raises(KoppelError, match=re.escape(because)):
        asyncio.run(
            wizard.authorised(
                store,
                draft,
                state=answer["state"],
                code=answer.get("code"),
                error=answer.get("error"),
            )
        )
    assert store.connections.list(tenant.id) == []
    assert draft.connections == {}
    # The person starts again: the connection is made anew, and allowed this time it stays.
    again = asyncio.run(
        wizard.prepare_authorisation(
            store,
            draft,
            tenant.id,
            "accountview",
            av_url(sandboxes),
            {"client_id": client.client_id, "client_secret": client.client_secret},
            allowed=ALLOWED,
        )
    )
    draft.connections["accountview"] = again.id
    allowed = login_answer(authorization.start(store, again, REDIRECT_URI).url, "allow")
    asyncio.run(
        wizard.authorised(store, draft, state=allowed["state"], code=allowed["code"], error=None)
    )
    assert [c.name for c in store.connections.list(tenant.id)] == ["accountview"]
    assert store.connections.get_credentials(again.id)["refresh_token"]


def test_a_refused_authorisation_keeps_a_connection_the_draft_did_not_make(
    store: Store, sandboxes: DemoSandboxes
) -> None:
    """One that existed before, still without a grant (an integration file applied without a
    refresh token), is not the wizard's to remove."""
    tenant = store.tenants.ensure("acme")
    client = sandboxes.accountview.client_app
    typed = {"client_id": client.client_id, "client_secret": client.client_secret}
    existing = store.connections.put(
        tenant.id,
        "accountview",
        application=Application.ACCOUNTVIEW,
        base_url=av_url(sandboxes),
        credentials={**typed, "company_id": ""},
        options={},
    ).value
    draft = SetupDraft(applications=("partspim", "accountview"))
    again = asyncio.run(
        wizard.prepare_authorisation(
            store, draft, tenant.id, "accountview", av_url(sandboxes), typed, allowed=ALLOWED
        )
    )
    assert again.id == existing.id
    draft.connections["accountview"] = again.id
    answer = login_answer(authorization.start(store, again, REDIRECT_URI).url, "deny")
    with pytest.raises(AuthorizationRefused):
        asyncio.run(
            wizard.authorised(store, draft, state=answer["state"], code=None, error="access_denied")
        )
    assert [c.id for c in store.connections.list(tenant.id)] == [existing.id]
    assert store.connections.get_credentials(existing.id)["client_id"] == client.client_id
