"""Replies: what a client answered, understood and acted on at once.

1. The inbound message joins the conversation; the 24-hour window opens. A message from
   OWNER_WHATSAPP_NUMBER opens the owner's own window, so that alerts can go out as freeform.
2. Opt-out keywords (STOP, ARRÊT, UNSUBSCRIBE, DÉSINSCRIRE, a STOP button…) are handled
   deterministically, before any AI; START re-subscribes.
3. Otherwise the classifier (Gemini with a JSON schema, or the offline rules) reads the reply,
   and its plan is applied (:func:`apply_plan`), each step a conditional state move.
4. While a hand-over is open (flagged, not yet ``relance handled``), the client's further
   messages are only recorded: no reply, no new owner alert; an opt-out is still honoured.

The client's text is data: it never reaches a prompt as instructions, and every answer drafted
here passes the same facts check as the follow-ups.
"""

from __future__ import annotations

import logging

from shared.domain.models import Contact
from shared.domain.reasons import HandOver, HandOverReason, ReplyOutcome, ReplyResult, StopReason
from shared.domain.records import InboundRecord, StoredEvent
from shared.domain.states import OPEN, EventState, FollowUpState
from shared.language.classifier import classify_safely
from shared.language.reply_rules import is_opt_in, is_opt_out
from shared.phones import mask_phone
from shared.policy import zone
from shared.ports import Classification, ClassifyRequest, HistoryItem
from shared.usecases import outbound
from shared.usecases.cadence import stop_contact
from shared.usecases.context import App
from shared.usecases.failures import give_up_after_failures
from shared.usecases.handover import hand_over
from shared.usecases.reply_plan import apply_plan, opt_out_in_words

log = logging.getLogger(__name__)


def dispatch_inbound(app: App, event_ids: list[str]) -> int:
    """Fan a batch the webhook stored out to one ``process_inbound`` message per event.

    Sent again (a retry, a redelivery), it enqueues the same ids again: harmless, since
    :func:`process_inbound` acts on an event only while it is ``received``.
    """
    ids = [str(event_id) for event_id in event_ids]
    app.queue.process_inbound_each(ids)
    log.debug("dispatched %d inbound event(s)", len(ids))
    return len(ids)


def process_inbound_or_hand_over(app: App, event_id: str) -> ReplyResult | None:
    """The replies actor: :func:`process_inbound`; a reply that keeps failing goes to a person.

    See :func:`shared.usecases.failures.give_up_after_failures` (outages are retried without
    counting) and :func:`hand_over_unprocessed`. Without this, such a reply would hold every
    message to that contact for ever (the sending hold).
    """
    return give_up_after_failures(app, event_id, lambda: process_inbound(app, event_id),
                                  lambda error: hand_over_unprocessed(app, event_id, error))


def process_inbound(app: App, event_id: str) -> ReplyResult | None:
    """Process a stored inbound event once; what was done (None: nothing, it was processed already).

    Idempotent: the event moves ``received → processed`` last, every move before is
    conditional, and a reply or an alert is stored once under an id derived from the message.
    """
    store, now = app.store, app.clock.now()
    event = _received(app, event_id)
    if event is None:
        return None
    phone = _sender(event)
    contact = store.contacts.by_phone(phone)
    received_at = event.received_at or now
    from_owner = _from_owner(app, phone)
    if from_owner:
        # The owner wrote to the sender: freeform alerts may reach them for the next 24 hours.
        store.owner.touch_inbound(phone, received_at)
    # The follow-ups this message answers: the contact's open ones when it came, else those whose
    # cadence is over (a reply to the last reminder still matters: the invoice may be unpaid).
    open_followups = store.followups.of_contact(contact.id, OPEN) if contact else []
    if contact and not open_followups:
        open_followups = store.followups.of_contact(contact.id, (FollowUpState.COMPLETED,))
    inbound_id, answered = _record_inbound(app, event_id, event, contact.id if contact else None, from_owner,
                                           [f.id for f in open_followups])
    if contact is None and from_owner:
        result = ReplyResult(ReplyOutcome.OWNER)
        log.info("inbound event=%s from the owner %s: their 24-hour window is open", event_id, mask_phone(phone))
    elif contact is None:
        result = ReplyResult(ReplyOutcome.UNKNOWN_SENDER)
        log.info("inbound event=%s from unknown number %s kept and flagged", event_id, mask_phone(phone))
    else:
        store.contacts.touch_inbound(contact.id, received_at)
        result = _from_contact(app, contact, event, inbound_id, answered=bool(answered))
    store.messages.set_outcome(inbound_id, str(result))
    store.events.mark_processed(event_id, now)
    log.info("inbound event=%s contact=%s outcome=%s", event_id, contact.id if contact else None, result)
    return result


