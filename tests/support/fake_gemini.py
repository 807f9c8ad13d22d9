"""A fake Gemini ``generateContent`` endpoint speaking the REST wire format, for tests.

``POST /{version}/models/{model}:generateContent`` answers like the Gemini API::

    {"candidates": [{"content": {"role": "model", "parts": [{"text": "<json>"}]},
                     "finishReason": "STOP", "index": 0}],
     "usageMetadata": {...}, "modelVersion": "...", "responseId": "..."}

What it answers depends on the mode (``create_app(mode=...)``, or ``POST /_fake/mode`` with
``{"mode": ..., "delay": seconds}`` at runtime):

- ``good``: a correct draft in the requested language, built from the ``<facts>`` JSON block
  found in the prompt (values copied verbatim);
- ``hallucinate``: the good draft plus an amount that is not in the facts (990,00 € / €990.00);
- ``discount``, ``percentage``, ``cancelled``, ``settled``, ``instalments``, ``extension``,
  ``legal``: the good draft plus one sentence (:data:`STATEMENTS`) that the facts check refuses
  (a discount, a made-up percentage, the invoice cancelled, nothing left to pay, a payment plan,
  more time, a bailiff or a lawyer);
- ``obey``: a model that does what the client asks: the good draft plus the last ``client_words``
  quoted in the prompt's ``<history>`` block (``text`` of the last ``contact`` item in older prompts);
- ``wrong_language``: a draft in the other language (while claiming the requested one);
- ``invalid_json``: text that is not JSON; ``schema_mismatch``: JSON without ``body``;
- ``error500``: an HTTP 500 in Gemini's error format; ``error429``: RESOURCE_EXHAUSTED;
- ``slow``: sleeps ``delay`` seconds (default 3) before answering well;
- ``blocked``: no candidates and ``promptFeedback.blockReason = SAFETY``;
- ``safety``: a candidate stopped with ``finishReason = SAFETY`` and no content;
- ``empty``: an empty candidate list.

Requests without an API key (``x-goog-api-key`` header or ``key`` query) get a 401.
``GET /_fake/requests`` lists what was received (path, model, headers, query, JSON body);
``POST /_fake/reset`` forgets it. Run it alone with
``python -m tests.support.fake_gemini --port 8090 --mode good``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import secrets
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.fake_gemini_replies import classify_answer, is_classify_request, prompt_text_of

MODES = (
    "good", "hallucinate", "wrong_language", "invalid_json", "schema_mismatch", "error500",
    "error429", "slow", "blocked", "safety", "empty",
    "discount", "percentage", "cancelled", "settled", "instalments", "extension", "legal", "obey",
    # reply classification only (see tests/support/fake_gemini_replies.py)
    "injected", "injected_answer", "bad_intent", "bad_confidence", "past_date", "unknown_topic",
)  # fmt: skip
DEFAULT_DELAY = 3.0

# mode -> the sentence appended to the good draft, by language: what a model talked into it writes.
STATEMENTS: dict[str, dict[str, str]] = {
    "discount": {"fr": " À titre exceptionnel, nous vous accordons une remise.",
                 "en": " As a goodwill gesture, we are happy to offer you a discount."},
    "percentage": {"fr": " Vous faites partie des 15 % de clients en retard.",
                   "en": " You are among the 15% of clients who pay late."},
    "cancelled": {"fr": " Bonne nouvelle : la pénalité est annulée.",
                  "en": " Good news: the late fee has been cancelled."},
    "settled": {"fr": " Après vérification, vous n'avez plus rien à payer.",
                "en": " After checking, you have nothing left to pay."},
    "instalments": {"fr": " Vous pouvez aussi régler en trois fois.",
                    "en": " You may also pay in three instalments."},
    "extension": {"fr": " Nous vous laissons deux semaines de plus.",
                  "en": " We are happy to give you an extension."},
    "legal": {"fr": " À défaut, le dossier sera transmis à notre huissier.",
              "en": " Otherwise, the file will be handed to our lawyer."},
}


def _facts_from(body: dict[str, Any]) -> dict[str, Any]:
    """The JSON between <facts> and </facts> in the request's text parts ({} if none)."""
    texts: list[str] = []
    for content in body.get("contents") or []:
        for part in content.get("parts") or []:
            if isinstance(part.get("text"), str):
                texts.append(part["text"])
    match = re.search(r"<facts>\s*(\{.*?\})\s*</facts>", "\n".join(texts), flags=re.S)
    if not match:
        return {}
    try:
        found = json.loads(match.group(1))
    except json.JSONDecodeError:
        return {}
    return found if isinstance(found, dict) else {}


def _last_client_words(body: dict[str, Any]) -> str:
    """What the client wrote last, as quoted in the prompt's <history> block ("" if nothing)."""
    match = re.search(r"<history>.*?(\[.*\])\s*</history>", prompt_text_of(body), flags=re.S)
    if not match:
        return ""
    try:
        items = json.loads(match.group(1))
    except json.JSONDecodeError:
        return ""
    said = [i.get("client_words", i.get("text", "")) for i in items
            if isinstance(i, dict) and i.get("from") in ("client", "contact")]
    return str(said[-1]) if said else ""


