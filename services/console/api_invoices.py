"""/api/v1/invoices: list, read, create, change, mark paid, cancel."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.console.auth_deps import Cursor, Limit, Reader, Writer, api_router, by_key
from services.console.guard import Console, answer, decode_cursor, encode_cursor, idempotent
from services.console.schemas import InvoiceIn, InvoiceOut, InvoicePatch, PageOut, PaymentIn
from shared.usecases import browsing
from shared.usecases.invoices import cancel_invoice, create_invoice, get_invoice, record_payment, update_invoice


def router(console: Console) -> APIRouter:
    """The invoices routes over ``console``'s store."""
    api = api_router()
    store = console.store

    @api.get("/invoices", response_model=PageOut[InvoiceOut], tags=["invoices"])
    def invoices(key: Reader, status: str | None = None, phone: str | None = None, limit: Limit = 50,
                 cursor: Cursor = None) -> PageOut[InvoiceOut]:
        page = browsing.invoices_page(store, status=status, phone=phone, default_region=console.default_region,
                                      after=decode_cursor("invoices", cursor), limit=limit)
        return PageOut(items=[InvoiceOut.of(i) for i in page.items], next_cursor=encode_cursor("invoices",
                                                                                               page.next_after))

    @api.post("/invoices", response_model=InvoiceOut, status_code=201, tags=["invoices"])
    def create(body: InvoiceIn, request: Request, key: Writer) -> Response:
        return idempotent(console, request, key, body, lambda: InvoiceOut.of(create_invoice(
            store, body.model_dump(exclude_none=True), now=console.clock.now(), by=by_key(key),
            default_region=console.default_region, queue=console.queue)), status=201)

    @api.get("/invoices/{reference}", response_model=InvoiceOut, tags=["invoices"])
    def invoice(reference: str, key: Reader) -> InvoiceOut:
        return InvoiceOut.of(get_invoice(store, reference))

    @api.patch("/invoices/{reference}", response_model=InvoiceOut, tags=["invoices"])
    def change(reference: str, body: InvoicePatch, key: Writer) -> Response:
        return answer(lambda: InvoiceOut.of(update_invoice(
            store, reference, body.model_dump(exclude_unset=True), now=console.clock.now(), by=by_key(key),
            queue=console.queue)))

    @api.post("/invoices/{reference}/paid", response_model=InvoiceOut, tags=["invoices"])
    def paid(reference: str, request: Request, key: Writer, body: PaymentIn | None = None) -> Response:
        amount = body.amount if body is not None else None
        due_was = body.amount_due_was if body is not None else None  # recorded only while still due (else 409)
        given = request.headers.get("Idempotency-Key")  # kept with the payment: a retry taking over pays nothing more
        return idempotent(console, request, key, body, lambda: InvoiceOut.of(record_payment(
            store, reference, now=console.clock.now(), amount=amount, queue=console.queue, by=by_key(key),
            due_was=due_was, ref=f"api:{key.name}:{given}"[:300] if given else None)))

    @api.post("/invoices/{reference}/cancel", response_model=InvoiceOut, tags=["invoices"])
    def cancel(reference: str, request: Request, key: Writer) -> Response:
        return idempotent(console, request, key, None, lambda: InvoiceOut.of(cancel_invoice(
            store, reference, now=console.clock.now(), queue=console.queue, by=by_key(key))))

    return api
