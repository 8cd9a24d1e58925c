"""docs/testing.md names the tests that prove each guarantee: every test it names exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parents[2]
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)?(?:::(\w+))?`")


def test_every_test_the_testing_doc_names_exists() -> None:
    text = (ROOT / "docs" / "testing.md").read_text()
    named: list[tuple[str, str | None]] = []
    current: str | None = None
    for match in REFERENCE.finditer(text):
        path, name = match.groups()
        if path is None and name is None:
            continue
        current = path or current
        assert current is not None, f"::{name} names no file before it"
        named.append((current, name))
    assert len(named) > 40
    for path, name in named:
        source = ROOT / path
        assert source.is_file(), path
        if name is not None:
            assert re.search(rf"^\s*(async )?def {name}\(", source.read_text(), re.M), (path, name)
