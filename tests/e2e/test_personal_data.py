"""Personal data is kept only as long as the retention says, and only its owner can read it.

The debtor e-mail index holds keyed hashes, never addresses; `koppel purge` runs the retention
purge once (for cron setups); KOPPEL_HOME and the databases in it are made 0700 / 0600.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

from sqlalchemy import text
from typer.testing import CliRunner

from koppel.cli import app
from koppel.flows.customers import DEBTOR_EMAILS
from tests.e2e.conftest import Platform
from tests.e2e.test_orders_to_accountview import add_relation, debtors_by_email, integration


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_the_debtor_index_keeps_keyed_hashes_and_still_finds_debtors(
    platform_factory: Any,
) -> None:
    platform: Platform = platform_factory(5)
    av = platform.sandboxes.accountview
    av.write(
        "CONTACT",
        [{"ACCT_NR": "1210", "SRC_CODE": "GARAGE", "ACCT_NAME": "Garage", "MAIL_BUS": "INFO@G.NL"}],
    )
    add_relation(platform, type="company", company_name="Garage B.V.", email=" Info@G.nl")
    add_relation(platform, type="person", first_name="Els", last_name="Boer", email="els@b.nl")
    integration(platform)
    async with platform.runner() as runner:
        first = await runner.run(platform.flow("customers").id)
        assert first.status == "completed", first.error

    with platform.store.engine.connect() as connection:
        index = connection.execute(
            text("SELECT source_key, target_key FROM links WHERE entity = :e"), {"e": DEBTOR_EMAILS}
        ).all()
    keys = {key for key, _ in index}
    assert keys and not [key for key in keys if "@" in key], "an e-mail address is in the index"
    assert {platform.store.keyed_hash("info@g.nl"), platform.store.keyed_hash("els@b.nl")} <= keys
    debtors = debtors_by_email(platform)
    assert len(debtors["info@g.nl"]) == 1, "the debtor typed in another case was duplicated"

    home = platform.settings.home
    assert mode(home) == 0o700
    for name in ("koppel.db", "dbos.sqlite", "secret.key"):
        assert mode(home / name) == 0o600, name
    assert [p.name for p in home.iterdir() if p.is_file() and mode(p) & 0o077] == []


def test_koppel_purge_runs_the_retention_purge_once(
    platform_factory: Any, monkeypatch: Any
) -> None:
    platform: Platform = platform_factory(1)
    for name in ("KOPPEL_DATABASE_URL", "KOPPEL_ENGINE_DATABASE_URL", "KOPPEL_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KOPPEL_HOME", str(platform.settings.home))
    result = CliRunner().invoke(app, ["purge"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        "retention: deleted 0 log entries and 0 closed dead letters, cleared 0 dead-letter "
        "payloads, removed e-mail addresses from 0 dead-letter reasons"
    )
    as_json = CliRunner().invoke(app, ["purge", "--json"])
    assert as_json.exit_code == 0 and '"dead_letter_reasons_redacted": 0' in as_json.stdout
