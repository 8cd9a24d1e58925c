"""`koppel serve` as an operator starts it: a real process on a real port, the first-run link
on its console, a graceful stop on SIGTERM, and a clear refusal when the engine is taken."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

KOPPEL = str(Path(sys.executable).parent / "koppel")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Serving:
    def __init__(self, home: Path, *args: str) -> None:
        self.port = free_port()
        self.log = home.parent / f"serve-{self.port}.log"
        env = {**os.environ, "KOPPEL_HOME": str(home), "COLUMNS": "300"}
        for name in ("KOPPEL_DATABASE_URL", "KOPPEL_ENGINE_DATABASE_URL", "KOPPEL_SECRET_KEY"):
            env.pop(name, None)
        self.process = subprocess.Popen(
            [KOPPEL, "serve", "--port", str(self.port), *args],
            env=env,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        self.url = f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_until_up(self) -> None:
        deadline = time.monotonic() + 90
        while True:
            assert self.process.poll() is None, self.output()
            try:
                if httpx.get(f"{self.url}/login", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"koppel serve did not come up:\n{self.output()}"
            time.sleep(0.2)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


def test_serve_prints_the_first_run_link_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    serving = Serving(tmp_path / "home")
    try:
        serving.wait_until_up()
        link = re.search(r"(http://127\.0\.0\.1:\d+/first-run\?token=\S+)", serving.output())
        assert link, serving.output()
        assert "flows: run here on their schedules" in serving.output()
        page = httpx.get(link.group(1), timeout=10)
        assert page.status_code == 200 and "Welcome to Koppel" in page.text
        assert httpx.get(f"{serving.url}/first-run?token=wrong", timeout=10).status_code == 200
        assert httpx.get(f"{serving.url}/", timeout=10).status_code == 303
    finally:
        code = serving.stop()
    assert code == 0, serving.output()
    assert "koppel serve stopped: batches in flight were finished" in serving.output()
    assert "Traceback" not in serving.output()


def test_a_second_server_on_a_taken_engine_is_refused_unless_it_leaves_the_runs(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    first = Serving(home)
    try:
        first.wait_until_up()
        second = Serving(home)
        assert second.process.wait(timeout=120) == 3, second.output()
        assert "is in use by another running Koppel process" in second.output()
        assert "start this one with --no-worker" in second.output()
        assert "Traceback" not in second.output()
        web_only = Serving(home, "--no-worker")
        try:
            web_only.wait_until_up()
            assert "flows: left to koppel worker" in web_only.output()
        finally:
            assert web_only.stop() == 0, web_only.output()
    finally:
        assert first.stop() == 0, first.output()
