"""Replies actor: understands what a client answered and acts on it at once.

1. The inbound message joins the conversation; the 24-hour window opens. A message from
   OWNER_WHATSAPP_NUMBER opens the owner's own window, so that alerts can go out as freeform.
2. Opt-out keywords (STOP, ARRÊT, UNSUBSCRIBE, DÉSINSCRIRE, a STOP button…) are handled
   deterministically, before any AI; START re-subscribes.
3. Otherwise the classifier (Gemini with a JSON schema, or the offline rules) reads the reply,
   and the plan is applied, each step a conditional state move:
   paid → paused while the owner checks (or stopped, PAID_CLAIM_ACTION=stop), + thank-you;
   promise_to_pay → pause until the date + 1 day (at most MAX_PROMISE_DAYS ahead; a third
   promise goes to a person); question → answer from the contact's data only, else a person;
   dispute / wrong_person → stop and flag; opt_out → as STOP; low confidence or failure →
   pause and flag, never a guess. Past MAX_AUTO_REPLIES_PER_DAY, a person answers instead.
4. While a hand-over is open (flagged, not yet ``relance handled``), the client's further
   messages are only recorded: no reply, no new owner alert; an opt-out is still honoured.

The client's text is data: it never reaches a prompt as instructions, and every answer drafted
here passes the same facts check as the follow-ups.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from shared.cadence import pause_contact, promises_made, stop_contact
from shared.domain.models import Contact, Language, OutboundMessage
from shared.domain.reasons import HandOverReason, PauseReason, ReplyOutcome, StopReason
from shared.domain.records import InboundRecord, StoredEvent
from shared.domain.states import OPEN, EventState, FollowUpState, MessageState
from shared.language.factcheck import check_draft
from shared.language.reply_rules import claims_payment, is_opt_in, is_opt_out
from shared.language.texts import (
    PAID_CLAIM,
    PAID_OPT_OUT,
    REPLY_LIMIT,
    THIRD_PROMISE,
    answer_text,
    owner_alert_text,
    owner_alert_variables,
    promise_text,
    thank_you_text,
)
from shared.phones import mask_phone
from shared.policy import window_open, zone
from shared.ports import Classification, ClassifyRequest, DraftRequest, HistoryItem, Intent
from shared.queue import ACTOR_DISPATCH_INBOUND, ACTOR_INBOUND, ACTOR_STATUS, QUEUE_REPLIES
from shared.usecases.context import App
from shared.usecases.delivery import process_status_or_hand_over
from shared.usecases.failures import give_up_after_failures
from workers.deps import declare_actor

log = logging.getLogger(__name__)

PROMISE_GRACE = timedelta(days=1)


def _facts_request(deps: App, contact: Contact, extra: dict[str, str] | None = None) -> DraftRequest:
    return DraftRequest(contact_name=contact.name, language=contact.language,
                        facts={**contact.fields, **(extra or {})},
                        step_index=0, step_count=1, tone="courteous", business_name=deps.rules.business_name,
                        campaign_name="", max_chars=deps.rules.max_message_chars)


# ------------------------------------------------------------------ actions
def queue_reply(deps: App, contact: Contact, inbound_sid: str, body: str, *, source: str,
                extra_facts: dict[str, str] | None = None) -> str | None:
    """Store and enqueue one reply to an inbound message (at most one per inbound message).

    Returns its id, also when it was stored already (the inbound event redelivered after a
    crash): the send is asked for again, which changes nothing if it was sent.
    """
    problems = check_draft(body, _facts_request(deps, contact, extra_facts))
    if problems:
        log.warning("reply to inbound=%s refused by the facts check: %s", inbound_sid, problems[0])
        return None
    message = OutboundMessage(
        id=reply_id(inbound_sid), followup_id=None, contact_id=contact.id, campaign_id=None, step=-1,
        purpose="reply", state=MessageState.READY, kind="freeform", body=body, language=contact.language,
        draft_source=source,
    )
    deps.store.messages.insert(message, deps.clock.now())
    deps.queue.send_message(message.id)
    return message.id


def reply_id(inbound_sid: str) -> str:
    """The id of the one automated reply an inbound message may get."""
    return f"reply:{inbound_sid}"


def may_reply(deps: App, contact: Contact, inbound_sid: str) -> bool:
    """Whether one more automated reply fits MAX_AUTO_REPLIES_PER_DAY (the replies of the last 24 h).

    This message's own reply, stored by an earlier run of it, does not count against it.
    """
    limit = deps.rules.max_auto_replies_per_day
    if not limit:
        return True
    since = deps.clock.now() - timedelta(hours=24)
    return deps.store.messages.count_replies_since(contact.id, since, besides=reply_id(inbound_sid)) < limit


def _reply_limit(deps: App) -> str:
    return f"{REPLY_LIMIT} ({deps.rules.max_auto_replies_per_day} in 24 h)"


def alert_owner(deps: App, contact: Contact, inbound_sid: str, reason: str) -> None:
    """Tell the business owner on WhatsApp that a conversation needs them (when configured).

    Inside the owner's 24-hour window (they wrote to the sender less than 24 h ago) the alert is
    freeform text; outside it, OWNER_ALERT_TEMPLATE_SID when set. Without a template freeform is
    still tried (the window may be open without our knowing), and a 63016 refusal is handled in
    :mod:`shared.usecases.delivery` (template re-send, or a warning saying what to set up).
    """
    rules = deps.rules
    owner = rules.owner_number
    if not owner:
        return
    variables = owner_alert_variables(contact, reason)
    template_sid = rules.owner_alert_template_sid
    use_template = bool(template_sid) and not window_open(deps.store.owner.last_inbound(owner), deps.clock.now())
    message = OutboundMessage(
        id=f"alert:{inbound_sid}", followup_id=None, contact_id=None, campaign_id=None, step=-1,
        purpose="alert", to=owner, state=MessageState.READY, kind="template" if use_template else "freeform",
        body=owner_alert_text(contact, reason), language=Language.FR,
        content_sid=template_sid if use_template else None,
        content_variables=variables, draft_source="template" if use_template else "system",
        fallback_reason="owner_outside_window" if use_template else None,
    )
    if deps.store.messages.insert(message, deps.clock.now()):
        deps.queue.send_message(message.id)


def _hand_over(deps: App, contact: Contact, inbound_sid: str, reason: str, *, stop: StopReason | None = None,
               pause: PauseReason = PauseReason.NEEDS_HUMAN) -> int:
    """Stop (``stop`` as reason) or pause (``pause`` as reason) the contact's follow-ups and flag them;
    the owner is alerted once per hand-over. Returns how many follow-ups were stopped or paused."""
    store, now = deps.store, deps.clock.now()
    if stop:
        moved = stop_contact(store, contact.id, reason=stop, now=now, needs_human=True, detail=reason)
    else:
        moved = pause_contact(store, contact.id, until=None, reason=pause, now=now, needs_human=True, detail=reason)
    if not store.followups.flag_contact(contact.id, reason=reason, now=now):
        # A reply to the last reminder, once the cadence is over: that follow-up is the one to look at.
        store.followups.flag_contact(contact.id, reason=reason, now=now, finished=True)
    if store.followups.claim_hand_over(contact.id, inbound_sid=inbound_sid, now=now):
        alert_owner(deps, contact, inbound_sid, reason)
    return moved


def hand_over(deps: App, contact: Contact, inbound_sid: str, reason: str, *, stop: StopReason | None = None
              ) -> str:
    """Stop (with ``stop`` as reason) or pause the contact's follow-ups, flag them, alert the owner (once)."""
    _hand_over(deps, contact, inbound_sid, reason, stop=stop)
    return f"needs_human: {reason}"


