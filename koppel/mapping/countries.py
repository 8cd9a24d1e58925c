"""Country names (Dutch, German, English), ISO 3166 alpha-3 and alpha-2 codes to alpha-2.

Built once from pycountry's ISO 3166 data and its Dutch and German translations, plus the
colloquial names people type into web shops ("Holland", "Engeland", "USA").
"""

from __future__ import annotations

import gettext
import unicodedata
from functools import cache, lru_cache

import pycountry

_COLLOQUIAL = {
    "holland": "NL",
    "the netherlands": "NL",
    "nederland (nl)": "NL",
    "engeland": "GB",
    "england": "GB",
    "great britain": "GB",
    "groot-brittannie": "GB",
    "grossbritannien": "GB",
    "uk": "GB",
    "usa": "US",
    "amerika": "US",
    "verenigde staten van amerika": "US",
    "duitsland (de)": "DE",
    "belgie (be)": "BE",
    "schotland": "GB",
    "wales": "GB",
}


def normalise_country_text(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(char for char in decomposed if not unicodedata.combining(char))
    return " ".join(plain.casefold().split())


@cache
def country_table() -> dict[str, str]:
    table: dict[str, str] = {}
    translations = [
        gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=[language])
        for language in ("nl", "de")
    ]
    for country in pycountry.countries:
        code = country.alpha_2
        names = {
            country.name,
            getattr(country, "common_name", country.name),
            getattr(country, "official_name", country.name),
        }
        for translation in translations:
            names |= {translation.gettext(name) for name in list(names)}
        for name in names | {country.alpha_3, code}:
            table.setdefault(normalise_country_text(name), code)
    table.update(_COLLOQUIAL)
    return table


@lru_cache(maxsize=1024)
def country_code(text: str) -> str | None:
    """The ISO 3166-1 alpha-2 code for a name or code, None when the text names no country.
    Remembered: a catalogue names a few countries many times, each normalised once."""
    return country_table().get(normalise_country_text(text))


__all__ = ["country_code", "country_table", "normalise_country_text"]