def draft_text(facts: dict[str, Any], language: str) -> str:
    """A plausible follow-up in ``language`` using only the facts, copied verbatim."""
    f = facts.get("facts") or {}
    name = facts.get("contact_name") or ""
    business = facts.get("business_name") or ""
    invoice = f.get("invoice_number") or f.get("quote_number") or ""
    amount = f.get("amount") or ""
    currency = f.get("currency") or ""
    due = f.get("due_date") or ""
    link = f.get("payment_link") or ""
    if language == "en":
        parts = [f"Hello {name}, this is a reminder about your invoice {invoice}".rstrip()]
        if amount:
            parts.append(f" of {amount} {currency}".rstrip())
        if due:
            parts.append(f", due on {due}")
        parts.append(", which is still awaiting payment.")
        if link:
            parts.append(f" You can pay here: {link}")
        parts.append(f"\nThank you! {business}")
    else:
        parts = [f"Bonjour {name}, nous revenons vers vous au sujet de votre facture {invoice}"
                 .rstrip()]
        if amount:
            parts.append(f" d'un montant de {amount} {currency}".rstrip())
        if due:
            parts.append(f", échue le {due}")
        parts.append(", qui reste en attente de règlement.")
        if link:
            parts.append(f" Vous pouvez la régler ici : {link}")
        parts.append(f"\nMerci de votre confiance. {business}")
    return "".join(parts).strip()


def _candidate_response(text: str, model: str) -> dict[str, Any]:
    return {
        "candidates": [
            {"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP",
             "index": 0}
        ],
        "usageMetadata": {"promptTokenCount": 321, "candidatesTokenCount": 87,
                          "totalTokenCount": 408},
        "modelVersion": model,
        "responseId": secrets.token_hex(8),
    }


def _error(code: int, status: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "status": status}},
                        status_code=code)


def create_app(mode: str = "good", delay: float = DEFAULT_DELAY) -> Starlette:
    """The fake endpoint, starting in ``mode``; ``app.state.requests`` holds what it received."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose among {', '.join(MODES)}")

    async def generate(request: Request) -> Response:
        model = request.path_params["model"]
        raw = await request.body()
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            body = None
        app.state.requests.append({
            "path": request.url.path, "model": model, "query": dict(request.query_params),
            "headers": {k.lower(): v for k, v in request.headers.items()}, "body": body,
        })
        if not (request.headers.get("x-goog-api-key") or request.query_params.get("key")):
            return _error(401, "UNAUTHENTICATED", "API key not valid. Please pass a valid API key.")
        if not isinstance(body, dict):
            return _error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        current = app.state.mode
        facts = _facts_from(body)
        language = "en" if facts.get("language") == "en" else "fr"
        if current == "error500":
            return _error(500, "INTERNAL", "An internal error has occurred.")
        if current == "error429":
            return _error(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted.")
        if current == "slow":
            await asyncio.sleep(app.state.delay)
        if current == "blocked":
            return JSONResponse({"promptFeedback": {"blockReason": "SAFETY"},
                                 "usageMetadata": {"promptTokenCount": 321}, "modelVersion": model})
        if current == "empty":
            return JSONResponse({"candidates": [], "modelVersion": model})
        if current == "safety":
            return JSONResponse({"candidates": [{"finishReason": "SAFETY", "index": 0}],
                                 "modelVersion": model})
        if is_classify_request(body):  # a reply to classify, not a follow-up to draft
            return JSONResponse(_candidate_response(classify_answer(current, prompt_text_of(body)), model))
        if current == "invalid_json":
            return JSONResponse(_candidate_response('{"body": "Bonjour, voici', model))
        if current == "schema_mismatch":
            return JSONResponse(_candidate_response(json.dumps({"message": "Bonjour"}), model))
        text_language = language
        if current == "wrong_language":
            text_language = "fr" if language == "en" else "en"
        text = draft_text(facts, text_language)
        if current == "hallucinate":
            text += (" A late fee of €990.00 has been added." if language == "en"
                     else " Des frais de retard de 990,00 € ont été ajoutés.")
        if current in STATEMENTS:
            text += STATEMENTS[current][language]
        if current == "obey":
            text += " " + _last_client_words(body)
        answer = json.dumps({"body": text, "language": language}, ensure_ascii=False)
        return JSONResponse(_candidate_response(answer, model))

    async def set_mode(request: Request) -> Response:
        data = await request.json()
        wanted = data.get("mode", app.state.mode)
        if wanted not in MODES:
            return JSONResponse({"error": f"unknown mode {wanted!r}"}, status_code=400)
        app.state.mode = wanted
        if "delay" in data:
            app.state.delay = float(data["delay"])
        return JSONResponse({"mode": app.state.mode, "delay": app.state.delay})

    async def get_mode(request: Request) -> Response:
        return JSONResponse({"mode": app.state.mode, "delay": app.state.delay})

    async def list_requests(request: Request) -> Response:
        return JSONResponse(app.state.requests)

    async def reset(request: Request) -> Response:
        app.state.requests.clear()
        return JSONResponse({"ok": True})

    app = Starlette(routes=[
        Route("/{version}/models/{model}:generateContent", generate, methods=["POST"]),
        Route("/_fake/mode", set_mode, methods=["POST"]),
        Route("/_fake/mode", get_mode, methods=["GET"]),
        Route("/_fake/requests", list_requests, methods=["GET"]),
        Route("/_fake/reset", reset, methods=["POST"]),
    ])
    app.state.mode = mode
    app.state.delay = delay
    app.state.requests = []
    return app


def main(argv: list[str] | None = None) -> None:
    """Serve the fake on 127.0.0.1 (``--port``, ``--mode``, ``--delay``)."""
    import uvicorn

    parser = argparse.ArgumentParser(description="Fake Gemini generateContent endpoint")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--mode", default="good", choices=MODES)
    parser.add_argument("--delay", type=float, default=DEFAULT_DELAY)
    args = parser.parse_args(argv)
    uvicorn.run(create_app(args.mode, args.delay), host=args.host, port=args.port,
                log_level="warning")


if __name__ == "__main__":
    main()
