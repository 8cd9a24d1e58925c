"""One message catalogue for every text of the web app, in English, Dutch and German.

The catalogues are the `.po` files under `locale/` (kept up to date with `make messages`). They
are compiled in memory when the app starts, so a fresh clone needs no build step and no generated
binary is committed. Dates and numbers are formatted by Babel in the user's locale (`1.234,56`).
"""

from __future__ import annotations

import gettext
from datetime import datetime, timedelta
from decimal import Decimal
from functools import cache
from io import BytesIO
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale
from babel.core import negotiate_locale
from babel.dates import format_date, format_datetime, format_time, format_timedelta
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import Translations

from koppel.accounts.users import LOCALES

LOCALE_DIR = Path(__file__).parent / "locale"
DEFAULT_LOCALE = LOCALES[0]
LANGUAGE_NAMES = {"en": "English", "nl": "Nederlands", "de": "Deutsch"}
"""Each language in itself, as the language menu shows it."""


@cache
def translations(locale: str) -> gettext.NullTranslations:
    """The compiled catalogue of `locale`; English is the source language and needs none."""
    if locale == DEFAULT_LOCALE:
        return gettext.NullTranslations()
    path = LOCALE_DIR / locale / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as source:
        catalog = read_po(source, locale=locale)
    compiled = BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(compiled)


def translate(locale: str, message: str, **params: object) -> str:
    text = translations(locale).gettext(message)
    return text % params if params else text


def negotiate(accept_language: str | None) -> str:
    """The best of our languages for an Accept-Language header, else English."""
    preferred: list[tuple[float, str]] = []
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, quality = part.strip().partition(";q=")
        if not tag or tag == "*":
            continue
        try:
            weight = float(quality) if quality else 1.0
        except ValueError:
            continue
        if weight > 0:
            preferred.append((-weight + position * 1e-6, tag.strip()))
    ordered = [tag for _, tag in sorted(preferred)]
    return negotiate_locale(ordered, list(LOCALES), sep="-") or DEFAULT_LOCALE


def format_moment(moment: datetime | None, locale: str, zone: ZoneInfo) -> str:
    if moment is None:
        return "–"
    return format_datetime(moment.astimezone(zone), format="medium", locale=Locale.parse(locale))


def format_day(moment: datetime | None, locale: str, zone: ZoneInfo) -> str:
    if moment is None:
        return "–"
    return format_date(moment.astimezone(zone), format="medium", locale=Locale.parse(locale))


def format_clock(moment: datetime, locale: str, zone: ZoneInfo) -> str:
    """The time of day alone ("14:05", "2:05 PM"), for a chart's hours."""
    return format_time(moment.astimezone(zone), format="short", locale=Locale.parse(locale))


def format_weekday(moment: datetime, locale: str, zone: ZoneInfo) -> str:
    """The day of the week and of the month ("Tue 1", "di 1"), for a chart's days."""
    return format_date(moment.astimezone(zone), format="EEE d", locale=Locale.parse(locale))


def format_relative(moment: datetime, now: datetime, locale: str) -> str:
    """How far a moment is from now, in words: "3 minutes ago", "in 40 seconds"."""
    return format_timedelta(moment - now, add_direction=True, locale=Locale.parse(locale))


def format_interval(seconds: int, locale: str) -> str:
    """A schedule's interval in words: "5 minutes", "5 Minuten"."""
    return format_timedelta(timedelta(seconds=seconds), threshold=1, locale=Locale.parse(locale))


def format_amount(value: Decimal | float | int, locale: str) -> str:
    """Two decimals with the locale's separators: 1.234,56 in Dutch, 1,234.56 in English."""
    return format_decimal(value, format="#,##0.00", locale=Locale.parse(locale))


def format_count(value: int, locale: str) -> str:
    return format_decimal(value, locale=Locale.parse(locale))


__all__ = [
    "DEFAULT_LOCALE",
    "LANGUAGE_NAMES",
    "LOCALE_DIR",
    "format_amount",
    "format_clock",
    "format_count",
    "format_day",
    "format_interval",
    "format_moment",
    "format_relative",
    "format_weekday",
    "negotiate",
    "translate",
    "translations",
]
