"""Approvals: the drafts of a campaign with ``approval: required`` wait for a person before they are sent.

Drafting stores such a step's message ``awaiting_approval`` (the follow-up is ``awaiting_send``
as for any draft, and the scheduler's sweeps leave it there: no re-draft, no send). A person then

- **approves** it: ``awaiting_approval → ready`` (conditional: of two approvals one wins) and
  ``send_message`` enqueued, after which it is sent as any draft (window, opt-out, pacing, caps);
- **edits** it: a new text for a freeform draft, checked as drafts are (the facts check, the
  length); it keeps waiting, or is approved at once (``approve=True``);
- **rejects** it with a reason: ``awaiting_approval → cancelled`` (``rejected``, the reason and who
  kept on the message), and the follow-up moves on as if the step had gone out at that moment: its
  next step is scheduled (due its delay after the rejection), or it completes after its last step.

A freeform draft (written inside the client's 24-hour window) whose window closes while it waits
is drafted again, in place, as the step's template (:func:`redraft_closed_window`, a step of the
scheduler's sweep, and checked again when it is approved); a step without a template is
withdrawn and its follow-up paused for a person, as drafting does. So is an approved freeform draft
the sending actor holds (pacing, send window) past the client's window: it goes back to
``awaiting_approval`` as the template (``ready → awaiting_approval``, same id), and a person approves
what goes out instead of Twilio refusing the text and the template going out unapproved. A STOP, a payment, a pause or a
hand-over cancels a waiting draft as it cancels a ready one. Every write takes ``by``, who acted
(``key:<name>``, ``user:<email>``), kept on the message (``approved_by``, ``edited_by``, ``rejected_by``)
and in the audit log (``approval.approve``, ``approval.edit``, ``approval.reject``; never the text).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from shared.clock import utc
from shared.domain.models import Campaign, Contact, OutboundMessage
from shared.domain.reasons import CancelReason, PauseReason, StopReason
from shared.domain.repositories import Repositories
from shared.domain.rules import Rules
from shared.domain.states import FollowUpState, MessageState
from shared.errors import Conflict, InputError, NotFound
from shared.language.factcheck import check_draft
from shared.language.invoice_text import invoice_facts
from shared.policy import SERVICE_WINDOW, is_allowed, next_allowed, window_open
from shared.ports import DraftRequest, TaskQueue
from shared.usecases import audit
from shared.usecases.browsing import Page, check_limit
from shared.usecases.cadence import advance_after_send, stop_followup
from shared.usecases.drafting import template_message
from shared.usecases.invoice_reminders import contact_facts, reminder_invoices, with_oldest_due_date

log = logging.getLogger(__name__)

MAX_REASON_CHARS = 500
MAX_BULK = 200
BulkOutcome = Literal["done", "not_waiting", "unknown", "refused"]


class Refused(InputError):
    """A request the rules refuse (a 400): ``code`` and ``params`` let a page say it in the reader's language."""

    def __init__(self, code: str, message: str, **params: object) -> None:
        super().__init__(message, code=code, **params)


class NotWaiting(Conflict):
    """The message exists but is not (any more) waiting for approval: approved, rejected, cancelled, sent."""


class WindowClosed(Conflict):
    """A freeform draft whose client's 24-hour window closed: drafted again as the template (or withdrawn)."""


@dataclass(frozen=True)
class WaitingDraft:
    """A draft waiting for a person's approval, with what they need to decide."""

    id: str
    contact_id: str
    contact_name: str
    campaign_id: str
    campaign_name: str
    step: int  # 0-based
    step_count: int
    body: str
    kind: Literal["freeform", "template"]
    waiting_since: datetime | None
    window_closes_at: datetime | None
    edited_by: str | None


@dataclass(frozen=True)
class Decision:
    """What an approval, an edit or a rejection did: the message as it now stands, and for a
    rejection the follow-up's next state (scheduled, completed, or None when it had moved already)."""

    message: OutboundMessage
    followup_state: FollowUpState | None = None


