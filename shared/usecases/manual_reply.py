"""A person writes to a client by hand: the console's reply form, ``POST /api/v1/conversations/{phone}/reply``
and ``relance reply PHONE TEXT``.

The same rules as any message Relance sends:

- never to a client who opted out (sent STOP): refused, and checked again when it is sent;
- inside the client's 24-hour WhatsApp window, free text; outside it, only the approved
  template MANUAL_REPLY_TEMPLATE_SID (``{{1}}`` the client's name, ``{{2}}`` the text); without
  one, refused with a message naming that setting;
- the facts check of every drafted message (:func:`shared.language.factcheck.check_draft`):
  every amount, date, reference and link must be the client's, no discount, payment plan or
  cancellation offered, the client's language, at most MAX_MESSAGE_CHARS;
- stored as an outbound message (purpose ``manual``, ``written_by`` the author) with an id
  derived from the request, and handed to the sending actor through the queue: the window and
  opt-out checked once more at the send, exactly one send (``ready → sending``), status
  callbacks and reconciliation as for every message. A retried or concurrent identical request
  finds the message stored and sends nothing twice.

The caps of automated messages do not apply to a person: DAILY_CAP_PER_CONTACT and the minimum
gap pace the follow-up steps only, MAX_AUTO_REPLIES_PER_DAY counts automated replies only (a
manual message counts against neither).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Final

from shared.domain.models import Contact, OutboundMessage
from shared.domain.repositories import Repositories
from shared.domain.rules import Rules
from shared.domain.states import MessageState
from shared.domain.templates import one_line
from shared.errors import InputError, NotFound
from shared.language.factcheck import check_draft
from shared.language.invoice_text import invoice_facts
from shared.policy import window_open
from shared.ports import DraftRequest, TaskQueue
from shared.usecases import audit, invoice_replies

log = logging.getLogger(__name__)
PURPOSE: Final = "manual"
TEMPLATE_SETTING = "MANUAL_REPLY_TEMPLATE_SID"


class Refusal(StrEnum):
    """Why a reply by hand was not sent (a problem's ``reason``)."""

    EMPTY = "empty"
    TOO_LONG = "too_long"
    OPTED_OUT = "opted_out"
    OUTSIDE_WINDOW = "outside_window_no_template"
    FACTS = "facts_check"


class ReplyRefused(InputError):
    """A reply by hand that may not be sent; nothing was stored."""

    def __init__(self, reason: Refusal, detail: str, **params: object) -> None:
        super().__init__(detail, code=f"reply.{reason.value}", **params)
        self.reason = reason


@dataclass(frozen=True)
class ManualReply:
    """A reply by hand as stored: ``created`` False when the same request had stored it already."""

    message_id: str
    contact_id: str
    kind: str  # "freeform" inside the 24-hour window, "template" outside it
    state: str
    created: bool


def reply_id(contact_id: str, *, by: str, body: str, request_key: str | None, last_inbound_at: datetime | None,
             now: datetime) -> str:
    """The message id a request stands for: the same request, retried or raced, is one message.

    With ``request_key`` (an Idempotency-Key, a form's one-time token): that key of that author with
    that text (a form brought back by the browser's Back button keeps its token: another text sent
    with it is another message, not a retry). Without: the same text to the same client, with
    nothing new from them, the same (UTC) day.
    """
    if request_key:
        seed = f"key\n{by}\n{request_key}\n{body}"
    else:
        last = last_inbound_at.astimezone(UTC).isoformat() if last_inbound_at else "-"
        seed = f"text\n{body}\n{last}\n{now.astimezone(UTC).date().isoformat()}"
    return f"manual:{contact_id}:{hashlib.sha256(seed.encode()).hexdigest()[:24]}"


def template_variables(contact: Contact, body: str) -> dict[str, str]:
    """MANUAL_REPLY_TEMPLATE_SID's variables (WhatsApp refuses empty ones and line breaks)."""
    return {"1": one_line(contact.name) or "-", "2": one_line(body) or "-"}


def facts_request(store: Repositories, rules: Rules, contact: Contact) -> DraftRequest:
    """What a reply by hand is checked against: the client's fields, their open invoices, the
    descriptions of their campaigns (which alone allow a mention of legal steps)."""
    facts = dict(contact.fields)
    invoices = invoice_replies.amount_due_invoices(store, contact.id)
    if invoices:
        facts.update(invoice_facts(invoices, contact.language))
    campaigns = {summary.campaign_id for summary in store.followups.summaries_of_contact(contact.id)}
    descriptions = [campaign.description for campaign_id in sorted(campaigns)
                    if (campaign := store.campaigns.get(campaign_id)) is not None and campaign.description]
    return DraftRequest(contact_name=contact.name, language=contact.language, facts=facts, step_index=0,
                        step_count=1, tone="courteous", business_name=rules.business_name, campaign_name="",
                        max_chars=rules.max_message_chars, campaign_description="\n".join(descriptions))


def reply_by_hand(store: Repositories, queue: TaskQueue | None, rules: Rules, phone: str, *, body: str, by: str,
                  now: datetime, request_key: str | None = None) -> ManualReply:
    """Store a person's message to the client with ``phone`` (E.164) and ask the sending actor to send it.

    ``by``: the author (``key:<name>``, ``user:<email>``, ``cli:<login>``). Raises NotFound for a
    number that is no client, :class:`ReplyRefused` for a text that may not go (nothing stored).
    Idempotent: see :func:`reply_id`. Audited (``reply.manual``, never the text) when stored.
    """
    text = body.strip()
    if not text:
        raise ReplyRefused(Refusal.EMPTY, "the reply is empty: write the text to send")
    if len(text) > rules.max_message_chars:
        raise ReplyRefused(Refusal.TOO_LONG, f"the reply is {len(text)} characters long: at most "
                                             f"{rules.max_message_chars} (MAX_MESSAGE_CHARS)",
                           length=len(text), limit=rules.max_message_chars)
    contact = store.contacts.by_phone(phone)
    if contact is None:
        raise NotFound(f"no client with phone {phone}: a reply by hand goes to a contact "
                       "(import them with `relance contacts import FILE`)")
    if contact.opted_out:
        raise ReplyRefused(Refusal.OPTED_OUT, f"{contact.name} opted out (sent STOP): nothing is sent to them "
                                              "until they write START")
    message_id = reply_id(contact.id, by=by, body=text, request_key=request_key,
                          last_inbound_at=contact.last_inbound_at, now=now)
    stored = store.messages.get(message_id)
    if stored is not None:
        _enqueue(queue, stored)  # a retry: sending it again is asked for, which sends nothing twice
        return ManualReply(stored.id, contact.id, stored.kind, stored.state.value, created=False)
    inside = window_open(contact.last_inbound_at, now)
    if not inside and not rules.manual_reply_template_sid:
        raise ReplyRefused(Refusal.OUTSIDE_WINDOW, (
            f"{contact.name} has not written in the last 24 hours: WhatsApp allows free text only within 24 hours "
            f"of the client's last message, and outside it only an approved template. Set {TEMPLATE_SETTING} "
            "to an approved Content template ({{1}} the client's name, {{2}} your text) to write to them now"))
    problems = check_draft(text, facts_request(store, rules, contact))
    if problems:
        raise ReplyRefused(Refusal.FACTS, "the facts check refused the reply: " + "; ".join(problems)
                           + " (amounts, dates, references and links must be the client's own; no discount, "
                             "payment plan or extra time offered)", facts=problems)
    template = not inside
    message = OutboundMessage(
        id=message_id, followup_id=None, contact_id=contact.id, campaign_id=None, step=-1, purpose=PURPOSE,
        to=contact.phone, state=MessageState.READY, kind="template" if template else "freeform", body=text,
        language=contact.language, content_sid=rules.manual_reply_template_sid if template else None,
        content_variables=template_variables(contact, text) if template else None, draft_source="manual",
        fallback_reason="outside_24h_window" if template else None, written_by=by,
    )
    created = store.messages.insert(message, now)
    if created:
        audit.record(store, by=by, action="reply.manual", contact_id=contact.id, target=message_id,
                     detail=f"{message.kind}, {len(text)} characters", now=now)
    kept = message if created else (store.messages.get(message_id) or message)  # a concurrent twin stored it
    _enqueue(queue, kept)
    log.info("manual message=%s kind=%s stored=%s by=%s", kept.id, kept.kind, created, by.partition(":")[0])
    return ManualReply(kept.id, contact.id, kept.kind, kept.state.value, created=created)


def _enqueue(queue: TaskQueue | None, message: OutboundMessage) -> None:
    """Ask the sending actor for it; without a queue (or Redis away) the scheduler's sweep of ready messages does."""
    if message.state != MessageState.READY or queue is None:
        return
    try:
        queue.send_message(message.id)
    except Exception:  # the message waits in the store: the scheduler enqueues the ready messages it finds
        log.warning("manual message=%s stored but not enqueued (queue unavailable); the scheduler will enqueue it",
                    message.id)
