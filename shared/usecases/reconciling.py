"""Reconciling an uncertain send: did Twilio get it? Found, its SID is adopted; never sent twice."""

from __future__ import annotations

import logging
from datetime import timedelta

from shared.clock import utc
from shared.domain.states import MessageState
from shared.reconciling import find_copy
from shared.usecases.context import App
from shared.usecases.delivery import record_sid

log = logging.getLogger(__name__)
# Twilio's messages to the recipient read by one reconciliation (newest first).
RECONCILE_LIST_LIMIT = 100


def reconcile_message(deps: App, message_id: str, *, grace: timedelta | None = None) -> str | None:
    """Find out whether an ``uncertain`` message reached Twilio; never send it twice.

    Twilio has no idempotency key, so the message is looked up in Twilio's list of messages
    from our sender to the recipient, with no date filter (a message still queued at Twilio has
    no send date yet): see :func:`shared.reconciling.find_copy` for what counts as our copy.
    Found: its SID is adopted (``uncertain → sent``). No trace ``grace`` (RECONCILE_GRACE_SECONDS)
    after the send began: Twilio never got it, so it goes back to ``ready`` and is sent again.
    Returns "adopted", "waiting" or "resent" (None: nothing to do). A status callback carrying
    our message id adopts the SID even sooner (see the webhook).
    """
    store, now = deps.store, deps.clock.now()
    message = store.messages.get(message_id)
    if message is None or message.state != MessageState.UNCERTAIN:
        return None
    to = message.to  # an alert's, or a step's drafted with its contact's phone
    if not to:
        contact = store.contacts.get(message.contact_id) if message.contact_id else None
        to = contact.phone if contact else ""
    started = utc(message.sending_at or message.state_changed_at or now)
    listed = deps.sender.list_messages(to=to, from_=deps.rules.sender, limit=RECONCILE_LIST_LIMIT)
    known = store.messages.known_sids(str(item["sid"]) for item in listed)
    found = find_copy(message.model_dump(), listed, known, started)
    if found is not None:
        if record_sid(store, message_id, str(found["sid"]), now):
            log.info("message=%s reconciled: Twilio has it as sid=%s", message_id, found["sid"])
            return "adopted"
        return None
    grace = grace if grace is not None else deps.rules.reconcile_grace
    if now - started < grace:
        log.info("message=%s not found at Twilio yet (%d listed): looked at again later", message_id, len(listed))
        return "waiting"
    if store.messages.send_again(message_id, now=now):
        deps.queue.send_message(message_id)
        log.info("message=%s reconciled: no trace at Twilio after %s, sending again", message_id, grace)
        return "resent"
    return None
