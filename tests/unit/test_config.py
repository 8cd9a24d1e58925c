"""The integration file: loading (errors name the path), ${ENV} secrets, applying idempotently."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import text

from koppel.config import ConfigError, apply_config, load_config, parse_config
from koppel.store import Application, OutcomeEntry, OutcomeKind, Store, StoreError

DOCS = Path(__file__).parents[2] / "docs" / "config.md"
ENV = {"PIM_KEY": "pim-secret-123", "AV_SECRET": "av-secret-456", "AV_REFRESH": "refresh-789"}

MINIMAL = """
tenant: acme
integration: acme-pim-av
connections:
  pim: {application: partspim, base_url: "http://pim/api/v1", credentials: {api_key: "${PIM_KEY}"}}
  av:
    application: accountview
    base_url: http://av/api/v3
    credentials: {client_secret: "${AV_SECRET}", refresh_token: "${AV_REFRESH}"}
flows:
  products: {from: pim, to: av, entity: products, schedule: 60s, mapping: {fields: {a: b}}}
"""


def docs_example() -> str:
    match = re.search(r"```yaml\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.DOTALL)
    assert match is not None
    return match.group(1)


def write(tmp_path: Path, content: str, name: str = "acme.yaml") -> Path:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    return path


def problems_of(content: str, environ: dict[str, str] | None = None) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as raised:
        parse_config(content, "acme.yaml", environ=ENV if environ is None else environ)
    for secret in ENV.values():
        assert secret not in str(raised.value)
    assert all(line.startswith("acme.yaml: ") for line in str(raised.value).splitlines())
    return raised.value.problems


# --- loading -------------------------------------------------------------------------------------


def test_the_documented_example_loads(tmp_path: Path) -> None:
    environ = {**ENV, "AV_CLIENT_ID": "koppel", "AV_COMPANY": "1"}
    config = load_config(write(tmp_path, docs_example()), environ=environ)
    assert (config.tenant, config.integration) == ("acme", "acme-pim-av")
    assert config.connections["av"].application is Application.ACCOUNTVIEW
    assert config.connections["av"].credentials["client_secret"] == "av-secret-456"
    assert config.connections["av"].credentials["company_id"] == "1"
    assert {name: f.schedule for name, f in config.flows.items()} == {
        "products": 60,
        "categories": 3600,
        "stock": 300,
        "orders-to-pim": None,
    }
    products = config.flows["products"]
    assert (products.source, products.target) == ("pim", "av")
    # YAML 1.2 booleans: the mapping rule key `on` stays a string.
    assert products.mapping["send"]["fields"]["ART_MEMO"]["on"] == "create"
    assert "av-secret-456" not in repr(config)


def test_a_missing_environment_variable_is_named_with_its_path() -> None:
    assert problems_of(MINIMAL, {"PIM_KEY": "x", "AV_REFRESH": "y"}) == [
        (
            "connections.av.credentials.client_secret",
            "environment variable AV_SECRET is not set; export it or write the value here",
        )
    ]


def test_escaped_reference_stays_literal_and_partial_references_work() -> None:
    content = MINIMAL.replace('"${PIM_KEY}"', '"$${NOT_EXPANDED}-${PIM_KEY}"')
    config = parse_config(content, "acme.yaml", environ=ENV)
    assert config.connections["pim"].credentials["api_key"] == "${NOT_EXPANDED}-pim-secret-123"


@pytest.mark.parametrize(
    ("change", "path", "message"),
    [
        ("schedule: 60s", "flows.products.schedule", "is not a duration"),
        ("schedule: 60s", "flows.products.schedule", "write e.g. 60s, 5m, 1h30m or manual"),
        ("entity: products", "flows.products.entity", "'categories', 'orders'"),
        ("from: pim", "flows.products.from", "'crm' is not a connection of this file"),
        ("application: partspim", "connections.pim.application", "'partspim' or 'accountview'"),
        ("base_url: http://av/api/v3", "connections.av.base_url", "http:// or https://"),
        (
            "schedule: 60s",
            "flows.products.shedule",
            "unknown field (did you mean schedule?); allowed: enabled, entity",
        ),
    ],
)
def test_errors_name_the_path_and_the_fix(change: str, path: str, message: str) -> None:
    replacement = {
        "flows.products.schedule": "schedule: 5 minutes",
        "flows.products.entity": "entity: invoices",
        "flows.products.from": "from: crm",
        "connections.pim.application": "application: partspin",
        "connections.av.base_url": "base_url: ftp://av",
        "flows.products.shedule": "shedule: 60s",
    }[path]
    problems = problems_of(MINIMAL.replace(change, replacement))
    assert any(p == path and message in m for p, m in problems), problems


def test_cross_field_rules_report_every_problem() -> None:
    content = MINIMAL.replace("from: pim, to: av", "from: av, to: av").replace(
        "flows:",
        "  crm: {application: partspim, base_url: http://crm}\nflows:",
    )
    problems = problems_of(content)
    assert [p for p, _ in problems] == ["connections", "flows.products.to"]
    assert "exactly two connections, found 3 (pim, av, crm)" in problems[0][1]


def test_missing_fields_and_bad_yaml_are_reported_with_position() -> None:
    assert ("integration", "missing; add it") in problems_of("tenant: acme\nconnections: {}\n")
    flow_style = "tenant: acme\nconnections: {pim: {credentials: {api_key: ${PIM_KEY}}}}\n"
    [(path, message)] = problems_of(flow_style)
    assert path == ""
    assert message.startswith("not valid YAML at line 2")
    assert 'write ${NAME} references in quotes: "${NAME}"' in message
    [(_, duplicate)] = problems_of(MINIMAL + "tenant: other\n")
    assert "key 'tenant' appears twice" in duplicate


def test_unreadable_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.yaml: file not found"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(write(tmp_path, "- just\n- a list\n"))


# --- applying ------------------------------------------------------------------------------------


def test_applying_creates_everything_with_encrypted_credentials(store: Store) -> None:
    integration = apply_config(store, parse_config(MINIMAL, "acme.yaml", environ=ENV))

    tenant = store.tenants.get_by_name("acme")
    assert tenant is not None and integration.tenant_id == tenant.id
    av = store.connections.get_by_name(tenant.id, "av")
    assert av is not None and av.application is Application.ACCOUNTVIEW
    assert store.connections.get_credentials(av.id)["refresh_token"] == "refresh-789"
    with store.engine.connect() as connection:
        raw = b"".join(connection.execute(text("SELECT credentials FROM connections")).scalars())
    assert b"av-secret-456" not in raw and b"pim-secret-123" not in raw
    flow = store.flows.get_by_name(integration.id, "products")
    assert flow is not None
    assert (flow.entity, flow.schedule_seconds, flow.mapping_version) == ("products", 60, 1)
    assert flow.source_connection_id != flow.target_connection_id == av.id
    actions = sorted(e.action for e in store.audit.list(tenant.id))
    assert actions == [
        "connection.created",
        "connection.created",
        "flow.created",
        "integration.created",
    ]


def test_applying_the_same_file_twice_changes_nothing(store: Store) -> None:
    config = parse_config(MINIMAL, "acme.yaml", environ=ENV)
    integration = apply_config(store, config)
    before = store.flows.list(integration.id)
    audit_before = store.audit.list(integration.tenant_id)

    assert apply_config(store, config) == store.integrations.get(integration.id)
    assert store.flows.list(integration.id) == before
    assert len(store.flows.mapping_versions(before[0].id)) == 1
    assert store.audit.list(integration.tenant_id) == audit_before


def test_a_changed_mapping_is_a_new_version_and_the_cursor_stays(store: Store) -> None:
    integration = apply_config(store, parse_config(MINIMAL, "acme.yaml", environ=ENV))
    flow = store.flows.get_by_name(integration.id, "products")
    assert flow is not None
    store.cursors.set(flow.id, "2024-05-01T10:00:00", ["P1"])
    run = store.runs.start(flow.id)
    store.outcomes.record_many(run.id, [OutcomeEntry("P1", OutcomeKind.CREATED)])

    changed = MINIMAL.replace("{fields: {a: b}}", "{fields: {a: c}}").replace("60s", "5m")
    apply_config(store, parse_config(changed, "acme.yaml", environ=ENV), actor="alice")

    updated = store.flows.get(flow.id)
    assert updated is not None
    assert (updated.mapping, updated.mapping_version) == ({"fields": {"a": "c"}}, 2)
    assert updated.schedule_seconds == 300
    cursor = store.cursors.get(flow.id)
    assert cursor is not None and (cursor.value, cursor.tie_keys) == ("2024-05-01T10:00:00", ["P1"])
    assert len(store.outcomes.list(run.id)) == 1
    [latest] = store.audit.list(integration.tenant_id, limit=1)
    assert (latest.actor, latest.action) == ("alice", "flow.updated")
    assert latest.detail == {"fields": ["schedule_seconds", "mapping"]}


def test_reapplying_keeps_a_rotated_refresh_token_until_the_file_changes(store: Store) -> None:
    integration = apply_config(store, parse_config(MINIMAL, "acme.yaml", environ=ENV))
    av_id = integration.connection_b_id
    credentials = store.connections.get_credentials(av_id)
    store.connections.update_credentials(av_id, {**credentials, "refresh_token": "rotated"})

    apply_config(store, parse_config(MINIMAL, "acme.yaml", environ=ENV))
    assert store.connections.get_credentials(av_id)["refresh_token"] == "rotated"

    renewed = {**ENV, "AV_REFRESH": "new-from-file"}
    apply_config(store, parse_config(MINIMAL, "acme.yaml", environ=renewed))
    assert store.connections.get_credentials(av_id)["refresh_token"] == "new-from-file"
    [latest] = store.audit.list(integration.tenant_id, limit=1)
    assert latest.detail == {"fields": ["credentials"]}
    assert "new-from-file" not in str(latest)


def test_a_flow_removed_from_the_file_is_disabled_not_deleted(store: Store) -> None:
    two_flows = MINIMAL + "  stock: {from: pim, to: av, entity: stock, schedule: manual}\n"
    integration = apply_config(store, parse_config(two_flows, "acme.yaml", environ=ENV))
    stock = store.flows.get_by_name(integration.id, "stock")
    assert stock is not None and stock.enabled and stock.schedule_seconds is None
    store.cursors.set(stock.id, "42")

    apply_config(store, parse_config(MINIMAL, "acme.yaml", environ=ENV))

    kept = store.flows.get(stock.id)
    assert kept is not None and not kept.enabled
    assert store.cursors.get(stock.id) is not None
    [latest] = store.audit.list(integration.tenant_id, limit=1)
    assert latest.action == "flow.disabled"


def test_applying_through_a_tenant_scoped_store_cannot_reach_another_tenant(store: Store) -> None:
    other = store.tenants.ensure("globex")
    with pytest.raises(StoreError, match="cannot create tenants"):
        apply_config(store.scoped(other.id), parse_config(MINIMAL, "acme.yaml", environ=ENV))
    assert store.tenants.get_by_name("acme") is None


def test_a_changed_secret_or_company_keeps_the_rotated_token_and_a_spent_one_never_returns(
    store: Store,
) -> None:
    integration = apply_config(store, parse_config(MINIMAL, "acme.yaml", environ=ENV))
    av_id = integration.connection_b_id
    held = store.connections.get_credentials(av_id)
    store.connections.update_credentials(
        av_id, {**held, "refresh_token": "rotated", "access_token": "access-1"}
    )

    mistyped = {**ENV, "AV_SECRET": "mistyped"}
    apply_config(store, parse_config(MINIMAL, "acme.yaml", environ=mistyped))
    after_typo = store.connections.get_credentials(av_id)
    assert (after_typo["client_secret"], after_typo["refresh_token"]) == ("mistyped", "rotated")
    assert "access_token" not in after_typo  # the next call refreshes: the secret is proved
    apply_config(store, parse_config(MINIMAL, "acme.yaml", environ=ENV))
    assert store.connections.get_credentials(av_id)["refresh_token"] == "rotated"

    other_company = MINIMAL.replace("client_secret:", 'company_id: "2", client_secret:')
    apply_config(store, parse_config(other_company, "acme.yaml", environ=ENV))
    moved = store.connections.get_credentials(av_id)
    assert (moved["company_id"], moved["refresh_token"]) == ("2", "rotated")

    # A token the connection once held (the file's first one) is spent: it never comes back.
    renewed = {**ENV, "AV_REFRESH": "new-grant"}
    apply_config(store, parse_config(MINIMAL, "acme.yaml", environ=renewed))
    assert store.connections.get_credentials(av_id)["refresh_token"] == "new-grant"
    apply_config(store, parse_config(MINIMAL, "acme.yaml", environ=ENV))
    assert store.connections.get_credentials(av_id)["refresh_token"] == "new-grant"


# --- notifications (docs/monitoring.md) ----------------------------------------------------------

MONITORING = Path(__file__).parents[2] / "docs" / "monitoring.md"
NOTIFY_ENV = {**ENV, "KOPPEL_SMTP_PASSWORD": "smtp-secret-1", "KOPPEL_WEBHOOK_SECRET": "w" * 20}


def monitoring_example() -> str:
    blocks = re.findall(r"```yaml\n(.*?)```", MONITORING.read_text(encoding="utf-8"), re.DOTALL)
    [section] = [block for block in blocks if block.startswith("notifications:")]
    return section


def test_the_documented_notifications_load_and_apply_with_their_secrets_encrypted(
    store: Store,
) -> None:
    config = parse_config(MINIMAL + monitoring_example(), "acme.yaml", environ=NOTIFY_ENV)
    settings = config.notifications
    assert settings is not None and settings.channels() == ["email", "webhook"]
    assert settings.digest_every == 900 and settings.daily_report and settings.email is not None
    assert settings.email.to == ["ops@example.com"] and settings.email.port == 587
    assert "smtp-secret-1" not in repr(config)
    apply_config(store, config)
    tenant = store.tenants.ensure("acme")
    record = store.notifications.get_settings(tenant.id)
    assert record is not None and record.secrets["email_password"] == "smtp-secret-1"
    assert "password" not in record.settings["email"]
    assert record.settings["webhook"] == {} and "hooks/koppel" in record.secrets["webhook_url"]
    with store.engine.connect() as connection:
        raw = connection.execute(text("SELECT secrets FROM notification_settings")).scalar_one()
    assert b"smtp-secret-1" not in raw and b"w" * 20 not in raw
    # The same file again changes nothing; a file without the section keeps them.
    apply_config(store, config)
    apply_config(store, parse_config(MINIMAL, "acme.yaml", environ=ENV))
    audited = [e.action for e in store.audit.list(tenant.id)]
    assert audited.count("notifications.updated") == 1
    assert store.notifications.get_settings(tenant.id) == record


def test_notification_settings_errors_name_the_field_and_the_rule() -> None:
    section = (
        "notifications:\n  digest_every: manual\n  email: {host: smtp, from: k@x.nl, to: []}\n"
        "  webhook: {url: ftp://x, secret: short}\n"
    )
    problems = dict(problems_of(MINIMAL + section))
    assert "write a duration such as 15m or 1h" in problems["notifications.digest_every"]
    assert "at least 1 item" in problems["notifications.email.to"]
    assert "http:// or https://" in problems["notifications.webhook.url"]
    assert "at least 16 characters" in problems["notifications.webhook.secret"]
    assert "short" not in " ".join(problems.values())
