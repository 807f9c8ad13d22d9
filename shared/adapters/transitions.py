"""The named transitions of follow-ups, messages and invoices, written once for every adapter.

Each method picks its transition in shared.domain.states and the fields it writes, then calls
``_move``, which each adapter implements as one conditional write (MongoDB: ``update_one`` on
id and expected states; memory: the same test and update on a dict). What a move writes besides
those fields (state, change time, the message's status rank…) is built here too, by
:func:`move_values`, so that both adapters write the same document.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime
from typing import Any

from shared.adapters.documents import flag_fields, invoice_change, replaced_draft_fields
from shared.domain.invoices import Invoice, InvoiceSource
from shared.domain.models import OutboundMessage
from shared.domain.reasons import CancelReason, PauseReason, StopReason
from shared.domain.repositories import ExpectedFollowUp
from shared.domain.states import (
    FOLLOWUP_TRANSITIONS,
    INVOICE_TRANSITIONS,
    MESSAGE_TRANSITIONS,
    STATUS_RANK,
    FollowUpState,
    InvoiceStatus,
    MessageState,
    Transition,
)

Doc = dict[str, Any]


def move_values(move: Transition[Any], now: datetime, fields: Doc | None = None) -> Doc:
    """The fields a transition sets: its target state, when it changed, and ``fields``.

    A message entering a delivery state takes its status rank (unless ``fields`` has one), and
    one entering ready is checked for a dead draft again (``dead_check_at`` cleared).
    """
    values = {"state": move.target.value, "state_changed_at": now, "updated_at": now, **(fields or {})}
    if isinstance(move.target, MessageState):
        if move.target.value in STATUS_RANK:
            values.setdefault("status_rank", STATUS_RANK[move.target.value])
        if move.target == MessageState.READY:
            values["dead_check_at"] = None  # a new stay in ready: its dead-draft check starts again
    return values


class FollowUpTransitions(ABC):
    """The follow-up repository's named transitions, over the adapter's ``_move``."""

    @abstractmethod
    def _move(self, followup_id: str, move: Transition[FollowUpState], *, now: datetime,
              expected: ExpectedFollowUp = None, step: int | None = None, fields: Doc | None = None) -> bool:
        """Conditional transition (at ``step`` when given); True when this caller made it.

        IllegalMove when ``expected`` is outside ``move``.
        """

    def start_drafting(self, followup_id: str, *, step: int, now: datetime) -> bool:
        """``queued → drafting``."""
        return self._move(followup_id, FOLLOWUP_TRANSITIONS["start_drafting"], now=now, step=step)

    def await_send(self, followup_id: str, *, step: int, now: datetime) -> bool:
        """``queued|drafting → awaiting_send``; the step's message is stored (``drafted_step``)."""
        return self._move(followup_id, FOLLOWUP_TRANSITIONS["await_send"], now=now, step=step,
                          fields={"drafted_step": step})

    def draft_again(self, followup_id: str, *, step: int, now: datetime) -> bool:
        """``awaiting_send → queued``."""
        return self._move(followup_id, FOLLOWUP_TRANSITIONS["draft_again"], now=now, step=step)

    def schedule_next(self, followup_id: str, *, step: int, due: datetime, sent_at: datetime, now: datetime) -> bool:
        """``awaiting_send → scheduled`` at the next step."""
        return self._move(followup_id, FOLLOWUP_TRANSITIONS["schedule_next"], now=now, step=step,
                          fields={"step": step + 1, "next_run_at": due, "last_sent_at": sent_at})

    def complete(self, followup_id: str, *, step: int, sent_at: datetime, now: datetime) -> bool:
        """``awaiting_send → completed``."""
        return self._move(followup_id, FOLLOWUP_TRANSITIONS["complete"], now=now, step=step,
                          fields={"last_sent_at": sent_at, "next_run_at": None})

    def pause(self, followup_id: str, *, reason: PauseReason, now: datetime, until: datetime | None = None,
              needs_human: str | None = None, expected: ExpectedFollowUp = None, step: int | None = None) -> bool:
        """``→ paused`` for ``reason`` until ``until``."""
        fields = {"paused_until": until, "pause_reason": reason.value, **flag_fields(needs_human)}
        return self._move(followup_id, FOLLOWUP_TRANSITIONS["pause"], now=now, expected=expected, step=step,
                          fields=fields)

    def resume(self, followup_id: str, *, now: datetime) -> bool:
        """``paused → scheduled``, due now, its pause forgotten."""
        return self._move(followup_id, FOLLOWUP_TRANSITIONS["resume"], now=now,
                          fields={"next_run_at": now, "paused_until": None, "pause_reason": None})

    def stop(self, followup_id: str, *, reason: StopReason, now: datetime, needs_human: str | None = None,
             expected: ExpectedFollowUp = None) -> bool:
        """``→ stopped`` for ``reason``."""
        fields = {"stop_reason": reason.value, "next_run_at": None, **flag_fields(needs_human)}
        return self._move(followup_id, FOLLOWUP_TRANSITIONS["stop"], now=now, expected=expected, fields=fields)


