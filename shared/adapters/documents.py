"""How the models are shaped as stored documents, for both repository implementations.

The MongoDB repositories store these documents; the in-memory twins keep the same ones, so
that their conditional updates read the same fields. No driver here: plain dicts.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

from pydantic import ValidationError

from shared.domain.invoices import DETAILS, Invoice, InvoiceSource
from shared.domain.models import MESSAGE_BOOKKEEPING, Campaign, Contact, FollowUp, OutboundMessage
from shared.domain.records import (
    ContactRecord,
    DraftKeeper,
    FollowUpRef,
    FollowUpSummary,
    InboundRecord,
    MessageSummary,
    ReadyMessage,
    StoredEvent,
)
from shared.domain.states import STATUS_RANK, ActionState, EventState, FollowUpState, InvoiceStatus, MessageState

Doc = dict[str, Any]
NOTE_PREFIX, NOTE_END = "pending:", "pending;"  # every pending note's _id is in [NOTE_PREFIX, NOTE_END)

# ---------------------------------------------------------------- contacts and campaigns


def contact_from_doc(doc: Doc) -> Contact:
    """A contact as stored (raises pydantic's ValidationError for a record the model refuses)."""
    return Contact(
        id=doc["_id"], phone=doc["phone"], name=doc["name"], language=doc.get("language", "fr"),
        timezone=doc.get("timezone", "Europe/Paris"), fields=doc.get("fields", {}),
        tags=doc.get("tags", []), opted_out=doc.get("opted_out", False),
        last_inbound_at=doc.get("last_inbound_at"),
    )


def contact_record(doc: Doc) -> ContactRecord:
    """A contact document read leniently, with what the model refuses in it (if anything)."""
    problem = None
    try:
        contact_from_doc(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        problem = f"{'.'.join(map(str, first['loc']))}: {first['msg']}"
    except KeyError as exc:
        problem = f"{exc.args[0]}: Field required"
    fields = doc.get("fields")
    return ContactRecord(
        id=str(doc["_id"]), phone=doc.get("phone"), name=doc.get("name"), language=doc.get("language"),
        timezone=doc.get("timezone"), fields=fields if isinstance(fields, dict) else {},
        opted_out=bool(doc.get("opted_out")), last_inbound_at=doc.get("last_inbound_at"), problem=problem,
    )


def campaign_from_doc(doc: Doc) -> Campaign:
    """A campaign as stored."""
    data = {k: v for k, v in doc.items() if k not in ("_id", "created_at", "updated_at")}
    return Campaign(id=doc["_id"], **data)


def campaign_doc(campaign: Campaign, now: datetime) -> Doc:
    """The document stored for a new campaign."""
    return {"_id": campaign.id, **campaign.model_dump(mode="json", exclude={"id"}), "created_at": now,
            "updated_at": now}


# ---------------------------------------------------------------- follow-ups


def followup_id_for(campaign_id: str, contact_id: str, generation: int = 0) -> str:
    """A follow-up's deterministic id: ``<campaign>:<contact>``, then ``:<generation>`` for a later one."""
    return f"{campaign_id}:{contact_id}" + (f":{generation}" if generation else "")


def enrolment_doc(*, contact_id: str, campaign_id: str, next_run_at: datetime, now: datetime,
                  generation: int = 0) -> Doc:
    """The document of a new follow-up: step 0, scheduled (``generation``: see ``Enrolment``; stored
    only when not 0, so that the first follow-ups of every release share the unique index's null)."""
    scheduled = FollowUpState.SCHEDULED.value
    doc: Doc = {
        "_id": followup_id_for(campaign_id, contact_id, generation), "contact_id": contact_id,
        "campaign_id": campaign_id, "state": scheduled, "step": 0, "next_run_at": next_run_at, "enrolled_at": now,
        "state_changed_at": now, "needs_human": False, "history": [{"state": scheduled, "at": now, "step": 0}],
        "created_at": now, "updated_at": now,
    }
    if generation:
        doc["generation"] = generation
    return doc


def followup_from_doc(doc: Doc) -> FollowUp:
    """A follow-up as stored."""
    fields = {k: doc.get(k) for k in FollowUp.model_fields if k != "id" and k in doc}
    return FollowUp.model_validate({"id": doc["_id"], **fields})


def followup_ref(doc: Doc) -> FollowUpRef:
    """A follow-up's id and step, with its contact, campaign and drafted step when the projection has them."""
    drafted = doc.get("drafted_step")
    return FollowUpRef(id=str(doc["_id"]), step=int(doc.get("step") or 0), contact_id=doc.get("contact_id"),
                       campaign_id=doc.get("campaign_id"), drafted_step=None if drafted is None else int(drafted))


def keeper_from_doc(doc: Doc) -> DraftKeeper:
    """What keeps_draft reads of a follow-up document."""
    step = doc.get("step")
    return DraftKeeper(state=doc.get("state"), step=step if isinstance(step, int) else None,
                       pause_reason=doc.get("pause_reason"))


def followup_summary(doc: Doc) -> FollowUpSummary:
    """A follow-up document read leniently, for people."""
    step = doc.get("step")
    return FollowUpSummary(
        id=str(doc["_id"]), contact_id=str(doc.get("contact_id", "")), campaign_id=str(doc.get("campaign_id", "?")),
        state=str(doc.get("state", "?")), step=step if isinstance(step, int) else 0,
        stop_reason=doc.get("stop_reason"), pause_reason=doc.get("pause_reason"),
        needs_human=bool(doc.get("needs_human")), needs_human_reason=doc.get("needs_human_reason"),
        handled_at=doc.get("handled_at"), handled_action=doc.get("handled_action"), updated_at=doc.get("updated_at"),
        hand_over_sid=str(doc["hand_over_sid"]) if doc.get("hand_over_sid") and doc.get("needs_human") else None,
    )


def flag_fields(needs_human: str | None) -> Doc:
    """The fields that flag a follow-up for a person (none when ``needs_human`` is None)."""
    return {"needs_human": True, "needs_human_reason": needs_human} if needs_human is not None else {}


# ---------------------------------------------------------------- messages


def message_doc(message: OutboundMessage, now: datetime) -> Doc:
    """The document of a new outbound message (no ``twilio_sid`` until Twilio answers: sparse unique index)."""
    doc = message.model_dump(mode="python", exclude={"id", "twilio_sid", *MESSAGE_BOOKKEEPING})
    doc["language"] = message.language.value
    doc["state"] = message.state.value
    doc.update({"_id": message.id, "direction": "outbound", "status_rank": STATUS_RANK["ready"],
                "created_at": now, "updated_at": now, "state_changed_at": now,
                "requeue_from": requeue_from(now, message.not_before),
                "history": [{"state": message.state.value, "at": now}]})
    return doc


def redraft_fields(message: OutboundMessage, now: datetime) -> Doc:
    """What a new draft of a cancelled message rewrites (its state: the new draft's, ready or awaiting approval)."""
    fields = message.model_dump(mode="python", exclude={"id", "twilio_sid", "state", *MESSAGE_BOOKKEEPING})
    fields["language"] = message.language.value
    # ready, or awaiting_approval for a campaign a person approves
    fields.update({"state": message.state.value, "status_rank": STATUS_RANK["ready"], "updated_at": now,
                   "state_changed_at": now, "cancel_reason": None, "dead_check_at": None,
                   "requeue_from": requeue_from(now, message.not_before)})
    return fields


def requeue_from(now: datetime, not_before: datetime | None) -> datetime:
    """When a message becoming ready now counts as left there: now, or its hold's end if later.

    The scheduler's ready sweep looks for ``requeue_from`` older than its stale delay (an index
    range); the repositories keep it the latest of entering ready, the hold's end and the last requeue.
    """
    return max(now, not_before) if not_before is not None else now


def status_fields(status: str, error_code: int | None, now: datetime) -> tuple[int, Doc] | None:
    """The rank of a Twilio delivery status and what it writes; None for a status that moves nothing."""
    from shared.domain.states import TWILIO_STATUS_TO_STATE

    state = TWILIO_STATUS_TO_STATE.get(status)
    if state is None:
        return None
    rank = STATUS_RANK[status] if status in STATUS_RANK else STATUS_RANK[state.value]
    fields: Doc = {"state": state.value, "status_rank": rank, "updated_at": now, "state_changed_at": now}
    if error_code is not None:
        fields["error_code"] = error_code
    if state in (MessageState.DELIVERED, MessageState.READ):
        fields[f"{state.value}_at"] = now
    return rank, fields


def inbound_doc(record: InboundRecord, at: datetime) -> Doc:
    """The document of an inbound message."""
    return {
        "_id": record.id, "twilio_sid": record.twilio_sid, "contact_id": record.contact_id,
        "followup_ids": list(record.followup_ids), "unknown_sender": record.unknown_sender,
        "from_owner": record.from_owner, "from": record.sender, "body": record.body, "num_media": record.num_media,
        "media_urls": list(record.media_urls), "button_payload": record.button_payload, "event_id": record.event_id,
        "direction": "inbound", "state": MessageState.RECEIVED.value, "created_at": at, "updated_at": at,
    }


def message_from_doc(doc: Doc) -> OutboundMessage:
    """An outbound message as stored."""
    fields = {k: doc.get(k) for k in OutboundMessage.model_fields if k != "id" and k in doc}
    return OutboundMessage.model_validate({"id": doc["_id"], **fields})


def message_summary(doc: Doc) -> MessageSummary:
    """A message document read leniently, for people."""
    step, num_media, code = doc.get("step"), doc.get("num_media"), doc.get("error_code")
    classification = doc.get("classification")
    return MessageSummary(
        id=str(doc["_id"]), direction=str(doc.get("direction", "")), state=str(doc.get("state", "")),
        created_at=doc.get("created_at"), body=str(doc.get("body") or ""), purpose=doc.get("purpose"),
        kind=doc.get("kind"), step=step if isinstance(step, int) else None, contact_id=doc.get("contact_id"),
        sender=doc.get("from"), num_media=num_media if isinstance(num_media, int) else 0,
        error_code=code if isinstance(code, int) else None,
        classification=classification if isinstance(classification, dict) else None, outcome=doc.get("outcome"),
        sent_at=doc.get("sent_at"), handled_at=doc.get("handled_at"),
    )


def replaced_draft_fields(message: OutboundMessage, now: datetime) -> Doc:
    """What a draft waiting for approval rewrites when it is drafted again in place (its window closed)."""
    fields = message.model_dump(mode="python", include={
        "kind", "body", "content_sid", "content_variables", "draft_source", "fallback_reason", "window_closes_at",
        "invoices", "invoices_key"})
    fields["updated_at"] = now
    return fields


def ready_message(doc: Doc) -> ReadyMessage:
    """A ready message found by a scan."""
    step = doc.get("step")
    return ReadyMessage(id=str(doc["_id"]), followup_id=str(doc["followup_id"]) if doc.get("followup_id") else None,
                        step=step if isinstance(step, int) else -1, resend_of=doc.get("resend_of"))


def send_time(doc: Doc) -> datetime | None:
    """When a message went out, or tried to: ``sent_at``, else ``sending_at``, else its last move."""
    raw = doc.get("sent_at") or doc.get("sending_at") or doc.get("state_changed_at") or doc.get("created_at")
    return raw if isinstance(raw, datetime) else None


# ---------------------------------------------------------------- events


def note_bound(at: datetime) -> str:
    """The ``_id`` prefix of notes written at ``at``: fixed-width time, so ``_id`` order is time order."""
    return f"{NOTE_PREFIX}{at.astimezone(UTC):%Y%m%dT%H%M%S.%f}"


def pending_note(at: datetime, waiting: list[Doc]) -> Doc:
    """The note stored with a batch: which of its events wait for an actor (id, sender)."""
    return {"_id": f"{note_bound(at)}:{secrets.token_hex(6)}", "kind": "pending", "events": waiting}


def waiting_entries(events: Sequence[tuple[str, Doc]]) -> list[Doc]:
    """The pending note's entries for the events of a batch that wait for an actor."""
    return [{"id": event_id, "from": doc.get("from", "")} for event_id, doc in events
            if doc.get("state") == EventState.RECEIVED.value]


def event_docs(events: Sequence[tuple[str, Doc]], now: datetime) -> list[Doc]:
    """The documents stored for a batch of events: its pending note first (if any event waits), then each event."""
    docs = [{"_id": event_id, **doc, "received_at": now, "created_at": now, "updated_at": now}
            for event_id, doc in events]
    waiting = waiting_entries(events)
    if waiting:
        docs.insert(0, {**pending_note(now, waiting), "received_at": now, "created_at": now, "updated_at": now})
    return docs


def event_from_doc(doc: Doc) -> StoredEvent:
    """A stored event."""
    action = doc.get("action_state")
    return StoredEvent(
        id=str(doc["_id"]), kind=str(doc.get("kind", "")), state=EventState(doc.get("state", "received")),
        sid=str(doc.get("sid", "")), received_at=doc.get("received_at"), sender=str(doc.get("from", "")),
        body=str(doc.get("body") or ""), num_media=int(doc.get("num_media") or 0),
        media_urls=list(doc.get("media_urls") or []), button_payload=str(doc.get("button_payload") or ""),
        status=doc.get("status"), error_code=doc.get("error_code"),
        action_state=ActionState(action) if action else None, failures=int(doc.get("failures") or 0),
    )


# ---------------------------------------------------------------- invoices
# Dates are stored as ISO text (BSON has no date without a time), amounts as integer cents.


def invoice_doc(invoice: Invoice, *, source: InvoiceSource, now: datetime) -> Doc:
    """The document of a new invoice, its history starting with ``created``."""
    data = invoice.model_dump(mode="json", exclude={"id", "history"})
    return {"_id": invoice.id, **data, "created_at": now, "updated_at": now, "status_changed_at": now,
            "history": [invoice_change("created", invoice.status, source, now, invoice.amount_due_cents)]}


def invoice_change(what: str, status: InvoiceStatus, source: InvoiceSource, now: datetime,
                   amount_due_cents: int | None = None, ref: str | None = None) -> Doc:
    """One entry of an invoice's history."""
    entry: Doc = {"at": now, "source": source.value, "what": what, "status": status.value}
    if amount_due_cents is not None:
        entry["amount_due_cents"] = amount_due_cents
    if ref is not None:
        entry["ref"] = ref
    return entry


def invoice_details(changes: Mapping[str, Any]) -> Doc:
    """The :data:`~shared.domain.invoices.DETAILS` among ``changes``, as stored (ValueError for any other key)."""
    unknown = set(changes) - set(DETAILS)
    if unknown:
        raise ValueError(f"not an invoice detail: {', '.join(sorted(unknown))}")
    return {key: value.isoformat() if isinstance(value, date) else value for key, value in changes.items()}


def invoice_from_doc(doc: Doc) -> Invoice:
    """An invoice as stored."""
    fields = {k: doc[k] for k in Invoice.model_fields if k != "id" and k in doc}
    return Invoice.model_validate({"id": doc["_id"], **fields})