@dataclass(frozen=True)
class BulkItem:
    """One id of a bulk approval or rejection: ``done``, ``not_waiting``, ``unknown`` or ``refused`` (``detail``)."""

    id: str
    outcome: BulkOutcome
    detail: str | None = None


# ------------------------------------------------------------------ reading
def list_waiting(store: Repositories, *, after: str | None = None, limit: int = 50) -> Page[WaitingDraft]:
    """Drafts waiting for approval, by message id (a page after ``after``)."""
    found = store.messages.awaiting_approval(after=after, limit=check_limit(limit) + 1)
    contacts: dict[str, Contact | None] = {}
    campaigns: dict[str, Campaign | None] = {}
    items = []
    for message in found[:limit]:
        contact_id, campaign_id = message.contact_id or "", message.campaign_id or ""
        if contact_id not in contacts:
            contacts[contact_id] = store.contacts.get(contact_id)
        if campaign_id not in campaigns:
            campaigns[campaign_id] = store.campaigns.get(campaign_id)
        contact, campaign = contacts[contact_id], campaigns[campaign_id]
        items.append(WaitingDraft(
            id=message.id, contact_id=contact_id, contact_name=contact.name if contact else "?",
            campaign_id=campaign_id, campaign_name=campaign.name if campaign else "?", step=message.step,
            step_count=len(campaign.steps) if campaign else 0, body=message.body, kind=message.kind,
            waiting_since=message.state_changed_at, window_closes_at=message.window_closes_at,
            edited_by=message.edited_by,
        ))
    return Page(items, found[limit - 1].id if len(found) > limit else None)


def _waiting(store: Repositories, message_id: str) -> OutboundMessage:
    """The draft ``message_id`` if it waits for approval (NotFound, NotWaiting otherwise)."""
    message = store.messages.get(message_id)
    if message is None or message.purpose != "step":
        raise NotFound(f"no draft {message_id!r}")
    if message.state != MessageState.AWAITING_APPROVAL:
        raise NotWaiting(f"draft {message_id!r} is not waiting for approval (it is {message.state.value})")
    return message


def _by(by: str) -> str:
    who = by.strip()
    if not who:
        raise Refused("by", "who acts (by) is required")
    return who


# ------------------------------------------------------------------ approving
def approve(store: Repositories, queue: TaskQueue | None, message_id: str, *, by: str, now: datetime,
            rules: Rules | None = None) -> Decision:
    """Approve a waiting draft: ``awaiting_approval → ready``, then its send is enqueued.

    Conditional: of two concurrent approvals one moves it (the other gets NotWaiting), and the
    send itself is ``ready → sending``, so the message goes out once. A freeform draft whose
    24-hour window has closed, or closes before the campaign's send window next opens (``rules``:
    its holidays), is not approved: it is drafted again as the template (WindowClosed).
    ``queue`` None: the scheduler's ready sweep enqueues it after its stale delay.
    """
    who = _by(by)
    message = _waiting(store, message_id)
    if message.kind == "freeform":
        contact = store.contacts.get(message.contact_id or "")
        at = _first_send_at(store, rules or Rules(), message, contact, now)
        if contact is None or not window_open(contact.last_inbound_at, at):
            outcome = redraft_if_window_closed(store, message, now=now, contact=contact, at=at)
            raise WindowClosed(_closed_text(message_id, outcome))
    if not store.messages.approve(message_id, by=who, now=now):
        raise NotWaiting(f"draft {message_id!r} is not waiting for approval any more")
    log.info("message=%s approved by %s", message_id, who)
    audit.record(store, by=who, action="approval.approve", contact_id=message.contact_id, target=message_id,
                 detail=f"step {message.step + 1}, {message.kind}", now=now)
    if queue is not None:
        try:
            queue.send_message(message_id, contact_id=message.contact_id)
        except Exception as exc:  # Redis away: the scheduler's ready sweep sends it instead
            log.warning("message=%s approved but not enqueued (%s): the scheduler will", message_id,
                        type(exc).__name__)
    return Decision(_reread(store, message_id))


