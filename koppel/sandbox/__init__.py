"""Faithful local emulators of the applications' APIs, shipped with the product.

They are the embedded default of the demo, the ground of every test, and a safe place for users to
try flows before they touch their books. Nothing here imports the platform: a sandbox is the other
side of the wire.
"""

from __future__ import annotations

from typing import Any

SANDBOX_NAMES = ("accountview", "partspim")


def sandbox_class(name: str) -> Any:
    """The sandbox class for an application name (imported on demand: each is a web app)."""
    if name == "accountview":
        from koppel.sandbox.accountview import AccountViewSandbox

        return AccountViewSandbox
    if name == "partspim":
        from koppel.sandbox.partspim import PartsPimSandbox

        return PartsPimSandbox
    raise ValueError(f"unknown sandbox {name!r}; choose one of {', '.join(SANDBOX_NAMES)}")


__all__ = ["SANDBOX_NAMES", "sandbox_class"]
