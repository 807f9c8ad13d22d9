"""The signature check docs/webhooks-out.md gives businesses accepts what Relance signs, and only that;
the deliveries' move table."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

from shared.domain.hooks import DELIVERY_MOVES, DELIVERY_TRANSITIONS, DeliveryState, HookRepository
from shared.usecases.outbound import sign

DOC = Path(__file__).resolve().parents[2] / "docs" / "webhooks-out.md"


def _doc_check() -> Callable[..., bool]:
    (code,) = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.DOTALL)
    assert len(code.strip().splitlines()) <= 10
    namespace: dict[str, object] = {}
    exec(compile(code, str(DOC), "exec"), namespace)  # the reader's own copy, run as they would
    check = namespace["is_from_relance"]
    assert callable(check)
    return check


def test_the_documented_check_accepts_relance_signatures_and_refuses_the_rest() -> None:
    check = _doc_check()
    secret, body, now = "whsec_test", b'{"id":"invoice.paid:FA-1:1","type":"invoice.paid"}', int(time.time())
    header = sign(secret, now, body)
    assert check(secret, header, body)
    assert not check("whsec_other", header, body)
    assert not check(secret, header, body + b" ")
    assert not check(secret, sign(secret, now - 3600, body), body)  # too old: a replay
    assert not check(secret, "garbage", body) and not check(secret, f"t={now}", body)


def test_a_delivery_moves_only_as_its_table_allows() -> None:
    """Delivered and failed are final; every moving repository method is a move the table allows."""
    assert DELIVERY_MOVES[DeliveryState.DELIVERED] == DELIVERY_MOVES[DeliveryState.FAILED] == frozenset()
    assert set(DELIVERY_MOVES) == set(DeliveryState)
    for name, (source, target) in DELIVERY_TRANSITIONS.items():
        assert target in DELIVERY_MOVES[source], name
        assert callable(getattr(HookRepository, name)), name
