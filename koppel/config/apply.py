"""Applying an integration file to the store: declarative, idempotent, audited.

Applying the same file twice changes nothing (no new mapping version, no audit entry). A changed
mapping becomes a new version. Cursors are never touched, so changing a flow never makes it read
everything again. Flows that disappeared from the file are disabled, not deleted: their history,
links and cursor stay for when they come back. A `notifications:` section sets the workspace's
channels; a file without one leaves them as they are.
"""

from __future__ import annotations

from koppel.config.model import IntegrationConfig
from koppel.store import Integration, PutResult, Store


def apply_config(store: Store, config: IntegrationConfig, *, actor: str = "config") -> Integration:
    """Make the store match `config` in one transaction; `actor` is named in the audit log."""
    with store.transaction() as tx:
        tenant = tx.tenants.ensure(config.tenant)

        def audit(action: str, subject: str, result: PutResult[object]) -> None:
            if result.changed:
                tx.audit.record(
                    tenant.id,
                    actor=actor,
                    action=f"{action}.{'created' if result.created else 'updated'}",
                    subject=subject,
                    # Field names only: values may be secrets (credentials).
                    detail={"fields": list(result.changed_fields)},
                )

        connection_ids: dict[str, int] = {}
        for name, connection in config.connections.items():
            put_connection = tx.connections.put(
                tenant.id,
                name,
                application=connection.application,
                base_url=connection.base_url,
                credentials=connection.credentials,
                options=connection.declared_options(),
            )
            connection_ids[name] = put_connection.value.id
            audit("connection", f"connection:{name}", put_connection)

        first, second = config.connections
        put_integration = tx.integrations.put(
            tenant.id,
            config.integration,
            connection_a_id=connection_ids[first],
            connection_b_id=connection_ids[second],
            settings=config.settings,
        )
        integration = put_integration.value
        audit("integration", f"integration:{config.integration}", put_integration)

        for name, flow in config.flows.items():
            put_flow = tx.flows.put(
                integration.id,
                name,
                entity=flow.entity,
                source_connection_id=connection_ids[flow.source],
                target_connection_id=connection_ids[flow.target],
                enabled=flow.enabled,
                schedule_seconds=flow.schedule,
                settings=flow.settings,
                mapping=flow.mapping,
                mapping_note=f"applied by {actor}",
            )
            audit("flow", f"flow:{config.integration}/{name}", put_flow)

        if config.notifications is not None:
            plain, secrets = config.notifications.stored()
            if tx.notifications.put_settings(tenant.id, plain, secrets):
                tx.audit.record(
                    tenant.id,
                    actor=actor,
                    action="notifications.updated",
                    subject="notifications",
                    detail={"channels": config.notifications.channels()},
                )

        for existing in tx.flows.list(integration.id):
            if existing.name not in config.flows and tx.flows.set_enabled(existing.id, False):
                tx.audit.record(
                    tenant.id,
                    actor=actor,
                    action="flow.disabled",
                    subject=f"flow:{config.integration}/{existing.name}",
                    detail={"reason": "no longer in the integration file"},
                )
        return integration


__all__ = ["apply_config"]
