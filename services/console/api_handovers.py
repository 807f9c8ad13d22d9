"""``/api/v1/handovers`` (the conversations waiting for a person; close, resume, stop) and
``/api/v1/conversations/{phone}/reply`` (a person writes to a client by hand). Every write is audited
as ``key:<name>``."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from services.console.auth_deps import Cursor, Limit, Reader, Writer, api_router, by_key
from services.console.guard import Console, decode_cursor, encode_cursor, idempotent
from services.console.problems import Problem
from services.console.schemas import PageOut
from shared.domain.api_keys import ApiKey
from shared.domain.reasons import HandledAction
from shared.phones import normalise_phone
from shared.usecases import inbox
from shared.usecases.handover import HandOverClosed
from shared.usecases.manual_reply import Refusal, ReplyRefused, reply_by_hand

# A refusal's status: the request is fine, the client's state forbids it (409), or the text does (422).
REFUSAL_STATUS = {Refusal.EMPTY: 422, Refusal.TOO_LONG: 422, Refusal.FACTS: 422, Refusal.OPTED_OUT: 409,
                  Refusal.OUTSIDE_WINDOW: 409}


class HandOverOut(BaseModel):
    """A conversation waiting for a person: why, and since when."""

    phone: str
    contact_id: str | None = Field(description="null: a number that is no contact wrote")
    name: str | None
    reasons: list[str]
    since: datetime | None = Field(description="when it started waiting (the client's message that opened it)")
    campaigns: list[str]
    last_inbound_at: datetime | None
    unknown_messages: int = Field(description="a number that is no contact: its messages nobody handled yet")

    @classmethod
    def of(cls, item: inbox.Waiting) -> HandOverOut:
        """From the use case's line."""
        return cls(phone=item.phone, contact_id=item.contact_id, name=item.name, reasons=list(item.reasons),
                   since=item.since, campaigns=list(item.campaigns), last_inbound_at=item.last_inbound_at,
                   unknown_messages=item.messages)


class FollowUpStateOut(BaseModel):
    """A follow-up of the client after the decision."""

    campaign_id: str
    state: str
    step: int


class HandOverClosedOut(BaseModel):
    """What closing the hand-over did."""

    phone: str
    action: str
    contact_id: str | None
    closed: int = Field(description="hand-over flags cleared (an unknown number: messages marked handled)")
    moved: int = Field(description="follow-ups resumed or stopped")
    invoices: list[str] = Field(description="invoices reopened (resume)")
    followups: list[FollowUpStateOut]

    @classmethod
    def of(cls, closed: HandOverClosed) -> HandOverClosedOut:
        """From the use case's result."""
        return cls(phone=closed.phone, action=closed.action.value, contact_id=closed.contact_id, closed=closed.closed,
                   moved=closed.moved, invoices=list(closed.invoices),
                   followups=[FollowUpStateOut(campaign_id=f.campaign_id, state=f.state, step=f.step)
                              for f in closed.followups])


class ReplyIn(BaseModel):
    """A message a person writes to a client."""

    body: str = Field(min_length=1, max_length=1600, description="the text; free text inside the client's 24-hour "
                                                                   "window, the MANUAL_REPLY_TEMPLATE_SID outside it")


class ReplyOut(BaseModel):
    """The message as stored and handed to sending."""

    message_id: str
    contact_id: str
    kind: str = Field(description="freeform inside the 24-hour window, template outside it")
    state: str
    duplicate: bool = Field(description="true: the same request had stored it already; nothing more is sent")


async def _reply_in(request: Request) -> ReplyIn:
    """The request's body as a :class:`ReplyIn` (a 422 problem otherwise)."""
    raw = await request.body()
    try:
        return ReplyIn.model_validate_json(raw or b"null")
    except ValidationError as exc:
        raise RequestValidationError([{**error, "loc": ("body", *error.get("loc", ()))}
                                      for error in exc.errors(include_url=False)]) from None


def router(console: Console) -> APIRouter:
    """The hand-over and reply-by-hand routes."""
    api = api_router()
    store = console.store

    def phone_of(raw: str) -> str:
        return normalise_phone(raw, console.default_region)

    @api.get("/handovers", response_model=PageOut[HandOverOut], tags=["hand-overs"])
    def handovers(key: Reader, limit: Limit = 50, cursor: Cursor = None) -> PageOut[HandOverOut]:
        page = inbox.waiting_page(store, after=decode_cursor("handovers", cursor), limit=limit)
        return PageOut(items=[HandOverOut.of(item) for item in page.items],
                       next_cursor=encode_cursor("handovers", page.next_after))

    def closing(action: HandledAction) -> object:
        def route(phone: str, request: Request, key: Writer) -> Response:
            number = phone_of(phone)
            return idempotent(console, request, key, None, lambda: HandOverClosedOut.of(inbox.close(
                store, number, action=action, by=by_key(key), now=console.clock.now())))
        return route

    for path, action, summary in (("close", HandledAction.KEEP, "Close the hand-over (follow-ups left as they are)"),
                                  ("resume", HandledAction.RESUME, "Close it and resume the paused follow-ups"),
                                  ("stop", HandledAction.STOP, "Close it and stop the open follow-ups")):
        api.add_api_route(f"/handovers/{{phone}}/{path}", closing(action), methods=["POST"],  # type: ignore[arg-type]
                          response_model=HandOverClosedOut, tags=["hand-overs"], summary=summary,
                          name=f"handover_{path}")

    # The body is read after the key is checked (a declared body would be parsed first: a request without a
    # key must get 401 whatever it carries).
    @api.post("/conversations/{phone}/reply", response_model=ReplyOut, tags=["conversations"],
              openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                  "schema": ReplyIn.model_json_schema()}}}})
    async def reply(phone: str, request: Request, key: Writer) -> Response:
        body = await _reply_in(request)
        return await run_in_threadpool(_reply, phone, request, key, body)

    def _reply(phone: str, request: Request, key: ApiKey, body: ReplyIn) -> Response:
        number = phone_of(phone)
        queue = console.queue  # None: the scheduler's sweep of ready messages enqueues it

        def run() -> ReplyOut:
            try:
                done = reply_by_hand(store, queue, console.rules, number, body=body.body, by=by_key(key),
                                     now=console.clock.now(), request_key=request.headers.get("Idempotency-Key"))
            except ReplyRefused as exc:
                raise Problem(REFUSAL_STATUS[exc.reason], str(exc)) from None
            return ReplyOut(message_id=done.message_id, contact_id=done.contact_id, kind=done.kind, state=done.state,
                            duplicate=not done.created)

        return idempotent(console, request, key, body, run)

    return api
