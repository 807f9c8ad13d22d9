"""The repository interfaces: one per aggregate, and the bundle every entry point receives.

Two implementations honour them with the same semantics (tests/contract checks both): MongoDB
(:mod:`shared.adapters.mongo`) and in-memory twins (:mod:`shared.adapters.memory`) for
use-case tests without a server. Every state change is a named conditional transition (see
:mod:`shared.domain.states`) that returns whether this caller made it, so that of two
concurrent callers one wins; a redelivered actor message finds the work done. Every store
failure is raised as :class:`~shared.errors.TransientError` (an outage: retried) or
:class:`~shared.errors.StoreError`, never as a driver's own exception.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

# Defined beside the invoice model; one of the repository interfaces all the same.
from shared.domain.api_keys import ApiKeyRepository, IdempotencyRepository
from shared.domain.audit import AuditRepository
from shared.domain.hooks import HookRepository as HookRepository
from shared.domain.invoices import InvoiceRepository as InvoiceRepository
from shared.domain.models import Campaign, Contact, FollowUp, OutboundMessage
from shared.domain.reasons import CancelReason, PauseReason, StopReason
from shared.domain.records import (
    ContactName,
    ContactRecord,
    ConversationEntry,
    DraftKeeper,
    Enrolment,
    FollowUpRef,
    FollowUpSummary,
    InboundRecord,
    JobRun,
    MessageSummary,
    ReadyMessage,
    StaleFollowUp,
    StoredEvent,
    WaitingEvent,
)
from shared.domain.reports import ReportRepository
from shared.domain.states import FollowUpState, MessageState
from shared.domain.users import LoginThrottleRepository, SessionRepository, UserRepository

Upserted = Literal["inserted", "updated", "unchanged"]
EventDoc = dict[str, Any]


class ContactRepository(Protocol):
    """Clients of the business, unique by phone."""

    def upsert(self, contact: Contact, now: datetime) -> Upserted:
        """Insert or update by phone; an import of the same data twice changes nothing."""

    def get(self, contact_id: str) -> Contact | None:
        """A contact by id (pydantic's ValidationError for a record the model refuses)."""

    def by_phone(self, phone: str) -> Contact | None:
        """A contact by E.164 phone."""

    def find(self, *, tags: list[str] | None = None, equals: dict[str, str] | None = None,
             after: str | None = None, limit: int = 0) -> list[Contact]:
        """Contacts having all ``tags`` and whose fields equal ``equals``, by id (after ``after``, at most
        ``limit`` of them; 0: all)."""

    def names(self, *, prefix: str = "", phone_prefixes: Sequence[str] = ()) -> list[ContactName]:
        """The contacts whose name key (:func:`shared.language.text.name_key`) starts with ``prefix`` or whose
        phone starts with one of ``phone_prefixes`` (every contact when both are empty), by name key then id.

        Only the key, the id and the opt-out are read; an index on the name key answers a prefix."""

    def get_many(self, contact_ids: Sequence[str]) -> list[Contact]:
        """The contacts with these ids that exist, in the order of ``contact_ids``."""

    def record(self, contact_id: str) -> ContactRecord | None:
        """A contact as stored, even one the model refuses."""

    def records(self, contact_ids: Sequence[str]) -> list[ContactRecord]:
        """The contacts with these ids that exist, as stored (even those the model refuses), in that order."""

    def record_by_phone(self, phone: str) -> ContactRecord | None:
        """A contact by phone as stored, even one the model refuses."""

    def set_opt_out(self, contact_id: str, opted_out: bool, now: datetime) -> bool:
        """Record an opt-out (or a re-subscription); True if it changed."""

    def touch_inbound(self, contact_id: str, at: datetime) -> None:
        """Open the 24-hour window: the contact's latest message time (only moves forward)."""

    def count(self) -> int:
        """How many contacts are stored (an estimate is enough)."""


class CampaignRepository(Protocol):
    """Follow-up cadences."""

    def create(self, campaign: Campaign, now: datetime) -> bool:
        """Store a new campaign; False when one with this id exists."""

    def get(self, campaign_id: str) -> Campaign | None:
        """A campaign by id."""

    def all(self) -> list[Campaign]:
        """Every campaign, by id."""

    def set_status(self, campaign_id: str, status: Literal["active", "paused"], now: datetime) -> bool:
        """Pause or resume a campaign; True if it changed."""

    def active_ids(self) -> list[str]:
        """Ids of the campaigns that are not paused."""


ExpectedFollowUp = FollowUpState | Iterable[FollowUpState] | None


class FollowUpRepository(Protocol):
    """One contact enrolled in one campaign (``<campaign id>:<contact id>``)."""

    def enrol(self, *, contact_id: str, campaign_id: str, next_run_at: datetime, now: datetime) -> bool:
        """Enrol at step 0, scheduled; False if already enrolled."""

    def enrol_many(self, enrolments: Sequence[Enrolment], *, now: datetime) -> list[bool]:
        """:meth:`enrol` many contacts in one write; for each, whether this call enrolled it.

        Idempotent: a contact already enrolled (or twice in ``enrolments``) is False, the
        others are enrolled all the same. An enrolment's ``generation`` (0: the first) is part of
        the follow-up's id: each generation is stored once.
        """

    def get(self, followup_id: str) -> FollowUp | None:
        """A follow-up by id."""

    def page(self, *, campaign_id: str | None = None, state: FollowUpState | None = None, after: str | None = None,
             limit: int = 50) -> list[FollowUp]:
        """Up to ``limit`` follow-ups (of a campaign, in a state) whose id sorts after ``after``, by id."""

    def of_contact(self, contact_id: str, states: Iterable[FollowUpState]) -> list[FollowUp]:
        """A contact's follow-ups in the given states."""

    def keeper(self, followup_id: str) -> DraftKeeper | None:
        """What decides whether the follow-up still wants a drafted message."""

    def keepers(self, followup_ids: Iterable[str]) -> dict[str, DraftKeeper]:
        """:meth:`keeper` of many follow-ups, by id (those that exist), in one read."""

    # ------------------------------------------------------------ the scheduler's scans
    def due(self, now: datetime, campaign_ids: Sequence[str], limit: int) -> list[FollowUpRef]:
        """Scheduled follow-ups of these campaigns due by ``now``, earliest first."""

    def claim(self, followup_ids: Sequence[str], now: datetime) -> list[FollowUpRef]:
        """``scheduled → queued`` for those still scheduled and due; the ones this caller claimed, each
        with its contact, campaign and ``drafted_step`` (what drafting needs: :class:`DraftClaim`)."""

    def stale(self, states: Sequence[FollowUpState], before: datetime, limit: int) -> list[StaleFollowUp]:
        """Follow-ups sitting in one of ``states`` since before ``before``."""

    def touch_stale(self, followup_id: str, *, state: FollowUpState, changed_at: datetime, now: datetime,
                    requeued: bool = True) -> bool:
        """Claim a stale follow-up (unchanged since ``changed_at``): not stale again for a while."""

    def resume_ended_pauses(self, now: datetime, limit: int) -> list[str]:
        """Paused follow-ups whose pause has ended go back to scheduled; their ids."""

    def paused_with_campaign(self, campaign_id: str) -> list[str]:
        """Ids of the campaign's follow-ups paused because the campaign was paused."""

    def running_in_campaign(self, campaign_id: str) -> list[str]:
        """Ids of the campaign's running follow-ups (scheduled, queued, drafting, awaiting_send), by id."""

    # ------------------------------------------------------------ named transitions
    def start_drafting(self, followup_id: str, *, step: int, now: datetime) -> bool:
        """``queued → drafting`` at ``step``."""

    def await_send(self, followup_id: str, *, step: int, now: datetime) -> bool:
        """``queued|drafting → awaiting_send`` at ``step``: its message is stored (``drafted_step`` records it)."""

    def draft_again(self, followup_id: str, *, step: int, now: datetime) -> bool:
        """``awaiting_send → queued`` at ``step``: its draft was lost."""

    def schedule_next(self, followup_id: str, *, step: int, due: datetime, sent_at: datetime, now: datetime) -> bool:
        """``awaiting_send → scheduled`` at ``step + 1``, due at ``due``: step ``step`` went out at ``sent_at``."""

    def complete(self, followup_id: str, *, step: int, sent_at: datetime, now: datetime) -> bool:
        """``awaiting_send → completed``: the last step (``step``) went out at ``sent_at``."""

    def pause(self, followup_id: str, *, reason: PauseReason, now: datetime, until: datetime | None = None,
              needs_human: str | None = None, expected: ExpectedFollowUp = None, step: int | None = None) -> bool:
        """``→ paused`` for ``reason`` until ``until`` (None: until resumed); ``needs_human``: flag it, so."""

    def resume(self, followup_id: str, *, now: datetime) -> bool:
        """``paused → scheduled``, due now, its pause forgotten (the step is drafted afresh)."""

    def stop(self, followup_id: str, *, reason: StopReason, now: datetime, needs_human: str | None = None,
             expected: ExpectedFollowUp = None) -> bool:
        """``→ stopped`` for ``reason``; ``needs_human``: flag it with that reason."""

    # ------------------------------------------------------------ hand-overs and promises
    def flag(self, followup_id: str, *, reason: str, now: datetime) -> None:
        """Flag a follow-up for a person, whatever its state."""

    def flag_contact(self, contact_id: str, *, reason: str, now: datetime, finished: bool = False) -> int:
        """Flag the contact's open follow-ups (``finished``: its completed ones instead); how many."""

    def flag_completed(self, followup_id: str, *, reason: str, now: datetime) -> bool:
        """Flag a completed follow-up for a person; True when it is completed."""

    def claim_hand_over(self, contact_id: str, *, inbound_sid: str, now: datetime) -> bool:
        """Tie the contact's open hand-over to ``inbound_sid`` unless another message holds it; whether it does."""

    def open_hand_over(self, contact_id: str) -> str | None:
        """The inbound SID holding the contact's open hand-over, if any."""

    def clear_hand_over(self, contact_id: str, *, action: str, now: datetime) -> int:
        """A person dealt with the contact: unflag its follow-ups, noting ``action``; how many."""

    def promise_sids(self, contact_id: str) -> list[set[str]]:
        """For each of the contact's follow-ups with promises to pay: the inbound SIDs that made them."""

    def record_promise(self, contact_id: str, *, inbound_sid: str, promised: str, capped_to: str | None,
                       now: datetime) -> int:
        """Note a promise on the follow-ups it paused (a set: twice counts once); how many."""

    # ------------------------------------------------------------ for people
    def summaries_of_contact(self, contact_id: str) -> list[FollowUpSummary]:
        """The contact's follow-ups, by campaign."""

    def summaries_of_contacts(self, contact_ids: Sequence[str]) -> list[FollowUpSummary]:
        """The follow-ups of these contacts (one read), by contact id then campaign."""

    def recent_summaries(self, *, needs_human: bool, limit: int) -> list[FollowUpSummary]:
        """The most recently changed follow-ups (only those flagged, with ``needs_human``)."""

    def count(self, campaign_id: str | None = None) -> int:
        """How many follow-ups (of one campaign)."""

    def count_by_state(self) -> dict[str, int]:
        """Follow-ups counted by state."""

    def count_handovers_waiting(self) -> int:
        """How many contacts have a follow-up flagged for a person (a hand-over not handled yet)."""

    def campaign_counts(self, campaign_id: str) -> tuple[dict[str, int], int]:
        """One campaign's follow-ups counted by state, and how many of them are flagged for a person."""


class MessageRepository(Protocol):
    """Messages out (follow-up steps, replies, owner alerts) and in (``in:<MessageSid>``)."""

    def insert(self, message: OutboundMessage, now: datetime) -> bool:
        """Store a drafted message once; False when its id exists."""

    def get(self, message_id: str) -> OutboundMessage | None:
        """An outbound message by id."""

    def by_sid(self, sid: str) -> OutboundMessage | None:
        """The outbound message Twilio knows as ``sid``."""

    def page(self, *, state: MessageState | None = None, campaign_id: str | None = None,
             contact_id: str | None = None, after: str | None = None, limit: int = 50) -> list[OutboundMessage]:
        """Up to ``limit`` outbound messages (in a state, of a campaign, to a contact) whose id sorts after
        ``after``, by id."""

    def followup_id_by_sid(self, sid: str) -> str | None:
        """The follow-up of the message Twilio knows as ``sid`` (read raw, whatever the message holds)."""

    def known_sids(self, sids: Iterable[str]) -> set[str]:
        """Which of these Twilio SIDs a stored message has."""

    # ------------------------------------------------------------ named transitions
    def redraft(self, message: OutboundMessage, now: datetime) -> bool:
        """``cancelled → ready`` with a new draft (never for a message Twilio has); ``cancelled →
        awaiting_approval`` when the new draft is in that state (its campaign wants a person's approval)."""

    def start_sending(self, message_id: str, *, now: datetime) -> bool:
        """``ready → sending``: only the caller that wins may call Twilio."""

    def mark_sent(self, message_id: str, *, sid: str, now: datetime) -> bool:
        """``sending|uncertain → sent`` with Twilio's SID."""

    def mark_failed(self, message_id: str, *, error_code: int | None, now: datetime) -> bool:
        """``sending → failed``: Twilio refused it for good."""

    def mark_uncertain(self, message_id: str, *, reason: str, now: datetime, error_code: int | None = None) -> bool:
        """``sending → uncertain``: Twilio may have it; reconciled before any new attempt."""

    def retry_later(self, message_id: str, *, error_code: int | None, now: datetime) -> bool:
        """``sending → ready``: Twilio did not take it and asked for a retry."""

    def send_again(self, message_id: str, *, now: datetime) -> bool:
        """``uncertain → ready``: no trace of it at Twilio."""

    def cancel(self, message_id: str, *, reason: CancelReason, now: datetime) -> bool:
        """``ready|awaiting_approval → cancelled``."""

    def approve(self, message_id: str, *, by: str, now: datetime) -> bool:
        """``awaiting_approval → ready``, approved by ``by`` (``approved_by``, ``approved_at``)."""

    def reject(self, message_id: str, *, by: str, reason: str, now: datetime) -> bool:
        """``awaiting_approval → cancelled`` (rejected), with ``rejected_by`` and ``rejection_reason``."""

    def return_for_approval(self, message: OutboundMessage, *, now: datetime) -> bool:
        """``ready → awaiting_approval``, rewritten in place with ``message``'s draft (kind, text, template): an
        approved freeform draft held past the client's 24-hour window goes back to a person as the template;
        ``approved_by``, ``approved_at`` and the hold are cleared. False when it is not ready (any more)."""

    def awaiting_approval(self, *, after: str | None, limit: int) -> list[OutboundMessage]:
        """Drafts waiting for a person's approval, by id, after ``after``."""

    def window_closed_drafts(self, now: datetime, limit: int) -> list[str]:
        """Freeform drafts waiting for approval whose client's window (``window_closes_at``) closed before ``now``."""

    def edit_draft(self, message_id: str, *, body: str, by: str, now: datetime) -> bool:
        """A new text for a freeform draft waiting for approval (``edited_by``); False when it is not one."""

    def replace_draft(self, message: OutboundMessage, *, body_was: str, now: datetime) -> bool:
        """Rewrite a freeform draft still waiting for approval with the text ``body_was`` by ``message``'s
        draft (kind, text, template, window), in place; False when it changed meanwhile."""

    def cancel_ready_steps(self, contact_id: str, *, reason: CancelReason, now: datetime) -> int:
        """Cancel the contact's ready messages (and drafts awaiting approval) but owner alerts; how many."""

    def cancel_ready_of_followup(self, followup_id: str, *, reason: CancelReason, now: datetime) -> int:
        """Cancel the follow-up's ready messages (its step's draft, a re-send) and its draft awaiting approval."""

    def cancel_ready_drafts_of_campaign(self, campaign_id: str, *, reason: CancelReason, now: datetime) -> int:
        """Cancel the campaign's ready (or awaiting approval) step drafts, re-sends (``resend_of``) aside; how many."""

    def apply_status(self, sid: str, status: str, error_code: int | None, now: datetime, *,
                     source: str = "callback", message_id: str | None = None) -> bool:
        """Apply a Twilio delivery status to the message with this SID, forward only; True when it changed.

        With ``message_id`` (a callback's ``mid``): one conditional update of that message, which
        adopts ``sid`` when it has none yet (``sending``/``uncertain``), never over another SID.
        """

    def hold(self, message_id: str, *, until: datetime, now: datetime) -> bool:
        """Keep a ready message for later (``not_before``)."""

    # ------------------------------------------------------------ the scheduler's scans
    def stale(self, state: MessageState, before: datetime, limit: int) -> list[str]:
        """Outbound messages sitting in ``state`` since before ``before``."""

    def stranded_ready(self, before: datetime, limit: int) -> list[ReadyMessage]:
        """Ready messages of any purpose left since before ``before``, hold ended, not enqueued again since."""

    def claim_requeue(self, message_id: str, *, before: datetime, now: datetime) -> bool:
        """True for one caller while the message is ready and not enqueued again since ``before``."""

    def unchecked_drafts(self, *, before: datetime, recheck_before: datetime, limit: int) -> list[ReadyMessage]:
        """Ready step messages stale since ``before`` and not checked since ``recheck_before``."""

    def mark_checked(self, message_id: str, *, now: datetime) -> None:
        """A ready step message found still wanted: not checked again for a while."""

    def uncertain_to_reconcile(self, asked_before: datetime, limit: int) -> list[str]:
        """Uncertain messages whose reconciliation was not asked for since ``asked_before``."""

    def claim_reconcile(self, message_id: str, *, asked_before: datetime, now: datetime) -> bool:
        """True for one caller while the message is uncertain and not asked about since ``asked_before``."""

    def awaiting_status(self, *, now: datetime, after: timedelta, recheck_before: datetime, give_up: timedelta,
                        limit: int) -> list[str]:
        """Messages still ``sent`` ``after`` their send (within ``give_up``), not polled since ``recheck_before``."""

    def claim_status_poll(self, message_id: str, *, recheck_before: datetime, now: datetime) -> bool:
        """True for one caller while the message is sent and not polled since ``recheck_before``."""

    # ------------------------------------------------------------ one contact's messages
    def send_times(self, contact_id: str, *, states: Iterable[MessageState], created_since: datetime
                   ) -> list[datetime]:
        """When the contact's step messages in ``states`` (created since ``created_since``) went out, or tried to."""

    def get_with_send_times(self, message_id: str, contact_id: str, *, states: Iterable[MessageState],
                            created_since: datetime) -> tuple[OutboundMessage | None, list[datetime]]:
        """:meth:`get` and :meth:`send_times` in one read of the contact's messages created since
        ``created_since`` (a message of another contact, or older, is then read by id)."""

    def count_replies_since(self, contact_id: str, since: datetime, *, besides: str) -> int:
        """Automated replies stored for the contact since ``since`` (cancelled ones and ``besides`` aside)."""

    def conversation(self, contact_id: str, limit: int = 20) -> list[ConversationEntry]:
        """The contact's latest messages, oldest first."""

    # ------------------------------------------------------------ inbound
    def insert_inbound(self, record: InboundRecord, at: datetime) -> bool:
        """Store an inbound message once; False when it is stored already."""

    def linked_followups(self, inbound_id: str) -> list[str]:
        """The follow-ups a stored inbound message answers."""

    def set_classification(self, inbound_id: str, classification: Mapping[str, Any]) -> None:
        """Keep how an inbound message was read."""

    def set_outcome(self, inbound_id: str, outcome: str) -> None:
        """Keep what was done about an inbound message."""

    # ------------------------------------------------------------ for people
    def summaries_of_contact(self, contact_id: str) -> list[MessageSummary]:
        """Every message in and out of a contact, oldest first."""

    def from_unknown(self, phone: str) -> list[MessageSummary]:
        """Messages from ``phone`` while it was no contact, oldest first."""

    def newest_from_unknown(self, limit: int) -> list[MessageSummary]:
        """The newest messages from numbers that were no contact."""

    def has_unknown(self, phone: str) -> bool:
        """Whether ``phone`` ever wrote while it was no contact."""

    def open_unknown_ids(self, phone: str) -> list[str]:
        """Messages from this unknown number no person has handled yet."""

    def mark_handled(self, message_ids: Sequence[str], now: datetime) -> int:
        """A person handled these messages from an unknown number; how many."""

    def answered_inbound(self) -> list[MessageSummary]:
        """Inbound messages that were read (classified, or an opt-out), oldest first."""

    def sent_after(self, contact_id: str, since: datetime) -> list[MessageSummary]:
        """Outbound messages handed to Twilio after ``since``, in that order."""

    def first_outbound(self, limit: int) -> list[MessageSummary]:
        """The oldest outbound messages."""

    def count(self, *, purpose: str | None = None, step: int | None = None,
              states: Iterable[MessageState] | None = None) -> int:
        """How many messages match."""

    def count_by_state(self) -> dict[str, int]:
        """Outbound messages counted by state."""

    def count_steps_by_state(self) -> dict[tuple[str, int], int]:
        """Follow-up step messages counted by (state, step)."""


class EventRepository(Protocol):
    """Webhook events (``inbound:<sid>``, ``status:<sid>:<status>``), each stored once, and pending notes."""

    def record(self, event_id: str, doc: EventDoc, now: datetime) -> bool:
        """Store an event once (its id is its dedupe key); False if already stored."""

    def record_many(self, events: Sequence[tuple[str, EventDoc]], now: datetime) -> list[bool]:
        """Store many at once, each once (with a pending note for those that wait); for each, whether stored now."""

    def get(self, event_id: str) -> StoredEvent | None:
        """A stored event."""

    def known_ids(self, event_ids: Iterable[str]) -> set[str]:
        """Which of these event ids are stored."""

    def unprocessed_inbound(self, phone: str, limit: int = 10) -> list[WaitingEvent]:
        """Inbound events from ``phone`` (E.164) stored but not processed yet, oldest first."""

    def sweep_notes(self, *, requeue_before: datetime, drop_before: datetime, limit: int) -> list[WaitingEvent]:
        """Drop finished pending notes; the events still waiting in notes written before ``requeue_before``."""

    def claim_requeue(self, event_id: str, now: datetime, every: timedelta) -> bool:
        """True for one caller per ``every`` while the event waits: that caller enqueues it."""

    def count_failure(self, event_id: str, error: str, now: datetime) -> int:
        """Count one failed processing of a waiting event; its failures so far (0: it no longer waits)."""

    def mark_processed(self, event_id: str, now: datetime) -> bool:
        """``received → processed``."""

    def mark_failed(self, event_id: str, now: datetime) -> bool:
        """``received → failed``: handed to a person."""

    def finish_action(self, event_id: str, *, action: str, now: datetime) -> bool:
        """A failed status acted on: ``received → processed``, its action ``done``."""

    def fail_action(self, event_id: str, *, action: str, now: datetime) -> bool:
        """A failed status handed to a person: ``received → failed``, its action ``failed``."""

    def count_waiting(self, kinds: Iterable[str], limit: int = 0) -> int:
        """Events of these kinds still waiting (at most ``limit``; 0: all)."""


class OwnerRepository(Protocol):
    """The business owner's 24-hour window (one small document per owner number)."""

    def touch_inbound(self, phone: str, at: datetime) -> None:
        """The owner wrote at ``at`` (only moves forward)."""

    def last_inbound(self, phone: str) -> datetime | None:
        """When the owner last wrote, if ever."""


class JobRepository(Protocol):
    """Periodic jobs shared by the schedulers: one run per period, and a cursor."""

    def claim(self, job: str, now: datetime, every: timedelta) -> JobRun | None:
        """This period's run for one caller (None for the others)."""

    def advance_cursor(self, job: str, cursor: datetime, now: datetime, **details: Any) -> bool:
        """Move the cursor forward to ``cursor`` (never back); ``details`` kept as the last run's."""


class Database(Protocol):
    """The store as a whole."""

    def ping(self) -> bool:
        """True when it answers."""

    def ensure_indexes(self) -> None:
        """Create what the queries need (idempotent: safe at each process start)."""


@dataclass(frozen=True)
class Repositories:
    """Every repository over one store: what the entry points receive (``store`` in their code)."""

    contacts: ContactRepository
    campaigns: CampaignRepository
    followups: FollowUpRepository
    messages: MessageRepository
    events: EventRepository
    owner: OwnerRepository
    jobs: JobRepository
    invoices: InvoiceRepository
    api_keys: ApiKeyRepository
    idempotency: IdempotencyRepository
    database: Database
    hooks: HookRepository
    audit: AuditRepository
    users: UserRepository
    sessions: SessionRepository
    login_throttle: LoginThrottleRepository
    reports: ReportRepository

    def ping(self) -> bool:
        """True when the store answers."""
        return self.database.ping()

    def ensure_indexes(self) -> None:
        """Create every index (idempotent)."""
        self.database.ensure_indexes()
