"""French and English words the language code reads and writes, each table once.

Months, weekdays and number words as clients and drafts write them; currencies (symbols, codes,
names); the SMS spellings and emojis a reply may use for a word. Pure data and lookups.
"""

from __future__ import annotations

import re

from shared.domain.models import Language

__all__ = [
    "CFA_CODES",
    "CURRENCY_CODES",
    "CURRENCY_SYMBOLS",
    "CURRENCY_WORDS",
    "DISPLAY_SYMBOLS",
    "DOLLAR_CODES",
    "EMOJI_WORDS",
    "MONTHS",
    "MONTH_NAMES",
    "NUMBER_WORDS",
    "SMS_SPELLINGS",
    "WEEKDAYS",
    "WEEKDAY_ABBREVIATIONS",
    "currency_matches",
    "normalise_currency",
]

# ----------------------------------------------------------------------------- calendar

# Month names as written to a client (``format_date``).
MONTH_NAMES: dict[Language, tuple[str, ...]] = {
    Language.FR: (
        "janvier", "février", "mars", "avril", "mai", "juin",
        "juillet", "août", "septembre", "octobre", "novembre", "décembre",
    ),
    Language.EN: (
        "January", "February", "March", "April", "May", "June",
        "July", "August", "September", "October", "November", "December",
    ),
}  # fmt: skip

_FR_MONTHS = {
    "janvier": 1, "janv": 1, "février": 2, "fevrier": 2, "févr": 2, "fevr": 2, "fév": 2, "fev": 2,
    "mars": 3, "avril": 4, "avr": 4, "mai": 5, "juin": 6, "juillet": 7, "juil": 7, "août": 8,
    "aout": 8, "septembre": 9, "sept": 9, "octobre": 10, "oct": 10, "novembre": 11, "nov": 11,
    "décembre": 12, "decembre": 12, "déc": 12, "dec": 12,
}  # fmt: skip
_EN_MONTHS = {
    "january": 1, "jan": 1, "february": 2, "feb": 2, "march": 3, "mar": 3, "april": 4, "apr": 4,
    "may": 5, "june": 6, "jun": 6, "july": 7, "jul": 7, "august": 8, "aug": 8, "september": 9,
    "sep": 9, "sept": 9, "october": 10, "oct": 10, "november": 11, "nov": 11, "december": 12,
    "dec": 12,
}  # fmt: skip
# Month names and abbreviations as read (lower case; every accented spelling also without its
# accents, so the ASCII keys alone read folded text).
MONTHS: dict[str, int] = {**_FR_MONTHS, **_EN_MONTHS}
# Weekdays in full, as read in drafts and replies (0 = Monday).
WEEKDAYS: dict[str, int] = {
    "lundi": 0, "mardi": 1, "mercredi": 2, "jeudi": 3, "vendredi": 4, "samedi": 5, "dimanche": 6,
    "monday": 0, "tuesday": 1, "wednesday": 2, "thursday": 3, "friday": 4, "saturday": 5,
    "sunday": 6,
}  # fmt: skip
# English abbreviations read in replies only ("mon" is French for "my", "sun" and "sat" are words).
WEEKDAY_ABBREVIATIONS: dict[str, int] = {"tue": 1, "tues": 1, "wed": 2, "thu": 3, "thur": 3, "thurs": 3, "fri": 4}

NUMBER_WORDS: dict[str, int] = {
    "un": 1, "une": 1, "a": 1, "an": 1, "one": 1, "deux": 2, "two": 2, "trois": 3, "three": 3,
    "quatre": 4, "four": 4, "cinq": 5, "five": 5, "six": 6, "sept": 7, "seven": 7, "huit": 8,
    "eight": 8, "neuf": 9, "nine": 9, "dix": 10, "ten": 10, "onze": 11, "eleven": 11, "douze": 12,
    "twelve": 12, "quinze": 15, "fifteen": 15, "vingt": 20, "twenty": 20, "trente": 30, "thirty": 30,
}  # fmt: skip

# ---------------------------------------------------------------------------- currencies

CURRENCY_CODES = frozenset(
    "EUR USD GBP CHF CAD AUD NZD JPY CNY HKD SGD XOF XAF XPF MAD TND DZD EGP NGN GHS KES ZAR "
    "SEK NOK DKK ISK PLN CZK HUF RON BGN TRY RUB UAH INR BRL MXN ARS CLP COP AED SAR QAR ILS "
    "MUR MGA HTG".split()
)
CURRENCY_SYMBOLS = r"€|US\$|CA\$|C\$|A\$|\$|£|¥|₣|₹|₽|₺|₦"
CURRENCY_WORDS = r"euros?|dollars?|livres?\s+sterling|pounds?(?:\s+sterling)?|francs?\s+CFA|F\s?CFA|FCFA"

