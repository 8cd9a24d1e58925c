"""One message catalogue: every text the web app shows is in it, translated into Dutch and
German, with the same placeholders. A new `_()` text without its translations fails here, and
`make messages` brings the catalogues up to date for translating."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from koppel.web.i18n import LOCALE_DIR, translate

ROOT = Path(__file__).parents[2]
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def extracted() -> set[str | tuple[str, ...]]:
    """The texts in the code and templates, extracted as `make messages` does."""
    method_map, options_map = parse_mapping_cfg((LOCALE_DIR / "babel.cfg").open())
    found: set[str | tuple[str, ...]] = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        ROOT, method_map, options_map
    ):
        found.add(message if isinstance(message, str) else tuple(message))
    return found


@pytest.mark.parametrize("locale", ["nl", "de"])
def test_every_text_is_translated_with_the_same_placeholders(locale: str) -> None:
    with (LOCALE_DIR / locale / "LC_MESSAGES" / "messages.po").open("rb") as source:
        catalog = read_po(source, locale=locale)
    entries = {
        (message.id if isinstance(message.id, str) else tuple(message.id)): message
        for message in catalog
        if message.id
    }
    texts = extracted()
    assert len(texts) > 100
    missing = sorted(str(text) for text in texts if text not in entries)
    assert not missing, f"not in the {locale} catalogue (run make messages): {missing}"
    stale = sorted(str(text) for text in entries if text not in texts)
    assert not stale, f"the {locale} catalogue has texts no longer used: {stale}"
    for key, message in entries.items():
        assert not message.fuzzy, f"{locale}: fuzzy translation of {key!r}"
        sources = [key] if isinstance(key, str) else list(key)
        translations = [message.string] if isinstance(message.string, str) else message.string
        assert all(translations), f"{locale}: no translation for {key!r}"
        wanted = set(PLACEHOLDER.findall(" ".join(sources)))
        for translated in translations:
            assert set(PLACEHOLDER.findall(translated)) == wanted, f"{locale}: {key!r}"


def test_the_catalogues_compile_and_translate() -> None:
    assert translate("nl", "Sign in") == "Inloggen"
    assert translate("de", "Sign in") == "Anmelden"
    assert translate("en", "Sign in") == "Sign in"
    assert translate("nl", "The password needs at least %(min)s characters.", min=12) == (
        "Het wachtwoord moet minstens 12 tekens hebben."
    )
