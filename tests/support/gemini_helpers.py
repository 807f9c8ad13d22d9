"""Helpers shared by the drafting and reply-classifier tests.

- :func:`draft_request`: the usual :class:`~shared.ports.DraftRequest` (Jean Dupont, Garage Martin,
  an unpaid invoice), any field overridable;
- :class:`StubClient`: a stand-in for ``genai.Client`` that answers every call with one text,
  response or exception, without HTTP;
- :class:`FakeGemini`, :func:`serve_fake` and :func:`fake_fixtures`: a fake Gemini app
  (``tests.support.fake_gemini`` or ``tests.support.fake_gemini_replies``) served by uvicorn, with
  its ``/_fake/…`` control calls, and the pytest fixtures serving it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from google.genai import types

from shared.domain.models import Language
from shared.ports import DraftRequest
from tests.support.servers import serve_asgi

API_KEY = "test-gemini-key-123456"
MODEL = "gemini-2.5-flash"
PHONE = "+33612345678"
FACTS = {
    "invoice_number": "INV-2024-001",
    "amount": "1250.00",
    "currency": "EUR",
    "due_date": "2026-03-15",
    "payment_link": "https://pay.example.com/i/abc123",
}


def draft_request(
    language: Language = Language.FR, *, facts: dict[str, str] | None = None, **overrides: Any
) -> DraftRequest:
    """First of three courteous follow-ups to Jean Dupont; ``facts`` defaults to a copy of FACTS."""
    values: dict[str, Any] = {
        "contact_name": "Jean Dupont",
        "language": language,
        "facts": dict(FACTS) if facts is None else facts,
        "step_index": 0,
        "step_count": 3,
        "tone": "courteous",
        "business_name": "Garage Martin",
        "campaign_name": "Factures impayées",
    }
    values.update(overrides)
    return DraftRequest(**values)


Answer = str | Exception | types.GenerateContentResponse


def text_response(
    text: str, finish: types.FinishReason = types.FinishReason.STOP, *, thought: str | None = None
) -> types.GenerateContentResponse:
    """One candidate answering ``text`` (after a thought part when ``thought`` is given)."""
    parts = [types.Part(text=thought, thought=True)] if thought is not None else []
    parts.append(types.Part(text=text))
    return types.GenerateContentResponse(candidates=[types.Candidate(
        content=types.Content(role="model", parts=parts), finish_reason=finish)])


class _StubModels:
    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.calls: list[dict[str, Any]] = []

    def generate_content(self, *, model: str, contents: str, config: types.GenerateContentConfig
                         ) -> types.GenerateContentResponse:
        self.calls.append({"model": model, "contents": contents, "config": config})
        if isinstance(self.answer, Exception):
            raise self.answer
        if isinstance(self.answer, types.GenerateContentResponse):
            return self.answer
        return text_response(self.answer)


class StubClient:
    """``client.models.generate_content`` returns (or raises) ``answer``; a text finishes with STOP.

    The calls are recorded in ``client.models.calls``.
    """

    def __init__(self, answer: Answer) -> None:
        self.models = _StubModels(answer)


class FakeGemini:
    """A served fake Gemini endpoint, and its control calls."""

    def __init__(self, url: str, http: httpx.Client) -> None:
        self.url = url
        self.http = http

    def set_mode(self, mode: str, delay: float | None = None) -> None:
        payload: dict[str, Any] = {"mode": mode}
        if delay is not None:
            payload["delay"] = delay
        self.http.post(f"{self.url}/_fake/mode", json=payload).raise_for_status()

    def received(self) -> list[dict[str, Any]]:
        """The generateContent requests received since the last reset (path, headers, body…)."""
        return list(self.http.get(f"{self.url}/_fake/requests").json())

    def reset(self) -> None:
        """Forget the received requests and go back to mode ``good``."""
        self.http.post(f"{self.url}/_fake/reset").raise_for_status()
        self.set_mode("good")


@contextlib.contextmanager
def serve_fake(app: Any) -> Iterator[FakeGemini]:
    """Serve ``app`` (a fake's ``create_app()``) on a free local port while the block runs."""
    with serve_asgi(app) as url, httpx.Client(timeout=10) as http:
        yield FakeGemini(url, http)


def fake_fixtures(create_app: Callable[[], Any]) -> tuple[Any, Any]:
    """The fixtures ``served`` (``create_app()`` served for the whole module) and ``fake`` (reset).

    Use as ``served, fake = fake_fixtures(create_app)`` at the top of a test module.
    """

    @pytest.fixture(scope="module", name="served")
    def served() -> Iterator[FakeGemini]:
        """The fake endpoint served by uvicorn for the whole module."""
        with serve_fake(create_app()) as fake:
            yield fake

    @pytest.fixture(name="fake")
    def fake(served: FakeGemini) -> FakeGemini:
        """The served fake, reset to mode ``good`` with no recorded requests."""
        served.reset()
        return served

    return served, fake