DOLLAR_CODES = frozenset({"USD", "CAD", "AUD", "NZD", "HKD", "SGD", "MXN", "ARS", "CLP", "COP"})
CFA_CODES = frozenset({"XOF", "XAF"})


def normalise_currency(text: str) -> str | None:
    """A currency mention as an ISO-like code (``€`` → ``EUR``); None when not one we know.

    ``$`` and ``¥`` stay family names (``DOLLAR``, ``YEN``) since several currencies use them.
    """
    raw = " ".join(text.split())
    low = raw.lower()
    if not raw:
        return None
    if raw == "€" or low in ("euro", "euros", "eur"):
        return "EUR"
    if raw in ("US$",):
        return "USD"
    if raw in ("CA$", "C$"):
        return "CAD"
    if raw == "A$":
        return "AUD"
    if raw == "$" or low in ("dollar", "dollars"):
        return "DOLLAR"
    if raw == "£" or low.startswith(("livre", "pound")):
        return "GBP"
    if raw == "¥":
        return "YEN"
    if raw == "₣":
        return "CHF"
    if raw == "₹":
        return "INR"
    if raw == "₽":
        return "RUB"
    if raw == "₺":
        return "TRY"
    if raw == "₦":
        return "NGN"
    if "cfa" in low:
        return "CFA"
    if re.fullmatch(r"[A-Za-z]{3}", raw):
        return raw.upper()
    return None


def currency_matches(found: str, allowed: set[str]) -> bool:
    """Whether a currency found in a text is one of ``allowed`` (``DOLLAR`` matches any dollar, ``YEN`` JPY or CNY)."""
    if found in allowed:
        return True
    if found == "DOLLAR":
        return bool(allowed & (DOLLAR_CODES | {"DOLLAR"}))
    if found in DOLLAR_CODES and "DOLLAR" in allowed:
        return True
    if found == "YEN":
        return bool(allowed & {"JPY", "CNY", "YEN"})
    if found in ("JPY", "CNY") and "YEN" in allowed:
        return True
    if found == "CFA":
        return bool(allowed & (CFA_CODES | {"CFA"}))
    return found in CFA_CODES and "CFA" in allowed


# How an amount shows its currency to a client (``format_amount``); other currencies stay as written.
DISPLAY_SYMBOLS = {"EUR": "€", "USD": "$", "DOLLAR": "$", "GBP": "£"}

# ------------------------------------------------------------------------------ replies

EMOJI_WORDS = {
    "👍": " ok ", "👌": " ok ", "🆗": " ok ", "✅": " ok ", "✔": " ok ", "☑": " ok ", "🤝": " ok ",
    "🙏": " merci ", "👎": " non ", "❌": " non ", "❎": " non ",
}  # fmt: skip

# SMS spellings and contractions (whole tokens of the normalised text: letters and digits only).
SMS_SPELLINGS = {
    "jai": "j ai", "g": "j ai", "jaurai": "j aurai", "cest": "c est", "ct": "c etait", "cetait": "c etait",
    "ya": "il y a", "pa": "pas", "pas1": "pas", "ke": "que", "koi": "quoi", "kan": "quand", "qd": "quand",
    "cb": "combien", "cmb": "combien", "combi1": "combien", "mtn": "maintenant", "msg": "message",
    "msgs": "messages", "num": "numero", "nr": "numero", "fact": "facture", "fac": "facture",
    "2main": "demain", "2m1": "demain", "dem1": "demain", "ajd": "aujourd hui", "auj": "aujourd hui",
    "aujd": "aujourd hui", "aujourdhui": "aujourd hui", "stp": "svp", "slt": "salut", "bjr": "bonjour",
    "bsr": "bonsoir", "mrc": "merci", "mci": "merci", "dac": "d accord", "daccord": "d accord",
    "dacc": "d accord", "oki": "ok", "okk": "ok", "okay": "ok", "okey": "ok", "kk": "ok", "k": "ok",
    "vir": "virement", "virmt": "virement", "rglt": "reglement", "tmrw": "tomorrow", "tmr": "tomorrow",
    "tmw": "tomorrow", "2moro": "tomorrow", "2morrow": "tomorrow", "tomorow": "tomorrow",
    "tommorow": "tomorrow", "tommorrow": "tomorrow", "u": "you", "ur": "your", "r": "are", "im": "i m",
    "ive": "i ve", "ill": "i ll", "id": "i d", "dont": "don t", "didnt": "didn t", "cant": "can t",
    "wont": "won t", "havent": "haven t", "hasnt": "hasn t", "isnt": "isn t", "doesnt": "doesn t",
    "thats": "that s", "its": "it s", "whos": "who s", "whats": "what s", "thx": "thanks", "thnx": "thanks",
    "tks": "thanks", "ty": "thanks", "pls": "please", "plz": "please", "wk": "week", "nxt": "next",
    "payed": "paid", "paied": "paid", "weekend": "week end",
}  # fmt: skip

