"""Campaigns as an operator drives them: create, enrol, pause, resume, list, and the counts by state.

What the CLI (``relance campaigns …``, ``relance status``) calls, and what a web console will
call. Reading and checking a campaign file is :mod:`shared.campaign_files`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from shared.campaign_files import (
    campaign_from_data,
    check_campaign_against_contacts,
    field_issues,
    field_uses,
    issue_reason,
    load_campaign,
    selects,
    who,
)
from shared.domain.invoices import REMINDED, Invoice, covered_invoices, overdue_invoices
from shared.domain.models import Campaign, FollowUp
from shared.domain.reasons import CancelReason, PauseReason, StopReason
from shared.domain.records import Enrolment
from shared.domain.repositories import Repositories
from shared.domain.states import RUNNING, FollowUpState
from shared.errors import Conflict, InputError, NotFound
from shared.policy import step_due_at
from shared.usecases import audit
from shared.usecases.invoice_reminders import with_oldest_due_date

log = logging.getLogger(__name__)

# Follow-ups written per insert when enrolling.
ENROL_BATCH = 1000
# Ended follow-ups read per query when looking for clients to enrol again.
ENDED_PAGE = 1000


def create_campaign(store: Repositories, source: Path | Campaign | dict[str, Any], *, now: datetime,
                    label: str | None = None, by: str | None = None) -> Campaign:
    """Store a campaign (a file's path, a validated Campaign, or a file's content as parsed JSON) after checking
    it against the contacts it selects; ``by``: who, written to the audit log.

    InputError (and nothing stored) when the file is invalid, the id exists already, or a
    selected contact lacks a field the campaign uses. ``label`` names the source in errors
    (default: the file's name, or the campaign's id).
    """
    if isinstance(source, Campaign):
        campaign, label = source, label or source.id
    elif isinstance(source, dict):
        label = label or "campaign"
        campaign = campaign_from_data(source, label)
    else:
        path = Path(source)
        campaign, label = load_campaign(path), label or path.name
    if store.campaigns.get(campaign.id) is not None:
        raise Conflict(f"{label}: campaign {campaign.id!r} already exists "
                         "(choose another id, see `relance campaigns list`)")
    contacts = store.contacts.find(tags=campaign.enrol.tags or None, equals=campaign.enrol.filter or None)
    problems = check_campaign_against_contacts(campaign, contacts)
    if problems:
        raise InputError(f"{label}: campaign {campaign.id!r} does not fit the contacts it "
                         f"enrols ({len(contacts)} selected); nothing was created:\n  "
                         + "\n  ".join(problems))
    if not store.campaigns.create(campaign, now):
        raise Conflict(f"{label}: campaign {campaign.id!r} already exists")
    log.info("campaign %s created: %d step(s), %d contact(s) selected",
             campaign.id, len(campaign.steps), len(contacts))
    if by:
        audit.record(store, by=by, action="campaign.create", target=campaign.id,
                     detail=f"{len(campaign.steps)} step(s)", now=now)
    return campaign


@dataclass
class EnrolReport:
    """What an enrolment did: new enrolments, ones that existed, and skipped contacts with why."""

    enrolled: int = 0  # re-enrolled ones included
    already_enrolled: int = 0
    skipped: list[str] = field(default_factory=list)
    reenrolled: int = 0  # invoice campaigns: clients enrolled again after their follow-up stopped as paid


def enrol_campaign(
    store: Repositories, campaign_id: str, *, now: datetime, tags: list[str] | None = None, by: str | None = None
) -> EnrolReport:
    """Enrol every contact the campaign's rule (plus ``tags``) selects, at step 0.

    Idempotent: a contact already enrolled is counted, never enrolled twice. Opted-out
    contacts and contacts lacking a field the campaign uses are skipped, with the reason. An
    invoice campaign enrols only the clients owing an invoice it selects that is overdue by its
    ``overdue_days`` (its first step may be anchored on their oldest due date), and enrols again
    a client whose follow-up there ended stopped as paid (:func:`_enrol_again`).
    The contacts are read in one query and enrolled ENROL_BATCH at a time, in one write each.
    """
    campaign = _campaign(store, campaign_id)
    wanted = list(dict.fromkeys([*campaign.enrol.tags, *(tags or [])]))
    contacts = store.contacts.find(tags=wanted or None, equals=campaign.enrol.filter or None)
    owed = _overdue_by_client(store, campaign, now) if campaign.about_invoices else None
    uses = field_uses(campaign)
    report = EnrolReport()
    batch: list[Enrolment] = []
    refused: list[Enrolment] = []  # enrolled already (an invoice campaign may enrol them again)
    for contact in contacts:
        if not selects(campaign, contact, wanted):
            continue
        if owed is not None:
            if contact.id not in owed:
                continue  # owes nothing this campaign reminds of (yet)
            contact = with_oldest_due_date(contact, owed[contact.id])
        if contact.opted_out:
            report.skipped.append(f"contact {who(contact)} opted out")
            continue
        issues = field_issues(campaign, contact)
        if issues:
            reasons = [issue_reason(contact, key, kind, ", ".join(uses.get(key, ["the campaign"])))
                       for key, kind in issues]
            report.skipped.append(f"contact {who(contact)} " + "; ".join(reasons))
            continue
        next_run_at = step_due_at(campaign=campaign, step_index=0, contact=contact, enrolled_at=now,
                                  previous_sent_at=None, now=now)
        batch.append(Enrolment(contact.id, campaign.id, next_run_at))
        if len(batch) >= ENROL_BATCH:
            refused += _enrol(store, batch, report, now=now)
    refused += _enrol(store, batch, report, now=now)
    if campaign.about_invoices and refused:
        _enrol_again(store, campaign, refused, report, now=now)
    log.info("campaign %s enrolment: %d enrolled (%d again), %d already, %d skipped",
             campaign.id, report.enrolled, report.reenrolled, report.already_enrolled, len(report.skipped))
    if by:  # ``by``: who asked, written to the audit log
        audit.record(store, by=by, action="campaign.enrol", target=campaign.id,
                     detail=f"{report.enrolled} enrolled, {len(report.skipped)} skipped", now=now)
    return report


def enrol_invoice_campaigns(store: Repositories, *, now: datetime) -> dict[str, EnrolReport]:
    """Enrol, in every active invoice campaign, the clients it selects now (idempotent): what an
    invoices import runs after it, so that a nightly import keeps the campaigns up to date."""
    return {campaign.id: enrol_campaign(store, campaign.id, now=now) for campaign in _active_campaigns(store)
            if campaign.about_invoices}


def _active_campaigns(store: Repositories) -> list[Campaign]:
    """The active campaigns the code can read (one stored by a broken hand edit is logged and left out)."""
    found: list[Campaign] = []
    for campaign_id in store.campaigns.active_ids():
        try:
            campaign = store.campaigns.get(campaign_id)
        except ValueError as exc:  # pydantic's ValidationError: the stored record is not a campaign any more
            log.warning("campaign %s cannot be read (%s): left out of the invoice enrolment", campaign_id,
                        type(exc).__name__)
            continue
        if campaign is not None:
            found.append(campaign)
    return found


def _overdue_by_client(store: Repositories, campaign: Campaign, now: datetime) -> dict[str, list[Invoice]]:
    """Each client owing an invoice the campaign reminds of now → its covered invoices (one query)."""
    selector = campaign.enrol.invoices
    assert selector is not None
    unpaid: dict[str, list[Invoice]] = {}
    for invoice in store.invoices.find(statuses=REMINDED):
        unpaid.setdefault(invoice.contact_id, []).append(invoice)
    today = now.date()
    return {client: covered_invoices(selector, invoices) for client, invoices in unpaid.items()
            if overdue_invoices(selector, invoices, today)}


def _enrol(store: Repositories, batch: list[Enrolment], report: EnrolReport, *, now: datetime) -> list[Enrolment]:
    """Enrol the batch in one write, count what it did, and empty it; the enrolments refused (there already)."""
    if not batch:
        return []
    done = store.followups.enrol_many(batch, now=now)
    refused = [enrolment for enrolment, stored in zip(batch, done, strict=True) if not stored]
    report.enrolled += len(batch) - len(refused)
    report.already_enrolled += len(refused)
    batch.clear()
    return refused


def _latest_ended(store: Repositories, campaign_id: str) -> dict[str, FollowUp]:
    """The campaign's latest stopped follow-up of each contact (the highest generation), read by pages."""
    latest: dict[str, FollowUp] = {}
    after: str | None = None
    while True:
        page = store.followups.page(campaign_id=campaign_id, state=FollowUpState.STOPPED, after=after,
                                    limit=ENDED_PAGE)
        for followup in page:
            known = latest.get(followup.contact_id)
            if known is None or followup.generation > known.generation:
                latest[followup.contact_id] = followup
        if len(page) < ENDED_PAGE:
            return latest
        after = page[-1].id