class MessageTransitions(ABC):
    """The message repository's named transitions, over the adapter's ``_move``."""

    @abstractmethod
    def _move(self, message_id: str, move: Transition[MessageState], *, now: datetime, fields: Doc | None = None
              ) -> bool:
        """Conditional transition writing :func:`move_values`; True when this caller made it."""

    def start_sending(self, message_id: str, *, now: datetime) -> bool:
        """``ready → sending``."""
        return self._move(message_id, MESSAGE_TRANSITIONS["start_sending"], now=now, fields={"sending_at": now})

    def mark_sent(self, message_id: str, *, sid: str, now: datetime) -> bool:
        """``sending|uncertain → sent`` with Twilio's SID."""
        return self._move(message_id, MESSAGE_TRANSITIONS["mark_sent"], now=now,
                          fields={"twilio_sid": sid, "sent_at": now})

    def mark_failed(self, message_id: str, *, error_code: int | None, now: datetime) -> bool:
        """``sending → failed``."""
        return self._move(message_id, MESSAGE_TRANSITIONS["mark_failed"], now=now, fields={"error_code": error_code})

    def mark_uncertain(self, message_id: str, *, reason: str, now: datetime, error_code: int | None = None) -> bool:
        """``sending → uncertain``."""
        return self._move(message_id, MESSAGE_TRANSITIONS["mark_uncertain"], now=now,
                          fields={"uncertain_reason": reason, "last_error_code": error_code})

    def retry_later(self, message_id: str, *, error_code: int | None, now: datetime) -> bool:
        """``sending → ready``."""
        return self._move(message_id, MESSAGE_TRANSITIONS["retry_later"], now=now,
                          fields={"last_error_code": error_code})

    def send_again(self, message_id: str, *, now: datetime) -> bool:
        """``uncertain → ready``."""
        return self._move(message_id, MESSAGE_TRANSITIONS["send_again"], now=now, fields={"reconciled": "not_found"})

    def cancel(self, message_id: str, *, reason: CancelReason, now: datetime) -> bool:
        """``ready|awaiting_approval → cancelled``."""
        return self._move(message_id, MESSAGE_TRANSITIONS["cancel"], now=now, fields={"cancel_reason": reason.value})

    def approve(self, message_id: str, *, by: str, now: datetime) -> bool:
        """``awaiting_approval → ready``, approved by ``by``."""
        return self._move(message_id, MESSAGE_TRANSITIONS["approve"], now=now,
                          fields={"approved_by": by, "approved_at": now})

    def return_for_approval(self, message: OutboundMessage, *, now: datetime) -> bool:
        """``ready → awaiting_approval``, drafted again in place as ``message``'s draft (the step's template):
        an approved freeform draft held past the client's 24-hour window; its approval is cleared."""
        return self._move(message.id, MESSAGE_TRANSITIONS["return_for_approval"], now=now,
                          fields={**replaced_draft_fields(message, now), "approved_by": None, "approved_at": None,
                                  "not_before": None})

    def reject(self, message_id: str, *, by: str, reason: str, now: datetime) -> bool:
        """``awaiting_approval → cancelled`` (``rejected``), by ``by`` for ``reason``."""
        return self._move(message_id, MESSAGE_TRANSITIONS["reject"], now=now,
                          fields={"cancel_reason": CancelReason.REJECTED.value, "rejected_by": by,
                                  "rejection_reason": reason})