def _first_send_at(store: Repositories, rules: Rules, message: OutboundMessage, contact: Contact | None,
                   now: datetime) -> datetime:
    """When the sending actor would first let this step out: now, or the campaign's send window's next opening."""
    campaign = store.campaigns.get(message.campaign_id or "")
    if campaign is None or contact is None:
        return now
    country, subdiv = rules.holidays_country, rules.holidays_subdiv
    window, timezone = campaign.send_window, contact.timezone
    if is_allowed(now, window, timezone, holidays_country=country, holidays_subdiv=subdiv):
        return now
    return next_allowed(now, window, timezone, holidays_country=country, holidays_subdiv=subdiv)


def _closed_text(message_id: str, outcome: str) -> str:
    if outcome == "template":
        return (f"draft {message_id!r} was written inside the client's 24-hour window, which has closed (or "
                "closes before the campaign's send window opens): it was drafted again as the step's approved "
                "template; read it and approve it again")
    if outcome == "withdrawn":
        return (f"draft {message_id!r} was written inside the client's 24-hour window, which has closed (or "
                "closes before the campaign's send window opens), and its step has no approved template: it was "
                "withdrawn and the follow-up paused for a person")
    return f"draft {message_id!r} could not be approved: the client's 24-hour window has closed"


def _reread(store: Repositories, message_id: str) -> OutboundMessage:
    message = store.messages.get(message_id)
    if message is None:
        raise NotFound(f"no draft {message_id!r}")
    return message


# ------------------------------------------------------------------ editing
def edit(store: Repositories, rules: Rules, message_id: str, body: str, *, by: str, now: datetime,
         then_approve: bool = False, queue: TaskQueue | None = None) -> Decision:
    """A new text for a waiting freeform draft, checked as a draft is (facts check, length).

    A text the check refuses is an InputError naming the problems, and nothing changes. The
    draft keeps waiting, unless ``then_approve`` (edit and approve).
    """
    who = _by(by)
    text = body.strip()
    if not text:
        raise Refused("empty", "the text is empty")
    if len(text) > rules.max_message_chars:
        raise Refused("too_long", f"the text is {len(text)} characters long; at most {rules.max_message_chars}",
                      length=len(text), limit=rules.max_message_chars)
    message = _waiting(store, message_id)
    if message.kind != "freeform":
        raise Refused("template", f"draft {message_id!r} is the step's approved template, whose text cannot change: "
                         "approve or reject it")
    contact = store.contacts.get(message.contact_id or "")
    campaign = store.campaigns.get(message.campaign_id or "")
    if contact is None or campaign is None:
        raise Refused("gone", f"draft {message_id!r}: its contact or campaign no longer exists")
    problems = check_draft(text, _facts_request(store, rules, contact, campaign, message.step))
    if problems:
        raise Refused("facts", "the text fails the facts check (every amount, date, reference and link must come "
                      f"from the client's data; nothing only the business may grant): {'; '.join(problems)}",
                      problems="; ".join(problems), facts=problems)
    if not store.messages.edit_draft(message_id, body=text, by=who, now=now):
        raise NotWaiting(f"draft {message_id!r} is not waiting for approval any more")
    log.info("message=%s edited by %s", message_id, who)
    audit.record(store, by=who, action="approval.edit", contact_id=message.contact_id, target=message_id,
                 detail=f"step {message.step + 1}, {len(text)} characters", now=now)
    if then_approve:
        return approve(store, queue, message_id, by=who, now=now, rules=rules)
    return Decision(_reread(store, message_id))


def _facts_request(store: Repositories, rules: Rules, contact: Contact, campaign: Campaign, step: int
                   ) -> DraftRequest:
    """What an edited text is checked against: the facts its draft was written from."""
    facts = dict(contact.fields)
    if campaign.about_invoices:
        about = reminder_invoices(store, campaign, contact.id)
        facts = {**contact_facts(contact), **invoice_facts(about.invoices, contact.language)}
    return DraftRequest(contact_name=contact.name, language=contact.language, facts=facts, step_index=step,
                        step_count=len(campaign.steps), tone=campaign.steps[min(step, len(campaign.steps) - 1)].tone,
                        business_name=rules.business_name, campaign_name=campaign.name,
                        max_chars=rules.max_message_chars, campaign_description=campaign.description)


