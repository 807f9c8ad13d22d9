"""The replies use case on the in-memory repositories: each kind of reply's plan, hand-overs, limits.

The same functions the replies actor runs (:mod:`shared.usecases.replies`), no server: each
test checks what was decided (the :class:`ReplyResult`), the follow-up's state, and what was
queued to go out (a reply to the client, an alert to the owner).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from shared.clock import FakeClock
from shared.domain.reasons import (
    HandOver,
    HandOverReason,
    PauseReason,
    ReplyOutcome,
    ReplyResult,
    StopReason,
)
from shared.domain.states import FollowUpState
from shared.ports import Classification, Intent
from shared.usecases.context import App
from shared.usecases.replies import dispatch_inbound, process_inbound
from shared.usecases.reply_plan import apply_plan, reply_id
from tests.unit.usecases.replies_world import (
    OWNER,
    PHONE,
    ScriptedClassifier,
    followup,
    message,
    queued,
    reads,
    reply,
    sid,
    world,
)

PARIS = ZoneInfo("Europe/Paris")
TODAY = date(2026, 3, 2)  # the clock's day in Paris
CHECKING = ("Merci Marie, nous avons bien noté votre règlement. Nous vérifions sa bonne réception ; "
            "d'ici là, vous ne recevrez pas de relance à ce sujet.\nAtelier Dupont")
STOPPED = "Merci Marie, nous avons bien noté votre règlement et ne vous relancerons plus à ce sujet.\nAtelier Dupont"


def _plain(text: str | None) -> str:
    """A message body with its non-breaking and narrow spaces as plain spaces."""
    return (text or "").replace("\u202f", " ").replace("\u00a0", " ")


def alert(n: int = 1) -> str:
    return f"alert:{sid(n)}"


# ------------------------------------------------------------------ "I paid"


def test_a_paid_claim_is_paused_for_the_owner_to_check_and_thanked(clock: FakeClock) -> None:
    """PAID_CLAIM_ACTION=pause_and_verify (the default): nothing stops on the client's word."""
    app = world(clock)
    reads(app, Intent.PAID)
    why = HandOver(HandOverReason.PAID_CLAIM)
    assert reply(app, "c'est réglé") == ReplyResult(ReplyOutcome.PAID_CLAIMED, paused=1, hand_over=why)
    f = followup(app)
    assert (f.state, f.pause_reason, f.paused_until, f.needs_human, f.needs_human_reason) == (
        FollowUpState.PAUSED, PauseReason.PAID_CLAIMED, None, True, str(why))
    assert queued(app) == [alert(), reply_id(sid(1))]
    assert message(app, reply_id(sid(1))).body == CHECKING
    owner = message(app, alert())
    assert owner.to == OWNER and "(dit avoir payé : vérifiez le paiement)" in (owner.body or "")
    assert f"relance handled {PHONE} --paid" in (owner.body or "")


def test_a_trusted_paid_claim_stops_the_follow_ups_and_thanks(clock: FakeClock) -> None:
    app = world(clock, paid_claim_action="stop")
    reads(app, Intent.PAID)
    assert reply(app, "c'est réglé") == ReplyResult(ReplyOutcome.PAID, stopped=1)
    f = followup(app)
    assert (f.state, f.stop_reason, f.needs_human) == (FollowUpState.STOPPED, StopReason.PAID, False)
    assert queued(app) == [reply_id(sid(1))]  # no alert: nothing for the owner to check
    assert message(app, reply_id(sid(1))).body == STOPPED


def test_an_opt_out_that_claims_payment_is_honoured_and_checked_by_the_owner(clock: FakeClock) -> None:
    app = world(clock)
    reads(app, Intent.OPT_OUT)
    why = HandOver(HandOverReason.PAID_OPT_OUT)
    result = reply(app, "J'ai déjà payé, arrêtez de m'écrire")
    assert result == ReplyResult(ReplyOutcome.OPT_OUT, paused=1, hand_over=why)
    contact = app.store.contacts.get("ct1")
    assert contact is not None and contact.opted_out
    assert (followup(app).state, followup(app).pause_reason) == (FollowUpState.PAUSED, PauseReason.PAID_CLAIMED)
    assert queued(app) == [alert()]  # no reply to someone who opted out


