"""A STOP (or a payment, a pause) cancelling a draft at the very moment a person approves it, on the real
MongoDB-compatible server: the approved draft is cancelled all the same, never left ready to go out."""

from __future__ import annotations

from typing import Any

import pytest

from shared.adapters.mongo import MongoRepositories
from shared.clock import FakeClock
from shared.domain.models import Language, OutboundMessage
from shared.domain.reasons import CancelReason
from shared.domain.states import MessageState

pytestmark = pytest.mark.integration


class _ApprovedDuringTheFirstRead:
    """The messages' collection, where a person approves the draft right after the first read of a cancel."""

    def __init__(self, store: MongoRepositories, message_id: str, clock: FakeClock) -> None:
        self.real, self.store, self.message_id, self.clock = store.messages.collection, store, message_id, clock
        self.approved = False

    def find(self, *args: Any, **kwargs: Any) -> list[Any]:
        found = list(self.real.find(*args, **kwargs))
        if not self.approved:
            self.approved = True
            self.store.messages.collection = self.real  # type: ignore[assignment]
            assert self.store.messages.approve(self.message_id, by="user:a@example.com", now=self.clock.now())
            self.store.messages.collection = self  # type: ignore[assignment]
        return found

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


@pytest.mark.parametrize("cancel", ["followup", "contact", "campaign"])
def test_a_draft_approved_while_a_stop_cancels_it_is_cancelled_all_the_same(
        store: MongoRepositories, clock: FakeClock, cancel: str) -> None:
    draft = OutboundMessage(id="m1", followup_id="f1", contact_id="ct1", campaign_id="c1", step=0, purpose="step",
                            to="+33612345678", timezone="Europe/Paris", state=MessageState.AWAITING_APPROVAL,
                            kind="freeform", body="Bonjour Marie", language=Language.FR)
    assert store.messages.insert(draft, clock.now())
    racing = _ApprovedDuringTheFirstRead(store, "m1", clock)
    store.messages.collection = racing  # type: ignore[assignment]
    try:
        if cancel == "followup":
            store.messages.cancel_ready_of_followup("f1", reason=CancelReason.OPT_OUT, now=clock.now())
        elif cancel == "contact":
            store.messages.cancel_ready_steps("ct1", reason=CancelReason.OPT_OUT, now=clock.now())
        else:
            store.messages.cancel_ready_drafts_of_campaign("c1", reason=CancelReason.OPT_OUT, now=clock.now())
    finally:
        store.messages.collection = racing.real  # type: ignore[assignment]
    assert racing.approved
    message = store.messages.get("m1")
    assert message is not None and message.state == MessageState.CANCELLED  # never ready after the STOP