def _pause_until(day: date, contact: Contact) -> datetime:
    return datetime.combine(day + PROMISE_GRACE, time(9, 0), tzinfo=zone(contact.timezone))


def apply_plan(deps: App, contact: Contact, inbound_sid: str, result: Classification,
               needs_human: str | None, *, text: str = "") -> str:
    """Carry out what the classification says; returns the outcome (for logs and tests).

    ``text`` is the client's reply, read here only by deterministic rules (see opt-out).
    """
    intent = result.intent
    if intent == Intent.OPT_OUT and result.confidence >= deps.rules.classifier_threshold:
        return _opt_out(deps, contact, inbound_sid, text)
    if needs_human:
        return hand_over(deps, contact, inbound_sid, needs_human)
    if intent == Intent.PAID:
        return _paid(deps, contact, inbound_sid)
    if intent == Intent.PROMISE_TO_PAY and result.promised_date is not None:
        return _promise(deps, contact, inbound_sid, result.promised_date)
    if intent == Intent.QUESTION:
        return _answer(deps, contact, inbound_sid, result)
    if intent == Intent.DISPUTE:
        return hand_over(deps, contact, inbound_sid, HandOverReason.DISPUTE, stop=StopReason.DISPUTE)
    if intent == Intent.WRONG_PERSON:
        return hand_over(deps, contact, inbound_sid, HandOverReason.WRONG_PERSON, stop=StopReason.WRONG_PERSON)
    if intent == Intent.ACKNOWLEDGED:
        return ReplyOutcome.ACKNOWLEDGED
    return hand_over(deps, contact, inbound_sid, f"{HandOverReason.UNCLEAR_REPLY} ({intent.value})")


