"""A new user's first hour (issue 8), over real HTTP against both sandboxes: credentials that
survive a typo, authorising again through the AccountView login page, runs that fail at once
with their reason, and a worker that reports a flow that cannot start."""

from __future__ import annotations

import copy
import html
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cryptography.fernet import Fernet

from koppel.sandbox.common import FaultConfig
from koppel.store import ConnectionState
from tests.e2e.cli import PRODUCTS_FLOW, TOO_LONG_SKU, Setup, koppel
from tests.e2e.processes import start_worker, wait_for


def as_a_user_writes_it(document: dict[str, Any]) -> dict[str, Any]:
    """The integration document with the AccountView credentials a user copies from the
    sandbox's banner: no access token, so the first call refreshes."""
    credentials = document["connections"]["av"]["credentials"]
    del credentials["access_token"], credentials["expires_at"]
    return document


def spend(document: dict[str, Any]) -> None:
    """Use the file's refresh token elsewhere (another copy of the file), as AccountView then
    sees it: spent."""
    av = document["connections"]["av"]
    answer = httpx.post(
        f"{av['base_url']}/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": av["credentials"]["refresh_token"],
            "client_id": av["credentials"]["client_id"],
            "client_secret": av["credentials"]["client_secret"],
        },
    )
    assert answer.status_code == 200, answer.text


def av_connection_state(cli_setup: Setup) -> ConnectionState:
    [integration] = cli_setup.platform.store.integrations.list()
    found = cli_setup.platform.store.connections.get_by_name(integration.tenant_id, "av")
    assert found is not None
    return found.state


def test_a_mistyped_secret_or_another_company_keeps_the_rotated_token(
    cli_setup: Setup, tmp_path: Path
) -> None:
    document = as_a_user_writes_it(cli_setup.document())
    good = cli_setup.write(document)
    assert koppel("config", "apply", str(good)).exit_code == 0
    works = koppel("connection", "test", "av", "--config", str(good))
    assert works.exit_code == 0, works.output  # the file's refresh token is spent now

    mistyped = copy.deepcopy(document)
    mistyped["connections"]["av"]["credentials"]["client_secret"] = "mistyped-secret-1234"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(mistyped, sort_keys=False))
    refused = koppel("connection", "test", "av", "--config", str(bad))
    assert refused.exit_code == 1
    assert "invalid_client" in refused.stderr and "mistyped-secret" not in refused.output

    again = koppel("connection", "test", "av", "--config", str(good))
    assert again.exit_code == 0, again.output
    assert "works" in again.stdout and "Koppel Demo B.V." in again.stdout

    other = copy.deepcopy(document)
    second = cli_setup.platform.sandboxes.accountview.companies()[1]["Id"]
    other["connections"]["av"]["credentials"]["company_id"] = second
    switched = tmp_path / "other-company.yaml"
    switched.write_text(yaml.safe_dump(other, sort_keys=False))
    moved = koppel("connection", "test", "av", "--config", str(switched))
    assert moved.exit_code == 0 and "Koppel Demo GmbH" in moved.stdout, moved.output
    back = koppel("sync", "--config", str(good))
    assert back.exit_code == 0, back.output
    assert av_connection_state(cli_setup) is ConnectionState.READY


