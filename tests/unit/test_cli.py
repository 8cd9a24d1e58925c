"""The command line without any API: errors as plain lines with exit codes, the activity
commands on an empty store, and the mapping commands, which work from the file alone."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import Result
from typer.testing import CliRunner

from koppel.cli import app
from koppel.commands.sandbox import SANDBOX_PORTS
from koppel.flows.registry import FLOW_TYPES
from koppel.services.demo import DEMO_CONNECTIONS, DEMO_FLOWS, demo_flows

SECRET = "s3cr3t-refresh-token-value"


def koppel(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"}, prog_name="koppel")


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("KOPPEL_DATABASE_URL", "KOPPEL_ENGINE_DATABASE_URL", "KOPPEL_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KOPPEL_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def integration(name: str = "acme-pim-av", **flow: Any) -> dict[str, Any]:
    return {
        "tenant": "acme",
        "integration": name,
        "connections": {
            "pim": {
                "application": "partspim",
                "base_url": "http://127.0.0.1:9/api/v1",
                "credentials": {"api_key": "k"},
            },
            "av": {
                "application": "accountview",
                "base_url": "http://127.0.0.1:9/api/v3",
                "credentials": {
                    "client_id": "koppel",
                    "client_secret": "c",
                    "company_id": "1",
                    "refresh_token": SECRET,
                },
            },
        },
        "flows": {"products": {"from": "pim", "to": "av", "entity": "products", **flow}},
    }


def write(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def test_a_bad_file_is_two_plain_lines_naming_the_path(tmp_path: Path) -> None:
    config = write(tmp_path / "acme.yaml", integration(schedule="often"))
    result = koppel("config", "apply", str(config))
    assert result.exit_code == 2
    assert f"{config}: flows.products.schedule: 'often' is not a duration" in result.stderr
    assert "Traceback" not in result.output
    document = integration()
    document["connections"]["av"]["credentials"]["refresh_token"] = "${NOT_SET_ANYWHERE}"
    unset = koppel("connection", "test", "av", "--config", str(write(config, document)))
    assert unset.exit_code == 2
    assert "refresh_token: environment variable NOT_SET_ANYWHERE is not set" in unset.stderr
    missing = koppel("sync", "--config", str(tmp_path / "nope.yaml"))
    assert missing.exit_code == 2 and "nope.yaml: file not found" in missing.stderr


def test_a_bad_process_setting_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOPPEL_LOG_RETENTION_DAYS", "0")
    result = koppel("runs")
    assert result.exit_code == 2
    assert "KOPPEL_LOG_RETENTION_DAYS" in result.stderr


def test_applied_file_then_empty_activity(tmp_path: Path) -> None:
    config = write(tmp_path / "acme.yaml", integration())
    applied = koppel("config", "apply", str(config))
    assert applied.exit_code == 0, applied.output
    assert "acme/acme-pim-av" in applied.stdout and "every 60s" in applied.stdout
    assert SECRET not in applied.output
    assert "no runs yet" in koppel("runs").stdout
    assert json.loads(koppel("runs", "--json").stdout) == []
    assert "no pending dead letters" in koppel("dead-letters", "--flow", "products").stdout
    unknown = koppel("runs", "--flow", "orders")
    assert unknown.exit_code == 2 and "its flows: products" in unknown.stderr
    assert "nothing to replay" in koppel("replay").stdout


def test_several_integrations_must_be_named(tmp_path: Path) -> None:
    koppel("config", "apply", str(write(tmp_path / "a.yaml", integration("one"))))
    koppel("config", "apply", str(write(tmp_path / "b.yaml", integration("two"))))
    ambiguous = koppel("dead-letters", "--flow", "products")
    assert ambiguous.exit_code == 2
    assert "acme/one, acme/two" in ambiguous.stderr and "--integration" in ambiguous.stderr
    named = koppel("dead-letters", "--flow", "products", "--integration", "acme/two")
    assert named.exit_code == 0, named.output
    versions = koppel(
        "mapping", "versions", "--flow", "products", "--config", str(tmp_path / "a.yaml")
    )
    assert versions.exit_code == 0 and "v1 (current)" in versions.stdout


def test_mapping_show_validate_and_preview_need_no_api(tmp_path: Path) -> None:
    override = {"send": {"fields": {"ART_DESC1": {"from": "name", "transform": ["upper"]}}}}
    config = write(tmp_path / "acme.yaml", integration(mapping=override))
    shown = koppel(
        "mapping", "show", "--config", str(config), "--flow", "products", "--side", "send"
    )
    assert shown.exit_code == 0, shown.output
    assert "ART_DESC1" in shown.stdout and "upper" in shown.stdout
    assert "get side" not in shown.stdout

    record = tmp_path / "record.json"
    record.write_text(json.dumps({"id": 7, "sku": "1001", "name": "Remblokken", "type": "simple"}))
    args = ("--config", str(config), "--flow", "products")
    previewed = koppel("mapping", "preview", *args, "--record", str(record))
    assert previewed.exit_code == 0, previewed.output
    assert "ART_DESC1 = 'REMBLOKKEN'" in previewed.stdout
    assert "looks up in the target during a run" in previewed.stdout  # the AG_CODE

    record.write_text(json.dumps({"id": 8, "sku": "1002", "name": "Bout", "price_excl_vat": "x"}))
    broken = koppel("mapping", "preview", *args, "--record", str(record))
    assert broken.exit_code == 1 and "price_excl_vat" in broken.stdout
    both = koppel("mapping", "preview", *args, "--record", str(record), "--sample")
    assert both.exit_code == 2 and "exactly one" in both.stderr

    override["send"]["remove"] = ["NO_SUCH_FIELD"]
    write(config, integration(mapping=override))
    invalid = koppel("mapping", "validate", *args)
    assert invalid.exit_code == 1
    assert "NO_SUCH_FIELD" in invalid.stdout and "fix them in" in invalid.stderr
    other = koppel("mapping", "validate", "--config", str(config), "--flow", "stock")
    assert other.exit_code == 2 and "no flow named 'stock'" in other.stderr


def test_missing_credentials_are_named_without_values(tmp_path: Path) -> None:
    document = integration()
    del document["connections"]["av"]["credentials"]["client_id"]
    config = write(tmp_path / "acme.yaml", document)
    result = koppel("mapping", "validate", "--config", str(config), "--flow", "products")
    assert result.exit_code == 2
    assert "client_id" in result.stderr and SECRET not in result.output


def test_demo_flows_are_the_registered_ones() -> None:
    flows = demo_flows()
    assert "products" in flows
    assert set(flows) <= set(DEMO_FLOWS)
    for flow in flows.values():
        assert (DEMO_CONNECTIONS[flow["from"]], flow["entity"]) in FLOW_TYPES


def test_usage_errors_and_bugs_are_one_line_without_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong_type = koppel("runs", "--limit", "abc")
    assert wrong_type.exit_code == 2
    [line] = wrong_type.stderr.splitlines()
    assert line.startswith("koppel runs: Invalid value for '--limit'")
    assert "koppel runs --help" in line
    for usage in (("log",), ("nosuch",), ("sandbox", "partspim", "--port", "99999")):
        result = koppel(*usage)
        assert result.exit_code == 2, (usage, result.output)
        assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.output

    not_a_directory = tmp_path / "a-file"
    not_a_directory.write_text("")
    monkeypatch.setenv("KOPPEL_HOME", str(not_a_directory))
    crashed = koppel("demo", "--once", "--products", "1")
    assert crashed.exit_code == 1
    assert "Traceback" not in crashed.output
    [line] = crashed.stderr.splitlines()
    assert "unexpected error (FileExistsError" in line and "--debug" in line
    shown = koppel("--debug", "demo", "--once", "--products", "1")
    assert shown.exit_code == 1 and "Traceback" in shown.stderr


def test_a_taken_port_is_said_before_the_banner_with_its_own_exit_code() -> None:
    assert len(set(SANDBOX_PORTS.values())) == len(SANDBOX_PORTS)  # both run side by side
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = str(taken.getsockname()[1])
        result = koppel("sandbox", "partspim", "--port", port, "--products", "1")
    assert result.exit_code == 4
    assert result.stdout == ""  # no banner, no data generated
    [line] = result.stderr.splitlines()
    assert f"cannot listen on 127.0.0.1:{port}" in line and "--port" in line


def test_mapping_validate_names_only_real_problems_of_what_the_file_writes(tmp_path: Path) -> None:
    args = ("--flow", "products", "--config")
    plain_file = write(tmp_path / "plain.yaml", integration())
    clean = koppel("mapping", "validate", *args, str(plain_file))
    assert clean.exit_code == 0, clean.output
    assert "warning" not in clean.stdout  # the default mapping's own notes are not the user's

    broken = {"send": {"fields": {"ART_DESC1": {"expr": "name & & ' '"}}}}
    result = koppel(
        "mapping", "validate", *args, str(write(tmp_path / "b.yaml", integration(mapping=broken)))
    )
    assert result.exit_code == 1
    assert "expression does not parse" in result.stdout
    assert "is not mapped" not in result.stdout
