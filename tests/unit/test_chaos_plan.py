"""The fault-injection plan (tests/support/chaos.py): what a chaos run plays by default."""

from __future__ import annotations

import random

from tests.support.chaos import make_plan


def test_the_default_plan_includes_lost_answers_some_while_twilio_keeps_messages_queued() -> None:
    plan = make_plan(random.Random(20251125), duration=80)
    lost = [f for f in plan if f.kind == "twilio_fail" and f.params.get("created")]
    assert len(lost) == 2 and {f.params["status"] for f in lost} <= {500, 502}
    assert all(f.params["gateway"] == (f.params["status"] == 502) for f in lost)
    (hold,), (release,) = [f for f in plan if f.kind == "twilio_hold"], [f for f in plan if f.kind == "twilio_release"]
    assert hold.at < lost[0].at < release.at


def test_without_lost_answers_the_rest_of_the_plan_is_the_same() -> None:
    full = make_plan(random.Random(7), duration=80)
    plain = make_plan(random.Random(7), duration=80, lost_answers=False)
    assert [f for f in full if not f.params.get("created") and f.kind not in ("twilio_hold", "twilio_release")] == plain
