"""`koppel demo` without --once, as a person starts it: the flows run once, then the web app
serves the demo on the printed address with the printed login, until Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_serve import free_port

KOPPEL = str(Path(sys.executable).parent / "koppel")
CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]*)"')
LOGIN = re.compile(r"Sign in at (http://127\.0\.0\.1:\d+) as (\S+) with the password (\S+)")


@dataclass
class DemoProcess:
    process: subprocess.Popen[bytes]
    log: Path
    url: str = ""
    email: str = ""
    password: str = ""

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    @contextmanager
    def signed_in(self) -> Iterator[httpx.Client]:
        """A client signed in with the printed login (the server comes up after it is shown)."""
        with httpx.Client(base_url=self.url, timeout=30) as browser:
            for _ in range(300):
                try:
                    form = browser.get("/login")
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            token = CSRF_INPUT.search(form.text)
            assert token, form.text
            signed = browser.post(
                "/login",
                data={
                    "email": self.email,
                    "password": self.password,
                    "csrf_token": token.group(1),
                },
            )
            assert signed.status_code == 303, signed.text
            yield browser


@contextmanager
def demo_served(tmp_path: Path) -> Iterator[DemoProcess]:
    """`koppel demo` until its login is printed; then Ctrl-C, and its exit code is checked."""
    port = free_port()
    log = tmp_path / "demo.log"
    env = {**os.environ, "KOPPEL_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    for name in ("KOPPEL_DATABASE_URL", "KOPPEL_ENGINE_DATABASE_URL", "KOPPEL_SECRET_KEY"):
        env.pop(name, None)
    demo = DemoProcess(
        subprocess.Popen(
            [KOPPEL, "demo", "--products", "10", "--port", str(port)],
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        ),
        log,
    )
    try:
        deadline = time.monotonic() + 180
        while "Stop with Ctrl-C." not in demo.output():
            assert demo.process.poll() is None, demo.output()
            assert time.monotonic() < deadline, demo.output()
            time.sleep(0.2)
        login = LOGIN.search(demo.output())
        assert login, demo.output()
        demo.url, demo.email, demo.password = login.groups()
        assert demo.url == f"http://127.0.0.1:{port}"
        yield demo
    finally:
        if demo.process.poll() is None:
            demo.process.send_signal(signal.SIGINT)
        code = demo.process.wait(timeout=120)
    assert code == 0, demo.output()
    assert demo.output().rstrip().endswith("demo stopped"), demo.output()
    assert "Traceback" not in demo.output()


def test_the_demo_serves_the_web_app_with_a_login_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    with demo_served(tmp_path) as demo:
        assert demo.email == "demo@koppel.example"
        assert "demo: Parts Pim -> AccountView" in demo.output()  # the summary came first
        with demo.signed_in() as browser:
            home = browser.get("/")
            assert "Integrations of demo" in home.text and "demo-pim-av" in home.text
            assert "This server runs the flows on their schedules." in home.text


@pytest.mark.slow
def test_the_demos_web_app_runs_the_flows_every_minute_without_an_access_log(
    tmp_path: Path,
) -> None:
    with demo_served(tmp_path) as demo, demo.signed_in() as browser:
        first = len(browser.get("/api/v1/runs?limit=500").json()["items"])
        deadline = time.monotonic() + 150
        while len(browser.get("/api/v1/runs?limit=500").json()["items"]) <= first:
            assert time.monotonic() < deadline, demo.output()
            time.sleep(1)
    assert '"GET /api/v1/' not in demo.output()  # neither the sandboxes' nor the app's requests
