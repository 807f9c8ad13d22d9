"""The pages' languages: French and English, from the ``lang`` cookie or the browser's ``Accept-Language``.

Each page module registers its own strings at import (``register({"key": ("français", "English")})``);
templates call ``t("key", name=...)``, which formats ``{name}`` placeholders. Dates, times and
amounts are written for the language with :mod:`shared.language.formatting`.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from shared.domain.models import Language
from shared.language.formatting import NBSP, format_amount, format_date

LANGUAGES = (Language.FR, Language.EN)
COOKIE = "relance_lang"
_CATALOGUE: dict[str, tuple[str, str]] = {}


def register(strings: dict[str, tuple[str, str]]) -> None:
    """Add a page module's strings: ``key → (French, English)``; a key registered twice must say the same."""
    for key, pair in strings.items():
        known = _CATALOGUE.get(key)
        if known is not None and known != pair:
            raise ValueError(f"the page string {key!r} is registered twice with different texts")
        _CATALOGUE[key] = pair


def translate(key: str, language: Language, **params: object) -> str:
    """The string ``key`` in ``language`` (the key itself when none is registered: visible, not a crash)."""
    pair = _CATALOGUE.get(key)
    text = key if pair is None else pair[0 if language == Language.FR else 1]
    return text.format(**params) if params else text


def choose(cookie: str | None, accept_language: str | None) -> Language:
    """The cookie's language when it names one, else the browser's preferred of French and English (else French)."""
    if cookie in ("fr", "en"):
        return Language(cookie)
    best: tuple[float, int, Language] | None = None
    for position, part in enumerate((accept_language or "").split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        if primary not in ("fr", "en"):
            continue
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality <= 0:
            continue
        candidate = (-quality, position, Language(primary))
        if best is None or candidate < best:
            best = candidate
    return best[2] if best else Language.FR


def amount(value: Decimal | int | float, currency: str | None, language: Language, *, cents: bool = False) -> str:
    """``1 250,00 €`` / ``€1,250.00``; ``cents``: ``value`` is in cents."""
    number = Decimal(value) / 100 if cents else Decimal(str(value))
    return format_amount(number, currency, language)


def day(value: date | datetime, language: Language) -> str:
    """``15 mars 2026`` / ``15 March 2026``."""
    return format_date(value.date() if isinstance(value, datetime) else value, language)


def moment(value: datetime | None, language: Language, timezone: str | None = None) -> str:
    """A date and time, ``15 mars 2026 à 14:05 UTC`` / ``15 March 2026 at 14:05 UTC`` (in ``timezone`` when given)."""
    if value is None:
        return "—"
    zone = ZoneInfo(timezone) if timezone else ZoneInfo("UTC")
    local = (value if value.tzinfo else value.replace(tzinfo=ZoneInfo("UTC"))).astimezone(zone)
    label = "UTC" if not timezone else local.tzname() or timezone
    joiner = "à" if language == Language.FR else "at"
    return f"{day(local, language)} {joiner} {local:%H:%M}{NBSP}{label}"


register({
    "lang.name": ("Français", "English"),
    "lang.other": ("English", "Français"),
    "lang.switch": ("Read in English", "Lire en français"),
})
