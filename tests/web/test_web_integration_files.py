"""Config as code in the web app: the integration downloaded as its YAML file without a
credential in it, and a file uploaded and applied as `koppel config apply` applies it: checked
first, audited, only for the signed-in user's workspace, and never by a viewer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import yaml

from koppel.settings import Settings
from koppel.store import Store, User
from tests.web.conftest import Browser, World


@pytest.fixture
def web_settings(web_settings: Settings) -> Settings:
    """The seeded connections live on 127.0.0.1, which the address guard lets through only
    when the operator allows it (as the tests' sandboxes need)."""
    return web_settings.model_copy(update={"allowed_networks": "127.0.0.1"})


def _upload(client: Browser, name: str, content: str) -> Any:
    return client.post(
        "/integration-files",
        data={"csrf_token": client.csrf},
        files={"file": (name, content.encode(), "application/yaml")},
    )


def test_a_viewer_downloads_the_file_without_credentials(
    client_for: Callable[[User], Browser], world: World
) -> None:
    viewer = client_for(world.a.viewer)
    page = viewer.get("/integration-files")
    assert page.status_code == 200
    assert f"/integrations/{world.a.seeded.integration.id}/export" in page.text
    assert "PIM_API_KEY" in page.text and 'action="/integration-files"' not in page.text
    download = viewer.get(f"/integrations/{world.a.seeded.integration.id}/export")
    assert download.status_code == 200
    assert "attachment" in download.headers["content-disposition"]
    assert "pim-key-of-acme" not in download.text and "refresh-of-acme" not in download.text
    document = yaml.safe_load(download.text)
    assert document["connections"]["pim"]["credentials"] == {"api_key": "${PIM_API_KEY}"}
    assert list(document["flows"]) == ["products"]
    other = viewer.get(f"/integrations/{world.b.seeded.integration.id}/export")
    assert other.status_code == 404


def test_an_admin_uploads_a_changed_file_and_it_is_applied(
    client_for: Callable[[User], Browser],
    world: World,
    store: Store,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    admin = client_for(world.a.admin)
    exported = admin.get(f"/integrations/{world.a.seeded.integration.id}/export")
    document = yaml.safe_load(exported.text)
    document["flows"]["products"]["schedule"] = "5m"
    document["flows"]["products"]["mapping"] = {"send": {"fields": {"ART_DESC2": {"const": "x"}}}}
    document["connections"]["av"]["credentials"] = {
        "client_id": "${AV_CLIENT_ID}",
        "client_secret": "${AV_CLIENT_SECRET}",
        "company_id": "${AV_COMPANY_ID}",
    }
    changed = yaml.safe_dump(document, sort_keys=False)

    missing = _upload(admin, "acme.yaml", changed)
    assert missing.status_code == 422
    assert "environment variable PIM_API_KEY is not set" in missing.text
    for name, value in {
        "PIM_API_KEY": "pim-key-of-acme",
        "AV_CLIENT_ID": "x",
        "AV_CLIENT_SECRET": "s",
        "AV_COMPANY_ID": "1",
    }.items():
        monkeypatch.setenv(name, value)
    applied = _upload(admin, "acme.yaml", changed)
    assert applied.status_code == 303 and "integration-imported" in applied.headers["location"]
    flow = store.flows.get(world.a.seeded.flow.id)
    assert flow is not None and flow.schedule_seconds == 300 and flow.mapping_version == 2
    actions = [e.action for e in store.audit.list(world.a.tenant_id)]
    assert "flow.updated" in actions

    broken = _upload(admin, "acme.yaml", "tenant: acme\nflows: [")
    assert broken.status_code == 422 and "acme.yaml" in broken.text
    document["tenant"] = "globex"
    foreign = _upload(admin, "globex.yaml", yaml.safe_dump(document))
    assert foreign.status_code == 422
    assert "the file is for workspace &#39;globex&#39;" in foreign.text
    assert store.flows.get(world.b.seeded.flow.id).mapping_version == 1  # type: ignore[union-attr]


def test_an_uploaded_file_reads_only_credential_variables_and_passes_the_address_guard(
    client_for: Callable[[User], Browser],
    world: World,
    store: Store,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    admin = client_for(world.a.admin)
    exported = admin.get(f"/integrations/{world.a.seeded.integration.id}/export")
    document = yaml.safe_load(exported.text)
    for name in ("PIM_API_KEY", "AV_CLIENT_ID", "AV_REFRESH_TOKEN"):
        monkeypatch.setenv(name, "a value")
    monkeypatch.setenv("KOPPEL_SECRET_KEY", "the server's own key")
    monkeypatch.setenv("HOME_TOKEN", "some other secret of the server")
    document["connections"]["pim"]["credentials"] = {"api_key": "${KOPPEL_SECRET_KEY}"}
    stolen = _upload(admin, "acme.yaml", yaml.safe_dump(document))
    assert stolen.status_code == 422
    assert "environment variable KOPPEL_SECRET_KEY is not set" in stolen.text
    document["connections"]["pim"]["credentials"] = {"api_key": "${PIM_API_KEY}"}
    document["connections"]["pim"]["base_url"] = "http://${HOME_TOKEN}.example/api/v1"
    elsewhere = _upload(admin, "acme.yaml", yaml.safe_dump(document))
    assert elsewhere.status_code == 422
    assert "environment variable HOME_TOKEN is not set" in elsewhere.text
    document["connections"]["pim"]["base_url"] = "http://169.254.169.254/latest"
    metadata = _upload(admin, "acme.yaml", yaml.safe_dump(document))
    assert metadata.status_code == 422
    assert "connections.pim.base_url" in metadata.text and "link-local" in metadata.text
    assert store.connections.get(world.a.seeded.pim.id).base_url == (  # type: ignore[union-attr]
        world.a.seeded.pim.base_url
    )
    assert store.flows.get(world.a.seeded.flow.id).mapping_version == 1  # type: ignore[union-attr]


def test_a_viewer_may_not_upload(
    client_for: Callable[[User], Browser], world: World, store: Store
) -> None:
    refused = _upload(client_for(world.a.viewer), "acme.yaml", "tenant: acme")
    assert refused.status_code == 403