# ------------------------------------------------------------------ promises


def test_a_promise_pauses_until_the_day_after_and_is_acknowledged(clock: FakeClock) -> None:
    app = world(clock)
    reads(app, Intent.PROMISE_TO_PAY, promised_date=date(2026, 3, 6))
    assert reply(app, "je paie vendredi") == ReplyResult(
        ReplyOutcome.PROMISE_TO_PAY, until=date(2026, 3, 6), paused=1, promised=date(2026, 3, 6))
    f = followup(app)
    assert (f.state, f.pause_reason, f.needs_human) == (FollowUpState.PAUSED, PauseReason.PROMISE_TO_PAY, False)
    assert f.paused_until == datetime.combine(date(2026, 3, 7), time(9), PARIS)
    assert queued(app) == [reply_id(sid(1))]
    assert "6 mars 2026" in _plain(message(app, reply_id(sid(1))).body)


def test_a_promise_further_than_max_promise_days_is_capped_and_says_when_we_come_back(clock: FakeClock) -> None:
    app = world(clock, max_promise_days=30)
    promised, latest = TODAY + timedelta(days=45), TODAY + timedelta(days=30)
    reads(app, Intent.PROMISE_TO_PAY, promised_date=promised)
    result = reply(app, "je paierai en avril")
    assert result == ReplyResult(ReplyOutcome.PROMISE_TO_PAY, until=latest, paused=1, promised=promised)
    assert result.capped and str(result) == "promise_to_pay until=2026-04-01 paused=1 (capped: promised 2026-04-16)"
    assert followup(app).paused_until == datetime.combine(latest + timedelta(days=1), time(9), PARIS)
    assert _plain(message(app, reply_id(sid(1))).body) == (
        "Merci Marie, c'est noté. Le 16 avril 2026 étant éloigné, nous reprendrons contact avec vous "
        "à partir du 2 avril 2026.\nAtelier Dupont")


def _promise_broken(app: App, clock: FakeClock, day: date) -> None:
    """The promised day went by without payment: the scheduler ends the pause."""
    clock.set(datetime.combine(day + timedelta(days=1), time(9, 0, 1), PARIS).astimezone(UTC))
    assert app.store.followups.resume_ended_pauses(clock.now(), 10) == ["c1:ct1"]


def test_a_third_promise_on_the_same_follow_up_goes_to_a_person(clock: FakeClock) -> None:
    app = world(clock)
    for n, day in ((1, date(2026, 3, 6)), (2, date(2026, 3, 13))):
        reads(app, Intent.PROMISE_TO_PAY, promised_date=day)
        result = reply(app, "je paie bientôt", n)
        assert result is not None and result.outcome == ReplyOutcome.PROMISE_TO_PAY
        _promise_broken(app, clock, day)
    assert app.store.followups.promise_sids("ct1") == [{sid(1), sid(2)}]
    reads(app, Intent.PROMISE_TO_PAY, promised_date=date(2026, 3, 27))
    why = HandOver(HandOverReason.THIRD_PROMISE)
    assert reply(app, "promis, le 27", 3) == ReplyResult(ReplyOutcome.NEEDS_HUMAN, hand_over=why)
    f = followup(app)
    assert (f.state, f.pause_reason, f.paused_until, f.needs_human_reason) == (
        FollowUpState.PAUSED, PauseReason.NEEDS_HUMAN, None, "third promise to pay")
    assert reply_id(sid(3)) not in queued(app) and alert(3) in queued(app)  # no acknowledgement: the owner
    assert "(troisième promesse de paiement)" in (message(app, alert(3)).body or "")


# ------------------------------------------------------------------ questions, disputes, doubt


