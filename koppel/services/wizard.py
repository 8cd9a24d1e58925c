"""The setup wizard's use cases: from two applications to a running integration, step by step.

The wizard keeps a draft (`SetupDraft`, held by the web app per user) of what was chosen; it
holds no secret. A connection is stored only once it works (Parts Pim: tested before it is
saved), or, for AccountView, when the person goes to authorise it (the grant needs a stored
connection to come back to); an authorisation that is refused or fails removes the connection
this draft made for it, so nothing half-made is left (`authorised`). The integration and its
flows are written only on activation, as an integration file would be (`config.apply_config`,
the code path of `koppel config apply`), after the same checks; the dry run applies that file
inside a rehearsal and rolls it back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from koppel.config import IntegrationConfig, apply_config
from koppel.connectors.addresses import IPNetwork, check_base_url
from koppel.connectors.registry import APPLICATIONS, ApplicationInfo
from koppel.errors import N_, KoppelError
from koppel.flows.dry_run import Rehearsal
from koppel.flows.mappings import default_mapping
from koppel.flows.registry import FLOW_TYPES
from koppel.flows.runtime import stored_connector
from koppel.flows.settings import DEFAULT_EMPLOYEE_NUMBER
from koppel.mapping.document import FieldRule, Policy
from koppel.services import authorization
from koppel.services.authorization import AuthorizationResult
from koppel.services.checks import check_config
from koppel.services.connections import ConnectionCheck, check_connection, check_new_connection
from koppel.services.dry_run import DryRunReport, broken_connections, forecast_flows
from koppel.services.errors import InvalidRequest
from koppel.services.setup import choose_flows
from koppel.store import Application, Connection, Flow, Store

INTEGRATION_NAME = "partspim-accountview"
CONNECTION_NAMES = {"partspim": "partspim", "accountview": "accountview"}
"""The name each application's connection gets in the workspace."""


@dataclass(frozen=True)
class FlowChoice:
    """A flow the wizard offers, with the line that says what it does."""

    key: str
    label: str
    source: str
    target: str
    entity: str
    explanation: str


FLOW_CHOICES: tuple[FlowChoice, ...] = (
    FlowChoice(
        "products",
        N_("Products"),
        "partspim",
        "accountview",
        "products",
        "Parts Pim products and their categories become AccountView articles and article groups.",
    ),
    FlowChoice(
        "customers",
        N_("Customers"),
        "partspim",
        "accountview",
        "customers",
        N_("Parts Pim relations become AccountView debtors, found by e-mail address."),
    ),
    FlowChoice(
        "orders",
        N_("Orders"),
        "partspim",
        "accountview",
        "orders",
        N_("Parts Pim orders are booked in AccountView as sales orders, with their customer."),
    ),
    FlowChoice(
        "stock",
        N_("Stock"),
        "partspim",
        "accountview",
        "stock",
        N_("AccountView's stock of each article follows Parts Pim's."),
    ),
    FlowChoice(
        "av-orders",
        N_("Orders from AccountView"),
        "accountview",
        "partspim",
        "orders",
        N_("AccountView sales orders come into Parts Pim as orders or invoices."),
    ),
)
"""In the order they run: an order needs its customer and its articles first."""

WIZARD_FILE = Path("setup-wizard")
"""Named in the problems the checks find, where a file's name would be."""
SCHEDULES = ("1m", "5m", "15m", "1h", "manual")


