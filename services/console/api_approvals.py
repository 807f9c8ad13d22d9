"""/api/v1/approvals: the drafts waiting for a person (campaigns with ``approval: required``), and their
approval, edit and rejection, one by one or in bulk (:mod:`shared.usecases.approvals`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, TypeVar

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from services.console.auth_deps import Cursor, Limit, Reader, Writer, api_router, by_key
from services.console.guard import Console, decode_cursor, encode_cursor, idempotent
from services.console.schemas import PageOut
from shared.domain.api_keys import ApiKey
from shared.domain.models import OutboundMessage
from shared.domain.states import FollowUpState
from shared.usecases import approvals


class ApprovalOut(BaseModel):
    """A draft waiting for approval. ``step`` counts from 0; ``kind``: freeform (written inside the client's
    24-hour window, editable) or template (the step's approved template)."""

    id: str
    contact_id: str
    contact_name: str
    campaign_id: str
    campaign_name: str
    step: int
    step_count: int
    body: str
    kind: str
    waiting_since: datetime | None
    window_closes_at: datetime | None
    edited_by: str | None

    @classmethod
    def of(cls, draft: approvals.WaitingDraft) -> ApprovalOut:
        """From the use case's row."""
        return cls(id=draft.id, contact_id=draft.contact_id, contact_name=draft.contact_name,
                   campaign_id=draft.campaign_id, campaign_name=draft.campaign_name, step=draft.step,
                   step_count=draft.step_count, body=draft.body, kind=draft.kind, waiting_since=draft.waiting_since,
                   window_closes_at=draft.window_closes_at, edited_by=draft.edited_by)


class DecisionOut(BaseModel):
    """A draft after a decision: its state (ready once approved, then sent; cancelled once rejected), who
    decided, and after a rejection the follow-up's next state (scheduled, completed)."""

    id: str
    state: str
    kind: str
    body: str
    approved_by: str | None
    edited_by: str | None
    rejected_by: str | None
    rejection_reason: str | None
    followup_state: str | None = None

    @classmethod
    def of(cls, message: OutboundMessage, followup_state: FollowUpState | None = None) -> DecisionOut:
        """From the message as it now stands."""
        return cls(id=message.id, state=message.state.value, kind=message.kind, body=message.body,
                   approved_by=message.approved_by, edited_by=message.edited_by, rejected_by=message.rejected_by,
                   rejection_reason=message.rejection_reason,
                   followup_state=followup_state.value if followup_state is not None else None)

    @classmethod
    def decided(cls, decision: approvals.Decision) -> DecisionOut:
        """From a use case's decision."""
        return cls.of(decision.message, decision.followup_state)


class EditIn(BaseModel):
    """A draft's new text (checked as drafts are); ``approve``: approve it at once (edit and approve)."""

    body: str = Field(max_length=4096)
    approve: bool = False


class RejectIn(BaseModel):
    """Why the draft is rejected (kept on the message)."""

    reason: str = Field(max_length=approvals.MAX_REASON_CHARS)


class BulkIn(BaseModel):
    """Approve or reject several drafts (``reason`` required to reject)."""

    action: Literal["approve", "reject"]
    ids: list[str] = Field(min_length=1, max_length=approvals.MAX_BULK)
    reason: str | None = Field(default=None, max_length=approvals.MAX_REASON_CHARS)


class BulkItemOut(BaseModel):
    """One id's outcome: done, not_waiting, unknown, or refused (with ``detail``)."""

    id: str
    outcome: str
    detail: str | None = None


class BulkOut(BaseModel):
    """Each id's outcome, in the order given (repeated ids once)."""

    items: list[BulkItemOut]


In = TypeVar("In", bound=BaseModel)


async def _body(request: Request, model: type[In]) -> In:
    """The request's JSON body as ``model``, read after the key was checked (a 422 problem otherwise)."""
    raw = await request.body()
    try:
        return model.model_validate_json(raw or b"null")
    except ValidationError as exc:
        raise RequestValidationError([{**error, "loc": ("body", *error.get("loc", ()))}
                                      for error in exc.errors(include_url=False)]) from None


def _documented(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI request body of a route that reads its body itself."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


def router(console: Console) -> APIRouter:
    """The approvals routes over ``console``'s store."""
    api = api_router()
    store = console.store

    @api.get("/approvals", response_model=PageOut[ApprovalOut], tags=["approvals"])
    def waiting(key: Reader, limit: Limit = 50, cursor: Cursor = None) -> PageOut[ApprovalOut]:
        page = approvals.list_waiting(store, after=decode_cursor("approvals", cursor), limit=limit)
        return PageOut(items=[ApprovalOut.of(d) for d in page.items],
                       next_cursor=encode_cursor("approvals", page.next_after))

    # A body is read after the key is checked (a declared body would be parsed first: a request without a
    # key must get 401 whatever it carries); its schema stays in the OpenAPI document.
    @api.post("/approvals/bulk", response_model=BulkOut, tags=["approvals"], openapi_extra=_documented(BulkIn))
    async def bulk(request: Request, key: Writer) -> Response:
        body = await _body(request, BulkIn)
        return await run_in_threadpool(_bulk, request, key, body)

    def _bulk(request: Request, key: ApiKey, body: BulkIn) -> Response:
        return idempotent(console, request, key, body, lambda: BulkOut(items=[
            BulkItemOut(id=item.id, outcome=item.outcome, detail=item.detail) for item in approvals.bulk(
                store, console.queue, body.action, body.ids, by=by_key(key), now=console.clock.now(),
                reason=body.reason, rules=console.rules)]))

    @api.post("/approvals/{message_id}/approve", response_model=DecisionOut, tags=["approvals"])
    def approve(message_id: str, request: Request, key: Writer) -> Response:
        """Approve a draft: it is sent as any draft (send window, opt-out, pacing). 409 when it is not
        waiting any more, or when its 24-hour window closed (it was drafted again as the template)."""
        return idempotent(console, request, key, None, lambda: DecisionOut.decided(approvals.approve(
            store, console.queue, message_id, by=by_key(key), now=console.clock.now(), rules=console.rules)))

    @api.post("/approvals/{message_id}/edit", response_model=DecisionOut, tags=["approvals"],
              openapi_extra=_documented(EditIn))
    async def edit(message_id: str, request: Request, key: Writer) -> Response:
        """A new text for a freeform draft; 400 with the facts check's problems when it fails (nothing changed)."""
        body = await _body(request, EditIn)
        return await run_in_threadpool(_edit, message_id, request, key, body)

    def _edit(message_id: str, request: Request, key: ApiKey, body: EditIn) -> Response:
        return idempotent(console, request, key, body, lambda: DecisionOut.decided(approvals.edit(
            store, console.rules, message_id, body.body, by=by_key(key), now=console.clock.now(),
            then_approve=body.approve, queue=console.queue)))

    @api.post("/approvals/{message_id}/reject", response_model=DecisionOut, tags=["approvals"],
              openapi_extra=_documented(RejectIn))
    async def reject(message_id: str, request: Request, key: Writer) -> Response:
        """Reject a draft with a reason: cancelled, and its follow-up moves to its next step (or completes)."""
        body = await _body(request, RejectIn)
        return await run_in_threadpool(_reject, message_id, request, key, body)

    def _reject(message_id: str, request: Request, key: ApiKey, body: RejectIn) -> Response:
        return idempotent(console, request, key, body, lambda: DecisionOut.decided(approvals.reject(
            store, message_id, reason=body.reason, by=by_key(key), now=console.clock.now())))

    return api
