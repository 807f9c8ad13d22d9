"""Moved to :mod:`shared.usecases.cadence`; this name stays until every importer uses the new one."""

from shared.usecases.cadence import (  # noqa: F401 - re-exported
    INVALID_RECIPIENT_CODES,
    OPT_OUT_CODES,
    advance_after_send,
    cancel_dead_draft,
    flag_finished_followup,
    keeps_draft,
    pause_contact,
    pause_for_a_person,
    stop_contact,
    stop_followup,
    stop_reason_for_error,
    withdraw_dead_draft,
)
