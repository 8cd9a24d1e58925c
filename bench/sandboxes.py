"""Sandboxes in processes of their own, so the sync process's memory and CPU are its own.

Each sandbox generates its data, binds a free port, hands back how to connect, and serves until
it is stopped. The bench reads its request log (`/_admin/requests`) for calls by kind, and its
CPU time from /proc to estimate how long the sandbox itself takes to answer one call.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import urllib.request
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from types import TracebackType
from typing import Any

__all__ = ["SandboxProcess", "process_cpu_seconds"]

_START_TIMEOUT_S = 900.0


def _serve(
    name: str,
    products: int,
    seed: int,
    latency_ms: float,
    rows: dict[str, list[dict[str, Any]]],
    conn: Connection,
) -> None:
    """Child process: generate the data, bind a port, report the credentials, serve forever."""
    import uvicorn

    from koppel.sandbox import sandbox_class
    from koppel.sandbox.common import FaultConfig

    faults = FaultConfig(latency_ms=latency_ms, seed=seed)
    sandbox = sandbox_class(name)(faults=faults, seed=seed)
    sandbox.generate(products if name == "partspim" else 0, seed=seed)
    for table, table_rows in rows.items():
        sandbox.write(table, table_rows)
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and
    # without it every answer waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = uvicorn.Config(
        sandbox.asgi_app(), log_level="warning", access_log=False, lifespan="off", backlog=2048
    )
    server = uvicorn.Server(config)
    conn.send({"url": url, "credentials": sandbox.credentials(url)})
    conn.close()
    server.run(sockets=[sock])


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


class SandboxProcess:
    """`with SandboxProcess("partspim", products=10_000, latency_ms=50) as pim: pim.url`."""

    def __init__(
        self,
        name: str,
        *,
        products: int = 0,
        seed: int = 0,
        latency_ms: float = 0,
        rows: dict[str, list[dict[str, Any]]] | None = None,
    ):
        """`rows`: table -> rows written into an AccountView sandbox before it serves."""
        self.name = name
        self._args = (name, products, seed, latency_ms, dict(rows or {}))
        self._process: BaseProcess | None = None
        self.url = ""
        self.credentials: dict[str, Any] = {}

    def __enter__(self) -> SandboxProcess:
        context = multiprocessing.get_context("spawn")
        receiving, sending = context.Pipe(duplex=False)
        self._process = context.Process(
            target=_serve, args=(*self._args, sending), name=f"sandbox-{self.name}", daemon=True
        )
        self._process.start()
        sending.close()
        if not receiving.poll(_START_TIMEOUT_S):
            self.stop()
            raise RuntimeError(f"the {self.name} sandbox did not start")
        started = receiving.recv()
        self.url, self.credentials = started["url"], started["credentials"]
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        if self._process is not None and self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout=10)
        self._process = None

    @property
    def pid(self) -> int:
        assert self._process is not None and self._process.pid is not None
        return self._process.pid

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.pid)

    def request_counts(self) -> dict[str, int]:
        """Calls answered since the last `clear_requests`, by kind ("GET products")."""
        with urllib.request.urlopen(f"{self.url}/_admin/requests", timeout=30) as answer:
            counts: dict[str, int] = json.load(answer)["counts"]
        return counts

    def clear_requests(self) -> None:
        request = urllib.request.Request(f"{self.url}/_admin/requests", method="DELETE")
        with urllib.request.urlopen(request, timeout=30):
            pass
