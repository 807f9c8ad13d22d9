"""Drafting a step: the message for one step of one follow-up, stored and handed to sending.

Inside WhatsApp's 24-hour window the message is freeform text drafted by Gemini (checked
against the contact's facts, replaced by the offline draft when it fails); outside it, the
step's approved Content template is filled from the contact's fields. A step without a
template outside the window is never sent freeform: the follow-up is paused and flagged.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared.clock import utc
from shared.domain.models import Campaign, Contact, FollowUp, OutboundMessage, Step, message_id_for
from shared.domain.reasons import HandOverReason, PauseReason, StopReason
from shared.domain.records import DraftClaim
from shared.domain.states import FollowUpState, MessageState
from shared.domain.templates import render_preview, template_variables
from shared.language.invoice_text import invoice_facts
from shared.policy import SERVICE_WINDOW, in_service_window
from shared.ports import DraftRequest, HistoryItem
from shared.usecases.cadence import stop_followup, withdraw_dead_draft
from shared.usecases.context import App
from shared.usecases.invoice_reminders import ReminderInvoices, contact_facts, reminder_invoices

log = logging.getLogger(__name__)
# A scheduler's claim this recent spares drafting the follow-up's read: it was queued at this step
# then. An older one (a backlog, a redelivery) is checked against the follow-up first, so that a
# step that moved on long ago costs no Gemini call.
CLAIM_FRESH_FOR = timedelta(minutes=2)


@dataclass(frozen=True)
class DraftTarget:
    """One step of one follow-up to draft: what drafting needs of the follow-up."""

    id: str
    step: int
    contact_id: str
    campaign_id: str
    drafted_step: int | None


def compose_message(deps: App, followup: FollowUp | DraftTarget, campaign: Campaign, contact: Contact,
                    about: ReminderInvoices | None = None) -> OutboundMessage | None:
    """Build the step's message (not stored); None when WhatsApp's rules forbid any message now.

    ``about``: an invoice campaign's covered invoices; the message is drafted from them (and the
    contact's other fields), and records what it states so that sending can check it again.
    """
    step = campaign.steps[followup.step]
    now = deps.clock.now()
    base: dict[str, Any] = {
        "id": message_id_for(followup.id, followup.step), "followup_id": followup.id,
        "contact_id": contact.id, "campaign_id": campaign.id, "step": followup.step,
        "state": MessageState.AWAITING_APPROVAL if campaign.needs_approval else MessageState.READY,
        "language": contact.language,
        # What the sending actor needs of the contact, so that it does not read it again.
        "to": contact.phone, "timezone": contact.timezone,
    }
    facts = dict(contact.fields)
    invoice_facts_: dict[str, str] | None = None
    if about is not None:
        invoice_facts_ = invoice_facts(about.invoices, contact.language)
        facts = {**contact_facts(contact), **invoice_facts_}
        base.update(invoices=about.references, invoices_key=about.key)
    if in_service_window(contact, now):
        history = tuple(HistoryItem(direction=entry.direction, body=entry.body, at=entry.at)
                        for entry in deps.store.messages.conversation(contact.id, limit=10))
        request = DraftRequest(
            contact_name=contact.name, language=contact.language, facts=facts,
            step_index=followup.step, step_count=len(campaign.steps), tone=step.tone,
            business_name=deps.rules.business_name, campaign_name=campaign.name,
            max_chars=deps.rules.max_message_chars, history=history,
            campaign_description=campaign.description,
        )
        draft = deps.drafter.draft(request)
        closes = utc(contact.last_inbound_at) + SERVICE_WINDOW if contact.last_inbound_at else None
        return OutboundMessage(**base, kind="freeform", body=draft.body, draft_source=draft.source,
                               fallback_reason=draft.fallback_reason, window_closes_at=closes)
    return template_message(base, step, contact, invoice_facts_)


def template_message(base: dict[str, Any], step: Step, contact: Contact, invoice_facts_: dict[str, str] | None
                     ) -> OutboundMessage | None:
    """The step's approved Content template filled for ``contact`` (None: the step has none)."""
    if step.template is None:
        return None
    variables = template_variables(step.template, contact, invoice_facts_)
    return OutboundMessage(**base, kind="template", body=render_preview(step.template, contact, variables),
                           content_sid=step.template.content_sid, content_variables=variables,
                           draft_source="template")


