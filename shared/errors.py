"""The project's exceptions, in one place.

::

    RelanceError
    ├── ConfigError            a setting is missing or malformed (process stops with one line)
    ├── InputError             a user's file, row or command is wrong (clear message, nothing changed)
    ├── PermanentError         retrying cannot help: the actor gives up (dramatiq ``throws``)
    │   └── SendRejected       Twilio refused this message for good (invalid number, opt-out…)
    ├── TransientError         worth retrying with backoff (network, 5xx, rate limit, store down)
    │   └── SendDeferred       Twilio asked us to slow down or failed on its side
    ├── StoreError             the store refused an operation for a reason a retry may not fix
    └── DraftingError          the model's answer is unusable (the offline drafter takes over)

Vendor exceptions (twilio, google-genai, pymongo) are translated into these at the adapters,
so the rest of the code never imports a vendor error type.
"""

from __future__ import annotations


def _without_phones(text: str) -> str:
    """Twilio's error texts may quote the number ("The 'To' number +33… is not valid"); the
    error ends up in logs and in dramatiq's retry records in Redis, so the number is masked."""
    from shared.phones import redact_phones  # here: shared.phones imports this module

    return redact_phones(text)


class RelanceError(Exception):
    """Base class of every error raised on purpose by Relance."""


class ConfigError(RelanceError):
    """A setting is missing or malformed; the message names it."""


class InputError(RelanceError):
    """A user mistake (file, row, command argument); the message says what to fix.

    ``code`` and ``params`` (optional) name the mistake for the console's pages, which say it in
    their reader's language (the message stays the CLI's and the API's, in English).
    """

    def __init__(self, message: str = "", *, code: str | None = None, **params: object) -> None:
        super().__init__(message)
        self.code = code
        self.params = params


class Coded(str):
    """A message that also names itself by ``code`` and ``params``, so a console page can say it in its
    reader's language; it compares, prints and joins as the message (the CLI's and the API's English)."""

    code: str
    params: dict[str, object]

    def __new__(cls, text: str, code: str, **params: object) -> Coded:
        made = super().__new__(cls, text)
        made.code = code
        made.params = params
        return made


def coded(exc: InputError, prefix: str = "", **params: object) -> str:
    """``prefix`` and ``exc``'s message, carrying ``exc``'s code and params (and ``params``) when it has a code."""
    text = f"{prefix}{exc}"
    return Coded(text, exc.code, **{**exc.params, **params}) if exc.code else text


class NotFound(InputError):
    """A user mistake naming what does not exist (an invoice, a campaign…): the console's 404."""


class Conflict(InputError):
    """A user mistake clashing with what exists (a reference or phone already taken): the console's 409."""


class PermanentError(RelanceError):
    """Retrying will not help; the work item is recorded as failed."""


class TransientError(RelanceError):
    """A temporary failure; the actor is retried with backoff."""


class SendRejected(PermanentError):
    """Twilio refused the message for good (carries Twilio's error code)."""

    def __init__(self, code: int | None, message: str, status: int | None = None) -> None:
        message = _without_phones(message)
        super().__init__(f"Twilio error {code}: {message}")
        self.code = code
        self.status = status
        self.twilio_message = message


class SendDeferred(TransientError):
    """Twilio failed in a way that a later retry may fix (429, 5xx, network)."""

    def __init__(self, code: int | None, message: str, status: int | None = None) -> None:
        message = _without_phones(message)
        super().__init__(f"Twilio error {code}: {message}")
        self.code = code
        self.status = status
        self.twilio_message = message

    @property
    def maybe_created(self) -> bool:
        """For a create: whether Twilio may have created the message all the same.

        No usable answer (``status`` None: timeout, dropped connection) or a 5xx, which a
        gateway in front of Twilio can answer after Twilio took the message. Only a 4xx (429
        included) means "not created".
        """
        return self.status is None or self.status >= 500


class StoreError(RelanceError):
    """MongoDB refused an operation, and not for an outage (a bug, a document it cannot take).

    Neither permanent nor transient: an actor retries it a few times, and a webhook event that
    keeps failing on it is handed to a person (``shared.usecases.failures.give_up_after_failures``).
    """


class DraftingError(RelanceError):
    """The model could not produce a usable draft (error, timeout, invalid JSON)."""
