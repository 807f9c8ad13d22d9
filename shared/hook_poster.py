"""The real :class:`~shared.usecases.outbound.HookPoster`: an httpx POST with a short timeout, no redirects."""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from shared.usecases.outbound import HookPostError


class HttpxPoster:
    """POSTs webhook bodies; transport failures become :class:`HookPostError` naming only their kind."""

    def __init__(self, *, transport: httpx.BaseTransport | None = None) -> None:
        # A redirect is an answer (3xx: not delivered): following it would send the signed body elsewhere.
        self.client = httpx.Client(transport=transport, follow_redirects=False)

    def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> int:
        """POST ``body``; the HTTP status code."""
        try:
            response = self.client.post(url, content=body, headers=dict(headers), timeout=timeout)
        except httpx.TimeoutException:
            raise HookPostError("timed out") from None
        except httpx.HTTPError as exc:
            # The exception text may hold the URL (a token in its query): only its kind is kept.
            raise HookPostError(f"no answer ({type(exc).__name__})") from None
        return response.status_code

    def close(self) -> None:
        """Close the connection pool."""
        self.client.close()
