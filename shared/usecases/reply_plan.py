"""The plan of a client's reply, once read: what each intent does, each step a conditional move.

- paid: the invoices reminders name marked ``claimed_paid``; paused while the owner checks,
  flagged (or stopped, PAID_CLAIM_ACTION=stop), + thank-you;
- promise_to_pay: paused until the date + 1 day (at most MAX_PROMISE_DAYS ahead), acknowledged;
  a third promise on the same follow-up goes to a person;
- question: answered from the contact's data only (from their invoices when they
  have some), else a person;
- dispute / wrong_person: stopped and flagged (a dispute marks the unpaid invoices ``disputed``);
  opt_out: stopped (paused and flagged when it claims a payment: the invoices ``claimed_paid``);
- low confidence, an unclear reply, a failure: paused and flagged, never a guess.
Past MAX_AUTO_REPLIES_PER_DAY automated replies, a person answers instead.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta

from shared.domain.models import Contact, OutboundMessage
from shared.domain.reasons import HandOver, HandOverReason, PauseReason, ReplyOutcome, ReplyResult, StopReason
from shared.domain.repositories import Repositories
from shared.domain.states import MessageState
from shared.language.factcheck import check_draft
from shared.language.invoice_text import invoice_facts
from shared.language.reply_rules import claims_payment
from shared.language.texts import INVOICE_TOPICS, answer_text, invoice_answer_text, promise_text, thank_you_text
from shared.policy import zone
from shared.ports import Classification, DraftRequest, Intent
from shared.usecases import invoice_replies
from shared.usecases.cadence import pause_contact, stop_contact
from shared.usecases.context import App
from shared.usecases.handover import hand_over

log = logging.getLogger(__name__)

PROMISE_GRACE = timedelta(days=1)
MAX_PROMISES = 2  # kept on one follow-up; the next goes to a person: two were broken already


def apply_plan(app: App, contact: Contact, inbound_sid: str, reading: Classification,
               needs_human: HandOver | None, *, text: str = "") -> ReplyResult:
    """Carry out what the reading of reply ``inbound_sid`` says; returns what was done.

    ``needs_human``: why a person must decide instead (from ``classify_safely``), or None.
    ``text`` is the client's reply, read here only by deterministic rules (see opt-out).
    Idempotent: applied again (a redelivery after a crash), it moves and sends nothing more.
    """
    intent = reading.intent
    if opt_out_in_words(app, reading):
        return _opt_out(app, contact, inbound_sid, text)
    if needs_human:
        return _to_a_person(app, contact, inbound_sid, needs_human)
    if intent == Intent.PAID:
        return _paid(app, contact, inbound_sid)
    if intent == Intent.PROMISE_TO_PAY and reading.promised_date is not None:
        return _promise(app, contact, inbound_sid, reading.promised_date)
    if intent == Intent.QUESTION:
        return _answer(app, contact, inbound_sid, reading)
    if intent == Intent.DISPUTE:
        invoice_replies.dispute(app.store, contact.id, now=app.clock.now())
        return _to_a_person(app, contact, inbound_sid, HandOver(HandOverReason.DISPUTE), stop=StopReason.DISPUTE)
    if intent == Intent.WRONG_PERSON:
        return _to_a_person(app, contact, inbound_sid, HandOver(HandOverReason.WRONG_PERSON),
                            stop=StopReason.WRONG_PERSON)
    if intent == Intent.ACKNOWLEDGED:
        return ReplyResult(ReplyOutcome.ACKNOWLEDGED)
    return _to_a_person(app, contact, inbound_sid, HandOver(HandOverReason.UNCLEAR_REPLY, intent.value))


def opt_out_in_words(app: App, reading: Classification) -> bool:
    """Whether the reading is an opt-out sure enough to honour (a keyword needs no reading)."""
    return reading.intent == Intent.OPT_OUT and reading.confidence >= app.rules.classifier_threshold


def _to_a_person(app: App, contact: Contact, inbound_sid: str, why: HandOver, *, stop: StopReason | None = None
                 ) -> ReplyResult:
    hand_over(app, contact, inbound_sid, why, stop=stop)
    return ReplyResult(ReplyOutcome.NEEDS_HUMAN, hand_over=why)


def _opt_out(app: App, contact: Contact, inbound_sid: str, text: str) -> ReplyResult:
    """An opt-out in words: honoured at once. One that claims the invoice is paid goes to a person too."""
    store, now = app.store, app.clock.now()
    store.contacts.set_opt_out(contact.id, True, now)
    if not claims_payment(text):
        return ReplyResult(ReplyOutcome.OPT_OUT, stopped=stop_contact(store, contact.id, reason=StopReason.OPT_OUT,
                                                                     now=now))
    # "I've already paid, stop harassing me": nothing is sent to them any more, and the owner
    # checks the payment, or the invoice would go unchased on the client's word alone.
    invoice_replies.claim_paid(store, contact.id, now=now)
    why = HandOver(HandOverReason.PAID_OPT_OUT)
    if app.rules.paid_claim_action == "stop":
        stopped = hand_over(app, contact, inbound_sid, why, stop=StopReason.OPT_OUT)
        return ReplyResult(ReplyOutcome.OPT_OUT, stopped=stopped, hand_over=why)
    # Paused, not stopped, until the owner says: `relance handled --paid` ends them as paid.
    paused = hand_over(app, contact, inbound_sid, why, pause=PauseReason.PAID_CLAIMED)
    return ReplyResult(ReplyOutcome.OPT_OUT, paused=paused, hand_over=why)


def _paid(app: App, contact: Contact, inbound_sid: str) -> ReplyResult:
    """ "I paid": stopped on the client's word (PAID_CLAIM_ACTION=stop), or paused while the owner checks."""
    rules, store, now = app.rules, app.store, app.clock.now()
    # Whatever follows, the invoices reminders name wait for a person (or a payment) as claimed paid.
    invoice_replies.claim_paid(store, contact.id, now=now)
    thanks = rules.thank_you_on_paid and may_reply(app, contact, inbound_sid)
    if rules.paid_claim_action == "stop":
        if rules.thank_you_on_paid and not thanks:
            return _to_a_person(app, contact, inbound_sid, _reply_limit(app))
        stopped = stop_contact(store, contact.id, reason=StopReason.PAID, now=now)
        if thanks:
            queue_reply(app, contact, inbound_sid, thank_you_text(rules.business_name, contact, stopped=True),
                        source="system")
        return ReplyResult(ReplyOutcome.PAID, stopped=stopped)
    why = HandOver(HandOverReason.PAID_CLAIM)
    paused = hand_over(app, contact, inbound_sid, why, pause=PauseReason.PAID_CLAIMED)
    if thanks:
        queue_reply(app, contact, inbound_sid, thank_you_text(rules.business_name, contact, stopped=False),
                    source="system")
    return ReplyResult(ReplyOutcome.PAID_CLAIMED, paused=paused, hand_over=why)