def _opt_out(deps: App, contact: Contact, inbound_sid: str, text: str) -> str:
    """An opt-out in words: honoured at once. One that claims the invoice is paid goes to a person too."""
    store, now = deps.store, deps.clock.now()
    store.contacts.set_opt_out(contact.id, True, now)
    if not claims_payment(text):
        return f"opt_out stopped={stop_contact(store, contact.id, reason=StopReason.OPT_OUT, now=now)}"
    # "I've already paid, stop harassing me": nothing is sent to them any more, and the owner
    # checks the payment, or the invoice would go unchased on the client's word alone.
    if deps.rules.paid_claim_action == "stop":
        stopped = _hand_over(deps, contact, inbound_sid, PAID_OPT_OUT, stop=StopReason.OPT_OUT)
        return f"opt_out stopped={stopped} needs_human: {PAID_OPT_OUT}"
    # Paused, not stopped, until the owner says: `relance handled --paid` ends them as paid.
    paused = _hand_over(deps, contact, inbound_sid, PAID_OPT_OUT, pause=PauseReason.PAID_CLAIMED)
    return f"opt_out paused={paused} needs_human: {PAID_OPT_OUT}"


def _paid(deps: App, contact: Contact, inbound_sid: str) -> str:
    """ "I paid": stopped on the client's word (PAID_CLAIM_ACTION=stop), or paused while the owner checks."""
    rules, store, now = deps.rules, deps.store, deps.clock.now()
    thanks = rules.thank_you_on_paid and may_reply(deps, contact, inbound_sid)
    if rules.paid_claim_action == "stop":
        if rules.thank_you_on_paid and not thanks:
            return hand_over(deps, contact, inbound_sid, _reply_limit(deps))
        stopped = stop_contact(store, contact.id, reason=StopReason.PAID, now=now)
        if thanks:
            queue_reply(deps, contact, inbound_sid, thank_you_text(rules.business_name, contact, stopped=True),
                        source="system")
        return f"paid stopped={stopped}"
    paused = _hand_over(deps, contact, inbound_sid, PAID_CLAIM, pause=PauseReason.PAID_CLAIMED)
    if thanks:
        queue_reply(deps, contact, inbound_sid, thank_you_text(rules.business_name, contact, stopped=False),
                    source="system")
    return f"paid_claimed paused={paused} needs_human: {PAID_CLAIM}"


