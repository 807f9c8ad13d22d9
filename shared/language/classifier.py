"""The offline classifier, and ``classify_safely``, which every reading of a reply goes through.

Both classifiers (this one, and :class:`shared.gemini_classifier.GeminiClassifier`) implement
:class:`shared.ports.Classifier`; the replies actor calls them through :func:`classify_safely`,
which turns any failure or doubt into a needs-a-person reason and never guesses.

:class:`OfflineClassifier` is deterministic, French and English, and tolerant of case, accents,
small typos, SMS spellings, emojis and punctuation (the rules: :mod:`shared.language.reply_rules`,
:mod:`shared.language.questions`, :mod:`shared.language.dates`). Its decisions on ambiguous replies:

- mixed intents (paid + dispute, wrong person + paid, promise + a question about a fact,
  partial payments…) get confidence 0.4, so a person decides;
- an opt-out in natural language wins over everything else (0.9): stopping is what the client
  asked, and the other intents would stop the follow-up anyway;
- "déjà payé" / "already paid" is a paid claim; a plain "erreur" next to a paid claim is read as
  paid (0.75), a real contestation next to it (je conteste, wrong amount…) as a mixed dispute;
- "qui est-ce ?" / "who is this?" alone is ``other`` (0.3): it may be a forgetful client as
  much as a wrong number, so the follow-up is paused for a person rather than stopped;
- "oui" / "yes" alone is ``acknowledged`` at 0.5 and "non" / "no" alone ``other`` at 0.3
  (their meaning depends on the message they answer);
- "je regarde", "je m'en occupe", "I'll check" are ``acknowledged`` (0.7), not promises;
- a date alone ("vendredi", "fin du mois") is a promise to pay at 0.7; a promise whose date
  cannot be used (past, too far, ambiguous, two different dates) has no date (a person decides);
- an attempt to instruct the classifier ("ignore your instructions…") is ``other`` at 0.2;
- the conversation history is not used offline.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date

from shared.domain.reasons import HandOver, HandOverReason
from shared.errors import DraftingError
from shared.language.dates import ReplyDates, read_dates
from shared.language.questions import (
    DOCUMENT,
    OTHER_METHOD,
    QUESTION_WORDS,
    REQUEST,
    TOPIC_ALIASES,
    TOPICS,
    WHY,
    topics,
)
from shared.language.reply_rules import (
    ACK_PHRASES,
    CANNOT_PAY,
    DISPUTE,
    FILLER,
    FUTURE_PAY,
    GREETING,
    NO,
    NOT_PAID,
    OPT_OUT,
    OPT_OUT_REMINDERS,
    PAID,
    PARTIAL,
    PRESENT_PAY,
    WEAK_DISPUTE,
    WHO_IS_THIS,
    WILL_LOOK,
    WISHES,
    WRONG_PERSON,
    YES,
    looks_like_injection,
    normalise,
)
from shared.language.text import fold
from shared.ports import Classification, Classifier, ClassifyRequest, Intent

log = logging.getLogger(__name__)

__all__ = ["HIGH", "MIXED", "SUSPECT", "OfflineClassifier", "classify_safely"]

HIGH = 0.9  # a clear, single intent
MIXED = 0.4  # several intents at once: a person decides
SUSPECT = 0.2  # an attempt to instruct the classifier


@dataclass
class _Reading:
    """What the rules found in one reply."""

    text: str
    paid: bool
    promise_words: bool  # future tense, "virement programmé"…
    present_pay: bool  # "je paie", "I pay" (a promise only with a date)
    cannot_pay: bool
    partial: bool
    opt_out: bool
    opt_out_reminders: bool
    wrong_person: bool
    who_is_this: bool
    dispute: bool
    weak_dispute: bool
    will_look: bool
    question_mark: bool
    interrogative: bool
    request: bool
    why: bool
    topics: list[str]
    other_method: bool
    document: bool
    dates: ReplyDates
    unknown_words: int


def _unknown_words(text: str, spans: Iterable[tuple[int, int]], patterns: Iterable[re.Pattern[str]]) -> int:
    for start, end in spans:
        text = text[:start] + " " * (end - start) + text[end:]
    for pattern in patterns:
        text = pattern.sub(" ", text)
    return sum(1 for word in text.split() if word not in FILLER and not word.isdigit())


def _read(request: ClassifyRequest) -> _Reading:
    raw = request.text
    text = normalise(raw)
    masked = WISHES.sub(lambda m: "#" * len(m.group(0)), text)
    dates = read_dates(masked, request.today, request.language)
    paid = bool(PAID.search(text)) and not NOT_PAID.search(text)
    wrong = bool(WRONG_PERSON.search(text)) or _not_named(raw)
    unknown = _unknown_words(
        text, dates.spans,
        (WISHES, ACK_PHRASES, GREETING, PAID, FUTURE_PAY, PRESENT_PAY, WILL_LOOK, *TOPICS.values()),
    )
    return _Reading(
        text=text,
        paid=paid,
        promise_words=bool(FUTURE_PAY.search(text)),
        present_pay=bool(PRESENT_PAY.search(text)),
        cannot_pay=bool(CANNOT_PAY.search(text)),
        partial=bool(PARTIAL.search(text)),
        opt_out=bool(OPT_OUT.search(text)),
        opt_out_reminders=bool(OPT_OUT_REMINDERS.search(text)),
        wrong_person=wrong,
        who_is_this=bool(WHO_IS_THIS.search(text)),
        dispute=bool(DISPUTE.search(text)),
        weak_dispute=bool(WEAK_DISPUTE.search(text)),
        will_look=bool(WILL_LOOK.search(text)),
        question_mark="?" in raw or "¿" in raw,
        interrogative=bool(QUESTION_WORDS.search(text)),
        request=bool(REQUEST.search(text)),
        why=bool(WHY.search(text)),
        topics=topics(text, "?" in raw),
        other_method=bool(OTHER_METHOD.search(text)),
        document=bool(DOCUMENT.search(text)),
        dates=dates,
        unknown_words=unknown,
    )


_NAME_STOP = frozenset(
    """d daccord sur sure certain certaine disponible dispo content contente satisfait satisfaite en la le les
    au dans chez encore responsable able happy going paying ok okay interested interesse mesure capable pret
    prete ready aware courant ici here home concerned a an the correct right true grave possible normal vrai
    juste bon bonne ma mon mes my what that this it""".split()
)


def _not_named(raw: str) -> bool:
    """"Je ne suis pas Jean" / "I'm not John": a capitalised name after the negation."""
    for match in re.finditer(r"\b(?:[Jj]e (?:ne )?suis pas|[Ii]'?m not|I am not|[Cc]e n'est pas|[Tt]his is not)"
                             r" ([A-ZÀ-Ý][\w\-]+)", raw.replace("’", "'")):
        name = fold(match.group(1))
        if name not in _NAME_STOP and not name.startswith("d'"):
            return True
    return False


class OfflineClassifier:
    """Rule-based reading of a reply, French and English, deterministic (implements ``Classifier``)."""

    source = "offline"

    def classify(self, request: ClassifyRequest) -> Classification:
        """Classify the reply with the rules; never raises."""
        if not request.text.strip() or not normalise(request.text):
            reason = "media only" if request.has_media else "empty message"
            return Classification(intent=Intent.OTHER, confidence=0.0, source=self.source, reason=reason)
        if looks_like_injection(request.text):
            return Classification(intent=Intent.OTHER, confidence=SUSPECT, source=self.source,
                                  reason="suspected prompt injection")
        reading = _read(request)
        return self._decide(reading, request)

    def _result(self, intent: Intent, confidence: float, reason: str, *, reading: _Reading | None = None,
                request: ClassifyRequest | None = None, with_topic: bool = False) -> Classification:
        promised: date | None = None
        topic: str | None = None
        if reading is not None and request is not None:
            if intent == Intent.PROMISE_TO_PAY:
                promised, why = _promised(reading.dates)
                if why:
                    reason = f"{reason}; {why}"
            if (intent == Intent.QUESTION or with_topic) and reading.topics:
                topic, why = _topic(reading, request.facts)
                if why and intent == Intent.QUESTION:
                    reason = f"{reason}; {why}"
        return Classification(intent=intent, confidence=confidence, source=self.source, promised_date=promised,
                              question_topic=topic, reason=reason)

    def _decide(self, r: _Reading, request: ClassifyRequest) -> Classification:
        def result(intent: Intent, confidence: float, reason: str, with_topic: bool = False) -> Classification:
            return self._result(intent, confidence, reason, reading=r, request=request, with_topic=with_topic)

        strong_question = r.question_mark or r.interrogative or (r.request and bool(r.topics))
        question = r.document or (
            strong_question and (bool(r.topics) or r.why or r.other_method or r.question_mark)
        )
        fact_question = strong_question and bool(r.topics)
        promise = r.promise_words or (r.present_pay and (bool(r.dates.dates) or r.dates.vague or r.dates.unusable))
        if r.cannot_pay and not (r.dates.dates and promise):
            promise = False

        if r.opt_out:
            others = [n for n, on in (("paid", r.paid), ("dispute", r.dispute), ("wrong person", r.wrong_person))
                      if on]
            suffix = f" (also: {', '.join(others)})" if others else ""
            return result(Intent.OPT_OUT, HIGH, "asks to stop receiving messages" + suffix)
        if r.wrong_person:
            if r.paid or promise:
                return result(Intent.WRONG_PERSON, MIXED, "mixed: wrong person and payment")
            return result(Intent.WRONG_PERSON, HIGH, "says it is the wrong person")
        if r.opt_out_reminders and not (r.paid or promise or r.dispute):
            return result(Intent.OPT_OUT, 0.85, "asks to stop the reminders")
        if r.dispute:
            if r.paid or promise:
                return result(Intent.DISPUTE, MIXED, "mixed: dispute and " + ("paid" if r.paid else "promise"))
            return result(Intent.DISPUTE, HIGH, "contests the invoice")
        if r.partial and (r.paid or promise):
            intent = Intent.PROMISE_TO_PAY if promise else Intent.PAID
            return result(intent, MIXED, "mixed: partial payment or instalments")
        if r.paid:
            if r.promise_words:
                return result(Intent.PAID, MIXED, "mixed: paid and promise")
            if fact_question:
                return result(Intent.PAID, MIXED, "mixed: paid and a question")
            if r.weak_dispute:
                return result(Intent.PAID, 0.75, "says it is paid (mentions an error)")
            if r.question_mark:
                return result(Intent.PAID, 0.8, "says it is paid (asks for confirmation)")
            return result(Intent.PAID, HIGH, "says it is paid")
        if promise:
            if fact_question:
                return result(Intent.PROMISE_TO_PAY, MIXED, "mixed: promise and a question", with_topic=True)
            if r.question_mark or r.interrogative:
                return result(Intent.PROMISE_TO_PAY, 0.65, "asks to pay later")
            if r.dates.loose:
                return result(Intent.PROMISE_TO_PAY, 0.75, "promises to pay (loose date)")
            return result(Intent.PROMISE_TO_PAY, HIGH, "promises to pay")
        if r.weak_dispute:
            return result(Intent.DISPUTE, MIXED if strong_question else 0.7, "mentions an error")
        if r.who_is_this:
            return result(Intent.OTHER, 0.3, "asks who is writing")
        if question or (r.topics and r.unknown_words <= 2):
            confidence = HIGH if strong_question else 0.75
            return result(Intent.QUESTION, confidence, "asks a question")
        if r.cannot_pay:
            return result(Intent.OTHER, MIXED, "payment difficulty")
        if r.will_look:
            return result(Intent.ACKNOWLEDGED, 0.7, "will look into it")
        if (r.dates.dates or r.dates.vague or r.dates.unusable) and not r.dates.past and r.unknown_words <= 3:
            return result(Intent.PROMISE_TO_PAY, 0.7, "gives a date")
        if ACK_PHRASES.search(r.text):
            if r.unknown_words == 0:
                return result(Intent.ACKNOWLEDGED, HIGH, "acknowledges")
            return result(Intent.ACKNOWLEDGED, 0.6 if r.unknown_words <= 3 else MIXED, "acknowledges (with more)")
        if YES.match(r.text):
            return result(Intent.ACKNOWLEDGED, 0.5, "bare yes")
        if NO.match(r.text):
            return result(Intent.OTHER, 0.3, "bare no")
        if r.question_mark:
            return result(Intent.QUESTION, 0.7, "asks a question")
        if GREETING.search(r.text) and r.unknown_words == 0:
            return result(Intent.OTHER, 0.3, "greeting only")
        return result(Intent.OTHER, SUSPECT, "no rule matched" + (" (with media)" if request.has_media else ""))


def _promised(dates: ReplyDates) -> tuple[date | None, str | None]:
    """The promised date, or None with why."""
    if len(dates.dates) == 1:
        return next(iter(dates.dates)), None
    if len(dates.dates) > 1:
        return None, "several dates"
    if dates.unusable:
        return None, "date not usable"
    return None, "no date"


def _topic(reading: _Reading, facts: dict[str, str]) -> tuple[str | None, str | None]:
    """The fact key asked for when the facts hold it (else None, with why)."""
    if reading.why:
        return None, "asks why"
    if reading.other_method:
        return None, "asks about another payment method"
    if reading.document:
        return None, "asks for a document"
    if len(reading.topics) > 1:
        return None, "several topics: " + ", ".join(reading.topics)
    if not reading.topics:
        return None, None
    asked = reading.topics[0]
    for key in TOPIC_ALIASES.get(asked, (asked,)):
        value = facts.get(key)
        if isinstance(value, str) and value.strip():
            return key, None
    return None, f"asks {asked} (not in the data)"


# ----------------------------------------------------------------------------------- safely

_REASON_CHARS = 120


def _short(text: str) -> str:
    return " ".join(text.split())[:_REASON_CHARS]


def classify_safely(
    classifier: Classifier, request: ClassifyRequest, *, threshold: float = 0.6
) -> tuple[Classification, HandOver | None]:
    """Run the classifier; return its reading and why a person must decide (None when no one must).

    A failure gives ``other`` at confidence 0, handed over as ``classifier failed: …``; a low
    confidence, an ``other`` intent, or a promise without a usable date are handed over too.
    Never guesses.
    """
    source = str(getattr(classifier, "source", type(classifier).__name__))
    try:
        result = classifier.classify(request)
    except DraftingError as exc:
        return _failed(source, _short(str(exc)) or "error")
    except Exception as exc:
        reason = f"unexpected {type(exc).__name__}"
        log.warning("classifier %s crashed: %s", source, reason)
        return _failed(source, reason)
    confidence = result.confidence
    if not isinstance(confidence, (int, float)) or math.isnan(confidence) or not 0.0 <= confidence <= 1.0:
        return replace(result, confidence=0.0), HandOver(HandOverReason.INVALID_CONFIDENCE)
    detail = _short(result.reason) if result.reason else ""
    if result.intent == Intent.OTHER:
        return result, HandOver(HandOverReason.UNCLEAR_REPLY, detail)
    if confidence < threshold:
        why = f"{confidence:.2f} for {result.intent.value}" + (f" ({detail})" if detail else "")
        return result, HandOver(HandOverReason.LOW_CONFIDENCE, why)
    if result.intent == Intent.PROMISE_TO_PAY:
        if result.promised_date is None:
            return result, HandOver(HandOverReason.PROMISE_WITHOUT_DATE, detail)
        if result.promised_date < request.today:
            return result, HandOver(HandOverReason.PROMISE_IN_THE_PAST)
    return result, None


def _failed(source: str, reason: str) -> tuple[Classification, HandOver]:
    """No reading: ``other`` at confidence 0, for a person."""
    return (Classification(intent=Intent.OTHER, confidence=0.0, source=source, reason=f"classifier_error: {reason}"),
            HandOver(HandOverReason.CLASSIFIER_FAILED, reason))
