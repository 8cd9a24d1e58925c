"""Config as code both ways: an integration applied (and its mapping edited as the web app
edits it) is exported as its YAML file without a credential in it; `koppel config apply` of that
file in an empty home gives the same connections, settings, flows and mappings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from koppel.cli import app
from koppel.config import load_config
from koppel.connectors.addresses import AddressRefused, parse_networks
from koppel.services import config_export, setup
from koppel.services.errors import InvalidRequest
from koppel.services.mapping_editor import RuleInput, save_rule
from koppel.settings import Settings
from koppel.store import Integration, Store, open_store
from tests.sandboxes_inprocess import inprocess_sandboxes

FLOWS: dict[str, dict[str, Any]] = {
    "products": {
        "from": "pim",
        "to": "av",
        "entity": "products",
        "schedule": "5m",
        "settings": {"sell_price": "incl_vat", "page_size": 200},
        "mapping": {"send": {"fields": {"ART_DESC2": {"const": "price: $${literal}"}}}},
    },
    "categories": {"from": "pim", "to": "av", "entity": "categories", "schedule": "manual"},
    "stock": {"from": "pim", "to": "av", "entity": "stock", "enabled": False},
}


def _picture(store: Store, integration: Integration) -> dict[str, Any]:
    """What a file sets up, by name, without ids or times."""
    connections = {c.id: c for c in store.connections.list(integration.tenant_id)}
    return {
        "integration": integration.name,
        "settings": integration.settings,
        "connections": {
            c.name: (c.application, c.base_url, c.options) for c in connections.values()
        },
        "flows": {
            f.name: {
                "entity": f.entity,
                "from": connections[f.source_connection_id].name,
                "to": connections[f.target_connection_id].name,
                "enabled": f.enabled,
                "schedule": f.schedule_seconds,
                "settings": f.settings,
                "mapping": f.mapping,
            }
            for f in store.flows.list(integration.id)
        },
    }


def test_an_exported_integration_applied_to_an_empty_home_is_the_same(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with inprocess_sandboxes(1) as sandboxes:
        document = sandboxes.integration(
            FLOWS,
            tenant="acme",
            name="acme-shop",
            settings={"employee_number": "123456"},
            options={"concurrency": 3},
        )
    file = tmp_path / "acme.yaml"
    file.write_text(yaml.safe_dump(document, sort_keys=False))
    applied = setup.apply_file(store, load_config(file), file, actor="test")
    products = next(f for f in store.flows.list(applied.integration.id) if f.name == "products")
    save_rule(
        store,
        products,
        "send",
        "ART_DESC1",
        RuleInput("expr", "'Koppel: ' & name", truncate=True),
        actor="ann@acme.example",
    )
    before = _picture(store, applied.integration)

    exported = config_export.export_integration(store, applied.integration)
    credentials = {
        **document["connections"]["pim"]["credentials"],
        **document["connections"]["av"]["credentials"],
    }
    for name in ("api_key", "client_secret", "refresh_token", "access_token"):
        assert str(credentials[name]) not in exported.text, f"{name} is in the file"
    assert exported.variables == (
        "PIM_API_KEY",
        "AV_CLIENT_ID",
        "AV_CLIENT_SECRET",
        "AV_COMPANY_ID",
        "AV_REFRESH_TOKEN",
    )
    assert "api_key: ${PIM_API_KEY}" in exported.text
    assert "$${literal}" in exported.text  # a literal ${ stays literal through the loader

    exported_file = tmp_path / "exported.yaml"
    exported_file.write_text(exported.text)
    empty_home = tmp_path / "empty-home"
    environment = {
        "KOPPEL_HOME": str(empty_home),
        "PIM_API_KEY": credentials["api_key"],
        "AV_CLIENT_ID": credentials["client_id"],
        "AV_CLIENT_SECRET": credentials["client_secret"],
        "AV_COMPANY_ID": credentials["company_id"],
        "AV_REFRESH_TOKEN": credentials["refresh_token"],
        "COLUMNS": "200",
    }
    for name in ("KOPPEL_DATABASE_URL", "KOPPEL_ENGINE_DATABASE_URL", "KOPPEL_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(app, ["config", "apply", str(exported_file)], env=environment)
    assert result.exit_code == 0, result.output

    with open_store(Settings(home=empty_home, database_url=None, secret_key=None)) as other:
        (integration,) = other.integrations.list()
        assert _picture(other, integration) == before
        for connection in other.connections.list():
            stored = other.connections.get_credentials(connection.id)
            for field in config_export.EXPORTED_CREDENTIALS[connection.application]:
                assert stored[field] == credentials[field], f"{connection.name}.{field}"


def test_the_cli_exports_the_only_integration_to_stdout_or_a_file(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("KOPPEL_HOME", str(home))
    for name in ("KOPPEL_DATABASE_URL", "KOPPEL_ENGINE_DATABASE_URL", "KOPPEL_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    with inprocess_sandboxes(1) as sandboxes:
        document = sandboxes.integration({"products": FLOWS["products"]}, tenant="acme")
    file = tmp_path / "acme.yaml"
    file.write_text(yaml.safe_dump(document, sort_keys=False))
    runner = CliRunner()
    assert runner.invoke(app, ["config", "apply", str(file)]).exit_code == 0
    printed = runner.invoke(app, ["config", "export"])
    assert printed.exit_code == 0, printed.output
    assert yaml.safe_load(printed.output)["flows"]["products"]["schedule"] == "300s"
    written = tmp_path / "out.yaml"
    told = runner.invoke(app, ["config", "export", "--output", str(written)])
    assert told.exit_code == 0 and "PIM_API_KEY" in told.output
    assert written.read_text() == printed.output
    unknown = runner.invoke(app, ["config", "export", "--integration", "nope"])
    assert unknown.exit_code != 0 and "no integration is named 'nope'" in unknown.output


async def test_an_uploaded_file_of_another_workspace_is_refused(
    store: Store, tmp_path: Path
) -> None:
    with inprocess_sandboxes(1) as sandboxes:
        document = sandboxes.integration({"products": FLOWS["products"]}, tenant="globex")
    with pytest.raises(InvalidRequest, match="the file is for workspace 'globex'"):
        await config_export.import_file(
            store,
            "acme",
            "globex.yaml",
            yaml.safe_dump(document).encode(),
            actor="ann",
            allowed=(),
        )
    assert store.integrations.list() == []


async def test_an_uploaded_notification_webhook_url_passes_the_address_guard(
    store: Store, tmp_path: Path
) -> None:
    """As a base URL does: a webhook at a private address is refused unless the operator allows
    its network, without the URL (its path is the chat tool's token) in the message; the URL
    stored already is not checked again."""
    with inprocess_sandboxes(1) as sandboxes:
        document = sandboxes.integration({"products": FLOWS["products"]}, tenant="acme")
    file = tmp_path / "acme.yaml"
    file.write_text(yaml.safe_dump(document))
    setup.apply_file(store, load_config(file), file, actor="cli")  # the operator's own file
    token = "T0K3N-of-the-chat-tool"
    document["notifications"] = {
        "link_base": "http://koppel.example",
        "webhook": {"url": f"http://127.0.0.1:9/hooks/{token}", "secret": "s3cret-for-signing"},
    }
    upload = yaml.safe_dump(document).encode()

    async def import_(allowed: str) -> None:
        await config_export.import_file(
            store, "acme", "acme.yaml", upload, actor="ann", allowed=parse_networks(allowed)
        )

    with pytest.raises(AddressRefused) as refused:
        await import_("")
    message = str(refused.value)
    assert message.startswith("acme.yaml: notifications.webhook.url: the webhook URL: 127.0.0.1")
    assert "KOPPEL_ALLOWED_NETWORKS" in message and token not in message
    [tenant] = store.tenants.list()
    assert store.notifications.get_settings(tenant.id) is None
    await import_("127.0.0.1/32")
    assert store.notifications.get_settings(tenant.id) is not None
    await import_("")  # the stored URL was accepted when it was set