def _enrol_again(store: Repositories, campaign: Campaign, refused: list[Enrolment], report: EnrolReport, *,
                 now: datetime) -> None:
    """Enrol again, in an invoice campaign, the clients it selects whose latest follow-up there stopped as
    paid: they owe again (a new overdue invoice, a refund reopening one).

    The new follow-up's id has the next generation (``<campaign>:<contact>:<n>``), so two enrolments at
    once store one, and one whose next generation exists (running, or ended otherwise) stores none:
    never two running for a client in a campaign. A follow-up stopped for another reason (a dispute, a
    person's stop, a wrong number…), or a client with a hand-over still open, is left to a person.
    """
    ended = _latest_ended(store, campaign.id)
    again: list[Enrolment] = []
    for enrolment in refused:
        latest = ended.get(enrolment.contact_id)
        if latest is None or latest.stop_reason != StopReason.PAID.value or latest.needs_human:
            continue
        if any(other.needs_human for other in store.followups.summaries_of_contact(enrolment.contact_id)):
            continue  # a hand-over still open (in any campaign): a person decides
        again.append(Enrolment(enrolment.contact_id, campaign.id, enrolment.next_run_at,
                               generation=latest.generation + 1))
    if not again:
        return
    enrolled = sum(store.followups.enrol_many(again, now=now))
    report.enrolled += enrolled
    report.reenrolled += enrolled
    report.already_enrolled -= enrolled


