"""The follow-up, message, event and invoice state machines: their tables, and every move the code makes.

The repositories move a state only through the named transitions of shared.domain.states,
built from moves their table allows. These tests check, without I/O, that the tables say what
the product promises (a STOP always stops, a sent message is never sent again, final states
stay final, an event is processed once, a closed invoice only reopens) and that every transition
called in the code, with the states it expects, is one the tables allow, including paths the
other tests may not reach.
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

from shared.adapters.memory.followups import MemoryFollowUps
from shared.adapters.memory.invoices import MemoryInvoices
from shared.adapters.memory.messages import MemoryMessages
from shared.adapters.mongo.followups import MongoFollowUps
from shared.adapters.mongo.invoices import MongoInvoices
from shared.adapters.mongo.messages import MongoMessages
from shared.adapters.transitions import FollowUpTransitions, InvoiceTransitions, MessageTransitions
from shared.domain.states import (
    EVENT_MOVES,
    EVENT_TRANSITIONS,
    FOLLOWUP_MOVES,
    FOLLOWUP_TRANSITIONS,
    INVOICE_MOVES,
    INVOICE_TRANSITIONS,
    MESSAGE_MOVES,
    MESSAGE_TRANSITIONS,
    STATUS_RANK,
    TWILIO_STATUS_TO_STATE,
    UNPAID,
    EventState,
    FollowUpState,
    IllegalMove,
    InvoiceStatus,
    MessageState,
    Transition,
    check_move,
)

F, M, E, INV = FollowUpState, MessageState, EventState, InvoiceStatus
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
    assert set(EVENT_MOVES) == set(E)
    assert set(INVOICE_MOVES) == set(INV)


def test_final_states_have_no_way_out() -> None:
    assert {s for s, nxt in FOLLOWUP_MOVES.items() if not nxt} == FINAL_FOLLOWUP
    assert {s for s, nxt in MESSAGE_MOVES.items() if not nxt} == FINAL_MESSAGE
    assert {s for s, nxt in EVENT_MOVES.items() if not nxt} == {E.PROCESSED, E.FAILED}


def test_an_event_is_processed_once() -> None:
    """Received, then processed or handed to a person: never received again, never both."""
    assert _reachable(EVENT_MOVES, E.RECEIVED) == set(E)
    for state in (E.PROCESSED, E.FAILED):
        for new in E:
            with pytest.raises(IllegalMove, match=f"an event cannot move from {state.value}"):
                check_move(EVENT_MOVES, (state,), new)


def test_an_unpaid_invoice_can_always_be_paid_or_cancelled_and_a_closed_one_only_reopens() -> None:
    """A payment or a cancellation takes effect whatever the invoice's status; nothing else moves a closed one."""
    assert set(UNPAID) == set(INV) - {INV.PAID, INV.CANCELLED}
    assert _reachable(INVOICE_MOVES, INV.OPEN) == set(INV)
    for state in UNPAID:
        for closed in (INV.PAID, INV.PARTIALLY_PAID, INV.CANCELLED):
            check_move(INVOICE_MOVES, (state,), closed)
    for state in (INV.PAID, INV.CANCELLED):
        assert INVOICE_MOVES[state] == {INV.OPEN}
        with pytest.raises(IllegalMove, match=f"an invoice cannot move from {state.value} to disputed"):
            check_move(INVOICE_MOVES, (state,), INV.DISPUTED)
    paying = {name for name, t in INVOICE_TRANSITIONS.items() if t.target in (INV.PAID, INV.PARTIALLY_PAID)}
    assert paying == {"mark_paid", "pay_part"}
    assert all(INVOICE_TRANSITIONS[name].source == UNPAID for name in paying)


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
    """And a draft approved by a person (awaiting_approval → ready): it was never sent."""
    back_to_ready = {s for s, nxt in MESSAGE_MOVES.items() if M.READY in nxt}
    assert back_to_ready == {M.SENDING, M.UNCERTAIN, M.CANCELLED, M.AWAITING_APPROVAL}


