"""The command line driven for real (typer's CliRunner) against both sandboxes over HTTP."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from koppel.store import DeadLetterStatus
from tests.e2e.cli import (
    TOO_LONG_SKU,
    Setup,
    koppel,
    sellable_skus,
)
from tests.e2e.processes import WAIT_S, start_worker

NOT_FOR_A_SYNC = (
    "fastapi",
    "starlette",
    "uvicorn",
    "jinja2",
    "faker",
    "alembic",
    "koppel.web",
    "koppel.sandbox",
    "koppel.commands.activity",
    "koppel.commands.demo",
    "koppel.commands.mapping",
    "koppel.commands.reconcile",
    "koppel.commands.sandbox",
    "koppel.commands.setup",
    "koppel.commands.users",
    "koppel.commands.web",
)
"""What `koppel sync` does not use, so does not import: the web app and its server, the
sandboxes and their data generator, the other commands, and Alembic when the store is at head
(these imports were most of a short sync's time)."""

_RUN_AND_LIST_MODULES = """
import atexit, sys
from pathlib import Path
atexit.register(lambda: Path(sys.argv[1]).write_text("\\n".join(sorted(sys.modules))))
from koppel.cli import app
app(sys.argv[2:], prog_name="koppel")
"""


def test_sync_runs_log_dead_letters_and_replay(cli_setup: Setup) -> None:
    config = cli_setup.write(cli_setup.document(schedule="5 minutes"))
    broken = koppel("sync", "--config", str(config))
    assert broken.exit_code == 2
    assert f"{config}: flows.products.schedule:" in broken.stderr
    assert "Traceback" not in broken.output

    config = cli_setup.write(cli_setup.document())
    unknown = koppel("sync", "--config", str(config), "--flow", "prodcts")
    assert unknown.exit_code == 2
    assert "no flow named 'prodcts'" in unknown.stderr and "products" in unknown.stderr

    first = koppel("sync", "--config", str(config))
    assert first.exit_code == 0, first.output
    assert "succeeded" in first.stdout and "created" in first.stdout
    assert set(cli_setup.articles()) == sellable_skus(cli_setup.platform)

    bad = cli_setup.add_product(TOO_LONG_SKU)
    second = koppel("sync", "--config", str(config), "--json")
    assert second.exit_code == 1, second.output
    summary = json.loads(second.stdout)
    [run] = summary["runs"]
    assert (run["flow"], run["status"], run["failed"], run["created"]) == (
        "products",
        "partial",
        1,
        0,
    )
    assert run["api_calls"] > 0 and summary["exit_code"] == 1

    listed = json.loads(koppel("runs", "--flow", "products", "--json").stdout)
    assert [r["run_id"] for r in listed][:1] == [run["run_id"]] and len(listed) == 2
    table = koppel("runs")
    assert table.exit_code == 0 and f"#{listed[0]['number']} " in table.stdout

    log = json.loads(koppel("log", run["run_id"], "--outcome", "failed", "--json").stdout)
    [failed] = log["outcomes"]
    assert failed["source_key"] == str(bad["id"]) and "ART_CODE" in failed["reason"]
    with_payload = koppel("log", run["run_id"], "--payload")
    assert with_payload.exit_code == 0
    assert "from the source" in with_payload.stdout and TOO_LONG_SKU in with_payload.stdout
    missing = koppel("log", "flow-nope")
    assert missing.exit_code == 2 and "koppel runs" in missing.stderr
    by_prefix = json.loads(koppel("log", run["run_id"][:14], "--json").stdout)
    assert by_prefix["run"]["run_id"] == run["run_id"]
    ambiguous = koppel("log", "flow-")
    assert ambiguous.exit_code == 2 and "type more of it" in ambiguous.stderr

    letters = json.loads(koppel("dead-letters", "--json").stdout)
    assert [(d["flow"], d["source_key"], d["attempts"]) for d in letters] == [
        ("products", str(bad["id"]), 1)
    ]

    cli_setup.platform.sandboxes.partspim.store.update("products", bad["id"], {"sku": "98765432"})
    replayed = koppel("replay", "--flow", "products")
    assert replayed.exit_code == 0, replayed.output
    assert "98765432" in cli_setup.articles()
    assert json.loads(koppel("dead-letters", "--json").stdout) == []
    nothing = koppel("replay")
    assert nothing.exit_code == 0 and "nothing to replay" in nothing.stdout


def test_mapping_override_from_the_file_previewed_then_synced(
    cli_setup: Setup, tmp_path: Path
) -> None:
    override = {
        "send": {
            "fields": {
                "ART_DESC1": {
                    "expr": "name & ' ' & attributes.kleur",
                    "transform": ["trim"],
                    "overflow": "truncate",
                },
                "ART_CODE": {"from": "sku", "transform": ["digits_only"], "overflow": "fail"},
            }
        }
    }
    config = cli_setup.write(cli_setup.document(mapping=override))
    jas = cli_setup.add_product("55501234", name="Regenjas", attributes={"kleur": "rood"})

    shown = koppel("mapping", "show", "--config", str(config), "--flow", "products")
    assert shown.exit_code == 0, shown.output
    assert "expr name & ' ' & attributes.kleur" in shown.stdout and "digits_only" in shown.stdout
    assert "get side: partspim products" in shown.stdout

    valid = koppel("mapping", "validate", "--config", str(config), "--flow", "products")
    assert valid.exit_code == 0, valid.output

    record = tmp_path / "record.json"
    record.write_text(json.dumps(jas))
    previewed = koppel(
        "mapping", "preview", "--config", str(config), "--flow", "products", "--record", str(record)
    )
    assert previewed.exit_code == 0, previewed.output
    assert "ART_DESC1 = 'Regenjas rood'" in previewed.stdout
    assert "ART_CODE = '55501234'" in previewed.stdout

    not_applied = koppel(
        "mapping", "preview", "--config", str(config), "--flow", "products", "--sample"
    )
    assert not_applied.exit_code == 2 and "koppel config apply" in not_applied.stderr
    assert koppel("config", "apply", str(config)).exit_code == 0
    sampled = koppel(
        "mapping", "preview", "--config", str(config), "--flow", "products", "--sample"
    )
    assert sampled.exit_code == 0, sampled.output
    assert "ART_DESC1 = " in sampled.stdout

    assert koppel("sync", "--config", str(config)).exit_code == 0
    assert cli_setup.articles()["55501234"]["ART_DESC1"] == "Regenjas rood"

    first_mapping = json.loads(json.dumps(override))
    override["send"]["fields"]["ART_DESC9"] = {"from": "name"}
    cli_setup.write(cli_setup.document(mapping=override))
    invalid = koppel("mapping", "validate", "--config", str(config), "--flow", "products")
    assert invalid.exit_code == 1
    assert "ART_DESC9" in invalid.stdout
    for refusing in (("sync", "--config", str(config)), ("config", "apply", str(config))):
        refused = koppel(*refusing)
        assert refused.exit_code == 2, refused.output
        assert f"{config}: flows.products.mapping.send: ART_DESC9: target field" in refused.stderr
    unchanged = koppel("mapping", "versions", "--flow", "products")
    assert "v1 (current)" in unchanged.stdout and "v2" not in unchanged.stdout

    del override["send"]["fields"]["ART_DESC9"]
    override["send"]["fields"]["ART_DESC2"] = {"from": "name", "overflow": "truncate"}
    again = cli_setup.write(cli_setup.document(mapping=override))
    assert koppel("config", "apply", str(again)).exit_code == 0
    versions = koppel("mapping", "versions", "--flow", "products")
    assert versions.exit_code == 0 and "v2 (current)" in versions.stdout
    restored = koppel("mapping", "restore", "1", "--flow", "products")
    assert restored.exit_code == 0 and "restored as v3" in restored.stdout
    integration = cli_setup.platform.store.integrations.list()[0]
    flow = cli_setup.platform.store.flows.get_by_name(integration.id, "products")
    assert flow is not None and flow.mapping == first_mapping


def test_connection_test_says_what_works_and_hides_secrets(cli_setup: Setup) -> None:
    document = cli_setup.document()
    config = cli_setup.write(document)
    works = koppel("connection", "test", "pim", "--config", str(config))
    assert works.exit_code == 0, works.output
    assert "connection pim (partspim" in works.stdout and "works" in works.stdout
    av = koppel("connection", "test", "av", "--config", str(config))
    assert av.exit_code == 0, av.output

    wrong_key = "not-the-key-" + "x" * 20
    document["connections"]["pim"]["credentials"]["api_key"] = wrong_key
    config = cli_setup.write(document)
    refused = koppel("connection", "test", "pim", "--config", str(config))
    assert refused.exit_code == 1
    assert "does not work" in refused.stderr
    assert wrong_key not in refused.output
    unknown = koppel("connection", "test", "erp", "--config", str(config))
    assert unknown.exit_code == 2 and "pim, av" in unknown.stderr


def _modules_imported_by(
    tmp_path: Path, *args: str
) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """`koppel *args` in a process of its own (it succeeds), and the modules it imported."""
    listing = tmp_path / "modules.txt"
    done = subprocess.run(
        [sys.executable, "-c", _RUN_AND_LIST_MODULES, str(listing), *args],
        env={**os.environ, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=WAIT_S,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done, set(listing.read_text().split())


def test_a_sync_imports_only_what_it_uses(cli_setup: Setup, tmp_path: Path) -> None:
    config = cli_setup.write(cli_setup.document())
    assert koppel("sync", "--config", str(config)).exit_code == 0  # the store is at head now
    rerun, modules = _modules_imported_by(tmp_path, "sync", "--config", str(config))
    assert "succeeded" in rerun.stdout
    assert {"koppel.commands.flows", "koppel.engine.engine", "dbos"} <= modules
    unused = sorted(
        module
        for module in modules
        if any(module == name or module.startswith(f"{name}.") for name in NOT_FOR_A_SYNC)
    )
    assert unused == []


def test_the_help_of_sync_imports_no_store_nor_engine(tmp_path: Path) -> None:
    shown, modules = _modules_imported_by(tmp_path, "sync", "--help")
    assert "--dry-run" in shown.stdout
    assert "koppel.commands.flows" in modules
    heavy = ("sqlalchemy", "dbos", "httpx", "koppel.store", "koppel.engine", "koppel.flows")
    imported = sorted(
        module
        for module in modules
        if any(module == name or module.startswith(f"{name}.") for name in heavy)
    )
    assert imported == []


def test_sync_says_when_a_worker_holds_the_engine(cli_setup: Setup) -> None:
    config = cli_setup.write(cli_setup.document())
    assert koppel("config", "apply", str(config)).exit_code == 0
    worker = start_worker(cli_setup.platform.settings.home)
    try:
        busy = koppel("sync", "--config", str(config))
    finally:
        stopped = worker.stop()
    assert busy.exit_code == 3, busy.output
    assert "in use by another process" in busy.stderr and "koppel worker" in busy.stderr
    assert stopped == 0, worker.output()
    assert "worker stopped" in worker.output() and "Traceback" not in worker.output()


def test_demo_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KOPPEL_DATABASE_URL", "KOPPEL_ENGINE_DATABASE_URL", "KOPPEL_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    monkeypatch.setenv("KOPPEL_HOME", str(home))
    result = koppel("demo", "--once", "--products", "40", "--seed", "3")
    assert result.exit_code == 0, result.output
    assert "products" in result.stdout and "succeeded" in result.stdout
    file = home / "demo.yaml"
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    document = yaml.safe_load(file.read_text())
    assert set(document["flows"]) >= {"products"}
    secret = document["connections"]["av"]["credentials"]["client_secret"]
    assert secret not in result.output
    monkeypatch.setenv("KOPPEL_HOME", str(home / "demo"))
    runs = json.loads(koppel("runs", "--json").stdout)
    assert {r["flow"] for r in runs} == set(document["flows"])
    assert all(r["status"] == "succeeded" for r in runs), runs
    by_flow = {r["flow"]: r for r in runs}
    # Each entity counted as itself: a products run's categories, an orders run's customers.
    assert set(by_flow["products"]["entities"]) == {"categories"}
    assert set(by_flow["orders"]["entities"]) == {"customers"}
    assert sum(by_flow["orders"]["entities"]["customers"].values()) > 0
    assert by_flow["categories"]["entities"] == {}
    # The orders Koppel posted from Parts Pim are skipped by the flow back, saying so.
    reasons = {
        o["reason"]
        for o in json.loads(
            koppel("log", by_flow["av-orders"]["run_id"], "--outcome", "skipped", "--json").stdout
        )["outcomes"]
    }
    assert any(
        r.startswith("Koppel posted it to AccountView from Parts Pim order") for r in reasons
    )
    assert not any("came from AccountView" in r for r in reasons), reasons


def test_replay_abandons_dead_letters_whose_record_is_gone_from_the_source(
    cli_setup: Setup,
) -> None:
    config = cli_setup.write(cli_setup.document())
    bad = cli_setup.add_product(TOO_LONG_SKU)
    assert koppel("sync", "--config", str(config)).exit_code == 1
    [letter] = json.loads(koppel("dead-letters", "--json").stdout)
    assert letter["source_key"] == str(bad["id"])
    cli_setup.platform.sandboxes.partspim.store.delete("products", bad["id"])

    replayed = koppel("replay", "--flow", "products")
    assert replayed.exit_code == 0, replayed.output
    assert "1 dead letters were abandoned: their records are gone from the source" in (
        replayed.stdout
    )
    assert json.loads(koppel("dead-letters", "--json").stdout) == []
    flow = cli_setup.platform.flow("products")
    [abandoned] = cli_setup.platform.store.dead_letters.list(flow.id)
    assert abandoned.status is DeadLetterStatus.ABANDONED
    assert TOO_LONG_SKU not in cli_setup.articles()
