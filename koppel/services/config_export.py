"""Config as code, both ways: an integration as the store holds it, written out as the YAML
integration file (docs/config.md) that `koppel config apply` reads back; and an uploaded file
applied as that command applies one.

Credentials never leave in plain text: each is written as a reference to an environment
variable (`${PIM_API_KEY}`), which the loader reads when the file is applied, so the file can be
committed. The names of those variables are listed for whoever applies it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from koppel.config import parse_config
from koppel.config.model import IntegrationConfig
from koppel.connectors.addresses import AddressRefused, IPNetwork, check_base_url
from koppel.notify.events import workspace_settings
from koppel.services.errors import InvalidRequest
from koppel.services.setup import IntegrationView, apply_file
from koppel.store import Connection, Flow, Integration, Store

EXPORTED_CREDENTIALS: dict[str, tuple[str, ...]] = {
    "partspim": ("api_key",),
    "accountview": ("client_id", "client_secret", "company_id", "refresh_token"),
}
"""The credentials a file gives per application, in the file's order; tokens Koppel gets
itself (an access token, its expiry) are not part of a file."""
IMPORT_MAX_BYTES = 1_000_000


@dataclass(frozen=True)
class ExportedIntegration:
    file_name: str
    text: str
    variables: tuple[str, ...]
    """The environment variables the file reads its credentials from, to set before applying."""


def variable_name(connection: str, field: str) -> str:
    """`pim` + `api_key` -> PIM_API_KEY."""
    return re.sub(r"[^A-Z0-9]+", "_", f"{connection}_{field}".upper()).strip("_")


def _literal(value: Any) -> Any:
    """A value as the file must write it so that loading gives it back: `${` would be read as a
    variable, so it is written `$${`."""
    if isinstance(value, str):
        return value.replace("${", "$${")
    if isinstance(value, Mapping):
        return {key: _literal(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_literal(item) for item in value]
    return value


def _connection(store: Store, connection: Connection) -> tuple[dict[str, Any], list[str]]:
    stored = store.connections.get_credentials(connection.id)
    fields = [
        name
        for name in EXPORTED_CREDENTIALS.get(connection.application, ())
        if stored.get(name) not in (None, "")
    ]
    variables = [variable_name(connection.name, name) for name in fields]
    document: dict[str, Any] = {
        "application": str(connection.application),
        "base_url": _literal(connection.base_url),
        "credentials": {
            name: f"${{{variable}}}" for name, variable in zip(fields, variables, strict=True)
        },
    }
    if connection.options:
        document["options"] = dict(connection.options)
    return document, variables


def _flow(flow: Flow, names: Mapping[int, str]) -> dict[str, Any]:
    document: dict[str, Any] = {
        "from": names[flow.source_connection_id],
        "to": names[flow.target_connection_id],
        "entity": flow.entity,
        "schedule": f"{flow.schedule_seconds}s" if flow.schedule_seconds else "manual",
        "enabled": flow.enabled,
    }
    if flow.settings:
        document["settings"] = _literal(flow.settings)
    if flow.mapping:
        document["mapping"] = _literal(flow.mapping)
    return document


def export_integration(store: Store, integration: Integration) -> ExportedIntegration:
    """The integration as its YAML file: connections (credentials as variables), settings,
    flows with their schedules and current mappings."""
    tenant = store.tenants.get(integration.tenant_id)
    assert tenant is not None  # the integration's, in the same scope
    connections = {
        c.id: c
        for c in store.connections.list(integration.tenant_id)
        if c.id in (integration.connection_a_id, integration.connection_b_id)
    }
    names = {connection_id: c.name for connection_id, c in connections.items()}
    documents: dict[str, Any] = {}
    variables: list[str] = []
    for connection_id in (integration.connection_a_id, integration.connection_b_id):
        connection = connections[connection_id]
        documents[connection.name], needed = _connection(store, connection)
        variables += needed
    document: dict[str, Any] = {
        "tenant": tenant.name,
        "integration": integration.name,
        "connections": documents,
    }
    if integration.settings:
        document["settings"] = _literal(integration.settings)
    document["flows"] = {flow.name: _flow(flow, names) for flow in store.flows.list(integration.id)}
    header = (
        f"# Integration {tenant.name}/{integration.name}, exported by Koppel.\n"
        "# Credentials are read from the environment when the file is applied; set "
        f"{', '.join(variables) or 'nothing'} first, then: koppel config apply FILE\n"
    )
    body = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)
    return ExportedIntegration(f"{integration.name}.yaml", header + body, tuple(variables))


def _upload_environ(text: str, environ: Mapping[str, str]) -> dict[str, str]:
    """The environment an uploaded file may read: only the credential variables
    `koppel config export` names (`${PIM_API_KEY}` for connection pim's api_key), never a
    KOPPEL_ setting. A file typed in the browser must not copy the server's own secrets (its
    secret key, a cloud token) into a credential that a connection test sends elsewhere."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        return {}  # parse_config reports where the YAML is broken
    connections = document.get("connections") if isinstance(document, dict) else None
    names: set[str] = set()
    for connection, body in (connections or {}).items() if isinstance(connections, dict) else ():
        if not isinstance(body, dict) or not isinstance(body.get("credentials"), dict):
            continue
        offered = EXPORTED_CREDENTIALS.get(str(body.get("application")), ())
        names.update(
            variable_name(str(connection), str(field))
            for field in body["credentials"]
            if field in offered
        )
    return {
        name: environ[name] for name in names if name in environ and not name.startswith("KOPPEL_")
    }


