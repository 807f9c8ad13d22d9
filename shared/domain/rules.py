"""The business rules a use case reads: a small frozen object built once from the settings.

Entry points (the composition roots in :mod:`services.bootstrap`) read the settings and build the
rules with ``Settings.rules()``; use cases read :class:`Rules` only, so a rule has one name wherever
it is applied and a test builds it in one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

PaidClaimAction = Literal["pause_and_verify", "stop"]


@dataclass(frozen=True)
class Rules:
    """What Relance may send, when, and how it reads replies."""

    business_name: str = "Relance"
    max_message_chars: int = 700
    # The sender (``whatsapp:+E164``) and where Twilio posts delivery statuses.
    sender: str = "whatsapp:+14155238886"
    status_callback_url: str = "http://127.0.0.1:3000/whatsapp/status"
    # Replies.
    classifier_threshold: float = 0.6
    thank_you_on_paid: bool = True
    paid_claim_action: PaidClaimAction = "pause_and_verify"
    max_promise_days: int = 30
    max_auto_replies_per_day: int = 3
    # The thank-you after a payment outside the client's 24-hour window ("" : none is sent there).
    thank_you_template_sid: str = ""
    # The template of a reply written by hand outside the client's 24-hour window ("" : none can be sent there).
    manual_reply_template_sid: str = ""
    # The owner's number (E.164, "" when not set) and the template of alerts outside their window.
    owner_number: str = ""
    owner_alert_template_sid: str = ""
    # Sending.
    min_gap: timedelta = timedelta(hours=1)
    daily_cap_per_contact: int = 2
    holidays_country: str | None = "FR"
    holidays_subdiv: str | None = None
    reconcile_grace: timedelta = timedelta(minutes=10)
