"""Which listed Twilio message is our uncertain send's copy (shared.reconciling), without I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shared.reconciling import CLOCK_SKEW, find_copy, same_content

STARTED = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
FREEFORM = {"kind": "freeform", "body": "Bonjour Marie,\n la facture FA-1 reste à régler."}
TEMPLATE = {"kind": "template", "body": "Bonjour Marie, la facture FA-1 reste à régler.",
            "content_variables": {"1": "Marie", "2": "FA-1"}}


def _item(sid: str, body: str, *, minutes: float = 0, direction: str = "outbound-api") -> dict[str, Any]:
    return {"sid": sid, "body": body, "direction": direction, "date_created": STARTED + timedelta(minutes=minutes)}


def test_freeform_matches_the_same_body_whitespace_aside() -> None:
    assert same_content(FREEFORM, _item("SM1", "Bonjour Marie, la facture FA-1 reste à régler. "))
    assert not same_content(FREEFORM, _item("SM1", "Bonjour Marie, la facture FA-2 reste à régler."))
    assert not same_content({"kind": "freeform", "body": ""}, _item("SM1", ""))


def test_a_template_matches_its_rendered_text_or_every_variable_value() -> None:
    assert same_content(TEMPLATE, _item("SM1", "Bonjour  Marie, la facture FA-1 reste à régler."))  # the preview
    assert same_content(TEMPLATE, _item("SM1", "Hello Marie, invoice FA-1 is still due."))  # the real template
    assert not same_content(TEMPLATE, _item("SM1", "Hello Marie, invoice FA-2 is still due."))
    assert not same_content(TEMPLATE, _item("SM1", "Bienvenue chez nous"))  # another message to the client
    assert not same_content(TEMPLATE, _item("SM1", ""))  # an empty body cannot be told apart


def test_a_template_without_variables_is_told_by_sender_recipient_and_time_only() -> None:
    bare = {"kind": "template", "body": "[template HX…]", "content_variables": {}}
    assert same_content(bare, _item("SM1", "Votre facture attend votre règlement."))
    assert not same_content(bare, _item("SM1", ""))


def test_find_copy_skips_known_sids_inbound_messages_and_older_messages() -> None:
    listed = [
        _item("SM_known", FREEFORM["body"], minutes=1),
        _item("SM_inbound", FREEFORM["body"], minutes=1, direction="inbound"),
        _item("SM_old", FREEFORM["body"], minutes=-(CLOCK_SKEW.total_seconds() / 60 + 1)),
        _item("SM_other", "Autre chose", minutes=1),
    ]
    assert find_copy(FREEFORM, listed, {"SM_known"}, STARTED) is None
    ours = _item("SM_ours", FREEFORM["body"], minutes=-1)  # Twilio's clock a minute behind ours
    found = find_copy(FREEFORM, [*listed, ours], {"SM_known"}, STARTED)
    assert found is not None and found["sid"] == "SM_ours"


def test_find_copy_takes_the_earliest_of_several_and_accepts_an_undated_one() -> None:
    later, earlier = _item("SM_later", FREEFORM["body"], minutes=3), _item("SM_earlier", FREEFORM["body"], minutes=1)
    found = find_copy(FREEFORM, [later, earlier], set(), STARTED)
    assert found is not None and found["sid"] == "SM_earlier"
    undated = {"sid": "SM_undated", "body": FREEFORM["body"], "date_created": None}
    found = find_copy(FREEFORM, [undated], set(), STARTED)
    assert found is not None and found["sid"] == "SM_undated"
