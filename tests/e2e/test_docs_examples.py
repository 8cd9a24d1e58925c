"""The docs' integration-file examples, applied and synced against the sandboxes over real HTTP,
so the docs cannot drift from what works (issue 8 point 18): docs/config.md's complete file as it
stands (only the two sandboxes' ports differ from the defaults it names), and the mapping
overrides docs/flows.md gives, each checked on the flow its section is about."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from koppel.config import load_config
from koppel.services.checks import check_config
from tests.e2e.cli import Setup, koppel

DOCS = Path(__file__).parents[2] / "docs"


def config_example() -> str:
    text = (DOCS / "config.md").read_text(encoding="utf-8")
    match = re.search(r"```yaml\n(# acme\.yaml.*?)```", text, re.DOTALL)
    assert match is not None, "docs/config.md has no complete integration file"
    return match.group(1)


def test_the_complete_file_of_config_md_applies_and_syncs(
    cli_setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandboxes = cli_setup.platform.sandboxes
    pim = sandboxes.partspim.credentials(sandboxes.partspim_url)
    av = sandboxes.accountview.credentials(sandboxes.accountview_url)
    for name, value in {
        "PIM_KEY": pim["api_key"],
        "AV_CLIENT_ID": av["client_id"],
        "AV_SECRET": av["client_secret"],
        "AV_COMPANY": av["company_id"],
        "AV_REFRESH": av["refresh_token"],
    }.items():
        monkeypatch.setenv(name, value)
    text = config_example()
    assert "http://127.0.0.1:8101" in text and "http://127.0.0.1:8102" in text
    text = text.replace("http://127.0.0.1:8101", sandboxes.partspim_url)
    text = text.replace("http://127.0.0.1:8102", sandboxes.accountview_url)
    cli_setup.config.write_text(text)
    config = str(cli_setup.config)

    applied = koppel("config", "apply", config)
    assert applied.exit_code == 0, applied.output
    synced = koppel("sync", "--config", config)
    assert synced.exit_code == 0, synced.output
    reports = {run["flow"]: run for run in json.loads(koppel("runs", "--json").stdout)}
    assert set(reports) == {"products", "categories", "stock"}  # orders-to-pim is disabled

    # The documented expression: the colour after the name, and no trailing space without one.
    products = {p["sku"]: p for p in sandboxes.partspim.store.all("products")}
    articles = sandboxes.accountview.rows("ARTICLE")
    assert articles and all(not a["ART_DESC1"].endswith(" ") for a in articles)
    coloured = [
        a
        for a in articles
        if (p := products.get(a["ART_CODE"])) and (p.get("attributes") or {}).get("kleur")
    ]
    for article in coloured:
        product = products[article["ART_CODE"]]
        expected = f"{product['name']} {product['attributes']['kleur']}"[:40]
        assert article["ART_DESC1"] == expected


def _sections(text: str) -> list[tuple[str, str]]:
    """(heading, body) of each `## ` section of a docs page."""
    parts = re.split(r"^## (.+)$", text, flags=re.MULTILINE)
    return list(zip(parts[1::2], parts[2::2], strict=True))


def _flow_of(heading: str) -> dict[str, Any]:
    """The flow a docs/flows.md section is about, from its heading: `Stock, Parts Pim ->
    AccountView (`entity: stock`)`; a section without an entity adds to the products flow."""
    direction = re.search(r"(Parts Pim|AccountView) -> (Parts Pim|AccountView)", heading)
    assert direction is not None, heading
    names = {"Parts Pim": "pim", "AccountView": "av"}
    entity = re.search(r"entity: (\w+)", heading)
    return {
        "from": names[direction[1]],
        "to": names[direction[2]],
        "entity": entity[1] if entity else "products",
    }


def test_every_mapping_override_in_flows_md_checks_on_its_flow(tmp_path: Path) -> None:
    text = (DOCS / "flows.md").read_text(encoding="utf-8")
    found = 0
    for heading, body in _sections(text):
        for snippet in re.findall(r"`(mapping: \{.*?\})`", body, re.DOTALL):
            found += 1
            mapping = yaml.safe_load(" ".join(snippet.split()))["mapping"]
            document = {
                "tenant": "acme",
                "integration": "docs",
                "connections": {
                    "pim": {
                        "application": "partspim",
                        "base_url": "http://127.0.0.1:8101",
                        "credentials": {"api_key": "k"},
                    },
                    "av": {
                        "application": "accountview",
                        "base_url": "http://127.0.0.1:8102/api/v3",
                        "credentials": {"client_id": "c", "client_secret": "s", "company_id": "1"},
                    },
                },
                "flows": {"flow": {**_flow_of(heading), "mapping": mapping}},
            }
            file = tmp_path / "snippet.yaml"
            file.write_text(yaml.safe_dump(document, sort_keys=False))
            check_config(load_config(file), file)  # raises ConfigError naming the problem
    assert found >= 3