def test_a_draft_waiting_for_approval_is_sent_only_through_its_approval() -> None:
    """Nothing moves awaiting_approval to sending: only the approval (to ready) or a cancellation."""
    assert MESSAGE_MOVES[M.AWAITING_APPROVAL] == {M.READY, M.CANCELLED}
    into = {s for s, nxt in MESSAGE_MOVES.items() if M.AWAITING_APPROVAL in nxt}
    # drafted again, or an approved text held past the client's 24-hour window returned as the template:
    # never from a state Twilio knows
    assert into == {M.CANCELLED, M.READY}


@pytest.mark.parametrize("status", sorted(TWILIO_STATUS_TO_STATE))
def test_status_callbacks_move_only_along_the_table(status: str) -> None:
    """``apply_status`` moves any message with a SID whose rank is below the status's.

    A callback carrying our message id also moves one still sending or uncertain (it adopts the SID).
    """
    new = TWILIO_STATUS_TO_STATE[status]
    for state in WITH_SID | {M.SENDING, M.UNCERTAIN}:
        if STATUS_RANK[state.value] < STATUS_RANK[status]:
            check_move(MESSAGE_MOVES, (state,), new)


def test_an_illegal_move_names_the_states() -> None:
    with pytest.raises(IllegalMove, match="a message cannot move from ready, delivered to ready"):
        check_move(MESSAGE_MOVES, (M.READY, M.UNCERTAIN, M.DELIVERED), M.READY)  # ready → ready is no move
    with pytest.raises(IllegalMove, match="a follow-up cannot move from completed to scheduled"):
        check_move(FOLLOWUP_MOVES, (F.PAUSED, F.COMPLETED), F.SCHEDULED)
    with pytest.raises(IllegalMove, match="an event cannot move from processed to failed"):
        check_move(EVENT_MOVES, (E.PROCESSED,), E.FAILED)


def test_a_transition_the_table_forbids_cannot_even_be_declared() -> None:
    with pytest.raises(IllegalMove, match="a follow-up cannot move from stopped to scheduled"):
        Transition("restart", (F.STOPPED,), F.SCHEDULED, FOLLOWUP_MOVES)
    with pytest.raises(IllegalMove, match="a message cannot move from sent to ready"):
        Transition("resend", (M.SENT,), M.READY, MESSAGE_MOVES)


def test_a_caller_may_narrow_a_transition_never_widen_it() -> None:
    pause = FOLLOWUP_TRANSITIONS["pause"]
    assert pause.expected(F.AWAITING_SEND) == (F.AWAITING_SEND,)
    assert pause.expected([F.QUEUED, F.DRAFTING]) == (F.QUEUED, F.DRAFTING)
    with pytest.raises(IllegalMove, match="cannot move from completed to paused"):
        pause.expected(F.COMPLETED)
    with pytest.raises(IllegalMove, match="draft_again does not move from scheduled"):
        FOLLOWUP_TRANSITIONS["draft_again"].expected(F.SCHEDULED)  # allowed by the table, not by this transition


# ------------------------------------------------------------ every transition written in the code

TABLES: dict[str, dict[str, Transition[Any]]] = {
    "followups": FOLLOWUP_TRANSITIONS, "messages": MESSAGE_TRANSITIONS, "events": EVENT_TRANSITIONS,
    "invoices": INVOICE_TRANSITIONS}
TABLE_NAMES = {"FOLLOWUP_TRANSITIONS": "followups", "MESSAGE_TRANSITIONS": "messages", "EVENT_TRANSITIONS": "events",
               "INVOICE_TRANSITIONS": "invoices"}
ADAPTERS = ROOT / "shared" / "adapters"


