"""Repositories for what tenants define: tenants, connections, integrations, flows, audit log.

The `put` methods are declarative (create, or update to the given state) and report whether
what changed, so applying the same integration file twice is a no-op.
"""

from __future__ import annotations

import builtins
import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from koppel.secrets import SecretDecryptionError
from koppel.store.context import NotFoundError, StoreContext, StoreError
from koppel.store.records import (
    Application,
    AuditEntry,
    Connection,
    ConnectionState,
    Flow,
    Integration,
    MappingVersion,
    PendingAuthorization,
    PutResult,
    Tenant,
)
from koppel.store.tables import (
    AuditRow,
    AuthorizationRow,
    ConnectionRow,
    FlowRow,
    IntegrationRow,
    MappingVersionRow,
    TenantRow,
    utc_now,
)


def _tenant(row: TenantRow) -> Tenant:
    return Tenant(id=row.id, name=row.name, created_at=row.created_at)


TOKEN_FIELDS = ("refresh_token", "access_token", "expires_at")
"""Credentials the connector rotates itself: a file gives them once, the store keeps them since."""
_FINGERPRINTS_KEPT = 50


def token_fingerprint(token: str) -> str:
    """A hash that tells refresh tokens apart without keeping them (they are long and random)."""
    return hashlib.sha256(f"koppel refresh token:{token}".encode()).hexdigest()[:32]


def _with_fingerprint(fingerprints: builtins.list[str], token: Any) -> builtins.list[str]:
    if not token:
        return list(fingerprints)
    fingerprint = token_fingerprint(str(token))
    kept = [f for f in fingerprints if f != fingerprint] + [fingerprint]
    return kept[-_FINGERPRINTS_KEPT:]


def merged_credentials(
    stored: Mapping[str, Any], declared: Mapping[str, Any], fingerprints: Sequence[str]
) -> tuple[dict[str, Any], bool]:
    """What a connection holds after credentials are declared again, and whether the declared
    refresh token is a new grant.

    Declared fields replace the stored ones (a fixed secret, another company), except the
    tokens: a declared refresh token is taken (with the declared access token and expiry) only
    when this connection has never held it; otherwise the refresh token the connector rotated
    since stays, so applying a file again never puts back a token that is already spent. When
    another field changed, the stored access token goes with the old values: the next call
    refreshes, and so proves the new secret at once.
    """
    merged = {k: v for k, v in declared.items() if k not in TOKEN_FIELDS}
    refresh = declared.get("refresh_token")
    new_grant = bool(refresh) and token_fingerprint(str(refresh)) not in fingerprints
    if new_grant or not stored.get("refresh_token"):
        tokens: Mapping[str, Any] = declared
    elif merged == {k: v for k, v in stored.items() if k not in TOKEN_FIELDS}:
        tokens = stored
    else:
        tokens = {"refresh_token": stored["refresh_token"]}
    merged.update({k: tokens[k] for k in TOKEN_FIELDS if tokens.get(k) is not None})
    return merged, new_grant


def _connection(row: ConnectionRow) -> Connection:
    return Connection(
        id=row.id,
        tenant_id=row.tenant_id,
        name=row.name,
        application=Application(row.application),
        base_url=row.base_url,
        options=dict(row.options),
        created_at=row.created_at,
        updated_at=row.updated_at,
        state=ConnectionState(row.state),
        state_reason=row.state_reason,
        last_ok_at=row.last_ok_at,
        last_error=row.last_error,
        last_error_at=row.last_error_at,
    )


