"""The demo: both sandboxes running in this process with generated data, the integration file
that connects them, and the demo's own state, apart from real integrations.

`koppel demo` uses this to show the platform working without any outside system; the
end-to-end tests and the benchmarks use its sandboxes and integration document to run real flows
over real HTTP.

The demo keeps its state in `KOPPEL_HOME/demo/` (SQLite, started afresh each time: its sandboxes
are new each time, so links to the last demo's records would point nowhere) and its integration
file in `KOPPEL_HOME/demo.yaml`.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from koppel.accounts.users import create_user
from koppel.config import apply_config, load_config
from koppel.files import private_directory
from koppel.flows.registry import FLOW_TYPES
from koppel.sandbox.accountview import AccountViewSandbox
from koppel.sandbox.common import FaultConfig, SandboxServer
from koppel.sandbox.partspim import PartsPimSandbox
from koppel.services.errors import Busy
from koppel.settings import Settings
from koppel.store import Flow, Role, Store, User

Progress = Callable[[str, int, int], None]
"""Told (sandbox name, records generated, records to generate) while the data is made."""

DEMO_FILE = "demo.yaml"
DEMO_STATE = "demo"
DEMO_LOGIN = "demo@koppel.example"
"""The demo workspace's admin, made afresh with a new password each time the web app shows it."""

DEMO_CONNECTIONS = {"pim": "partspim", "av": "accountview"}
"""The demo integration's connections by name, and the application each one is."""

_DIGITS_ONLY = {"from": "ART_CODE", "transform": ["trim", "digits_only"]}

DEMO_FLOWS: dict[str, dict[str, Any]] = {
    "categories": {"from": "pim", "to": "av", "entity": "categories", "schedule": "60s"},
    "products": {"from": "pim", "to": "av", "entity": "products", "schedule": "60s"},
    "customers": {"from": "pim", "to": "av", "entity": "customers", "schedule": "60s"},
    "stock": {"from": "pim", "to": "av", "entity": "stock", "schedule": "60s"},
    "orders": {
        "from": "pim",
        "to": "av",
        "entity": "orders",
        "schedule": "60s",
        "settings": {"shipping_article_code": "999001"},
    },
    # AccountView's own article codes may hold letters ("KF-000010"); Parts Pim takes digits
    # only, so the demo's flows from AccountView keep the digits, as a user's mapping would.
    "av-products": {
        "from": "av",
        "to": "pim",
        "entity": "products",
        "schedule": "60s",
        "mapping": {"get": {"fields": {"sku": _DIGITS_ONLY}}},
    },
    "av-orders": {
        "from": "av",
        "to": "pim",
        "entity": "orders",
        "schedule": "60s",
        "mapping": {
            "get": {
                "fields": {
                    "lines": {
                        "each": "SO_LINE",
                        "fields": {
                            "sku": _DIGITS_ONLY,
                            "quantity": "ORD_QTY",
                            "unit_price": "ART_PX",
                            "description": {"from": "ART_DESC", "default": None},
                        },
                    }
                }
            }
        },
    },
}
"""Every flow the sandboxes have data for, in the order the demo runs them (an order needs its
customer and products first). Only those Koppel has a flow type for are used: `demo_flows()`."""


DEMO_SETTINGS: dict[str, Any] = {
    "tables": {
        "payment_terms": {"DIR": "03", "14D": "01", "30D": "02"},
        "payment_methods": {
            "IDEAL": "IDEAL",
            "BANK": "BANK",
            "PIN": "PIN",
            "CREDIT": "CREDITCARD",
            "REMBOURS": "CONTANT",
        },
        # AccountView takes PayPal, Parts Pim has no such method: book it as iDEAL.
        "payment_methods_to_partspim": {"PAYPAL": "IDEAL"},
    },
}
"""The demo integration's settings: the sandboxes' payment codes between the two systems."""

DEMO_ALLOWED_NETWORKS = "127.0.0.1"
"""KOPPEL_ALLOWED_NETWORKS of the demo's web app: its sandboxes' address."""

DEMO_ACCOUNTVIEW_ARTICLES = 40
"""Articles (with debtors and sales orders for them) that AccountView has of its own in the demo,
for the flows from AccountView to Parts Pim."""

SHIPPING_ARTICLE = {"ART_CODE": "999001", "ART_DESC1": "Verzendkosten", "PX_SELL": 6.95}
"""The AccountView article the demo's orders book shipping costs on."""


def demo_flows() -> dict[str, dict[str, Any]]:
    """The DEMO_FLOWS that koppel.flows.registry can run today."""
    return {
        name: flow
        for name, flow in DEMO_FLOWS.items()
        if (DEMO_CONNECTIONS[flow["from"]], flow["entity"]) in FLOW_TYPES
    }