# ------------------------------------------------------------------ rejecting
def reject(store: Repositories, message_id: str, *, reason: str, by: str, now: datetime) -> Decision:
    """Reject a waiting draft: cancelled (``rejected``, with ``reason``), and its follow-up moves on.

    The follow-up goes on as if the step had been sent now: its next step is scheduled (due its
    delay after now), or it completes when this was its last step.
    """
    who = _by(by)
    why = " ".join(reason.split())
    if not why:
        raise Refused("no_reason", "a rejection needs a reason")
    if len(why) > MAX_REASON_CHARS:
        raise Refused("reason_too_long", f"the reason is {len(why)} characters long; at most {MAX_REASON_CHARS}",
                      length=len(why), limit=MAX_REASON_CHARS)
    message = _waiting(store, message_id)
    if not store.messages.reject(message_id, by=who, reason=why, now=now):
        raise NotWaiting(f"draft {message_id!r} is not waiting for approval any more")
    log.info("message=%s rejected by %s", message_id, who)
    moved = move_past_rejected(store, message, now=now)
    audit.record(store, by=who, action="approval.reject", contact_id=message.contact_id, target=message_id,
                 detail=f"step {message.step + 1}: {why}", now=now)
    return Decision(_reread(store, message_id), moved)


def move_past_rejected(store: Repositories, message: OutboundMessage, *, now: datetime) -> FollowUpState | None:
    """Move a rejected step's follow-up on (conditional: only one still ``awaiting_send`` at that step)."""
    followup = store.followups.get(message.followup_id or "")
    contact = store.contacts.get(message.contact_id or "")
    campaign = store.campaigns.get(message.campaign_id or "")
    if followup is None or contact is None or campaign is None:
        return None
    if followup.state != FollowUpState.AWAITING_SEND or followup.step != message.step:
        return None
    if campaign.about_invoices and message.step + 1 < len(campaign.steps):
        contact = with_oldest_due_date(contact, reminder_invoices(store, campaign, contact.id).invoices)
    return advance_after_send(store, followup_id=followup.id, enrolled_at=followup.enrolled_at, campaign=campaign,
                              contact=contact, step=message.step, sent_at=now, now=now)


# ------------------------------------------------------------------ in bulk
def bulk(store: Repositories, queue: TaskQueue | None, action: Literal["approve", "reject"], ids: Iterable[str], *,
         by: str, now: datetime, reason: str | None = None, rules: Rules | None = None) -> list[BulkItem]:
    """Approve or reject each of ``ids`` (at most MAX_BULK); each reported ``done``, ``not_waiting``,
    ``unknown`` or ``refused`` (a freeform draft whose window closed: redrafted, with why)."""
    wanted = list(dict.fromkeys(i.strip() for i in ids if i.strip()))
    if not wanted:
        raise Refused("no_ids", "no draft ids given")
    if len(wanted) > MAX_BULK:
        raise Refused("too_many", f"{len(wanted)} ids: at most {MAX_BULK} at once", count=len(wanted), limit=MAX_BULK)
    if action not in ("approve", "reject"):
        raise Refused("action", f"action must be approve or reject (got {action!r})")
    _by(by)
    if action == "reject" and not " ".join((reason or "").split()):
        raise Refused("no_reason", "a rejection needs a reason")
    done: list[BulkItem] = []
    for message_id in wanted:
        try:
            if action == "approve":
                approve(store, queue, message_id, by=by, now=now, rules=rules)
            else:
                reject(store, message_id, reason=reason or "", by=by, now=now)
        except NotFound:
            done.append(BulkItem(message_id, "unknown"))
        except NotWaiting:
            done.append(BulkItem(message_id, "not_waiting"))
        except InputError as exc:
            done.append(BulkItem(message_id, "refused", str(exc)))
        else:
            done.append(BulkItem(message_id, "done"))
    return done


