"""Both sandboxes served in-process: one httpx transport hands each request to the sandbox of
its host, so service (and web) tests reach the sandboxes without sockets or server threads.

It goes under the connectors through the platform's own seam (`transport=` on
`koppel.flows.runtime.stored_connector`, the services and `FlowRunner`); nothing of the platform
is replaced. The real-HTTP end-to-end tests (tests/e2e) stay the ground truth.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.types import ASGIApp

from koppel.sandbox.accountview import AccountViewSandbox
from koppel.sandbox.partspim import PartsPimSandbox
from koppel.services.demo import integration_document

PARTSPIM_URL = "http://partspim.sandbox"
ACCOUNTVIEW_URL = "http://accountview.sandbox"


class SandboxTransport(httpx.AsyncBaseTransport):
    """Routes a request by its host to that sandbox's ASGI app, in this event loop."""

    def __init__(self, apps: Mapping[str, ASGIApp]) -> None:
        self._hosts = {
            httpx.URL(url).host: httpx.ASGITransport(app=app) for url, app in apps.items()
        }

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        transport = self._hosts.get(request.url.host)
        if transport is None:
            raise httpx.ConnectError(f"no sandbox at {request.url.host}", request=request)
        return await transport.handle_async_request(request)


@dataclass
class InProcessSandboxes:
    partspim: PartsPimSandbox
    accountview: AccountViewSandbox
    transport: SandboxTransport

    def integration(self, flows: dict[str, dict[str, Any]], **options: Any) -> dict[str, Any]:
        """An integration document for these sandboxes (see `integration_document`)."""
        return integration_document(
            self.partspim.credentials(PARTSPIM_URL),
            self.accountview.credentials(ACCOUNTVIEW_URL),
            flows,
            **options,
        )


@contextmanager
def inprocess_sandboxes(products: int, *, seed: int = 0) -> Iterator[InProcessSandboxes]:
    """Parts Pim with `products` generated products and an AccountView company, served
    in-process at PARTSPIM_URL and ACCOUNTVIEW_URL."""
    partspim = PartsPimSandbox(seed=seed)
    accountview = AccountViewSandbox(seed=seed)
    partspim.generate(products, seed=seed)
    accountview.generate(0, seed=seed)
    transport = SandboxTransport(
        {PARTSPIM_URL: partspim.asgi_app(), ACCOUNTVIEW_URL: accountview.asgi_app()}
    )
    try:
        yield InProcessSandboxes(partspim, accountview, transport)
    finally:
        partspim.close()