def _promise(deps: App, contact: Contact, inbound_sid: str, promised: date) -> str:
    """A promise to pay: pause until the day after (at most MAX_PROMISE_DAYS away), acknowledged.

    A third promise on the same follow-up goes to a person instead: two were broken already.
    """
    rules, store, now = deps.rules, deps.store, deps.clock.now()
    if promises_made(store, contact.id, besides=inbound_sid) >= 2:
        return hand_over(deps, contact, inbound_sid, THIRD_PROMISE)
    if not may_reply(deps, contact, inbound_sid):
        return hand_over(deps, contact, inbound_sid, _reply_limit(deps))
    latest = now.astimezone(zone(contact.timezone)).date() + timedelta(days=rules.max_promise_days)
    capped = promised > latest
    day = latest if capped else promised
    paused = pause_contact(store, contact.id, until=_pause_until(day, contact), reason=PauseReason.PROMISE_TO_PAY,
                           now=now)
    store.followups.record_promise(contact.id, inbound_sid=inbound_sid, promised=promised.isoformat(),
                                   capped_to=day.isoformat() if capped else None, now=now)
    resume = (day + PROMISE_GRACE).isoformat()
    text = promise_text(rules.business_name, contact, promised.isoformat(), resume=resume if capped else None)
    queue_reply(deps, contact, inbound_sid, text, source="system",
                extra_facts={"promised_date": promised.isoformat(), "resume_date": resume})
    return f"promise_to_pay until={day.isoformat()} paused={paused}" + (
        f" (capped: promised {promised.isoformat()})" if capped else "")


def _answer(deps: App, contact: Contact, inbound_sid: str, result: Classification) -> str:
    """Answer a question from the contact's data only; anything else goes to a person.

    The classifier says which fact is asked for; the answer is :func:`answer_text`'s, built from
    that fact and nothing else. Text written by a model is never sent in reply: a facts check
    catches a wrong amount or link, not "the invoice is cancelled" or "you may pay by card".
    """
    if result.question_topic:
        text = answer_text(deps.rules.business_name, contact, result.question_topic)
        if text and not may_reply(deps, contact, inbound_sid):
            return hand_over(deps, contact, inbound_sid, _reply_limit(deps))
        if text and queue_reply(deps, contact, inbound_sid, text, source="data"):
            return f"question answered ({result.question_topic})"
    return hand_over(deps, contact, inbound_sid, HandOverReason.UNANSWERABLE_QUESTION)


def _while_handed_over(deps: App, contact: Contact, result: Classification) -> str:
    """A message from a client whose hand-over is open: a person has it, so it is only recorded
    (no reply, no new alert, no state change), except that an opt-out in words is honoured."""
    if result.intent == Intent.OPT_OUT and result.confidence >= deps.rules.classifier_threshold:
        store, now = deps.store, deps.clock.now()
        store.contacts.set_opt_out(contact.id, True, now)
        stopped = stop_contact(store, contact.id, reason=StopReason.OPT_OUT, now=now)
        return f"opt_out stopped={stopped} (hand-over open)"
    return ReplyOutcome.HELD


def _classify(deps: App, contact: Contact, event: StoredEvent) -> tuple[Classification, str | None]:
    today = deps.clock.now().astimezone(zone(contact.timezone)).date()
    history = tuple(HistoryItem(direction=entry.direction, body=entry.body, at=entry.at)
                    for entry in deps.store.messages.conversation(contact.id, limit=8))
    request = ClassifyRequest(text=event.body, language=contact.language,
                              facts=dict(contact.fields), today=today, business_name=deps.rules.business_name,
                              has_media=event.num_media > 0, history=history)
    from shared.language.classifier import classify_safely

    classifier = deps.classifier
    return classify_safely(classifier, request, threshold=deps.rules.classifier_threshold)


