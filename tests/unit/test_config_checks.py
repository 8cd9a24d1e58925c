"""An integration file is checked before it is applied: unknown settings and options are
refused with the file, the path and a guess, wrong values too, every problem at once; every
flow type has one settings model, and docs/config.md and docs/flows.md list every option and
setting with its default."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from koppel.config import ConfigError, load_config, parse_config
from koppel.connectors.options import ConnectionOptions
from koppel.flows.registry import FLOW_TYPES
from koppel.flows.settings import SETTINGS_MODELS, FlowSettings
from koppel.services.checks import check_config

DOCS = Path(__file__).parents[2] / "docs"


def document(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "tenant": "acme",
        "integration": "acme-pim-av",
        "connections": {
            "pim": {
                "application": "partspim",
                "base_url": "http://127.0.0.1:9",
                "credentials": {"api_key": "k"},
            },
            "av": {
                "application": "accountview",
                "base_url": "http://127.0.0.1:9/api/v3",
                "credentials": {"client_id": "c", "client_secret": "s", "company_id": "1"},
            },
        },
        "flows": {
            "products": {"from": "pim", "to": "av", "entity": "products"},
            "stock": {"from": "pim", "to": "av", "entity": "stock"},
        },
    }
    base.update(changes)
    return base


def problems(tmp_path: Path, content: dict[str, Any]) -> dict[str, str]:
    file = tmp_path / "acme.yaml"
    file.write_text(yaml.safe_dump(content, sort_keys=False))
    with pytest.raises(ConfigError) as refused:
        check_config(load_config(file, environ={}), file)
    assert all(line.startswith(f"{file}: ") for line in str(refused.value).splitlines())
    return dict(refused.value.problems)


def test_unknown_and_wrong_settings_are_refused_all_at_once_with_a_guess(tmp_path: Path) -> None:
    content = document(settings={"employee_numbr": "7"})
    content["flows"]["products"]["settings"] = {"sel_price": "incl_vat", "page_size": "lots"}
    content["flows"]["stock"]["settings"] = {"calculation": "available_minus_reserved"}
    found = problems(tmp_path, content)
    assert set(found) == {
        "settings.employee_numbr",
        "flows.products.settings.sel_price",
        "flows.products.settings.page_size",
        "flows.stock.settings.calculation",
    }
    assert found["flows.products.settings.sel_price"].startswith(
        "unknown setting (did you mean sell_price?)"
    )
    assert "did you mean employee_number?" in found["settings.employee_numbr"]
    assert "did you mean stock_calculation?" in found["flows.stock.settings.calculation"]
    assert "valid integer" in found["flows.products.settings.page_size"]

    content = document()
    content["flows"]["stock"]["settings"] = {"stock_calculation": "available_minus_reserved"}
    assert (
        "'on_hand', 'available' or 'economic'"
        in problems(tmp_path, content)["flows.stock.settings.stock_calculation"]
    )


def test_unknown_and_wrong_connection_options_are_refused_with_the_path() -> None:
    content = document()
    content["connections"]["av"]["options"] = {"concurrency": "four", "timeout": 5}
    with pytest.raises(ConfigError) as refused:
        parse_config(yaml.safe_dump(content), "acme.yaml", environ={})
    found = dict(refused.value.problems)
    assert "valid integer" in found["connections.av.options.concurrency"]
    assert found["connections.av.options.timeout"].startswith(
        "unknown field (did you mean timeout_seconds?)"
    )


def test_every_flow_type_has_one_settings_model() -> None:
    assert set(SETTINGS_MODELS) == set(FLOW_TYPES)
    for model in SETTINGS_MODELS.values():
        assert issubclass(model, FlowSettings)
        assert all(field.description for field in model.model_fields.values()), model


def _documented(page: str) -> dict[str, str]:
    """Table rows `| `name` | default | ...` of a docs page: name -> default cell."""
    text = (DOCS / page).read_text(encoding="utf-8")
    return dict(re.findall(r"^\| `([a-z_]+)` \| ([^|]+) \|", text, re.MULTILINE))


def test_every_connection_option_is_documented_with_its_default() -> None:
    documented = _documented("config.md")
    for name, field in ConnectionOptions.model_fields.items():
        assert name in documented, f"docs/config.md does not list the option {name}"
        default = "none" if field.default is None else f"`{field.default:g}`"
        assert documented[name].strip().startswith(default), (name, documented[name])


def test_every_flow_setting_is_documented() -> None:
    text = (DOCS / "flows.md").read_text(encoding="utf-8")
    for model in SETTINGS_MODELS.values():
        for name in model.model_fields:
            assert f"`{name}`" in text, f"docs/flows.md does not describe the setting {name}"
