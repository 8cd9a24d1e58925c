"""Setting an integration up: applying its file, and choosing the integration and flows that a
request is about (by id from the web app, by what a person typed at the command line)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from koppel.config import IntegrationConfig, apply_config
from koppel.flows.registry import in_dependency_order
from koppel.services.checks import check_config
from koppel.services.errors import InvalidRequest, NotFound
from koppel.store import Flow, Integration, Store


@dataclass(frozen=True)
class FlowView:
    """A flow as a list of an integration's flows shows it."""

    id: int
    name: str
    entity: str
    source: str
    """The name of the connection it reads from."""
    target: str
    enabled: bool
    schedule_seconds: int | None
    """None: the flow runs only when asked."""
    mapping_version: int


@dataclass(frozen=True)
class IntegrationView:
    integration: Integration
    label: str
    """TENANT/NAME: how people name it."""
    flows: tuple[FlowView, ...]


def integration_label(store: Store, integration: Integration) -> str:
    tenant = store.tenants.get(integration.tenant_id)
    return f"{tenant.name if tenant else integration.tenant_id}/{integration.name}"


def integration_view(store: Store, integration: Integration) -> IntegrationView:
    connections = {c.id: c.name for c in store.connections.list(integration.tenant_id)}
    flows = tuple(
        FlowView(
            id=flow.id,
            name=flow.name,
            entity=flow.entity,
            source=connections[flow.source_connection_id],
            target=connections[flow.target_connection_id],
            enabled=flow.enabled,
            schedule_seconds=flow.schedule_seconds,
            mapping_version=flow.mapping_version,
        )
        for flow in store.flows.list(integration.id)
    )
    return IntegrationView(integration, integration_label(store, integration), flows)


def apply_file(
    store: Store, config: IntegrationConfig, file: Path, *, actor: str
) -> IntegrationView:
    """Check the file as a run would (`checks.check_config`), then make the store match it
    (idempotent, audited with `actor`); what it holds now. A file with a problem changes
    nothing."""
    check_config(config, file)
    return integration_view(store, apply_config(store, config, actor=actor))


def integration(store: Store, integration_id: int) -> Integration:
    found = store.integrations.get(integration_id)
    if found is None:
        raise NotFound(f"integration {integration_id} not found")
    return found


def integration_of_file(store: Store, config: IntegrationConfig, file: Path) -> Integration:
    """The integration an integration file describes, as applied before; reading the file does
    not apply it: what only looks never changes the store."""
    tenant = store.tenants.get_by_name(config.tenant)
    found = tenant and store.integrations.get_by_name(tenant.id, config.integration)
    if not found:
        raise NotFound(
            f"integration {config.tenant}/{config.integration} of {file} is not set up "
            f"yet; apply the file first: koppel config apply {file}"
        )
    return found


def choose_integration(store: Store, name: str | None) -> Integration:
    """The integration named TENANT/NAME (or NAME alone, when that is unique), or the only one
    there is when no name is given."""
    integrations = store.integrations.list()
    labels = {integration_label(store, i): i for i in integrations}
    if name is not None:
        matches = [i for label, i in labels.items() if name in (label, label.split("/", 1)[1])]
        if len(matches) == 1:
            return matches[0]
        known = ", ".join(sorted(labels)) or "none"
        if not matches:
            raise NotFound(
                f"no integration is named {name!r}; integrations: {known}; write TENANT/NAME"
            )
        raise InvalidRequest(
            f"several integrations are named {name!r}; integrations: {known}; write TENANT/NAME"
        )
    if len(integrations) == 1:
        return integrations[0]
    if not integrations:
        raise NotFound(
            "no integration is set up yet; apply an integration file: koppel config apply FILE"
        )
    raise InvalidRequest(
        f"there are several integrations ({', '.join(sorted(labels))}); "
        "name one with --integration TENANT/NAME or --config FILE"
    )


def choose_flows(store: Store, integration: Integration, names: Sequence[str]) -> list[Flow]:
    """The named flows (enabled or not) in the order named, or every enabled flow when none is
    named: each after the flows it waits for (`FlowType.requires`: products before the stock
    and orders that need them), otherwise in the file's order."""
    flows = store.flows.list(integration.id)
    if not names:
        return in_dependency_order(store, [flow for flow in flows if flow.enabled])
    by_name = {flow.name: flow for flow in flows}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        raise NotFound(
            f"integration {integration_label(store, integration)} has no flow named "
            f"{unknown[0]!r}; its flows: {', '.join(by_name) or 'none'}"
        )
    return [by_name[name] for name in dict.fromkeys(names)]


__all__ = [
    "FlowView",
    "IntegrationView",
    "apply_file",
    "choose_flows",
    "choose_integration",
    "integration",
    "integration_label",
    "integration_of_file",
    "integration_view",
]