def _sender(event: StoredEvent) -> str:
    return event.sender.removeprefix("whatsapp:")


def _from_owner(deps: App, phone: str) -> bool:
    return bool(deps.rules.owner_number) and phone == deps.rules.owner_number


def _record_inbound(deps: App, event_id: str, event: StoredEvent, contact_id: str | None,
                    from_owner: bool, followup_ids: list[str] | None = None) -> tuple[str, list[str]]:
    """The inbound message in the conversation (once), linked to the follow-ups it answers.

    Returns its id and the follow-ups it was linked to when first stored: processed again after
    a crash, it answers those, even if its first run stopped them (a dispute, before the alert).
    """
    inbound_id = f"in:{event.sid}"
    linked = followup_ids or []
    record = InboundRecord(
        id=inbound_id, twilio_sid=event.sid, contact_id=contact_id, followup_ids=linked,
        unknown_sender=contact_id is None and not from_owner, from_owner=from_owner, sender=_sender(event),
        body=event.body, num_media=event.num_media, media_urls=event.media_urls,
        button_payload=event.button_payload, event_id=event_id,
    )
    if not deps.store.messages.insert_inbound(record, event.received_at or deps.clock.now()):
        linked = deps.store.messages.linked_followups(inbound_id)
    return inbound_id, linked


def process_inbound(deps: App, event_id: str) -> str | None:
    """Process a stored inbound event once; returns what was done (for logs and tests)."""
    store, now = deps.store, deps.clock.now()
    event = store.events.get(event_id)
    if event is None or event.state != EventState.RECEIVED:
        return None
    phone = _sender(event)
    contact = store.contacts.by_phone(phone)
    received_at = event.received_at or now
    from_owner = _from_owner(deps, phone)
    if from_owner:
        # The owner wrote to the sender: freeform alerts may reach them for the next 24 hours.
        store.owner.touch_inbound(phone, received_at)
    # The follow-ups this message answers: the contact's open ones when it came, else those whose
    # cadence is over (a reply to the last reminder still matters: the invoice may be unpaid).
    open_followups = store.followups.of_contact(contact.id, OPEN) if contact else []
    if contact and not open_followups:
        open_followups = store.followups.of_contact(contact.id, (FollowUpState.COMPLETED,))
    inbound_id, answered = _record_inbound(deps, event_id, event, contact.id if contact else None, from_owner,
                                           [f.id for f in open_followups])
    outcome: str
    if contact is None and from_owner:
        outcome = ReplyOutcome.OWNER
        log.info("inbound event=%s from the owner %s: their 24-hour window is open", event_id, mask_phone(phone))
    elif contact is None:
        outcome = ReplyOutcome.UNKNOWN_SENDER
        log.info("inbound event=%s from unknown number %s kept and flagged", event_id, mask_phone(phone))
    else:
        store.contacts.touch_inbound(contact.id, received_at)
        body, button = event.body, event.button_payload
        if is_opt_out(body, button):
            store.contacts.set_opt_out(contact.id, True, now)
            outcome = f"opt_out stopped={stop_contact(store, contact.id, reason=StopReason.OPT_OUT, now=now)}"
        elif is_opt_in(body):
            store.contacts.set_opt_out(contact.id, False, now)
            outcome = ReplyOutcome.OPT_IN
        elif contact.opted_out:
            outcome = ReplyOutcome.OPTED_OUT
        elif not answered:
            outcome = ReplyOutcome.NO_OPEN_FOLLOWUP
        else:
            result, needs_human = _classify(deps, contact, event)
            store.messages.set_classification(inbound_id, {
                "intent": result.intent.value, "confidence": result.confidence, "source": result.source,
                "promised_date": result.promised_date.isoformat() if result.promised_date else None,
                "question_topic": result.question_topic, "reason": result.reason, "needs_human": needs_human,
            })
            held = store.followups.open_hand_over(contact.id)
            if held is not None and held != event.sid:  # another message's hand-over: a person has it
                outcome = _while_handed_over(deps, contact, result)
            else:  # this message's own hand-over, when redelivered, is applied again (conditional moves)
                outcome = apply_plan(deps, contact, event.sid, result, needs_human, text=body)
    store.messages.set_outcome(inbound_id, outcome)
    store.events.mark_processed(event_id, now)
    log.info("inbound event=%s contact=%s outcome=%s", event_id, contact.id if contact else None, outcome)
    return outcome


