"""The follow-up and message state machines: their tables, and every move the code makes.

``Store.move_followup`` and ``Store.move_message`` refuse a move their table does not allow.
These tests check, without I/O, that the tables say what the product promises (a STOP always
stops, a sent message is never sent again, final states stay final) and that every move written
in the code is one the tables allow, including paths the other tests may not reach.
"""

from __future__ import annotations

import ast
import importlib
from collections import deque
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest

from shared.models import (
    FOLLOWUP_MOVES,
    MESSAGE_MOVES,
    STATUS_RANK,
    TWILIO_STATUS_TO_STATE,
    FollowUpState,
    IllegalMove,
    MessageState,
    check_move,
)

F, M = FollowUpState, MessageState
ROOT = Path(__file__).resolve().parents[2]
FINAL_FOLLOWUP = {F.COMPLETED, F.STOPPED}
FINAL_MESSAGE = {M.FAILED, M.UNDELIVERED, M.RECEIVED}
# Outbound states in which a message holds a Twilio SID, so that status callbacks reach it.
WITH_SID = {M.SENT, M.DELIVERED, M.READ, M.FAILED, M.UNDELIVERED}


def _reachable(moves: dict[Any, frozenset[Any]], start: Any) -> set[Any]:
    seen, todo = {start}, deque([start])
    while todo:
        for nxt in moves[todo.popleft()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_tables_cover_every_state() -> None:
    assert set(FOLLOWUP_MOVES) == set(F)
    assert set(MESSAGE_MOVES) == set(M)


def test_final_states_have_no_way_out() -> None:
    assert {s for s, nxt in FOLLOWUP_MOVES.items() if not nxt} == FINAL_FOLLOWUP
    assert {s for s, nxt in MESSAGE_MOVES.items() if not nxt} == FINAL_MESSAGE


def test_every_state_is_reachable_and_can_end() -> None:
    assert _reachable(FOLLOWUP_MOVES, F.SCHEDULED) == set(F)
    assert _reachable(MESSAGE_MOVES, M.READY) == set(M) - {M.RECEIVED}  # inbound: stored as received
    for state in F:
        assert _reachable(FOLLOWUP_MOVES, state) & FINAL_FOLLOWUP, f"a {state} follow-up can never end"
    for state in set(M) - {M.CANCELLED}:  # cancelled ends a message unless it is drafted again
        assert _reachable(MESSAGE_MOVES, state) & (FINAL_MESSAGE | {M.READ}), f"a {state} message can never end"


@pytest.mark.parametrize("state", sorted(set(F) - FINAL_FOLLOWUP))
def test_a_stop_or_a_pause_applies_in_every_open_state(state: FollowUpState) -> None:
    """STOP, a payment, a dispute must take effect whatever step the follow-up is at."""
    check_move(FOLLOWUP_MOVES, (state,), F.STOPPED)
    check_move(FOLLOWUP_MOVES, (state,), F.PAUSED)


@pytest.mark.parametrize("state", sorted(FINAL_FOLLOWUP))
def test_a_finished_follow_up_never_restarts(state: FollowUpState) -> None:
    for new in F:
        with pytest.raises(IllegalMove, match=f"cannot move from {state.value} to {new.value}"):
            check_move(FOLLOWUP_MOVES, (state,), new)


@pytest.mark.parametrize("state", sorted(WITH_SID))
def test_a_message_twilio_accepted_is_never_sent_again(state: MessageState) -> None:
    """Once Twilio has a message, no path leads back to ready or sending (or to cancelled)."""
    assert not _reachable(MESSAGE_MOVES, state) & {M.READY, M.SENDING, M.UNCERTAIN, M.CANCELLED}


def test_only_a_send_with_no_answer_or_a_retryable_error_is_sent_again() -> None:
    back_to_ready = {s for s, nxt in MESSAGE_MOVES.items() if M.READY in nxt}
    assert back_to_ready == {M.SENDING, M.UNCERTAIN, M.CANCELLED}


@pytest.mark.parametrize("status", sorted(TWILIO_STATUS_TO_STATE))
def test_status_callbacks_move_only_along_the_table(status: str) -> None:
    """``Store.apply_status`` moves any message with a SID whose rank is below the status's."""
    new = TWILIO_STATUS_TO_STATE[status]
    for state in WITH_SID:
        if STATUS_RANK[state.value] < STATUS_RANK[status]:
            check_move(MESSAGE_MOVES, (state,), new)


def test_moves_made_outside_move_followup_and_move_message_are_in_the_tables() -> None:
    check_move(FOLLOWUP_MOVES, (F.SCHEDULED,), F.QUEUED)  # Store.claim_followups
    check_move(MESSAGE_MOVES, (M.CANCELLED,), M.READY)  # Store.redraft_message


def test_an_illegal_move_names_the_states() -> None:
    with pytest.raises(IllegalMove, match="a message cannot move from ready, delivered to ready"):
        check_move(MESSAGE_MOVES, (M.READY, M.UNCERTAIN, M.DELIVERED), M.READY)  # ready → ready is no move
    with pytest.raises(IllegalMove, match="a follow-up cannot move from completed to scheduled"):
        check_move(FOLLOWUP_MOVES, (F.PAUSED, F.COMPLETED), F.SCHEDULED)


# ------------------------------------------------------------ every move written in the code


def _calls() -> Iterator[tuple[str, ast.Call, str]]:
    for folder in ("shared", "workers", "services"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and node.func.attr in {"move_followup", "move_message"}):
                    yield module, node, f"{path.relative_to(ROOT)}:{node.lineno}"


def _states(node: ast.expr, namespace: dict[str, Any], where: str) -> list[StrEnum]:
    """The states an ``expected=``/``new=`` argument names: enum members, tuples, module constants."""
    if isinstance(node, ast.Tuple):
        return [s for elt in node.elts for s in _states(elt, namespace, where)]
    if isinstance(node, ast.Starred):
        return _states(node.value, namespace, where)
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return [getattr(namespace[node.value.id], node.attr)]
    if isinstance(node, ast.Name) and node.id in namespace:
        value = namespace[node.id]
        return list(value) if isinstance(value, tuple) else [value]
    raise AssertionError(f"{where}: write the states of this move literally (or as a module constant) "
                         f"so that it can be checked: {ast.unparse(node)}")


def test_every_move_in_the_code_is_allowed() -> None:
    checked: list[str] = []
    for module, call, where in _calls():
        args = {kw.arg: kw.value for kw in call.keywords}
        assert "expected" in args and "new" in args, f"{where}: pass expected= and new= by name"
        namespace = vars(importlib.import_module(module))
        expected = _states(args["expected"], namespace, where)
        (new,) = _states(args["new"], namespace, where)
        moves = FOLLOWUP_MOVES if call.func.attr == "move_followup" else MESSAGE_MOVES  # type: ignore[attr-defined]
        assert all(isinstance(s, type(new)) for s in expected), f"{where}: mixed state kinds"
        try:
            check_move(moves, tuple(expected), new)
        except IllegalMove as exc:
            raise AssertionError(f"{where}: {exc}") from None
        checked.append(where)
    # The scan found the moves of the scheduler, the cadence, the store and the three actors.
    assert len(checked) >= 20, checked
    assert {w.split(":")[0] for w in checked} >= {
        "shared/cadence.py", "shared/store.py", "services/scheduler.py", "workers/drafting.py", "workers/sending.py",
    }