@dataclass
class DemoSandboxes:
    partspim: PartsPimSandbox
    accountview: AccountViewSandbox
    partspim_url: str
    accountview_url: str

    def integration(
        self,
        flows: dict[str, dict[str, Any]] | None = None,
        *,
        tenant: str = "demo",
        name: str = "demo-pim-av",
        settings: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """An integration document (the shape of an integration file) for these sandboxes."""
        return integration_document(
            self.partspim.credentials(self.partspim_url),
            self.accountview.credentials(self.accountview_url),
            flows if flows is not None else demo_flows(),
            tenant=tenant,
            name=name,
            settings=settings,
            options=options,
        )


def integration_document(
    pim: dict[str, Any],
    av: dict[str, Any],
    flows: dict[str, dict[str, Any]],
    *,
    tenant: str = "demo",
    name: str = "demo-pim-av",
    settings: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An integration document connecting two sandboxes, from what each says about how to connect
    (`credentials()`, or `koppel sandbox --credentials-out`)."""
    return {
        "tenant": tenant,
        "integration": name,
        "connections": {
            "pim": {
                "application": "partspim",
                "base_url": pim["base_url"],
                "credentials": {"api_key": pim["api_key"]},
                "options": dict(options or {}),
            },
            "av": {
                "application": "accountview",
                "base_url": av["base_url"],
                "credentials": {
                    "client_id": av["client_id"],
                    "client_secret": av["client_secret"],
                    "company_id": av["company_id"],
                    "refresh_token": av["refresh_token"],
                    "access_token": av["access_token"],
                    "expires_at": time.time() + float(av["expires_in"]),
                },
                "options": dict(options or {}),
            },
        },
        "settings": dict(settings or {}),
        "flows": flows,
    }


@contextmanager
def running_sandboxes(
    products: int,
    *,
    seed: int = 0,
    progress: Progress | None = None,
    partspim_faults: FaultConfig | None = None,
    accountview_faults: FaultConfig | None = None,
    accountview_articles: int = 0,
) -> Iterator[DemoSandboxes]:
    """Parts Pim with `products` generated products and an AccountView company, both served.

    AccountView starts with its reference data (VAT codes, payment conditions, employees) and
    `accountview_articles` articles of its own (with orders for them when there are any); with
    none it is a company that has not been connected yet.
    """
    partspim = PartsPimSandbox(faults=partspim_faults, seed=seed)
    accountview = AccountViewSandbox(faults=accountview_faults, seed=seed)

    def report(name: str) -> Callable[[int, int], None] | None:
        if progress is None:
            return None
        return lambda done, total: progress(name, done, total)

    partspim.generate(products, seed=seed, progress=report("Parts Pim"))
    accountview.generate(accountview_articles, seed=seed, progress=report("AccountView"))
    with ExitStack() as stack:
        pim_server = stack.enter_context(SandboxServer(partspim.asgi_app()))
        av_server = stack.enter_context(SandboxServer(accountview.asgi_app()))
        yield DemoSandboxes(partspim, accountview, pim_server.url, av_server.url)


@dataclass(frozen=True)
class Demo:
    """A demo set up: its sandboxes running, its integration file written, its state empty."""

    sandboxes: DemoSandboxes
    document: dict[str, Any]
    """The integration file's content (it holds the sandboxes' credentials)."""
    file: Path
    settings: Settings
    """The demo's own process settings: its store and engine live in `KOPPEL_HOME/demo/`."""


@contextmanager
def _only_demo(home: Path) -> Iterator[None]:
    """Held while a demo runs, so a second demo does not wipe the first one's state."""
    private_directory(home)
    with (home / "demo.lock").open("ab") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy(
                f"another koppel demo is running with KOPPEL_HOME={home}; stop it first"
            ) from None
        yield


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (it holds the sandboxes' credentials)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(text)
    path.chmod(0o600)


@contextmanager
def set_up_demo(
    home: Path, products: int, *, seed: int = 0, progress: Progress | None = None
) -> Iterator[Demo]:
    """A demo under `home` (the user's KOPPEL_HOME), until the block ends: its state started
    afresh, both sandboxes generated and served, the integration file written (mode 0600)."""
    state = home / DEMO_STATE
    # The sandboxes listen on 127.0.0.1: the setup wizard may be pointed at them.
    settings = Settings(
        home=state,
        database_url=None,
        engine_database_url=None,
        secret_key=None,
        allowed_networks=DEMO_ALLOWED_NETWORKS,
    )
    file = home / DEMO_FILE
    with _only_demo(home), ExitStack() as stack:
        shutil.rmtree(state, ignore_errors=True)
        sandboxes = stack.enter_context(
            running_sandboxes(
                products,
                seed=seed,
                progress=progress,
                accountview_articles=DEMO_ACCOUNTVIEW_ARTICLES,
            )
        )
        sandboxes.accountview.write("ARTICLE", [SHIPPING_ARTICLE])
        document = sandboxes.integration(demo_flows(), settings=DEMO_SETTINGS)
        _write_private(file, yaml.safe_dump(document, sort_keys=False, allow_unicode=True))
        yield Demo(sandboxes, document, file, settings)


def apply_demo(store: Store, demo: Demo) -> list[Flow]:
    """Apply the demo's integration file to its store; its flows, in the order they run."""
    integration = apply_config(store, load_config(demo.file), actor="demo")
    return store.flows.list(integration.id)


def demo_admin(store: Store, demo: Demo) -> tuple[User, str]:
    """An admin of the demo's workspace (`DEMO_LOGIN`) with a new random password, to sign in
    to the web app over the demo. It lives in the demo's own store, which the next demo starts
    afresh, so printing its password on the console gives nothing else away."""
    tenant = store.tenants.ensure(str(demo.document["tenant"]))
    password = secrets.token_urlsafe(12)
    user = create_user(
        store,
        actor="demo",
        tenant_id=tenant.id,
        email=DEMO_LOGIN,
        name="Demo Admin",
        password=password,
        role=Role.ADMIN,
    )
    return user, password


__all__ = [
    "DEMO_ACCOUNTVIEW_ARTICLES",
    "DEMO_CONNECTIONS",
    "DEMO_FILE",
    "DEMO_FLOWS",
    "DEMO_LOGIN",
    "DEMO_SETTINGS",
    "DEMO_STATE",
    "SHIPPING_ARTICLE",
    "Demo",
    "DemoSandboxes",
    "apply_demo",
    "demo_admin",
    "demo_flows",
    "integration_document",
    "running_sandboxes",
    "set_up_demo",
]