@dataclass(frozen=True)
class StatusChange:
    """What pausing or resuming a campaign did."""

    campaign_id: str
    status: str  # "active" or "paused"
    changed: bool  # False: it already had that status
    resumed: int = 0  # follow-ups rescheduled by a resume
    paused: int = 0  # follow-ups paused by a pause


def pause_campaign(store: Repositories, campaign_id: str, *, now: datetime, by: str | None = None) -> StatusChange:
    """Pause a campaign and, with it, each of its running follow-ups (idempotent).

    The follow-ups carry the pause (``paused``, reason ``campaign_paused``, at their step), never
    a campaign an actor may have cached. Then the campaign's ready step drafts are cancelled (the
    sending actor reads no follow-up: a cancelled message is what it cannot send); the resume
    drafts each step again, sent once. A template re-send (63016) is kept: the sending actor reads
    its follow-up and waits for the resume. The campaign's status goes first, so that no
    scheduler claims its follow-ups while they are being paused.
    """
    _campaign(store, campaign_id)
    changed = store.campaigns.set_status(campaign_id, "paused", now)
    paused = sum(1 for followup_id in store.followups.running_in_campaign(campaign_id)
                 if store.followups.pause(followup_id, reason=PauseReason.CAMPAIGN_PAUSED, now=now, expected=RUNNING))
    store.messages.cancel_ready_drafts_of_campaign(
        campaign_id, reason=CancelReason.after_pause(PauseReason.CAMPAIGN_PAUSED), now=now)
    log.info("campaign %s paused: %d follow-up(s) paused with it", campaign_id, paused)
    if by and changed:  # ``by``: who, written to the audit log
        audit.record(store, by=by, action="campaign.pause", target=campaign_id, detail=f"{paused} paused", now=now)
    return StatusChange(campaign_id, "paused", changed, paused=paused)


def resume_campaign(store: Repositories, campaign_id: str, *, now: datetime, by: str | None = None) -> StatusChange:
    """Resume a campaign; the follow-ups paused with it go back to scheduled, due now (idempotent):
    each step is drafted again (its draft was cancelled by the pause) and sent once.

    Only those: a follow-up paused for its contact (a promise to pay, a hand-over) stays paused.
    Run again on an active campaign, it resumes what an interrupted resume left paused.
    """
    _campaign(store, campaign_id)
    changed = store.campaigns.set_status(campaign_id, "active", now)
    resumed = resume_followups(store, campaign_id, now=now)
    log.info("campaign %s resumed: %d follow-up(s) rescheduled", campaign_id, resumed)
    if by and changed:  # ``by``: who, written to the audit log
        audit.record(store, by=by, action="campaign.resume", target=campaign_id, detail=f"{resumed} resumed",
                     now=now)
    return StatusChange(campaign_id, "active", changed, resumed)


def resume_followups(store: Repositories, campaign_id: str, *, now: datetime) -> int:
    """Follow-ups paused because their campaign was paused go back to scheduled, due now; how many."""
    return sum(1 for followup_id in store.followups.paused_with_campaign(campaign_id)
               if store.followups.resume(followup_id, now=now))


@dataclass(frozen=True)
class CampaignLine:
    """A campaign and how many contacts it enrolled."""

    campaign: Campaign
    enrolled: int


def list_campaigns(store: Repositories) -> list[CampaignLine]:
    """Every campaign, by id, with its follow-up count."""
    return [CampaignLine(campaign, store.followups.count(campaign.id)) for campaign in store.campaigns.all()]


@dataclass(frozen=True)
class CampaignProgress:
    """A campaign and where its follow-ups stand: counted by state, and how many wait for a person."""

    campaign: Campaign
    enrolled: int
    by_state: dict[str, int]
    needs_human: int


def campaign_progress(store: Repositories, campaign_id: str) -> CampaignProgress:
    """A campaign's follow-ups counted by state (NotFound for an unknown campaign): counted in the store."""
    return _progress(store, _campaign(store, campaign_id))


def campaigns_progress(store: Repositories) -> list[CampaignProgress]:
    """Every campaign, by id, with :func:`campaign_progress` (one count in the store per campaign, nothing else)."""
    return [_progress(store, campaign) for campaign in store.campaigns.all()]


def _progress(store: Repositories, campaign: Campaign) -> CampaignProgress:
    by_state, needs_human = store.followups.campaign_counts(campaign.id)
    return CampaignProgress(campaign, sum(by_state.values()), dict(sorted(by_state.items())), needs_human)


def counts_by_state(store: Repositories) -> dict[str, dict[str, int]]:
    """Follow-ups and messages counted by state (``relance status``)."""
    return {"followups": store.followups.count_by_state(), "messages": store.messages.count_by_state()}


def _campaign(store: Repositories, campaign_id: str) -> Campaign:
    campaign = store.campaigns.get(campaign_id)
    if campaign is None:
        raise NotFound(f"no campaign {campaign_id!r}: see `relance campaigns list`", code="campaign.unknown",
                       campaign=campaign_id)
    return campaign