def _promise(app: App, contact: Contact, inbound_sid: str, promised: date) -> ReplyResult:
    """A promise to pay: pause until the day after (at most MAX_PROMISE_DAYS away), acknowledged.

    A third promise on the same follow-up goes to a person instead: two were broken already.
    """
    rules, store, now = app.rules, app.store, app.clock.now()
    if promises_made(store, contact.id, besides=inbound_sid) >= MAX_PROMISES:
        return _to_a_person(app, contact, inbound_sid, HandOver(HandOverReason.THIRD_PROMISE))
    if not may_reply(app, contact, inbound_sid):
        return _to_a_person(app, contact, inbound_sid, _reply_limit(app))
    latest = now.astimezone(zone(contact.timezone)).date() + timedelta(days=rules.max_promise_days)
    capped = promised > latest
    day = latest if capped else promised
    paused = pause_contact(store, contact.id, until=_pause_until(day, contact), reason=PauseReason.PROMISE_TO_PAY,
                           now=now)
    store.followups.record_promise(contact.id, inbound_sid=inbound_sid, promised=promised.isoformat(),
                                   capped_to=day.isoformat() if capped else None, now=now)
    resume = (day + PROMISE_GRACE).isoformat()
    text = promise_text(rules.business_name, contact, promised.isoformat(), resume=resume if capped else None)
    queue_reply(app, contact, inbound_sid, text, source="system",
                extra_facts={"promised_date": promised.isoformat(), "resume_date": resume})
    return ReplyResult(ReplyOutcome.PROMISE_TO_PAY, until=day, paused=paused, promised=promised)


def _pause_until(day: date, contact: Contact) -> datetime:
    return datetime.combine(day + PROMISE_GRACE, time(9, 0), tzinfo=zone(contact.timezone))