@dataclass
class SetupDraft:
    """What the person chose so far; no secret (those are in the stored connections)."""

    applications: tuple[str, ...] = ()
    connections: dict[str, int] = field(default_factory=dict)
    """Application -> the id of its stored connection, once it works (or, AccountView, is
    being authorised)."""
    tested: set[str] = field(default_factory=set)
    """Applications whose connection passed its test (the next step waits for all)."""
    made_for_authorisation: set[int] = field(default_factory=set)
    """Connections this draft stored to authorise them and that hold no grant yet: removed
    again when the authorisation is refused or fails."""
    flows: tuple[str, ...] = ("products", "customers", "orders")
    settings: dict[str, Any] = field(
        default_factory=lambda: {
            "employee_number": DEFAULT_EMPLOYEE_NUMBER,
            "default_customer": "",
            "shipping_article_code": "",
            "document_type": "order",
            "stock_calculation": "available",
            "stock_warehouses": "",
            "manage_stock": True,
            "sell_price": "excl_vat",
            "accountview_prices_include_vat": False,
            "create_only": None,
            "payment_terms": {},
            "payment_methods": {},
        }
    )
    """`create_only`: the product fields sent when the article is created only; None until
    the person answers, which means the send mapping's defaults (`create_only_defaults`)."""
    schedule: str = "5m"

    def connection_ids(self) -> set[int]:
        return set(self.connections.values())

    @property
    def connected(self) -> bool:
        """Every chosen application has a connection that passed its test."""
        return bool(self.applications) and set(self.applications) <= self.tested

    def tested_as(self, application: str, works: bool) -> None:
        if works:
            self.tested.add(application)
        else:
            self.tested.discard(application)


def offered_applications() -> list[ApplicationInfo]:
    """What the connector registry has: a new connector shows up here without a change."""
    return list(APPLICATIONS.values())


def offered_flows(draft: SetupDraft) -> list[FlowChoice]:
    """The flows between the chosen applications that Koppel has a flow type for."""
    chosen = set(draft.applications)
    return [
        f
        for f in FLOW_CHOICES
        if {f.source, f.target} <= chosen and (f.source, f.entity) in FLOW_TYPES
    ]


def choose_applications(names: Sequence[str]) -> tuple[str, ...]:
    unknown = [n for n in names if n not in APPLICATIONS]
    if unknown or len(set(names)) != 2:
        raise InvalidRequest(
            "choose two applications to connect"
            + (f"; Koppel has no connector for {', '.join(unknown)}" if unknown else "")
        )
    return tuple(n for n in APPLICATIONS if n in names)


async def checked_address(base_url: str, allowed: Sequence[IPNetwork]) -> str:
    """The base URL the person typed, when Koppel may call it (the address guard)."""
    return await check_base_url(base_url, allowed)


async def connect_with_key(
    store: Store,
    tenant_id: int,
    application: str,
    base_url: str,
    credentials: Mapping[str, Any],
    *,
    allowed: Sequence[IPNetwork],
    transport: httpx.AsyncBaseTransport | None = None,
) -> tuple[ConnectionCheck, Connection | None]:
    """Test an application that logs in with what was typed; store the connection only when
    the test passes (None when it did not: nothing is saved)."""
    address = await checked_address(base_url, allowed)
    name = CONNECTION_NAMES.get(application, application)
    check = await check_new_connection(name, application, address, credentials, transport=transport)
    if not check.works:
        return check, None
    put = store.connections.put(
        tenant_id,
        name,
        application=Application(application),
        base_url=address,
        credentials=credentials,
        options={},
    )
    store.connections.record_health(put.value.id, ok_at=None)
    return check, put.value


async def prepare_authorisation(
    store: Store,
    draft: SetupDraft,
    tenant_id: int,
    application: str,
    base_url: str,
    credentials: Mapping[str, Any],
    *,
    allowed: Sequence[IPNetwork],
) -> Connection:
    """Store an OAuth application's connection (its client id and secret) so its grant can
    come back to it; its company is chosen after the grant. A connection made here is noted in
    the draft, so a refused grant removes it (`authorised`)."""
    address = await checked_address(base_url, allowed)
    missing = [f.label for f in APPLICATIONS[application].fields if not credentials.get(f.name)]
    if missing:
        raise InvalidRequest(f"enter the {' and the '.join(missing)} first")
    put = store.connections.put(
        tenant_id,
        CONNECTION_NAMES.get(application, application),
        application=Application(application),
        base_url=address,
        credentials={"company_id": "", **credentials},
        options={},
    )
    if put.created:
        draft.made_for_authorisation.add(put.value.id)
    return put.value


