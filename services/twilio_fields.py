"""The shapes of what Twilio posts to the webhook, checked before anything is stored.

Twilio's signature is an HMAC over the URL followed by each field's name and value, sorted by
name and concatenated without separators. A captured signed body can therefore be re-cut into
other fields under the same signature: ``Body=STOPCancel`` becomes ``Body=STOP`` and
``Cancel=``, or characters move from one field's value into the next field's name. Every
identifier is held to its exact shape here, so its boundaries cannot move: the MessageSid (the
dedupe key) of a re-cut body is the captured one, which makes it a duplicate of the message
already stored, and the account, the addresses and the status cannot be changed at all.

Reasons name the field, never its value (they are logged and answered).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

# [0-9], never \d: \d also matches other scripts' digits ('٣').
MESSAGE_SID = re.compile(r"(?:SM|MM)[0-9a-fA-F]{32}")
ACCOUNT_SID = re.compile(r"AC[0-9a-fA-F]{32}")
SERVICE_SID = re.compile(r"MG[0-9a-fA-F]{32}")
WHATSAPP_ADDRESS = re.compile(r"whatsapp:\+[1-9][0-9]{6,14}")
# Our message ids as the StatusCallback URL carries them: "<campaign>:<contact>:<step>" with
# suffixes for re-sends (":t", ":r"), "reply:<sid>", "alert:<sid>" (see shared.domain.models).
MESSAGE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}(?::[A-Za-z0-9_-]{1,64}){0,7}")
# Twilio's message statuses (twilio.rest.api.v2010.account.message.MessageInstance.Status).
MESSAGE_STATUSES = frozenset({
    "queued", "sending", "sent", "failed", "delivered", "undelivered", "receiving", "received",
    "accepted", "scheduled", "read", "partially_delivered", "canceled",
})
# Fields that, when present, repeat the MessageSid (Twilio keeps them for older integrations).
SID_ALIASES = ("SmsSid", "SmsMessageSid")
ADDRESS_EXAMPLE = "whatsapp:+33612345678"


class FieldError(ValueError):
    """A field Twilio would never send in this shape; ``reason`` is short and value-free."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Ours:
    """What identifies this installation in Twilio's fields."""

    account_sid: str  # TWILIO_ACCOUNT_SID; empty: any well-formed AccountSid is accepted
    sender: str  # TWILIO_WHATSAPP_NUMBER, "whatsapp:+E164"


def check_inbound(form: Mapping[str, str], ours: Ours) -> None:
    """An incoming message: identifiers well formed, ours where they must be (raises FieldError)."""
    _require(form, "MessageSid", "AccountSid", "From", "To")
    _check_common(form, ours)
    if not WHATSAPP_ADDRESS.fullmatch(form["From"]):
        raise FieldError(f"From must look like {ADDRESS_EXAMPLE}")
    if form["To"] != ours.sender:
        raise FieldError("To is not our WhatsApp sender (TWILIO_WHATSAPP_NUMBER)")
    replied = form.get("OriginalRepliedMessageSid")
    if replied and not MESSAGE_SID.fullmatch(replied):
        raise FieldError("OriginalRepliedMessageSid must be SM or MM followed by 32 hexadecimal characters")


def check_status(form: Mapping[str, str], ours: Ours, message_id: str | None) -> None:
    """A status callback; ``message_id`` is the ``mid`` of its URL, None when absent (raises FieldError)."""
    _require(form, "MessageSid", "MessageStatus", "AccountSid", "From", "To")
    _check_common(form, ours)
    if form["From"] != ours.sender:
        raise FieldError("From is not our WhatsApp sender (TWILIO_WHATSAPP_NUMBER)")
    if not WHATSAPP_ADDRESS.fullmatch(form["To"]):
        raise FieldError(f"To must look like {ADDRESS_EXAMPLE}")
    if form["MessageStatus"].lower() not in MESSAGE_STATUSES:
        raise FieldError("MessageStatus is not one of Twilio's message statuses")
    if message_id is not None and not MESSAGE_ID.fullmatch(message_id):
        raise FieldError("mid is not one of our message ids")


def _require(form: Mapping[str, str], *names: str) -> None:
    missing = [name for name in names if not form.get(name)]
    if missing:
        raise FieldError(f"missing field(s): {', '.join(missing)}")


def _check_common(form: Mapping[str, str], ours: Ours) -> None:
    sid = form["MessageSid"]
    if not MESSAGE_SID.fullmatch(sid):
        raise FieldError("MessageSid must be SM or MM followed by 32 hexadecimal characters")
    for alias in SID_ALIASES:
        if alias in form and form[alias] != sid:
            raise FieldError(f"{alias} differs from MessageSid")
    account = form["AccountSid"]
    if not ACCOUNT_SID.fullmatch(account):
        raise FieldError("AccountSid must be AC followed by 32 hexadecimal characters")
    if ours.account_sid and account != ours.account_sid:
        raise FieldError("AccountSid is not ours (TWILIO_ACCOUNT_SID)")
    service = form.get("MessagingServiceSid")
    if service and not SERVICE_SID.fullmatch(service):
        raise FieldError("MessagingServiceSid must be MG followed by 32 hexadecimal characters")