def _modules() -> Iterator[tuple[str, Path, ast.Module]]:
    for folder in ("shared", "workers", "services"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            yield module, path, ast.parse(path.read_text(encoding="utf-8"))


def _repository(node: ast.expr) -> str | None:
    """``followups`` for ``store.followups`` / ``deps.store.followups`` / ``followups``; else None."""
    name = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else None
    return name if name in TABLES else None


def _transition_calls() -> Iterator[tuple[str, ast.Call, str, Transition[Any]]]:
    """Every call of a named transition on a repository, outside the adapters that implement them."""
    for module, path, tree in _modules():
        if path.is_relative_to(ADAPTERS):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                repository = _repository(node.func.value)
                if repository and node.func.attr in TABLES[repository]:
                    where = f"{path.relative_to(ROOT)}:{node.lineno}"
                    yield module, node, where, TABLES[repository][node.func.attr]


def _states(node: ast.expr, namespace: dict[str, Any], where: str) -> list[StrEnum]:
    """The states an ``expected=`` argument names: enum members, tuples, module constants."""
    if isinstance(node, ast.Tuple | ast.List):
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


def test_every_transition_called_in_the_code_is_allowed() -> None:
    checked: list[str] = []
    for module, call, where, transition in _transition_calls():
        args = {kw.arg: kw.value for kw in call.keywords}
        if "expected" in args:
            expected = _states(args["expected"], vars(importlib.import_module(module)), where)
            assert all(isinstance(s, type(transition.target)) for s in expected), f"{where}: mixed state kinds"
            try:
                transition.expected(expected)
            except IllegalMove as exc:
                raise AssertionError(f"{where}: {exc}") from None
        checked.append(where)
    # The scan found the transitions of the scheduler, the cadence, the use cases and the actors.
    assert len(checked) >= 25, checked
    assert {w.split(":")[0] for w in checked} >= {
        "shared/usecases/cadence.py", "shared/usecases/delivery.py", "shared/usecases/scheduling.py",
        "shared/usecases/drafting.py", "shared/usecases/sending.py", "shared/usecases/reconciling.py",
        "shared/usecases/replies.py", "shared/usecases/handover.py", "shared/usecases/invoices.py",
    }


def test_event_transitions_are_called_where_events_are_processed() -> None:
    called = {(where.split(":")[0], t.name) for _, _, where, t in _transition_calls()
              if t in EVENT_TRANSITIONS.values()}
    assert called >= {("shared/usecases/replies.py", "mark_processed"), ("shared/usecases/replies.py", "mark_failed"),
                      ("shared/usecases/delivery.py", "finish_action"), ("shared/usecases/delivery.py", "fail_action")}


def _enclosing_functions(tree: ast.Module) -> Iterator[tuple[ast.FunctionDef, ast.AST]]:
    for function in ast.walk(tree):
        if isinstance(function, ast.FunctionDef):
            for node in ast.walk(function):
                yield function, node


def test_each_adapter_method_moves_by_its_own_transition() -> None:
    """``pause`` implemented with the ``pause`` transition, in every adapter: the table's target is what it writes.

    The transitions written once for both adapters (shared/adapters/transitions.py) count for
    each adapter whose repositories inherit them.
    """
    used: dict[str, set[str]] = {}
    for _, path, tree in _modules():
        if not path.is_relative_to(ADAPTERS):
            continue
        for function, node in _enclosing_functions(tree):
            if (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name)
                    and node.value.id in TABLE_NAMES and isinstance(node.slice, ast.Constant)):
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                name = node.slice.value
                assert name in TABLES[TABLE_NAMES[node.value.id]], f"{where}: no transition {name!r}"
                assert function.name == name, f"{where}: {function.name} moves by the {name!r} transition"
                used.setdefault(path.parent.name, set()).add(f"{TABLE_NAMES[node.value.id]}.{name}")
    shared = used.pop("adapters", set())
    assert shared, "the shared transitions were not found"
    for followups, messages in ((MemoryFollowUps, MemoryMessages), (MongoFollowUps, MongoMessages)):
        assert issubclass(followups, FollowUpTransitions) and issubclass(messages, MessageTransitions)
    assert issubclass(MemoryInvoices, InvoiceTransitions) and issubclass(MongoInvoices, InvoiceTransitions)
    every = {f"{repository}.{name}" for repository, table in TABLES.items() for name in table}
    assert {folder: names | shared for folder, names in used.items()} == {"mongo": every, "memory": every}