def test_a_question_is_answered_from_the_data_and_the_cadence_goes_on(clock: FakeClock) -> None:
    app = world(clock)
    reads(app, Intent.QUESTION, question_topic="amount")
    assert reply(app, "c'est combien ?") == ReplyResult(ReplyOutcome.ANSWERED, topic="amount")
    assert followup(app).state == FollowUpState.SCHEDULED and not followup(app).needs_human
    answer = _plain(message(app, reply_id(sid(1))).body)
    assert answer == "Le montant de la facture FA-2026-001 est de 1 250,50 €.\nAtelier Dupont"
    assert message(app, reply_id(sid(1))).draft_source == "data"


def test_a_question_the_data_cannot_answer_goes_to_a_person(clock: FakeClock) -> None:
    app = world(clock)
    reads(app, Intent.QUESTION, question_topic="iban")
    why = HandOver(HandOverReason.UNANSWERABLE_QUESTION)
    assert reply(app, "votre IBAN ?") == ReplyResult(ReplyOutcome.NEEDS_HUMAN, hand_over=why)
    assert queued(app) == [alert()]


def test_a_dispute_stops_and_flags_and_alerts_the_owner(clock: FakeClock) -> None:
    app = world(clock)
    reads(app, Intent.DISPUTE)
    why = HandOver(HandOverReason.DISPUTE)
    assert reply(app, "Je conteste cette facture") == ReplyResult(ReplyOutcome.NEEDS_HUMAN, hand_over=why)
    f = followup(app)
    assert (f.state, f.stop_reason, f.needs_human, f.needs_human_reason) == (
        FollowUpState.STOPPED, StopReason.DISPUTE, True, "dispute")
    assert queued(app) == [alert()]
    assert "(contestation de la facture)" in (message(app, alert()).body or "")


def test_doubt_goes_to_a_person_with_the_reason_and_its_detail_apart(clock: FakeClock) -> None:
    app = world(clock)
    reads(app, Intent.PAID, confidence=0.4, reason="mixed")
    result = reply(app, "peut-être payé ?")
    assert result == ReplyResult(ReplyOutcome.NEEDS_HUMAN,
                                 hand_over=HandOver(HandOverReason.LOW_CONFIDENCE, "0.40 for paid (mixed)"))
    assert followup(app).needs_human_reason == "low confidence 0.40 for paid (mixed)"
    assert "(réponse incertaine)" in (message(app, alert()).body or "")


# ------------------------------------------------------------------ STOP, START, hand-overs


def test_stop_is_honoured_before_any_reading_and_start_resubscribes(clock: FakeClock) -> None:
    app = world(clock)
    assert reply(app, "STOP") == ReplyResult(ReplyOutcome.OPT_OUT, stopped=1)
    classifier = app.classifier
    assert isinstance(classifier, ScriptedClassifier) and classifier.calls == 0
    assert (followup(app).state, followup(app).stop_reason) == (FollowUpState.STOPPED, StopReason.OPT_OUT)
    assert reply(app, "START", 2) == ReplyResult(ReplyOutcome.OPT_IN)
    contact = app.store.contacts.get("ct1")
    assert contact is not None and not contact.opted_out


def test_a_stop_while_handed_over_is_honoured_and_nothing_else_is_done(clock: FakeClock) -> None:
    app = world(clock)
    reads(app, Intent.QUESTION, question_topic="iban")
    assert reply(app, "votre IBAN ?", 1) is not None  # handed over: paused and flagged, owner alerted
    reads(app, Intent.QUESTION, question_topic="amount")
    assert reply(app, "et le montant ?", 2) == ReplyResult(ReplyOutcome.HELD)  # recorded: a person has it
    assert reply(app, "STOP", 3) == ReplyResult(ReplyOutcome.OPT_OUT, stopped=1)
    f = followup(app)
    assert (f.state, f.stop_reason) == (FollowUpState.STOPPED, StopReason.OPT_OUT)
    assert queued(app) == [alert(1)]  # one alert, no answer to the held question


