"""`koppel demo` without --once, as a person starts it: the flows run once, then the web app
serves the demo on the printed address with the printed login, until Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.e2e.test_serve import free_port

KOPPEL = str(Path(sys.executable).parent / "koppel")
CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]*)"')


def test_the_demo_serves_the_web_app_with_a_login_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "demo.log"
    env = {**os.environ, "KOPPEL_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    for name in ("KOPPEL_DATABASE_URL", "KOPPEL_ENGINE_DATABASE_URL", "KOPPEL_SECRET_KEY"):
        env.pop(name, None)
    demo = subprocess.Popen(
        [KOPPEL, "demo", "--products", "10", "--port", str(port)],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 180
        while "Stop with Ctrl-C." not in log.read_text(errors="replace"):
            assert demo.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.2)
        shown = log.read_text(errors="replace")
        login = re.search(
            r"Sign in at (http://127\.0\.0\.1:\d+) as (\S+) with the password (\S+)", shown
        )
        assert login, shown
        url, email, password = login.groups()
        assert url == f"http://127.0.0.1:{port}" and email == "demo@koppel.example"
        assert "demo: Parts Pim -> AccountView" in shown  # the summary came first
        with httpx.Client(base_url=url, timeout=30) as browser:
            for _ in range(300):  # the server comes up after the line is printed
                try:
                    form = browser.get("/login")
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            token = CSRF_INPUT.search(form.text)
            assert token, form.text
            signed = browser.post(
                "/login",
                data={"email": email, "password": password, "csrf_token": token.group(1)},
            )
            assert signed.status_code == 303, signed.text
            home = browser.get("/")
            assert "Integrations of demo" in home.text and "demo-pim-av" in home.text
            assert "This server runs the flows on their schedules." in home.text
    finally:
        if demo.poll() is None:
            demo.send_signal(signal.SIGINT)
        code = demo.wait(timeout=120)
    output = log.read_text(errors="replace")
    assert code == 0, output
    assert output.rstrip().endswith("demo stopped"), output
    assert "Traceback" not in output and '"GET /api/v1/' not in output  # no access log
