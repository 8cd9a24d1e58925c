"""An API that cannot be reached (issue 8 point 12), with real sockets and no mocks: a port
nobody listens on, a socket that accepts connections and never answers, a name that does not
resolve, TLS against plain HTTP, a path that is not there. The tests assert the reasons, and
leave the time bounds to pytest's timeouts (the machine is shared)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from koppel.sandbox.common.server import free_port
from tests.e2e.cli import Setup, koppel
from tests.e2e.processes import wait_for


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A socket that accepts connections (the kernel does, from its backlog) and never
    answers: a host that hangs."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


def with_pim_at(setup: Setup, base_url: str, **options: Any) -> Path:
    document = setup.platform.sandboxes.integration(
        {
            "categories": {"from": "pim", "to": "av", "entity": "categories"},
            "products": {"from": "pim", "to": "av", "entity": "products"},
        }
    )
    document["connections"]["pim"]["base_url"] = base_url
    document["connections"]["pim"]["options"] = options
    return setup.write(document)


def says(setup: Setup, base_url: str) -> str:
    result = koppel("connection", "test", "pim", "--config", str(with_pim_at(setup, base_url)))
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    return result.stderr


@pytest.mark.timeout(120)
def test_a_connection_test_says_why_it_cannot_reach_the_api(
    cli_setup: Setup, silent_url: str
) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    assert "refused the connection (nothing listens there)" in says(cli_setup, nobody)
    assert "gave no answer within 10 s (timeout)" in says(cli_setup, silent_url)
    unknown = says(cli_setup, "http://koppel-no-such-host.invalid")
    assert "koppel-no-such-host.invalid does not resolve (DNS); check base_url" in unknown
    plain = cli_setup.platform.sandboxes.partspim_url.replace("http://", "https://")
    assert "the TLS handshake with" in says(cli_setup, plain)
    missing = says(cli_setup, cli_setup.platform.sandboxes.partspim_url + "/nope")
    assert "HTTP 404" in missing


@pytest.mark.timeout(180)
def test_a_connection_that_keeps_timing_out_is_marked_down_and_the_rest_fails_at_once(
    cli_setup: Setup, silent_url: str
) -> None:
    config = with_pim_at(cli_setup, silent_url, timeout_seconds=1, down_after_seconds=2)
    result = koppel("sync", "--config", str(config), "--json")
    assert result.exit_code == 1, result.output
    runs = {run["flow"]: run for run in json.loads(result.stdout)["runs"]}
    assert [run["status"] for run in runs.values()] == ["failed", "failed"]
    for run in runs.values():
        assert run["error"].startswith("connection pim: ")
        assert "gave no answer within 1 s (timeout)" in run["error"]
        assert "marked down for 2 s" in run["error"]
    assert json.loads(koppel("dead-letters", "--json").stdout) == []


@pytest.mark.timeout(180)
def test_ctrl_c_stops_a_sync_that_waits_on_a_hanging_api(cli_setup: Setup, silent_url: str) -> None:
    # Timeouts longer than this test waits: only the stop can end the wait.
    config = with_pim_at(cli_setup, silent_url, timeout_seconds=600, down_after_seconds=3600)
    home = cli_setup.platform.settings.home
    log = home.parent / "sync.log"
    sync = subprocess.Popen(
        [str(Path(sys.executable).parent / "koppel"), "sync", "--config", str(config)],
        env={**os.environ, "KOPPEL_HOME": str(home), "COLUMNS": "200"},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: bool(cli_setup.platform.store.runs.list()), what="the first run")
        sync.send_signal(signal.SIGINT)
        code = sync.wait(timeout=60)
    finally:
        if sync.poll() is None:
            sync.kill()
    output = log.read_text(errors="replace")
    assert code == 130, output
    assert "resumes on the next start" in output and "Traceback" not in output