# ------------------------------------------------------------------ a window closing while it waits
def redraft_closed_window(store: Repositories, message_id: str, *, now: datetime) -> bool:
    """Draft again as the template a waiting freeform draft whose 24-hour window has closed (the scheduler's
    ``approval_windows`` step, for each :meth:`window_closed_drafts`); True when it was redrafted or withdrawn."""
    message = store.messages.get(message_id)
    if message is None or message.state != MessageState.AWAITING_APPROVAL or message.kind != "freeform":
        return False
    return redraft_if_window_closed(store, message, now=now) in ("template", "withdrawn")


def redraft_if_window_closed(store: Repositories, message: OutboundMessage, *, now: datetime,
                             contact: Contact | None = None, at: datetime | None = None) -> str:
    """A waiting freeform draft whose client's window closed, drafted again in place as the step's template.

    A ``ready`` one (approved, then held by the sending actor past the window) goes back to waiting
    for approval as the template (:meth:`return_for_approval`, conditional on it still being ready).
    Returns ``open`` (the client wrote again: the window's end moved, the text kept), ``template``
    (redrafted, waiting for approval, same id), ``withdrawn`` (no template: cancelled and the
    follow-up paused for a person, as drafting does), ``stopped`` (no invoice left to remind of, or
    its records are gone) or ``changed`` (someone acted on it meanwhile). ``at``: when the window
    must still be open (the first moment it could be sent; default now).
    """
    contact = contact or store.contacts.get(message.contact_id or "")
    campaign = store.campaigns.get(message.campaign_id or "")
    if contact is None or campaign is None or message.step >= len(campaign.steps):
        stop_followup(store, message.followup_id or "", reason=StopReason.MISSING_DATA, now=now, needs_human=True)
        store.messages.cancel(message.id, reason=CancelReason.MISSING_DATA, now=now)
        return "stopped"
    if contact.last_inbound_at is not None and window_open(contact.last_inbound_at, at or now):
        if message.state != MessageState.AWAITING_APPROVAL:
            return "open"
        closes = utc(contact.last_inbound_at) + SERVICE_WINDOW
        moved = store.messages.replace_draft(message.model_copy(update={"window_closes_at": closes}),
                                             body_was=message.body, now=now)
        return "open" if moved else "changed"
    base: dict[str, Any] = message.model_dump(include={
        "id", "followup_id", "contact_id", "campaign_id", "step", "state", "language", "to", "timezone",
        "invoices", "invoices_key"})
    facts = None
    if campaign.about_invoices:
        about = reminder_invoices(store, campaign, contact.id)
        if not about.invoices:
            stop_followup(store, message.followup_id or "", reason=StopReason.PAID, now=now)
            return "stopped"
        facts = invoice_facts(about.invoices, contact.language)
        base.update(invoices=about.references, invoices_key=about.key)
    template = template_message(base, campaign.steps[message.step], contact, facts)
    if template is None:
        step = message.step
        store.followups.pause(
            message.followup_id or "", reason=PauseReason.AWAITING_CUSTOMER_WINDOW, until=None, now=now, step=step,
            expected=(FollowUpState.AWAITING_SEND,),
            needs_human=f"step {step + 1} waited for approval past the client's 24-hour window and has no "
                        "approved template",
        )
        withdrawn = store.messages.cancel(message.id, reason=CancelReason.after_pause(
            PauseReason.AWAITING_CUSTOMER_WINDOW), now=now)
        log.info("message=%s withdrawn: its 24-hour window closed while it waited, and no template", message.id)
        return "withdrawn" if withdrawn else "changed"
    if message.state == MessageState.READY:
        if not store.messages.return_for_approval(template, now=now):
            return "changed"
        log.info("message=%s back to approval as its template: held past the client's 24-hour window", message.id)
        return "template"
    if not store.messages.replace_draft(template, body_was=message.body, now=now):
        return "changed"
    log.info("message=%s drafted again as its template: the 24-hour window closed while it waited", message.id)
    return "template"