def _integration(row: IntegrationRow) -> Integration:
    return Integration(
        id=row.id,
        tenant_id=row.tenant_id,
        name=row.name,
        connection_a_id=row.connection_a_id,
        connection_b_id=row.connection_b_id,
        settings=dict(row.settings),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _flow(row: FlowRow) -> Flow:
    return Flow(
        id=row.id,
        integration_id=row.integration_id,
        name=row.name,
        entity=row.entity,
        source_connection_id=row.source_connection_id,
        target_connection_id=row.target_connection_id,
        enabled=row.enabled,
        schedule_seconds=row.schedule_seconds,
        settings=dict(row.settings),
        mapping=dict(row.mapping),
        mapping_version=row.mapping_version,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _assign(row: Any, values: Mapping[str, Any]) -> list[str]:
    """Set the attributes that differ; returns their names."""
    changed: list[str] = []
    for name, value in values.items():
        if getattr(row, name) != value:
            setattr(row, name, value)
            changed.append(name)
    return changed


class TenantRepository:
    def __init__(self, context: StoreContext) -> None:
        self._context = context

    def ensure(self, name: str) -> Tenant:
        """The tenant called `name`, created if new. Only an unscoped (system) store creates."""
        with self._context.write() as session:
            row = session.scalar(select(TenantRow).where(TenantRow.name == name))
            if row is None:
                if self._context.tenant_id is not None:
                    raise StoreError("a tenant-scoped store cannot create tenants")
                row = TenantRow(name=name)
                session.add(row)
                session.flush()
            self._context.require_tenant(row.id)
            return _tenant(row)

    def get(self, tenant_id: int) -> Tenant | None:
        with self._context.read() as session:
            row = session.scalar(
                select(TenantRow).where(
                    TenantRow.id == tenant_id, self._context.in_tenant(TenantRow.id)
                )
            )
            return None if row is None else _tenant(row)

    def get_by_name(self, name: str) -> Tenant | None:
        with self._context.read() as session:
            row = session.scalar(
                select(TenantRow).where(
                    TenantRow.name == name, self._context.in_tenant(TenantRow.id)
                )
            )
            return None if row is None else _tenant(row)

    def list(self) -> list[Tenant]:
        with self._context.read() as session:
            rows = session.scalars(
                select(TenantRow)
                .where(self._context.in_tenant(TenantRow.id))
                .order_by(TenantRow.id)
            )
            return [_tenant(row) for row in rows]


class ConnectionRepository:
    def __init__(self, context: StoreContext) -> None:
        self._context = context

    def put(
        self,
        tenant_id: int,
        name: str,
        *,
        application: Application,
        base_url: str,
        credentials: Mapping[str, Any],
        options: Mapping[str, Any],
    ) -> PutResult[Connection]:
        """Create or update a connection.

        Credentials are merged (`merged_credentials`): a changed secret or company is written,
        a refresh token only when it is new, so the tokens the connector has rotated since
        stay. A new refresh token is a new grant: the connection is ready again.
        """
        self._context.require_tenant(tenant_id)
        box = self._context.secret_box
        declared = dict(credentials)
        with self._context.write() as session:
            row = session.scalar(
                select(ConnectionRow).where(
                    ConnectionRow.tenant_id == tenant_id, ConnectionRow.name == name
                )
            )
            if row is None:
                token = box.encrypt_json(declared)
                row = ConnectionRow(
                    tenant_id=tenant_id,
                    name=name,
                    application=application.value,
                    base_url=base_url,
                    credentials=token,
                    declared_credentials=token,
                    options=dict(options),
                    state=ConnectionState.READY.value,
                    token_fingerprints=_with_fingerprint([], declared.get("refresh_token")),
                )
                session.add(row)
                session.flush()
                return PutResult(_connection(row), created=True)
            changed = _assign(
                row,
                {"application": application.value, "base_url": base_url, "options": dict(options)},
            )
            if self._declared(row) != declared:
                stored = self._stored(row)
                merged, new_grant = merged_credentials(stored, declared, row.token_fingerprints)
                if merged != stored:
                    row.credentials = box.encrypt_json(merged)
                row.declared_credentials = box.encrypt_json(declared)
                if new_grant:
                    row.token_fingerprints = _with_fingerprint(
                        row.token_fingerprints, declared.get("refresh_token")
                    )
                    row.state, row.state_reason = ConnectionState.READY.value, None
                changed.append("credentials")
            if changed:
                row.updated_at = utc_now()
                session.flush()
            return PutResult(_connection(row), created=False, changed_fields=tuple(changed))

    def _stored(self, row: ConnectionRow) -> dict[str, Any]:
        """{} when the old key is gone: then the declared credentials replace them whole."""
        try:
            return self._context.secret_box.decrypt_json(row.credentials)
        except SecretDecryptionError:
            return {}

    def _declared(self, row: ConnectionRow) -> dict[str, Any] | None:
        """None when the old key is gone: then declaring credentials again replaces them."""
        try:
            return self._context.secret_box.decrypt_json(row.declared_credentials)
        except SecretDecryptionError:
            return None

    def get(self, connection_id: int) -> Connection | None:
        with self._context.read() as session:
            row = self._row(session, connection_id)
            return None if row is None else _connection(row)

    def get_by_name(self, tenant_id: int, name: str) -> Connection | None:
        with self._context.read() as session:
            row = session.scalar(
                select(ConnectionRow).where(
                    ConnectionRow.tenant_id == tenant_id,
                    ConnectionRow.name == name,
                    self._context.in_tenant(ConnectionRow.tenant_id),
                )
            )
            return None if row is None else _connection(row)

    def list(self, tenant_id: int | None = None) -> list[Connection]:
        query = select(ConnectionRow).where(self._context.in_tenant(ConnectionRow.tenant_id))
        if tenant_id is not None:
            query = query.where(ConnectionRow.tenant_id == tenant_id)
        with self._context.read() as session:
            rows = session.scalars(query.order_by(ConnectionRow.id))
            return [_connection(row) for row in rows]

    def get_credentials(self, connection_id: int) -> dict[str, Any]:
        with self._context.read() as session:
            row = self._require(session, connection_id)
            return self._context.secret_box.decrypt_json(row.credentials)

    def update_credentials(self, connection_id: int, credentials: Mapping[str, Any]) -> None:
        """Store credentials the connector got itself (a refresh, an authorisation): they work,
        so the connection is ready."""
        with self._context.write() as session:
            row = self._require(session, connection_id)
            row.credentials = self._context.secret_box.encrypt_json(dict(credentials))
            row.token_fingerprints = _with_fingerprint(
                row.token_fingerprints, credentials.get("refresh_token")
            )
            row.state, row.state_reason = ConnectionState.READY.value, None
            row.updated_at = utc_now()

    def remove(self, connection_id: int) -> None:
        """Delete a connection no integration uses yet, with its pending authorisations (the
        wizard takes back one whose authorisation was refused before it held a grant)."""
        with self._context.write() as session:
            row = self._require(session, connection_id)
            session.execute(
                delete(AuthorizationRow).where(AuthorizationRow.connection_id == connection_id)
            )
            session.delete(row)

    def set_state(self, connection_id: int, state: ConnectionState, reason: str | None) -> None:
        """Mark the connection (needs_authorisation: the API refused its grant) with why."""
        with self._context.write() as session:
            row = self._require(session, connection_id)
            row.state, row.state_reason = state.value, reason
            row.updated_at = utc_now()

    def record_health(
        self,
        connection_id: int,
        *,
        ok_at: datetime | None = None,
        error: str | None = None,
        error_at: datetime | None = None,
    ) -> None:
        """Note how its calls went (a run's, a test's): a good answer at `ok_at`, an `error` at
        `error_at`. Each is kept only when newer than the one stored, so processes that report
        out of order never move it back. Not a change of the connection: `updated_at` stays."""
        with self._context.write() as session:
            row = self._require(session, connection_id)
            if ok_at is not None and (row.last_ok_at is None or ok_at > row.last_ok_at):
                row.last_ok_at = ok_at
            if (
                error is not None
                and error_at is not None
                and (row.last_error_at is None or error_at > row.last_error_at)
            ):
                row.last_error, row.last_error_at = error, error_at

    def rotate_credentials(self) -> int:
        """Re-encrypt every connection's credentials under the primary key; returns the count.

        After this, keys other than the first can be removed from KOPPEL_SECRET_KEY.
        """
        box = self._context.secret_box
        with self._context.write() as session:
            rows = session.scalars(
                select(ConnectionRow).where(self._context.in_tenant(ConnectionRow.tenant_id))
            ).all()
            for row in rows:
                row.credentials = box.rotate(row.credentials)
                row.declared_credentials = box.rotate(row.declared_credentials)
            return len(rows)

    def _row(self, session: Session, connection_id: int) -> ConnectionRow | None:
        return session.scalar(
            select(ConnectionRow).where(
                ConnectionRow.id == connection_id, self._context.in_tenant(ConnectionRow.tenant_id)
            )
        )

    def _require(self, session: Session, connection_id: int) -> ConnectionRow:
        row = self._row(session, connection_id)
        if row is None:
            raise NotFoundError(f"connection {connection_id} not found")
        return row


class AuthorizationRepository:
    """Authorisations under way (OAuth2 `state`), each used at most once."""

    def __init__(self, context: StoreContext) -> None:
        self._context = context

    def add(
        self, state_hash: str, connection_id: int, *, redirect_uri: str, expires_at: datetime
    ) -> None:
        with self._context.write() as session:
            connection = session.scalar(
                select(ConnectionRow).where(
                    ConnectionRow.id == connection_id,
                    self._context.in_tenant(ConnectionRow.tenant_id),
                )
            )
            if connection is None:
                raise NotFoundError(f"connection {connection_id} not found")
            session.add(
                AuthorizationRow(
                    state_hash=state_hash,
                    connection_id=connection_id,
                    redirect_uri=redirect_uri,
                    expires_at=expires_at,
                )
            )

    def take(self, state_hash: str) -> PendingAuthorization | None:
        """The authorisation with this state, removed so it cannot be used twice; None when
        there is none (unknown, used, or another workspace's). Expired ones go too."""
        with self._context.write() as session:
            session.execute(delete(AuthorizationRow).where(AuthorizationRow.expires_at < utc_now()))
            row = session.scalar(
                select(AuthorizationRow)
                .join(ConnectionRow, AuthorizationRow.connection_id == ConnectionRow.id)
                .where(
                    AuthorizationRow.state_hash == state_hash,
                    self._context.in_tenant(ConnectionRow.tenant_id),
                )
            )
            if row is None:
                return None
            found = PendingAuthorization(row.connection_id, row.redirect_uri, row.expires_at)
            session.delete(row)
            return found


class IntegrationRepository:
    def __init__(self, context: StoreContext) -> None:
        self._context = context

    def put(
        self,
        tenant_id: int,
        name: str,
        *,
        connection_a_id: int,
        connection_b_id: int,
        settings: Mapping[str, Any],
    ) -> PutResult[Integration]:
        self._context.require_tenant(tenant_id)
        if connection_a_id == connection_b_id:
            raise StoreError(f"integration {name!r}: needs two different connections")
        with self._context.write() as session:
            owned = session.scalar(
                select(func.count()).where(
                    ConnectionRow.id.in_([connection_a_id, connection_b_id]),
                    ConnectionRow.tenant_id == tenant_id,
                )
            )
            if owned != 2:
                raise NotFoundError(f"integration {name!r}: connection not found in this tenant")
            row = session.scalar(
                select(IntegrationRow).where(
                    IntegrationRow.tenant_id == tenant_id, IntegrationRow.name == name
                )
            )
            values = {
                "connection_a_id": connection_a_id,
                "connection_b_id": connection_b_id,
                "settings": dict(settings),
            }
            if row is None:
                row = IntegrationRow(tenant_id=tenant_id, name=name, **values)
                session.add(row)
                session.flush()
                return PutResult(_integration(row), created=True)
            changed = _assign(row, values)
            if changed:
                row.updated_at = utc_now()
                session.flush()
            return PutResult(_integration(row), created=False, changed_fields=tuple(changed))

    def get(self, integration_id: int) -> Integration | None:
        with self._context.read() as session:
            row = session.scalar(
                select(IntegrationRow).where(
                    IntegrationRow.id == integration_id,
                    self._context.in_tenant(IntegrationRow.tenant_id),
                )
            )
            return None if row is None else _integration(row)

    def get_by_name(self, tenant_id: int, name: str) -> Integration | None:
        with self._context.read() as session:
            row = session.scalar(
                select(IntegrationRow).where(
                    IntegrationRow.tenant_id == tenant_id,
                    IntegrationRow.name == name,
                    self._context.in_tenant(IntegrationRow.tenant_id),
                )
            )
            return None if row is None else _integration(row)

    def list(self, tenant_id: int | None = None) -> list[Integration]:
        query = select(IntegrationRow).where(self._context.in_tenant(IntegrationRow.tenant_id))
        if tenant_id is not None:
            query = query.where(IntegrationRow.tenant_id == tenant_id)
        with self._context.read() as session:
            return [_integration(row) for row in session.scalars(query.order_by(IntegrationRow.id))]


class FlowRepository:
    def __init__(self, context: StoreContext) -> None:
        self._context = context

    def put(
        self,
        integration_id: int,
        name: str,
        *,
        entity: str,
        source_connection_id: int,
        target_connection_id: int,
        enabled: bool,
        schedule_seconds: int | None,
        settings: Mapping[str, Any],
        mapping: Mapping[str, Any],
        mapping_note: str,
    ) -> PutResult[Flow]:
        """Create or update a flow. A changed mapping becomes a new version; the cursor stays."""
        with self._context.write() as session:
            integration = session.scalar(
                select(IntegrationRow).where(
                    IntegrationRow.id == integration_id,
                    self._context.in_tenant(IntegrationRow.tenant_id),
                )
            )
            if integration is None:
                raise NotFoundError(f"integration {integration_id} not found")
            pair = {integration.connection_a_id, integration.connection_b_id}
            if {source_connection_id, target_connection_id} != pair:
                raise StoreError(
                    f"flow {name!r}: must run between the integration's two connections"
                )
            row = session.scalar(
                select(FlowRow).where(
                    FlowRow.integration_id == integration_id, FlowRow.name == name
                )
            )
            values: dict[str, Any] = {
                "entity": entity,
                "source_connection_id": source_connection_id,
                "target_connection_id": target_connection_id,
                "enabled": enabled,
                "schedule_seconds": schedule_seconds,
                "settings": dict(settings),
            }
            if row is None:
                row = FlowRow(
                    integration_id=integration_id,
                    name=name,
                    mapping=dict(mapping),
                    mapping_version=1,
                    **values,
                )
                session.add(row)
                session.flush()
                session.add(
                    MappingVersionRow(
                        flow_id=row.id, version=1, mapping=dict(mapping), note=mapping_note
                    )
                )
                session.flush()
                return PutResult(_flow(row), created=True)
            changed = _assign(row, values)
            if row.mapping != dict(mapping):
                self._add_version(session, row, dict(mapping), mapping_note)
                changed.append("mapping")
            if changed:
                row.updated_at = utc_now()
                session.flush()
            return PutResult(_flow(row), created=False, changed_fields=tuple(changed))

    def get(self, flow_id: int) -> Flow | None:
        with self._context.read() as session:
            row = self._row(session, flow_id)
            return None if row is None else _flow(row)

    def get_by_name(self, integration_id: int, name: str) -> Flow | None:
        with self._context.read() as session:
            row = session.scalar(
                select(FlowRow).where(
                    FlowRow.integration_id == integration_id,
                    FlowRow.name == name,
                    self._context.in_tenant_flows(FlowRow.id),
                )
            )
            return None if row is None else _flow(row)

    def list(self, integration_id: int | None = None) -> list[Flow]:
        query = select(FlowRow).where(self._context.in_tenant_flows(FlowRow.id))
        if integration_id is not None:
            query = query.where(FlowRow.integration_id == integration_id)
        with self._context.read() as session:
            return [_flow(row) for row in session.scalars(query.order_by(FlowRow.id))]

    def set_enabled(self, flow_id: int, enabled: bool) -> bool:
        """Switch a flow on or off; True if that changed anything."""
        with self._context.write() as session:
            row = self._require(session, flow_id)
            if row.enabled == enabled:
                return False
            row.enabled = enabled
            row.updated_at = utc_now()
            return True

    def set_mapping(self, flow_id: int, mapping: Mapping[str, Any], note: str) -> int:
        """Make `mapping` the flow's current mapping; returns its version (unchanged if equal)."""
        with self._context.write() as session:
            row = self._require(session, flow_id)
            if row.mapping == dict(mapping):
                return row.mapping_version
            return self._add_version(session, row, dict(mapping), note)

    def restore_mapping(self, flow_id: int, version: int) -> int:
        """Make an old version current again, as a new version with its content."""
        with self._context.write() as session:
            row = self._require(session, flow_id)
            old = session.get(MappingVersionRow, (flow_id, version))
            if old is None:
                raise NotFoundError(f"flow {flow_id}: mapping version {version} not found")
            return self._add_version(session, row, dict(old.mapping), f"restored version {version}")

    def mapping_versions(self, flow_id: int) -> builtins.list[MappingVersion]:
        with self._context.read() as session:
            self._require(session, flow_id)
            rows = session.scalars(
                select(MappingVersionRow)
                .where(MappingVersionRow.flow_id == flow_id)
                .order_by(MappingVersionRow.version)
            )
            return [
                MappingVersion(
                    flow_id=r.flow_id,
                    version=r.version,
                    mapping=dict(r.mapping),
                    note=r.note,
                    created_at=r.created_at,
                )
                for r in rows
            ]

    @staticmethod
    def _add_version(session: Session, row: FlowRow, mapping: dict[str, Any], note: str) -> int:
        latest = session.scalar(
            select(func.max(MappingVersionRow.version)).where(MappingVersionRow.flow_id == row.id)
        )
        version = (latest or 0) + 1
        session.add(MappingVersionRow(flow_id=row.id, version=version, mapping=mapping, note=note))
        row.mapping = mapping
        row.mapping_version = version
        row.updated_at = utc_now()
        session.flush()
        return version

    def _row(self, session: Session, flow_id: int) -> FlowRow | None:
        return session.scalar(
            select(FlowRow).where(FlowRow.id == flow_id, self._context.in_tenant_flows(FlowRow.id))
        )

    def _require(self, session: Session, flow_id: int) -> FlowRow:
        row = self._row(session, flow_id)
        if row is None:
            raise NotFoundError(f"flow {flow_id} not found")
        return row


class AuditRepository:
    """Who changed which configuration when; details never hold secrets (callers name fields)."""

    def __init__(self, context: StoreContext) -> None:
        self._context = context

    def record(
        self,
        tenant_id: int,
        *,
        actor: str,
        action: str,
        subject: str,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        self._context.require_tenant(tenant_id)
        with self._context.write() as session:
            session.add(
                AuditRow(
                    tenant_id=tenant_id,
                    actor=actor,
                    action=action,
                    subject=subject,
                    detail=dict(detail or {}),
                )
            )

    def list(
        self, tenant_id: int, *, subject: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[AuditEntry]:
        self._context.require_tenant(tenant_id)
        query = select(AuditRow).where(AuditRow.tenant_id == tenant_id)
        if subject is not None:
            query = query.where(AuditRow.subject == subject)
        with self._context.read() as session:
            rows = session.scalars(
                query.order_by(AuditRow.created_at.desc(), AuditRow.id.desc())
                .limit(limit)
                .offset(offset)
            )
            return [
                AuditEntry(
                    id=r.id,
                    tenant_id=r.tenant_id,
                    actor=r.actor,
                    action=r.action,
                    subject=r.subject,
                    detail=dict(r.detail),
                    created_at=r.created_at,
                )
                for r in rows
            ]


__all__ = [
    "TOKEN_FIELDS",
    "AuditRepository",
    "AuthorizationRepository",
    "ConnectionRepository",
    "FlowRepository",
    "IntegrationRepository",
    "TenantRepository",
    "merged_credentials",
    "token_fingerprint",
]
