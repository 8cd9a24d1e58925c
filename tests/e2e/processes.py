"""`koppel` commands in processes of their own (worker, sync), as an operator runs them.

Signals, exit codes and the engine's process-wide state (DBOS is a singleton) can only be seen
from outside. Tests wait for states (a line of output, a row in the store), never for time.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

WAIT_S = 120.0
"""The bound on every wait: a test that waits longer fails (it is not a timing)."""


def wait_for(
    condition: Callable[[], bool],
    *,
    what: str,
    seconds: float = WAIT_S,
    explain: Callable[[], str] | None = None,
) -> None:
    """`explain` says what the test saw when the wait fails (the state it waited on)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            seen = f"\n{explain()}" if explain is not None else ""
            raise AssertionError(f"waited {seconds:g}s for {what}{seen}")
        time.sleep(0.1)


class KoppelProcess:
    """`koppel ARGS` with KOPPEL_HOME set; stdout and stderr together in a file."""

    def __init__(
        self, home: Path, *args: str, name: str = "", env: Mapping[str, str] | None = None
    ) -> None:
        self.log = home.parent / f"{name or args[0]}.log"
        environment = {**os.environ, "KOPPEL_HOME": str(home), "COLUMNS": "200", **(env or {})}
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "koppel"), *args],
            env=environment,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_output(self, text: str) -> None:
        wait_for(
            lambda: text in self.output() or self.process.poll() is not None,
            what=f"{text!r} in the output of koppel",
        )
        assert text in self.output(), self.output()

    def send(self, signum: signal.Signals) -> None:
        self.process.send_signal(signum)

    def wait(self) -> int:
        try:
            return self.process.wait(timeout=WAIT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise

    def stop(self) -> int:
        """SIGTERM (if still running), then the exit code."""
        if self.process.poll() is None:
            self.send(signal.SIGTERM)
        return self.wait()


def socket_ports(pid: int) -> set[int]:
    """The local ports of the TCP sockets process `pid` has open (Linux /proc): whose requests
    a sandbox saw, by the caller's port."""
    inodes = set()
    for descriptor in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(descriptor)
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[9]) in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


STARTED = "stop with Ctrl-C or SIGTERM"
"""The worker's line once its engine runs and its signal handlers are in place."""
STOPPING = "stopping: the batches in flight finish"
"""The line a command prints when it has heard Ctrl-C or SIGTERM."""


def start_worker(home: Path, *, name: str = "worker", **env: str) -> KoppelProcess:
    worker = KoppelProcess(home, "worker", name=name, env=env)
    worker.wait_for_output(STARTED)
    return worker


__all__ = ["STARTED", "STOPPING", "KoppelProcess", "socket_ports", "start_worker", "wait_for"]