async def authorised(
    store: Store,
    draft: SetupDraft,
    *,
    state: str,
    code: str | None,
    error: str | None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> AuthorizationResult:
    """The login page's answer for a connection being set up (`authorization.complete`).
    When it is refused or the code cannot be traded for tokens, the connection this draft
    stored for it (which never held a grant) is removed again: nothing half-saved stays."""
    try:
        return await authorization.complete(
            store, state=state, code=code, error=error, transport=transport
        )
    except KoppelError:
        for application, connection_id in list(draft.connections.items()):
            if connection_id not in draft.made_for_authorisation:
                continue
            if store.connections.get_credentials(connection_id).get("refresh_token"):
                continue
            store.connections.remove(connection_id)
            draft.made_for_authorisation.discard(connection_id)
            del draft.connections[application]
            draft.tested_as(application, False)
        raise


async def choose_company(
    store: Store,
    connection: Connection,
    company_id: str,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> ConnectionCheck:
    """Set the company the connection works in, then test it."""
    if not company_id:
        raise InvalidRequest("choose the company (administration) Koppel works in")
    credentials = store.connections.get_credentials(connection.id)
    store.connections.update_credentials(connection.id, {**credentials, "company_id": company_id})
    return await check_connection(store, connection, transport=transport)


async def code_lists(
    store: Store, draft: SetupDraft, *, transport: httpx.AsyncBaseTransport | None = None
) -> dict[str, dict[str, list[str]]]:
    """Code list -> application -> its codes, read from each connection that can list them
    (payment terms and methods); a list that cannot be read is left out (typed by hand)."""
    found: dict[str, dict[str, list[str]]] = {}
    for application, connection_id in draft.connections.items():
        connection = store.connections.get(connection_id)
        info = APPLICATIONS.get(application)
        if connection is None or info is None:
            continue
        connector = stored_connector(store, connection, transport=transport)
        try:
            for name, entity in info.lists.items():
                codes: list[str] = []
                try:
                    async for page in connector.read(entity):
                        codes += [str(r.get(info.list_key[entity], "")) for r in page]
                except Exception:  # a list it cannot read: the person types the codes
                    continue
                found.setdefault(name, {})[application] = sorted(c for c in codes if c)
        finally:
            await connector.aclose()
    return found


def draft_config(store: Store, tenant: str, draft: SetupDraft) -> IntegrationConfig:
    """The integration file the draft amounts to (what activation applies)."""
    connections: dict[str, Any] = {}
    names: dict[str, str] = {}
    for application in draft.applications:
        connection_id = draft.connections.get(application)
        connection = store.connections.get(connection_id) if connection_id else None
        if connection is None:
            label = APPLICATIONS[application].label
            raise InvalidRequest(f"connect {label} first (step 2, connections)")
        names[application] = connection.name
        connections[connection.name] = {
            "application": application,
            "base_url": connection.base_url,
            "credentials": store.connections.get_credentials(connection.id),
            "options": connection.options,
        }
    chosen = [f for f in offered_flows(draft) if f.key in draft.flows]
    if not chosen:
        raise InvalidRequest("choose at least one flow (step 3, flows)")
    settings = draft.settings
    tables = {
        "payment_terms": {k: v for k, v in settings["payment_terms"].items() if v},
        "payment_methods": {k: v for k, v in settings["payment_methods"].items() if v},
    }
    flows: dict[str, Any] = {}
    for choice in chosen:
        flow_settings = _flow_settings(choice, settings)
        flows[choice.key] = {
            "from": names[choice.source],
            "to": names[choice.target],
            "entity": choice.entity,
            "schedule": draft.schedule,
            "settings": flow_settings,
            "mapping": _mapping(choice, draft),
        }
    return IntegrationConfig.model_validate(
        {
            "tenant": tenant,
            "integration": INTEGRATION_NAME,
            "connections": connections,
            "settings": {"tables": tables},
            "flows": flows,
        }
    )


def _flow_settings(choice: FlowChoice, settings: Mapping[str, Any]) -> dict[str, Any]:
    if choice.source == "partspim" and choice.entity == "orders":
        chosen = {
            "employee_number": settings["employee_number"],
            "default_customer": settings["default_customer"] or None,
            "shipping_article_code": settings["shipping_article_code"] or None,
            "accountview_prices_include_vat": bool(settings["accountview_prices_include_vat"]),
        }
        return {k: v for k, v in chosen.items() if v is not None}
    if choice.source == "accountview" and choice.entity == "orders":
        # The same fact about AccountView's order prices, named by the flow that reads them.
        return {
            "employee_number": settings["employee_number"],
            "document_type": settings["document_type"],
            "prices_include_vat": bool(settings["accountview_prices_include_vat"]),
        }
    if choice.entity == "stock":
        warehouses = [w.strip() for w in str(settings["stock_warehouses"]).split(",")]
        return {
            "stock_calculation": settings["stock_calculation"],
            "manage_stock": bool(settings["manage_stock"]),
            "stock_warehouses": [w for w in warehouses if w],
        }
    if choice.source == "partspim" and choice.entity == "products":
        return {"sell_price": settings["sell_price"]}
    return {}


def product_send_rules(draft: SetupDraft) -> list[FieldRule]:
    """The fields the products flow's default send mapping writes, but the record's key (it
    finds the record, so it is sent every time): each gets an "update on later syncs" box."""
    choice = next((f for f in FLOW_CHOICES if f.key == "products"), None)
    if choice is None or choice.target not in draft.applications:
        return []
    spec = default_mapping(choice.target, choice.entity, "send")
    key = PRODUCT_KEY_FIELDS.get(choice.target)
    return [rule for rule in spec.fields if rule.target != key and rule.each is None]


PRODUCT_KEY_FIELDS = {"accountview": "ART_CODE"}
"""The field a products target finds its article by (AccountView's ARTICLE: ART_CODE)."""


def create_only_defaults(draft: SetupDraft) -> set[str]:
    """The product fields the send mapping writes on create only unless told otherwise
    (docs/flows.md: the long description, ART_MEMO)."""
    return {r.target for r in product_send_rules(draft) if r.on is Policy.CREATE}


def create_only_fields(draft: SetupDraft) -> set[str]:
    """The product fields the person wants sent on create only (the defaults until asked)."""
    chosen = draft.settings["create_only"]
    return create_only_defaults(draft) if chosen is None else set(chosen)


def _mapping(choice: FlowChoice, draft: SetupDraft) -> dict[str, Any]:
    """The products send mapping's `on:` for each field whose answer differs from the default
    (docs/mapping.md: `on: create` writes a field when the record is created only)."""
    if choice.key != "products":
        return {}
    create_only = create_only_fields(draft)
    fields: dict[str, Any] = {}
    for rule in product_send_rules(draft):
        wanted = Policy.CREATE if rule.target in create_only else Policy.ALWAYS
        if wanted is not rule.on:
            fields[rule.target] = {**rule.to_data(), "on": str(wanted)}
    return {"send": {"fields": fields}} if fields else {}


async def dry_run(
    store: Store,
    tenant: str,
    draft: SetupDraft,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> DryRunReport:
    """The first sync of the draft, as `koppel sync --dry-run` would show it: the draft's
    integration is applied inside a rehearsal (and rolled back with everything else)."""
    config = draft_config(store, tenant, draft)
    check_config(config, WIZARD_FILE)
    broken = await broken_connections(store, draft.connection_ids(), transport)
    rehearsal = Rehearsal()
    with store.rehearsal() as rehearsing:
        integration = apply_config(rehearsing, config, actor="setup wizard (dry run)")
        flows = choose_flows(rehearsing, integration, [])
        return await forecast_flows(rehearsing, flows, rehearsal, broken, transport)


def activate(store: Store, tenant: str, draft: SetupDraft, *, actor: str) -> list[Flow]:
    """Write the integration as `koppel config apply` would; its enabled flows, in order."""
    config = draft_config(store, tenant, draft)
    check_config(config, WIZARD_FILE)
    integration = apply_config(store, config, actor=actor)
    return choose_flows(store, integration, [])


__all__ = [
    "CONNECTION_NAMES",
    "FLOW_CHOICES",
    "INTEGRATION_NAME",
    "SCHEDULES",
    "FlowChoice",
    "SetupDraft",
    "activate",
    "authorised",
    "checked_address",
    "choose_applications",
    "choose_company",
    "code_lists",
    "connect_with_key",
    "create_only_defaults",
    "create_only_fields",
    "draft_config",
    "dry_run",
    "offered_applications",
    "offered_flows",
    "prepare_authorisation",
    "product_send_rules",
]