def process_inbound_or_hand_over(deps: App, event_id: str) -> str | None:
    """The replies actor: :func:`process_inbound`; a reply that keeps failing goes to a person.

    See :func:`shared.usecases.failures.give_up_after_failures` (outages are retried without counting) and
    :func:`hand_over_unprocessed`. Without this, such a reply would hold every message to that
    contact for ever (the sending hold).
    """
    return give_up_after_failures(deps, event_id, lambda: process_inbound(deps, event_id),
                                  lambda error: hand_over_unprocessed(deps, event_id, error))


def hand_over_unprocessed(deps: App, event_id: str, error: str) -> str | None:
    """Give a reply that could not be processed to a person, so nothing is sent meanwhile.

    The contact is read raw (its record may be what fails): a STOP is still honoured by keyword;
    otherwise its follow-ups are paused and flagged ``needs_human``, and the owner alerted. The
    message joins the conversation with its outcome, and the event ends ``failed``, which
    releases the sending hold and the scheduler's retries. If any of this fails, the event stays
    waiting (and the contact held): never a send while a reply may say STOP.
    """
    store, now = deps.store, deps.clock.now()
    event = store.events.get(event_id)
    if event is None or event.state != EventState.RECEIVED:
        return None
    phone = _sender(event)
    reason = f"{HandOverReason.REPLY_NOT_PROCESSED} ({error})"
    record = store.contacts.record_by_phone(phone)
    inbound_id, _ = _record_inbound(deps, event_id, event, record.id if record else None, _from_owner(deps, phone))
    if record is None:
        outcome = f"not processed: {error}"
    elif is_opt_out(event.body, event.button_payload):
        store.contacts.set_opt_out(record.id, True, now)
        outcome = f"opt_out stopped={stop_contact(store, record.id, reason=StopReason.OPT_OUT, now=now)} ({reason})"
    elif store.followups.open_hand_over(record.id) not in (None, event.sid):
        outcome = f"{ReplyOutcome.HELD}: {reason}"  # a person has the conversation already
    else:  # what hand_over needs of the contact, read raw
        contact = Contact(id=record.id, phone=phone, name=str(record.name or phone))
        outcome = hand_over(deps, contact, event.sid, reason)
    store.messages.set_outcome(inbound_id, outcome)
    store.events.mark_failed(event_id, now)
    return outcome


def dispatch_inbound(deps: App, event_ids: list[str]) -> int:
    """Fan a batch the webhook stored out to one ``process_inbound`` message per event.

    Sent again (a retry, a redelivery), it enqueues the same ids again: harmless, since
    ``process_inbound`` acts on an event only while it is ``received``.
    """
    ids = [str(event_id) for event_id in event_ids]
    deps.queue.process_inbound_each(ids)
    log.debug("dispatched %d inbound event(s)", len(ids))
    return len(ids)


def register(broker: RedisBroker, deps: App) -> dramatiq.Actor[..., str | None]:
    """Declare the replies queue's actors on ``broker`` (inbound messages, their batches, failed statuses)."""
    declare_actor(broker, deps, dispatch_inbound, name=ACTOR_DISPATCH_INBOUND, queue=QUEUE_REPLIES)
    declare_actor(broker, deps, process_status_or_hand_over, name=ACTOR_STATUS, queue=QUEUE_REPLIES, time_limit=60_000)
    return declare_actor(broker, deps, process_inbound_or_hand_over, name=ACTOR_INBOUND, queue=QUEUE_REPLIES)