def test_an_opt_out_in_words_while_handed_over_is_honoured(clock: FakeClock) -> None:
    app = world(clock)
    reads(app, Intent.QUESTION, question_topic="iban")
    reply(app, "votre IBAN ?", 1)
    reads(app, Intent.OPT_OUT)
    assert reply(app, "ne m'écrivez plus", 2) == ReplyResult(ReplyOutcome.OPT_OUT, stopped=1, held=True)
    contact = app.store.contacts.get("ct1")
    assert contact is not None and contact.opted_out
    assert (followup(app).state, followup(app).stop_reason) == (FollowUpState.STOPPED, StopReason.OPT_OUT)
    assert queued(app) == [alert(1)]


def test_one_alert_per_hand_over_even_when_its_plan_is_applied_again(clock: FakeClock) -> None:
    app = world(clock)
    reads(app, Intent.OTHER)
    why = HandOver(HandOverReason.UNCLEAR_REPLY)
    assert reply(app, "hmm", 1) == ReplyResult(ReplyOutcome.NEEDS_HUMAN, hand_over=why)
    reads(app, Intent.DISPUTE)
    assert reply(app, "je conteste", 2) == ReplyResult(ReplyOutcome.HELD)  # a person has it: no second alert
    assert followup(app).state == FollowUpState.PAUSED  # and no stop either
    # The first message's plan applied again (redelivered after a crash, before it was marked processed).
    contact = app.store.contacts.get("ct1")
    assert contact is not None
    reading = Classification(intent=Intent.OTHER, confidence=0.0, source="test")
    assert apply_plan(app, contact, sid(1), reading, why) == ReplyResult(ReplyOutcome.NEEDS_HUMAN, hand_over=why)
    assert queued(app) == [alert(1)]
    assert app.store.followups.open_hand_over("ct1") == sid(1)


def test_automated_replies_are_limited_then_a_person_takes_over(clock: FakeClock) -> None:
    """MAX_AUTO_REPLIES_PER_DAY=2: the third answer within 24 h is a person's to write."""
    app = world(clock, max_auto_replies_per_day=2)
    reads(app, Intent.QUESTION, question_topic="amount")
    for n in (1, 2):
        clock.advance(timedelta(minutes=10))
        assert reply(app, "c'est combien ?", n) == ReplyResult(ReplyOutcome.ANSWERED, topic="amount")
    clock.advance(timedelta(minutes=10))
    why = HandOver(HandOverReason.REPLY_LIMIT, "2 in 24 h")
    assert reply(app, "c'est combien ?", 3) == ReplyResult(ReplyOutcome.NEEDS_HUMAN, hand_over=why)
    assert followup(app).needs_human_reason == "automated reply limit reached (2 in 24 h)"
    assert queued(app) == [reply_id(sid(1)), reply_id(sid(2)), alert(3)]


def test_a_message_processed_once_is_not_processed_again(clock: FakeClock) -> None:
    app = world(clock)
    reads(app, Intent.QUESTION, question_topic="amount")
    reply(app, "c'est combien ?")
    assert process_inbound(app, f"inbound:{sid(1)}") is None
    assert queued(app) == [reply_id(sid(1))]


def test_messages_from_the_owner_and_unknown_numbers_are_kept(clock: FakeClock) -> None:
    app = world(clock)
    assert reply(app, "ok", 1, phone=OWNER) == ReplyResult(ReplyOutcome.OWNER)
    assert app.store.owner.last_inbound(OWNER) == clock.now()
    assert reply(app, "qui êtes-vous ?", 2, phone="+33699999999") == ReplyResult(ReplyOutcome.UNKNOWN_SENDER)
    assert app.store.messages.has_unknown("+33699999999")


def test_a_batch_is_fanned_out_one_message_per_event(clock: FakeClock) -> None:
    app = world(clock)
    assert dispatch_inbound(app, ["inbound:a", "inbound:b"]) == 2
    assert app.queue.inbound == ["inbound:a", "inbound:b"]  # type: ignore[attr-defined]
