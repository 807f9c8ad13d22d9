"""Webhook requests as Twilio sends them: WhatsApp forms whose every identifier has its real shape."""

from __future__ import annotations

import hashlib

from twilio.request_validator import RequestValidator

ACCOUNT_SID = "AC" + "0" * 32
SENDER = "whatsapp:+14155238886"  # TWILIO_WHATSAPP_NUMBER's default, Twilio's sandbox
CLIENT = "whatsapp:+33612345678"
FORM_TYPE = "application/x-www-form-urlencoded"


def sid(seed: object, prefix: str = "SM") -> str:
    """A message SID (``SM`` or ``MM`` + 32 hex) derived from ``seed``: the same seed, the same SID."""
    return prefix + hashlib.md5(str(seed).encode()).hexdigest()


def inbound_form(message_sid: str, body: str = "Bonjour", **extra: str) -> dict[str, str]:
    """A WhatsApp text from CLIENT to SENDER, with the fields Twilio sends for one."""
    return {
        "SmsMessageSid": message_sid, "NumMedia": "0", "ProfileName": "Marie Dupont", "MessageType": "text",
        "SmsSid": message_sid, "WaId": CLIENT.removeprefix("whatsapp:+"), "SmsStatus": "received", "Body": body,
        "To": SENDER, "NumSegments": "1", "ReferralNumMedia": "0", "MessageSid": message_sid,
        "AccountSid": ACCOUNT_SID, "From": CLIENT, "ApiVersion": "2010-04-01", **extra,
    }


def status_form(message_sid: str, status: str, **extra: str) -> dict[str, str]:
    """A status callback of a message from SENDER to CLIENT."""
    return {
        "MessageSid": message_sid, "SmsSid": message_sid, "MessageStatus": status, "SmsStatus": status,
        "AccountSid": ACCOUNT_SID, "From": SENDER, "To": CLIENT, "ApiVersion": "2010-04-01",
        "ChannelPrefix": "whatsapp", **extra,
    }


def sign(url: str, form: dict[str, str], token: str) -> str:
    """X-Twilio-Signature of ``form`` posted to ``url`` (the SDK's own computation)."""
    return RequestValidator(token).compute_signature(url, form)