def authorize(config: Path, home: Path) -> tuple[int, str]:
    """`koppel connection authorize av` as a person runs it: the command prints the login
    address, a browser fills in the login form and follows the redirect to the command."""
    koppel_command = str(Path(sys.executable).parent / "koppel")
    command = subprocess.Popen(
        [koppel_command, "connection", "authorize", "av", "--config", str(config)],
        env={**os.environ, "KOPPEL_HOME": str(home), "COLUMNS": "400"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert command.stdout is not None
    printed = ""
    while "Waiting for the answer" not in printed:
        line = command.stdout.readline()
        assert line, f"the command ended before it printed the login address: {printed}"
        printed += line
    [address] = re.findall(r"http://\S+/ams/authorize\.aspx\?\S+", printed)
    with httpx.Client() as browser:
        page = browser.get(address)
        assert page.status_code == 200 and "<form" in page.text
        form = {
            name: html.unescape(value)
            for name, value in re.findall(
                r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text
            )
        }
        assert form["state"] and "127.0.0.1" in form["redirect_uri"]
        allowed = browser.post(
            address.split("?")[0], data={**form, "username": "demo", "decision": "allow"}
        )
        assert allowed.status_code == 302
        landed = browser.get(allowed.headers["location"])
        assert landed.status_code == 200 and "Koppel has the answer" in landed.text
    rest, _ = command.communicate(timeout=120)
    return command.returncode, printed + rest


def test_a_lost_grant_fails_the_runs_at_once_until_the_connection_is_authorised_again(
    cli_setup: Setup,
) -> None:
    document = as_a_user_writes_it(cli_setup.document())
    config = cli_setup.write(document)
    spend(document)

    lost = koppel("sync", "--config", str(config), "--json")
    assert lost.exit_code == 1, lost.output
    [run] = json.loads(lost.stdout)["runs"]
    assert run["status"] == "failed" and (run["created"], run["failed"]) == (0, 0)
    assert run["error"].startswith("connection av: AccountView refused the refresh token")
    assert "koppel connection authorize av --config FILE" in run["error"]
    assert json.loads(koppel("dead-letters", "--json").stdout) == []
    assert av_connection_state(cli_setup) is ConnectionState.NEEDS_AUTHORISATION

    at_once = koppel("sync", "--config", str(config))
    assert at_once.exit_code == 1
    assert "products: the run failed: connection av needs authorisation" in at_once.stdout
    assert "koppel connection authorize av --config FILE" in at_once.stdout
    assert "Traceback" not in at_once.output
    listed = json.loads(koppel("runs", "--json").stdout)
    assert listed[0]["api_calls"] == 0 and "needs authorisation" in listed[0]["error"]

    code, printed = authorize(config, cli_setup.platform.settings.home)
    assert code == 0, printed
    assert "connection av is authorised" in printed and "(company_id of this connection)" in printed
    assert document["connections"]["av"]["credentials"]["client_secret"] not in printed
    assert av_connection_state(cli_setup) is ConnectionState.READY

    synced = koppel("sync", "--config", str(config))
    assert synced.exit_code == 0, synced.output
    assert cli_setup.articles()


def test_a_wrong_api_key_fails_the_run_once_with_its_reason(cli_setup: Setup) -> None:
    document = cli_setup.document()
    document["connections"]["pim"]["credentials"]["api_key"] = "ppk_not-the-key-0000"
    config = cli_setup.write(document)
    result = koppel("sync", "--config", str(config), "--json")
    assert result.exit_code == 1, result.output
    [run] = json.loads(result.stdout)["runs"]
    assert run["status"] == "failed" and run["failed"] == 0
    cause, fix = run["error"].splitlines()
    assert cause.startswith("connection pim: ") and "refused" in cause
    assert fix == "check its credentials in the file, then: koppel connection test pim -c FILE"
    assert "ppk_not-the-key" not in result.output
    assert json.loads(koppel("dead-letters", "--json").stdout) == []
    shown = koppel("log", run["run_id"])
    assert shown.exit_code == 0 and "connection pim: " in shown.stdout
    debug_log = cli_setup.platform.settings.home / "debug.log"
    assert debug_log.stat().st_mode & 0o777 == 0o600
    logged = debug_log.read_text()
    assert "Traceback" in logged and "ppk_not-the-key" not in logged


def test_the_worker_reports_a_flow_that_cannot_start_as_a_failed_run(
    cli_setup: Setup, monkeypatch: Any
) -> None:
    config = cli_setup.write(cli_setup.document())
    assert koppel("config", "apply", str(config)).exit_code == 0
    # Another key than the one the credentials were encrypted with: no flow can open them.
    monkeypatch.setenv("KOPPEL_SECRET_KEY", Fernet.generate_key().decode())
    worker = start_worker(cli_setup.platform.settings.home)
    try:
        wait_for(lambda: "products: failed" in worker.output(), what="the failed run's line")
    finally:
        assert worker.stop() == 0, worker.output()
    [line] = [line for line in worker.output().splitlines() if line.startswith("products: failed")]
    assert "encrypted with another KOPPEL_SECRET_KEY" in line
    [run] = cli_setup.platform.store.runs.list()
    assert run.error is not None and "another KOPPEL_SECRET_KEY" in run.error
    assert "Traceback" not in worker.output()


def test_parts_pim_works_with_the_base_url_the_banner_shows_in_either_form(
    cli_setup: Setup,
) -> None:
    sandboxes = cli_setup.platform.sandboxes
    banner = sandboxes.partspim.describe(sandboxes.partspim_url)
    shown = re.findall(r"http://127\.0\.0\.1:\d+(?:/api/v1)?(?=[\s)])", banner)
    assert f"{sandboxes.partspim_url}/api/v1" in shown and sandboxes.partspim_url in shown
    for base_url in (f"{sandboxes.partspim_url}/api/v1/", sandboxes.partspim_url):
        document = cli_setup.document()
        document["connections"]["pim"]["base_url"] = base_url
        config = cli_setup.write(document)
        tested = koppel("connection", "test", "pim", "--config", str(config))
        assert tested.exit_code == 0, (base_url, tested.output)
        synced = koppel("sync", "--config", str(config))
        assert synced.exit_code == 0, (base_url, synced.output)


def test_sync_exits_1_while_records_wait_for_a_retry(cli_setup: Setup) -> None:
    # No cursor margin: the next sync does not read the failed record again.
    config = cli_setup.write(cli_setup.document(settings={"cursor_margin_seconds": 0}))
    cli_setup.add_product(TOO_LONG_SKU)
    first = koppel("sync", "--config", str(config))
    assert first.exit_code == 1, first.output
    again = koppel("sync", "--config", str(config), "--json")  # the retry is not due yet
    assert again.exit_code == 1, again.output
    [run] = json.loads(again.stdout)["runs"]
    assert (run["status"], run["failed"], run["waiting"]) == ("succeeded", 0, 1)
    told = koppel("sync", "--config", str(config))
    assert told.exit_code == 1
    assert "products: 1 record waits in the dead-letter list for a retry" in told.stdout
    assert "koppel replay --flow products" in told.stdout


@pytest.mark.timeout(240)
def test_ctrl_c_reports_what_the_run_did_and_the_next_sync_reports_the_resumed_run(
    platform_factory: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    platform = platform_factory(240)
    for name in ("KOPPEL_DATABASE_URL", "KOPPEL_ENGINE_DATABASE_URL", "KOPPEL_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KOPPEL_HOME", str(platform.settings.home))
    setup = Setup(platform, tmp_path / "acme.yaml")
    flows = {"products": {**PRODUCTS_FLOW, "settings": {"page_size": 20}}}
    config = setup.write(platform.sandboxes.integration(flows))
    platform.sandboxes.accountview.faults.configure(FaultConfig(latency_ms=60))
    log = tmp_path / "sync.log"
    sync = subprocess.Popen(
        [str(Path(sys.executable).parent / "koppel"), "sync", "--config", str(config)],
        env={**os.environ, "COLUMNS": "300"},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:

        def did_some_work() -> bool:
            runs = platform.store.runs.list()
            return bool(runs) and sum(runs[0].counts.values()) > 0

        wait_for(did_some_work, what="the first recorded batches")
        sync.send_signal(signal.SIGINT)
        assert sync.wait(timeout=120) == 130, log.read_text()
    finally:
        if sync.poll() is None:
            sync.kill()
    printed = log.read_text()
    [stopped] = re.findall(
        r"products: stopped after (\d+) records \(.*; (\d+) API calls\)", printed
    )
    assert int(stopped[0]) > 0 and int(stopped[1]) > 0, printed

    [interrupted] = json.loads(koppel("runs", "--json").stdout)
    done_so_far = interrupted["created"] + sum(
        sum(numbers.values()) for numbers in interrupted["entities"].values()
    )
    assert interrupted["status"] == "running" and done_so_far > 0
    platform.sandboxes.accountview.faults.configure(FaultConfig())
    resumed = koppel("sync", "--config", str(config), "--json")
    assert resumed.exit_code == 0, resumed.output
    first, own = json.loads(resumed.stdout)["runs"]
    assert (first["run_id"], first["resumed"], first["status"]) == (
        interrupted["run_id"],
        True,
        "succeeded",
    )
    assert first["created"] >= interrupted["created"] and not own["resumed"]


def test_runs_log_and_dead_letters_read_at_80_columns(cli_setup: Setup) -> None:
    long_name = "products-from-parts-pim-to-accountview"
    document = cli_setup.platform.sandboxes.integration({long_name: PRODUCTS_FLOW})
    config = cli_setup.write(document)
    bad = cli_setup.add_product(TOO_LONG_SKU)
    for _ in range(3):
        koppel("sync", "--config", str(config))
    listed = koppel("runs", columns=80)
    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), lines
    numbers = re.findall(r"^(#\d+) ", listed.stdout, re.MULTILINE)
    assert len(numbers) == 3
    runs = {run["number"]: run for run in json.loads(koppel("runs", "--json").stdout)}
    for shown in numbers:
        found = json.loads(koppel("log", shown, "--json").stdout)
        assert found["run"]["run_id"] == runs[int(shown[1:])]["run_id"]
        assert json.loads(koppel("log", shown[1:], "--json").stdout) == found

    with_payload = koppel("log", numbers[-1], "--payload", "--outcome", "failed", columns=80)
    assert with_payload.exit_code == 0, with_payload.output
    block = with_payload.stdout.splitlines()
    assert all(len(line) <= 80 for line in block), block
    assert f"{bad['id']}: failed" in with_payload.stdout
    assert f"  sku = '{TOO_LONG_SKU}'" in with_payload.stdout
    assert len(block) < 60  # one field a line, not a narrow column spread over many lines

    letters = koppel("dead-letters", columns=80)
    assert letters.exit_code == 0
    assert all(len(line) <= 80 for line in letters.stdout.splitlines())
    assert re.search(rf"^{long_name}  {bad['id']}  attempt \d", letters.stdout, re.MULTILINE)


@pytest.mark.timeout(300)
def test_the_demo_hint_runs_as_it_is_pasted(tmp_path: Path) -> None:
    """After `make demo` the shell has no `koppel` on PATH: the printed hint must still work."""
    bare_path = os.pathsep.join(
        part
        for part in os.environ.get("PATH", "").split(os.pathsep)
        if Path(part).resolve() != Path(sys.executable).parent.resolve()
    )
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("KOPPEL_DATABASE_URL", "KOPPEL_ENGINE_DATABASE_URL", "KOPPEL_SECRET_KEY")
    }
    env |= {"PATH": bare_path, "KOPPEL_HOME": str(tmp_path / "home"), "COLUMNS": "300"}
    demo = subprocess.run(
        [str(Path(sys.executable).parent / "koppel"), "demo", "--once", "--products", "20"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    [hint] = re.findall(r"^look around: (.+)$", demo.stdout, re.MULTILINE)
    pasted = subprocess.run(hint, shell=True, env=env, cwd=tmp_path, capture_output=True, text=True)
    assert pasted.returncode == 0, pasted.stderr
    assert "runs, newest first" in pasted.stdout