def promises_made(store: Repositories, contact_id: str, *, besides: str) -> int:
    """The most promises to pay recorded on one of the contact's follow-ups, ``besides`` (an inbound SID) aside."""
    return max((len(sids - {besides}) for sids in store.followups.promise_sids(contact_id)), default=0)


def _answer(app: App, contact: Contact, inbound_sid: str, reading: Classification) -> ReplyResult:
    """Answer a question from the contact's data only; anything else goes to a person.

    The classifier says which fact is asked for; the answer is :func:`answer_text`'s, built from
    that fact and nothing else. Text written by a model is never sent in reply: a facts check
    catches a wrong amount or link, not "the invoice is cancelled" or "you may pay by card".
    """
    if reading.question_topic:
        text, facts = _answer_of(app, contact, reading.question_topic)
        if text and not may_reply(app, contact, inbound_sid):
            return _to_a_person(app, contact, inbound_sid, _reply_limit(app))
        if text and queue_reply(app, contact, inbound_sid, text, source="data", extra_facts=facts):
            return ReplyResult(ReplyOutcome.ANSWERED, topic=reading.question_topic)
    return _to_a_person(app, contact, inbound_sid, HandOver(HandOverReason.UNANSWERABLE_QUESTION))


def _answer_of(app: App, contact: Contact, topic: str) -> tuple[str | None, dict[str, str] | None]:
    """The answer to a question about ``topic`` and the facts it is checked against besides the
    contact's: for a client with invoices reminders cover, from those invoices only (the amount: the
    total due and each invoice's reference, amount due and due date); otherwise the contact's field."""
    if topic in INVOICE_TOPICS:
        invoices = invoice_replies.amount_due_invoices(app.store, contact.id)
        if invoices:
            facts = invoice_facts(invoices, contact.language)
            return invoice_answer_text(app.rules.business_name, contact, topic, facts), facts
    return answer_text(app.rules.business_name, contact, topic), None


# ------------------------------------------------------------------ automated replies
def reply_id(inbound_sid: str) -> str:
    """The id of the one automated reply an inbound message may get."""
    return f"reply:{inbound_sid}"


def queue_reply(app: App, contact: Contact, inbound_sid: str, body: str, *, source: str,
                extra_facts: dict[str, str] | None = None) -> str | None:
    """Store and enqueue one reply to an inbound message (at most one per inbound message).

    Returns its id, also when it was stored already (the inbound event redelivered after a
    crash): the send is asked for again, which changes nothing if it was sent. None when the
    facts check refuses the text.
    """
    problems = check_draft(body, _facts_request(app, contact, extra_facts))
    if problems:
        log.warning("reply to inbound=%s refused by the facts check: %s", inbound_sid, problems[0])
        return None
    message = OutboundMessage(
        id=reply_id(inbound_sid), followup_id=None, contact_id=contact.id, campaign_id=None, step=-1,
        purpose="reply", state=MessageState.READY, kind="freeform", body=body, language=contact.language,
        draft_source=source,
    )
    app.store.messages.insert(message, app.clock.now())
    app.queue.send_message(message.id)
    return message.id


def may_reply(app: App, contact: Contact, inbound_sid: str) -> bool:
    """Whether one more automated reply fits MAX_AUTO_REPLIES_PER_DAY (the replies of the last 24 h).

    This message's own reply, stored by an earlier run of it, does not count against it.
    """
    limit = app.rules.max_auto_replies_per_day
    if not limit:
        return True
    since = app.clock.now() - timedelta(hours=24)
    return app.store.messages.count_replies_since(contact.id, since, besides=reply_id(inbound_sid)) < limit


def _reply_limit(app: App) -> HandOver:
    return HandOver(HandOverReason.REPLY_LIMIT, f"{app.rules.max_auto_replies_per_day} in 24 h")


def _facts_request(app: App, contact: Contact, extra: dict[str, str] | None = None) -> DraftRequest:
    """What a reply is checked against: the contact's data (and ``extra`` facts, a promise's dates)."""
    return DraftRequest(contact_name=contact.name, language=contact.language,
                        facts={**contact.fields, **(extra or {})},
                        step_index=0, step_count=1, tone="courteous", business_name=app.rules.business_name,
                        campaign_name="", max_chars=app.rules.max_message_chars)
