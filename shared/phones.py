"""Phone numbers: E.164 normalisation, masking for logs, timezone from the country."""

from __future__ import annotations

import re

import phonenumbers
from phonenumbers import timezone as phone_timezone

from shared.errors import InputError

# Default timezone per region when phonenumbers gives several or an unknown one.
_REGION_DEFAULT_TZ = {"FR": "Europe/Paris", "BE": "Europe/Brussels", "CH": "Europe/Zurich",
                      "CA": "America/Toronto", "US": "America/New_York", "GB": "Europe/London"}


def normalise_phone(raw: str, default_region: str = "FR") -> str:
    """Return the number as E.164 (``+33612345678``); InputError when it is not a valid number."""
    text = str(raw or "").strip().removeprefix("whatsapp:")
    if not text:
        raise InputError("phone is empty", code="phone.empty")
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException:
        raise InputError(f"phone {mask_phone(text)!r} is not a phone number", code="phone.invalid",
                         value=mask_phone(text)) from None
    if not phonenumbers.is_valid_number(number):
        raise InputError(f"phone {mask_phone(text)!r} is not a valid number", code="phone.invalid",
                         value=mask_phone(text))
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def timezone_for_phone(e164: str, fallback: str = "Europe/Paris") -> str:
    """The IANA timezone of the number's country (the region's main one if it has several)."""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return fallback
    zones = [z for z in phone_timezone.time_zones_for_number(number) if z != "Etc/Unknown"]
    if len(zones) == 1:
        return zones[0]
    region = phonenumbers.region_code_for_country_code(number.country_code or 0)
    return _REGION_DEFAULT_TZ.get(region or "", zones[0] if zones else fallback)


def mask_phone(phone: str) -> str:
    """A phone number safe for logs: ``+33******78``."""
    text = str(phone).removeprefix("whatsapp:")
    if len(text) <= 4:
        return "*" * len(text)
    return text[:3] + "*" * (len(text) - 5) + text[-2:]


# A number in international form inside any text: ``+33612345678``, ``whatsapp:+33612345678``,
# URL-encoded (``%2B33612345678``, ``whatsapp%3A%2B…``: query strings of Twilio list calls), or
# written with single spaces, dots or dashes (``+33 6 12 34 56 78``). 7 to 15 digits, as E.164.
_PHONE_IN_TEXT = re.compile(
    r"(?P<prefix>(?:whatsapp(?::|%3A))?(?:\+|%2B))(?P<number>[1-9](?:[ .\-]?\d){6,14})(?!\d)", re.IGNORECASE
)


# A bare run of 9 to 15 digits standing alone (not inside a word, a hex id or a decimal): a number
# written without its "+" (33612345678) or in national form (0612345678).
_DIGITS_IN_TEXT = re.compile(r"(?<![\w.,])\d{9,15}(?![\w]|[.,]\d)")


def redact_phones(text: str) -> str:
    """``text`` with every phone number in it masked as :func:`mask_phone` does.

    ``"to=whatsapp:+33612345678"`` → ``"to=whatsapp:+33*******78"``; URL-encoded numbers stay
    URL-encoded; a lone run of 9 to 15 digits (``33612345678``, ``0612345678``) is masked too.
    Idempotent: a masked number is not a number any more.
    """
    if "+" in text or "%2" in text.upper():
        def mask(match: re.Match[str]) -> str:
            digits = re.sub(r"\D", "", match.group("number"))
            return match.group("prefix") + mask_phone("+" + digits)[1:]

        text = _PHONE_IN_TEXT.sub(mask, text)
    return _DIGITS_IN_TEXT.sub(lambda match: mask_phone(match.group()), text)