def draft_followup(deps: App, followup_id: str, step: int,
                   claim: DraftClaim | Mapping[str, Any] | None = None) -> str | None:
    """Draft step ``step`` of a follow-up; returns the message id, or None if there is nothing to do.

    Idempotent: the message id is derived from (follow-up, step) and stored by a conditional
    insert, so a redelivered or concurrent run keeps the stored message instead of a second one.
    Reads the contact and campaign once each; the follow-up only without a fresh scheduler's
    ``claim`` (older dramatiq messages, the reconciler's requeues): with one, whether the
    follow-up still wants this step is decided by the conditional ``await_send`` after the draft
    (a draft for a follow-up stopped meanwhile is withdrawn, never handed to sending). The stored
    message is read only when this step was drafted before (``drafted_step``: queued again after
    a pause or a lost draft).
    """
    store, now = deps.store, deps.clock.now()
    followup = _claimed(followup_id, step, claim, now)
    if followup is None:
        followup = _read_followup(deps, followup_id, step, now)
        if followup is None:
            return None
    message_id = message_id_for(followup_id, step)
    existing = store.messages.get(message_id) if followup.drafted_step == step else None
    stored = existing.state if existing is not None else None
    # A draft a person rejected is never drafted again: its follow-up moves past that step (approvals.py).
    if existing is None or (existing.state == MessageState.CANCELLED and not existing.rejected_by):
        stored = _draft(deps, followup, existing)
        if stored is None:
            return None
    if store.followups.await_send(followup_id, step=step, now=now):
        # A draft waiting for a person's approval is handed to sending by the approval (approvals.py).
        if stored != MessageState.AWAITING_APPROVAL:
            deps.queue.send_message(message_id, contact_id=followup.contact_id)
        return message_id
    # The follow-up moved on while this step was drafted. A STOP or a pause cancels the contact's
    # ready messages, but it ran before this draft was stored: withdraw it, unless a concurrent
    # run of this step already handed it to sending.
    if withdraw_dead_draft(store, message_id, followup_id, step=step, now=deps.clock.now()):
        return None
    return message_id


def _claimed(followup_id: str, step: int, claim: DraftClaim | Mapping[str, Any] | None, now: datetime
             ) -> DraftTarget | None:
    """The step to draft as the scheduler's claim read it, if that claim is fresh (else None)."""
    read = claim if isinstance(claim, DraftClaim) else DraftClaim.from_json(claim)
    if read is None or abs(utc(now) - utc(read.claimed_at)) > CLAIM_FRESH_FOR:
        return None
    return DraftTarget(id=followup_id, step=step, contact_id=read.contact_id, campaign_id=read.campaign_id,
                       drafted_step=read.drafted_step)


def _read_followup(deps: App, followup_id: str, step: int, now: datetime) -> DraftTarget | None:
    """The step to draft as the follow-up says, or None (handled) when it no longer wants it."""
    followup = deps.store.followups.get(followup_id)
    if followup is None or followup.step != step or followup.state not in (
        FollowUpState.QUEUED, FollowUpState.DRAFTING
    ):
        log.info("draft skipped followup=%s step=%s (state moved on)", followup_id, step)
        # A run that died after storing its draft may have left it ready for a follow-up gone since.
        withdraw_dead_draft(deps.store, message_id_for(followup_id, step), followup_id, step=step, now=now)
        return None
    return DraftTarget(id=followup.id, step=followup.step, contact_id=followup.contact_id,
                       campaign_id=followup.campaign_id, drafted_step=followup.drafted_step)


def _draft(deps: App, followup: DraftTarget, existing: OutboundMessage | None) -> MessageState | None:
    """Compose and store the step's message: its state (ready, or awaiting approval); None when the
    follow-up was stopped or paused instead.

    Stored once: the insert is conditional on the message id, and a cancelled draft is replaced
    only while cancelled. A run that finds the message stored by another (a concurrent run, one
    that died before moving the follow-up on) keeps that one.
    """
    store, now, step = deps.store, deps.clock.now(), followup.step
    contact = store.contacts.get(followup.contact_id)
    campaign = store.campaigns.get(followup.campaign_id)  # cached in workers: a pause is on the follow-up
    if contact is None or campaign is None or step >= len(campaign.steps):
        stop_followup(store, followup.id, reason=StopReason.MISSING_DATA, now=now, needs_human=True,
                      detail=HandOverReason.MISSING_DATA)
        return None
    if contact.opted_out:
        stop_followup(store, followup.id, reason=StopReason.OPT_OUT, now=now)
        return None
    about = None
    if campaign.about_invoices:
        about = reminder_invoices(store, campaign, contact.id)
        if not about.invoices:
            stop_followup(store, followup.id, reason=StopReason.PAID, now=now)
            log.info("followup=%s stopped at step %s: no unpaid invoice left", followup.id, step)
            return None
    message = compose_message(deps, followup, campaign, contact, about)
    if message is None:
        store.followups.pause(
            followup.id, reason=PauseReason.AWAITING_CUSTOMER_WINDOW, until=None, now=now, step=step,
            expected=(FollowUpState.QUEUED, FollowUpState.DRAFTING),
            needs_human=f"step {step + 1} has no approved template and the contact has not written in the "
                        "last 24 h",
        )
        log.warning("followup=%s step=%s paused: outside 24h window and no template", followup.id, step)
        return None
    if existing is not None:
        stored = store.messages.redraft(message, now)
    else:
        stored = store.messages.insert(message, now) or store.messages.redraft(message, now)
    if stored:
        log.info("drafted message=%s kind=%s source=%s fallback=%s state=%s", message.id, message.kind,
                 message.draft_source, message.fallback_reason, message.state.value)
    return message.state
