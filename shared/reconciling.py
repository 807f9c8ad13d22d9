"""Which message at Twilio is the one an ``uncertain`` send created: a pure rule, no I/O.

Twilio's Messages API has no idempotency key, so a create whose answer was lost (timeout,
dropped connection, a gateway's 5xx) is looked up in Twilio's list of messages from our
sender to the recipient. The list is read without a ``DateSent`` filter: Twilio leaves a
message still ``queued`` (no ``date_sent`` yet) out of such a filter. A listed message is our
copy when its SID is not one we already hold, it was created after the send began (give or
take the clocks' difference), and its content is ours:

- freeform: the same body (whitespace aside);
- template: Twilio's Message resource carries no ContentSid, but its ``body`` is the rendered
  template, so the body equals our preview, or it contains every variable value we sent.
  A template without variables can only be told by sender, recipient and time.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from shared.clock import utc

# How long before our send began Twilio's clock may date its copy (the two clocks differ).
CLOCK_SKEW = timedelta(minutes=2)


def normalise(text: object) -> str:
    """The text with runs of whitespace made one space, trimmed."""
    return " ".join(str(text or "").split())


def same_content(message: Mapping[str, Any], item: Mapping[str, Any]) -> bool:
    """Whether a listed Twilio message (``item``) carries what ``message`` (our document) sent."""
    listed = normalise(item.get("body"))
    ours = normalise(message.get("body"))
    if message.get("kind") != "template":
        return bool(listed) and listed == ours
    if not listed:
        # A template send shows its rendered text; an empty body cannot be told from another's.
        return False
    if ours and listed == ours:
        return True
    values = [normalise(v) for v in (message.get("content_variables") or {}).values() if normalise(v)]
    return all(value in listed for value in values)


def find_copy(message: Mapping[str, Any], listed: Sequence[Mapping[str, Any]], known_sids: Collection[str],
              started: datetime) -> Mapping[str, Any] | None:
    """Our copy among ``listed`` (Twilio's messages to the recipient), or None; the earliest if several."""
    earliest = started - CLOCK_SKEW
    candidates = [
        item for item in listed
        if str(item.get("sid") or "") and str(item["sid"]) not in known_sids
        and not str(item.get("direction") or "outbound").startswith("inbound")
        and (item.get("date_created") is None or utc(item["date_created"]) >= earliest)
        and same_content(message, item)
    ]
    if not candidates:
        return None
    return min(candidates, key=lambda item: utc(item["date_created"]) if item.get("date_created") else started)