def invoice_move(move: Transition[InvoiceStatus], *, source: InvoiceSource, now: datetime,
                 fields: Doc | None = None, ref: str | None = None) -> tuple[Doc, Doc]:
    """What an invoice's transition writes: ``($set values, history entry)``."""
    values = {"status": move.target.value, "status_changed_at": now, "updated_at": now, **(fields or {})}
    return values, invoice_change(move.name, move.target, source, now, values.get("amount_due_cents"), ref)


class InvoiceTransitions(ABC):
    """The invoice repository's named transitions, over the adapter's ``_move``."""

    @abstractmethod
    def _move(self, reference: str, move: Transition[InvoiceStatus], *, source: InvoiceSource, now: datetime,
              fields: Doc | None = None, condition: Doc | None = None, ref: str | None = None) -> bool:
        """Conditional transition from ``move.source`` (and stored values equal to ``condition``): one write
        of :func:`invoice_move`; True when this caller made it."""

    @abstractmethod
    def get(self, reference: str) -> Invoice | None:
        """An invoice by reference."""

    def mark_paid(self, reference: str, *, source: InvoiceSource, now: datetime, amount_cents: int | None = None,
                  ref: str | None = None) -> bool:
        """Nothing left to pay: ``→ paid``; a payment below what is due: :meth:`pay_part`."""
        if amount_cents is not None and amount_cents <= 0:
            raise ValueError("a payment is a positive amount")
        invoice = self.get(reference)
        if invoice is None or not invoice.unpaid:
            return False
        due = invoice.amount_due_cents
        if amount_cents is not None and amount_cents < due:
            return self.pay_part(reference, due_before=due, amount_cents=amount_cents, source=source, now=now,
                                 ref=ref)
        return self._move(reference, INVOICE_TRANSITIONS["mark_paid"], source=source, now=now,
                          fields={"amount_due_cents": 0, "paid_at": now}, condition={"amount_due_cents": due}, ref=ref)

    def pay_part(self, reference: str, *, due_before: int, amount_cents: int, source: InvoiceSource,
                 now: datetime, ref: str | None = None) -> bool:
        """``→ partially_paid``, the amount due lowered by ``amount_cents`` (while it is still ``due_before``)."""
        return self._move(reference, INVOICE_TRANSITIONS["pay_part"], source=source, now=now,
                          fields={"amount_due_cents": due_before - amount_cents},
                          condition={"amount_due_cents": due_before}, ref=ref)

    def cancel(self, reference: str, *, source: InvoiceSource, now: datetime) -> bool:
        """``→ cancelled``."""
        return self._move(reference, INVOICE_TRANSITIONS["cancel"], source=source, now=now)

    def reopen(self, reference: str, *, source: InvoiceSource, now: datetime) -> bool:
        """``→ open``; a paid invoice owes its whole amount again."""
        invoice = self.get(reference)
        if invoice is None:
            return False
        paid = invoice.status == InvoiceStatus.PAID
        return self._move(reference, INVOICE_TRANSITIONS["reopen"], source=source, now=now,
                          fields={"amount_due_cents": invoice.amount_cents, "paid_at": None} if paid else None,
                          condition={"status": invoice.status.value})

    def dispute(self, reference: str, *, source: InvoiceSource, now: datetime) -> bool:
        """``→ disputed``."""
        return self._move(reference, INVOICE_TRANSITIONS["dispute"], source=source, now=now)

    def claim_paid(self, reference: str, *, source: InvoiceSource, now: datetime) -> bool:
        """``→ claimed_paid``."""
        return self._move(reference, INVOICE_TRANSITIONS["claim_paid"], source=source, now=now)