async def import_file(
    store: Store,
    workspace: str,
    file_name: str,
    content: bytes,
    *,
    actor: str,
    allowed: Sequence[IPNetwork],
) -> IntegrationView:
    """An uploaded integration file, checked and applied as `koppel config apply` applies one;
    only a file of `workspace`, each base URL it adds or changes through the address guard
    (`allowed`: the operator's networks), its `${...}` only the credential variables
    (`_upload_environ`)."""
    if len(content) > IMPORT_MAX_BYTES:
        raise InvalidRequest(
            f"{file_name}: the file is larger than {IMPORT_MAX_BYTES // 1000} kB; "
            "an integration file is a few kB"
        )
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest(
            f"{file_name}: not a text file in UTF-8; upload the YAML file"
        ) from None
    file = Path(file_name or "upload.yaml")
    config = parse_config(text, file, environ=_upload_environ(text, os.environ))
    if config.tenant != workspace:
        raise InvalidRequest(
            f"{file_name}: the file is for workspace {config.tenant!r}, you are signed in to "
            f"{workspace!r}; set tenant: {workspace} in the file"
        )
    tenant = store.tenants.get_by_name(workspace)
    for name, connection in config.connections.items():
        stored = store.connections.get_by_name(tenant.id, name) if tenant else None
        if stored is not None and stored.base_url == connection.base_url:
            continue  # accepted when it was set (the wizard's guard, or the server's own file)
        try:
            await check_base_url(connection.base_url, allowed)
        except AddressRefused as refused:
            raise AddressRefused(f"{file_name}: connections.{name}.base_url: {refused}") from None
    await _check_webhook_url(store, config, tenant.id if tenant else None, file_name, allowed)
    return apply_file(store, config, file, actor=actor)


async def _check_webhook_url(
    store: Store,
    config: IntegrationConfig,
    tenant_id: int | None,
    file_name: str,
    allowed: Sequence[IPNetwork],
) -> None:
    """The notification webhook's URL through the address guard, as a base URL is: when the
    file adds or changes it (the workspace's stored one was accepted when it was set)."""
    webhook = config.notifications.webhook if config.notifications else None
    if webhook is None:
        return
    url = webhook.url.get_secret_value()
    stored = workspace_settings(store, tenant_id) if tenant_id is not None else None
    known = stored.webhook if stored is not None else None
    if known is not None and known.url.get_secret_value() == url:
        return
    try:
        await check_base_url(url, allowed, secret_name="the webhook URL")
    except AddressRefused as refused:
        raise AddressRefused(f"{file_name}: notifications.webhook.url: {refused}") from None


__all__ = [
    "EXPORTED_CREDENTIALS",
    "ExportedIntegration",
    "export_integration",
    "import_file",
    "variable_name",
]
