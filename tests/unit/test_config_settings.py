"""Process settings from KOPPEL_* environment variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from koppel.settings import get_settings


def test_defaults_put_the_sqlite_file_under_home(monkeypatch: pytest.MonkeyPatch) -> None:
    names = ("HOME", "DATABASE_URL", "SECRET_KEY", "LOG_RETENTION_DAYS", "PAYLOAD_EXCERPTS")
    for name in (*names, "LOG_LEVEL"):
        monkeypatch.delenv(f"KOPPEL_{name}", raising=False)
    settings = get_settings()
    assert settings.home == Path(".koppel")
    assert settings.store_url == "sqlite:///.koppel/koppel.db"
    assert (settings.secret_key, settings.log_retention_days) == (None, 30)
    assert settings.payload_excerpts is True
    assert settings.log_level == "WARNING"


def test_environment_overrides_and_hides_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOPPEL_HOME", "/srv/koppel")
    monkeypatch.setenv("KOPPEL_DATABASE_URL", "postgresql+psycopg://k@db/koppel")
    monkeypatch.setenv("KOPPEL_SECRET_KEY", "key-one,key-two")
    monkeypatch.setenv("KOPPEL_LOG_RETENTION_DAYS", "7")
    monkeypatch.setenv("KOPPEL_PAYLOAD_EXCERPTS", "false")
    monkeypatch.setenv("KOPPEL_LOG_LEVEL", "debug")
    settings = get_settings()
    assert settings.store_url == "postgresql+psycopg://k@db/koppel"
    assert settings.home == Path("/srv/koppel")
    assert (settings.log_retention_days, settings.payload_excerpts) == (7, False)
    assert settings.log_level == "DEBUG"
    assert "key-one" not in repr(settings)
