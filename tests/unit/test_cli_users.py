"""`koppel user create`: an account made from the command line, its rules said as plain lines."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from koppel.cli import app
from koppel.settings import Settings
from koppel.store import Role, open_store


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("KOPPEL_DATABASE_URL", "KOPPEL_ENGINE_DATABASE_URL", "KOPPEL_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KOPPEL_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def create(*args: str, password: str) -> Result:
    return CliRunner().invoke(
        app,
        ["user", "create", "--password-stdin", *args],
        input=password + "\n",
        env={"COLUMNS": "200"},
    )


def test_user_create_makes_an_admin_in_a_new_workspace(home: Path) -> None:
    result = create(
        "--workspace", "acme", "--email", "Ann@Example.com", "--admin", password="a long password"
    )
    assert result.exit_code == 0, result.output
    assert "admin ann@example.com created in workspace acme" in result.output
    with open_store(Settings(home=home)) as store:
        user = store.users.get_by_email("ann@example.com")
        assert user is not None and user.role is Role.ADMIN
        assert store.audit.list(user.tenant_id)[0].actor == "cli"


def test_user_create_says_which_rule_the_password_breaks_and_makes_nothing(home: Path) -> None:
    result = create("--workspace", "acme", "--email", "ann@example.com", password="short")
    assert result.exit_code == 2
    assert "The password needs at least 12 characters." in result.stderr
    assert "short" not in result.output
    with open_store(Settings(home=home)) as store:
        assert store.tenants.list() == [] and store.users.count() == 0
