"""What every sandbox shares: fault injection, the request log, the admin API and the server.

A sandbox is the other side of the wire, so nothing here imports the platform.
"""

from koppel.sandbox.common.faults import (
    FaultConfig,
    FaultMiddleware,
    RequestLog,
    admin_router,
    replaying,
)
from koppel.sandbox.common.server import SandboxServer, free_port

__all__ = [
    "FaultConfig",
    "FaultMiddleware",
    "RequestLog",
    "SandboxServer",
    "admin_router",
    "free_port",
    "replaying",
]