def _from_contact(app: App, contact: Contact, event: StoredEvent, inbound_id: str, *, answered: bool
                  ) -> ReplyResult:
    """A contact's message: a STOP or START keyword, else read and acted on (or only recorded)."""
    store, now = app.store, app.clock.now()
    if is_opt_out(event.body, event.button_payload):
        store.contacts.set_opt_out(contact.id, True, now)
        return ReplyResult(ReplyOutcome.OPT_OUT, stopped=stop_contact(store, contact.id, reason=StopReason.OPT_OUT,
                                                                     now=now))
    if is_opt_in(event.body):
        store.contacts.set_opt_out(contact.id, False, now)
        return ReplyResult(ReplyOutcome.OPT_IN)
    if contact.opted_out:
        return ReplyResult(ReplyOutcome.OPTED_OUT)
    if not answered:
        return ReplyResult(ReplyOutcome.NO_OPEN_FOLLOWUP)
    reading, needs_human = _classify(app, contact, event)
    store.messages.set_classification(inbound_id, {
        "intent": reading.intent.value, "confidence": reading.confidence, "source": reading.source,
        "promised_date": reading.promised_date.isoformat() if reading.promised_date else None,
        "question_topic": reading.question_topic, "reason": reading.reason,
        "needs_human": str(needs_human) if needs_human else None,
    })
    outbound.reply_received(store, app.queue, contact.id, event.sid, reading, now=now)
    held = store.followups.open_hand_over(contact.id)
    if held is not None and held != event.sid:  # another message's hand-over: a person has it
        return _while_handed_over(app, contact, reading)
    # This message's own hand-over, when redelivered, is applied again (conditional moves).
    return apply_plan(app, contact, event.sid, reading, needs_human, text=event.body)


def _while_handed_over(app: App, contact: Contact, reading: Classification) -> ReplyResult:
    """A message from a client whose hand-over is open: a person has it, so it is only recorded
    (no reply, no new alert, no state change), except that an opt-out in words is honoured."""
    if opt_out_in_words(app, reading):
        store, now = app.store, app.clock.now()
        store.contacts.set_opt_out(contact.id, True, now)
        stopped = stop_contact(store, contact.id, reason=StopReason.OPT_OUT, now=now)
        return ReplyResult(ReplyOutcome.OPT_OUT, stopped=stopped, held=True)
    return ReplyResult(ReplyOutcome.HELD)


def _classify(app: App, contact: Contact, event: StoredEvent) -> tuple[Classification, HandOver | None]:
    today = app.clock.now().astimezone(zone(contact.timezone)).date()
    history = tuple(HistoryItem(direction=entry.direction, body=entry.body, at=entry.at)
                    for entry in app.store.messages.conversation(contact.id, limit=8))
    request = ClassifyRequest(text=event.body, language=contact.language,
                              facts=dict(contact.fields), today=today, business_name=app.rules.business_name,
                              has_media=event.num_media > 0, history=history)
    return classify_safely(app.classifier, request, threshold=app.rules.classifier_threshold)


def hand_over_unprocessed(app: App, event_id: str, error: str) -> ReplyResult | None:
    """Give a reply that could not be processed to a person, so nothing is sent meanwhile.

    The contact is read raw (its record may be what fails): a STOP is still honoured by keyword;
    otherwise its follow-ups are paused and flagged ``needs_human``, and the owner alerted. The
    message joins the conversation with its outcome, and the event ends ``failed``, which
    releases the sending hold and the scheduler's retries. If any of this fails, the event stays
    waiting (and the contact held): never a send while a reply may say STOP.
    """
    store, now = app.store, app.clock.now()
    event = _received(app, event_id)
    if event is None:
        return None
    phone = _sender(event)
    record = store.contacts.record_by_phone(phone)
    inbound_id, _ = _record_inbound(app, event_id, event, record.id if record else None, _from_owner(app, phone))
    if record is None:
        result = ReplyResult(ReplyOutcome.NOT_PROCESSED, error=error)
    elif is_opt_out(event.body, event.button_payload):
        store.contacts.set_opt_out(record.id, True, now)
        stopped = stop_contact(store, record.id, reason=StopReason.OPT_OUT, now=now)
        result = ReplyResult(ReplyOutcome.OPT_OUT, stopped=stopped, error=error)
    elif store.followups.open_hand_over(record.id) not in (None, event.sid):
        result = ReplyResult(ReplyOutcome.HELD, error=error)  # a person has the conversation already
    else:  # what hand_over needs of the contact, read raw
        contact = Contact(id=record.id, phone=phone, name=str(record.name or phone))
        why = HandOver(HandOverReason.REPLY_NOT_PROCESSED, error)
        hand_over(app, contact, event.sid, why)
        result = ReplyResult(ReplyOutcome.NEEDS_HUMAN, hand_over=why)
    store.messages.set_outcome(inbound_id, str(result))
    store.events.mark_failed(event_id, now)
    return result


def _received(app: App, event_id: str) -> StoredEvent | None:
    """The event while it waits to be processed (None: unknown, or processed already)."""
    event = app.store.events.get(event_id)
    return event if event is not None and event.state == EventState.RECEIVED else None


def _sender(event: StoredEvent) -> str:
    return event.sender.removeprefix("whatsapp:")


def _from_owner(app: App, phone: str) -> bool:
    return bool(app.rules.owner_number) and phone == app.rules.owner_number


def _record_inbound(app: App, event_id: str, event: StoredEvent, contact_id: str | None,
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
    if not app.store.messages.insert_inbound(record, event.received_at or app.clock.now()):
        linked = app.store.messages.linked_followups(inbound_id)
    return inbound_id, linked
