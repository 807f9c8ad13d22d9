"""Dates in a client's reply ("vendredi", "fin du mois", "le 15", "next week"), resolved against today.

The reader works on the reply as :func:`shared.language.reply_rules.normalise` gives it (folded,
SMS spellings and typos fixed, ``15.12`` written ``15/12``). Its decisions:

- a bare weekday means the next such day strictly after today ("vendredi" said on a Friday is
  in a week); "ce vendredi" / "this Friday" may be today; "la semaine prochaine" is next Monday;
  "fin de semaine" the coming Friday; "le mois prochain" the 1st of next month (a loose date);
- a year-less date that has passed this year and is more than six months away next year ("le
  10/03" said on 16/03), a date in the past, one more than :data:`MAX_PROMISE_DAYS` away, or an
  English d/m-or-m/d date ("05/06") is not usable;
- "hier", "last week", "vendredi dernier" mark the reply as speaking of the past; "bientôt",
  "asap", "quelques jours" as vague.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field
from datetime import date, timedelta

from shared.domain.models import Language
from shared.language.vocabulary import MONTHS, NUMBER_WORDS, WEEKDAY_ABBREVIATIONS, WEEKDAYS

__all__ = ["DATE_WORDS", "MAX_PROMISE_DAYS", "ReplyDates", "date_or_none", "read_dates"]

MAX_PROMISE_DAYS = 366  # a promised date further away is not believed
_YEARLESS_MAX_DAYS = 183  # "15/03" said on 20/03 is a past date, not a promise for next March

# The reply is folded: the ASCII spellings are the ones it can hold.
_WEEKDAYS = {**WEEKDAYS, **WEEKDAY_ABBREVIATIONS}
_MONTHS = {name: number for name, number in MONTHS.items() if name.isascii()}
_WD = "|".join(sorted(_WEEKDAYS, key=len, reverse=True))
_MO = "|".join(sorted(_MONTHS, key=len, reverse=True))
_NUM = r"\d{1,3}|" + "|".join(sorted(NUMBER_WORDS, key=len, reverse=True))
_ORD = r"(?:er|ere|eme|e|st|nd|rd|th)?"
# The words date expressions are written with (a typo one edit away from one of them is corrected).
DATE_WORDS = frozenset(_WEEKDAYS) | frozenset(_MONTHS) | frozenset(
    w for w in NUMBER_WORDS if len(w) >= 4
) | frozenset(
    """huitaine quinzaine fortnight bientot prochainement shortly tonight afternoon journee maintenant dernier
    derniere yesterday within semaine prochaine prochain tomorrow demain aujourd today month mois jour jours
    days semaines weeks months heure heures hours minutes previous instructions later beginning early debut
    avant apres dernier matin soir vient cette quelques couple rapidement possible reception viens""".split()
)
_NOT_AMOUNT = r"(?! ?(?:h\b|h\d|heures?|hours?|euros?|eur\b|e\b|dollars?|usd|\$|jours?|days?|%|/|fois|times|k\b|\d))"


@dataclass
class ReplyDates:
    """Date expressions found in a reply, resolved against today."""

    dates: set[date] = field(default_factory=set)
    past: bool = False  # hier, yesterday, vendredi dernier, an explicit date before today
    vague: bool = False  # bientôt, asap, quelques jours, when I can…
    unusable: bool = False  # a date that cannot be a promise (too far, ambiguous, invalid)
    loose: bool = False  # "le mois prochain": resolved, but loosely
    found: bool = False  # any date expression at all
    spans: list[tuple[int, int]] = field(default_factory=list)


def date_or_none(year: int, month: int, day: int) -> date | None:
    """The date, or None when there is no such day (31 April)."""
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _month_end(value: date) -> date:
    return value.replace(day=calendar.monthrange(value.year, value.month)[1])


def _add_months(value: date, months: int) -> date:
    index = value.month - 1 + months
    year, month = value.year + index // 12, index % 12 + 1
    return date(year, month, min(value.day, calendar.monthrange(year, month)[1]))


def _next_weekday(today: date, weekday: int, *, strict: bool) -> date:
    ahead = (weekday - today.weekday()) % 7
    if ahead == 0 and strict:
        ahead = 7
    return today + timedelta(days=ahead)


def _number(word: str) -> int | None:
    if word.isdigit():
        return int(word)
    return NUMBER_WORDS.get(word)


def _year(text: str | None) -> int | None:
    if not text:
        return None
    value = int(text)
    return value + 2000 if value < 100 else value


class _DateReader:
    """Finds date expressions in normalised text and resolves them against ``today``."""

    def __init__(self, today: date, language: Language) -> None:
        self.today = today
        self.language = language
        self.result = ReplyDates()

    def _take(self, text: str, pattern: str) -> tuple[str, list[re.Match[str]]]:
        matches = list(re.finditer(pattern, text))
        for match in matches:
            self.result.spans.append(match.span())
            self.result.found = True
            text = text[: match.start()] + "#" * (match.end() - match.start()) + text[match.end() :]
        return text, matches

    def _add(self, value: date | None) -> None:
        if value is None:
            self.result.unusable = True
        elif value < self.today:
            self.result.past = True
            self.result.unusable = True
        elif (value - self.today).days > MAX_PROMISE_DAYS:
            self.result.unusable = True
        else:
            self.result.dates.add(value)

    def _full(self, day: int, month: int, year: int | None) -> None:
        if year is not None:
            self._add(date_or_none(year, month, day))
            return
        found = date_or_none(self.today.year, month, day)
        if found is None and month == 2 and day == 29:
            found = date_or_none(self.today.year + 1, month, day)
        rolled = False
        if found is not None and found < self.today:
            found, rolled = date_or_none(self.today.year + 1, month, day), True
        if found is not None and rolled and (found - self.today).days > _YEARLESS_MAX_DAYS:
            self.result.unusable = True  # "le 10/03" said on 16/03: a past date, not next year's
            self.result.past = True
            return
        self._add(found)

    def _day_only(self, day: int) -> None:
        if not 1 <= day <= 31:
            self.result.unusable = True
            return
        first = self.today.replace(day=1)
        for months in range(3):
            candidate = date_or_none(_add_months(first, months).year, _add_months(first, months).month, day)
            if candidate is not None and candidate >= self.today:
                self._add(candidate)
                return
        self.result.unusable = True

    def _month_part(self, part: str, month: int) -> None:
        year = self.today.year if month >= self.today.month else self.today.year + 1
        start = date(year, month, 1)
        if part in ("fin", "end of", "late"):
            self._add(max(_month_end(start), self.today))
        elif part in ("mi", "mid"):
            self._add(max(start.replace(day=15), self.today))
        else:
            self._add(max(start, self.today))

    def _end_of_week(self) -> date:
        if self.today.weekday() >= 5:
            return _next_weekday(self.today, 6, strict=False)
        return _next_weekday(self.today, 4, strict=False)

    def read(self, text: str) -> ReplyDates:
        """Resolve every date expression of ``text`` (normalised)."""
        today, r = self.today, self.result
        text, found = self._take(text, r"\b(\d{1,2})/(\d{1,2})(?:/(\d{4}|\d{2}))?\b")
        for m in found:
            a, b, year = int(m.group(1)), int(m.group(2)), _year(m.group(3))
            day_month = date_or_none(year or 2000, b, a) is not None
            month_day = date_or_none(year or 2000, a, b) is not None
            if day_month and month_day and a != b and self.language == Language.EN:
                r.unusable = True  # 05/06 in English: 5 June or May 6?
            elif day_month:
                self._full(a, b, year)
            elif month_day:
                self._full(b, a, year)
            else:
                r.unusable = True
        text, found = self._take(text, rf"\b(?:le |the )?(\d{{1,2}}){_ORD} (?:de |of )?({_MO})\b(?: (\d{{4}}))?")
        for m in found:
            self._full(int(m.group(1)), _MONTHS[m.group(2)], _year(m.group(3)))
        text, found = self._take(text, rf"\b({_MO}) (?:the )?(\d{{1,2}}){_ORD}\b(?: (\d{{4}}))?{_NOT_AMOUNT}")
        for m in found:
            self._full(int(m.group(2)), _MONTHS[m.group(1)], _year(m.group(3)))
        text, found = self._take(
            text, rf"\b(fin|debut|mi|end of|beginning of|early|mid|late) (?:(?:de |d |du mois de |the month of ) ?)?"
            rf"({_MO})\b"
        )
        for m in found:
            self._month_part(m.group(1), _MONTHS[m.group(2)])
        text, found = self._take(text, rf"\b({_WD}) (?:de la |of |the )?(?:semaine prochaine|next week)\b"
                                       rf"|\bnext week (?:on )?({_WD})\b")
        for m in found:
            monday = _next_weekday(today, 0, strict=True)
            self._add(monday + timedelta(days=_WEEKDAYS[m.group(1) or m.group(2)]))
        text, found = self._take(text, rf"\b(?:{_WD}) dernier\b|\blast (?:{_WD})\b|\bavant hier\b"
                                       r"|\b(?:hier|yesterday|la semaine derniere|last week|le mois dernier"
                                       r"|last month|ce matin|this morning)\b")
        if found:
            r.past = True
        text, found = self._take(text, rf"\b(?:ce|cette|this|this coming|ce prochain) ({_WD})\b")
        for m in found:
            self._add(_next_weekday(today, _WEEKDAYS[m.group(1)], strict=False))
        text, found = self._take(
            text, rf"\bnext ({_WD})\b|\b({_WD})(?: prochain| qui vient| matin| soir| apres midi)?\b"
        )
        for m in found:
            self._add(_next_weekday(today, _WEEKDAYS[m.group(1) or m.group(2)], strict=True))
        text, found = self._take(text, r"\b(?:apres demain|(?:the )?day after tomorrow)\b")
        for _ in found:
            self._add(today + timedelta(days=2))
        text, found = self._take(text, r"\b(?:demain|tomorrow)\b")
        for _ in found:
            self._add(today + timedelta(days=1))
        text, found = self._take(
            text, r"\b(?:aujourd hui|today|ce soir|tonight|cet apres midi|this afternoon|dans la journee|"
                  r"later today|tout a l heure|tout de suite|right now|right away|des maintenant|maintenant)\b"
        )
        for _ in found:
            self._add(today)
        text, found = self._take(text, r"\b(?:fin (?:du |de )?mois prochain|end of next month)\b")
        for _ in found:
            self._add(_month_end(_add_months(today.replace(day=1), 1)))
        text, found = self._take(text, r"\b(?:fin (?:du |de |de ce )?mois|end of (?:the |this )?month|month end)\b")
        for _ in found:
            self._add(_month_end(today))
        text, found = self._take(
            text, r"\b(?:(?:debut|au debut) (?:du |de )?mois(?: prochain)?|(?:le |au )?mois prochain"
                  r"|(?:early|beginning of|start of) next month|next month)\b"
        )
        for _ in found:
            r.loose = True
            self._add(_add_months(today.replace(day=1), 1))
        text, found = self._take(text, r"\b(?:semaine prochaine|next week)\b")
        for _ in found:
            self._add(_next_weekday(today, 0, strict=True))
        text, found = self._take(text, r"\b(?:(?:en |a la |d ici la )?fin (?:de (?:la )?)?semaine|(?:by )?(?:the )?end"
                                       r" of (?:the |this )?week|cette semaine|this week|dans la semaine"
                                       r"|within the week)\b")
        for _ in found:
            self._add(self._end_of_week())
        text, found = self._take(text, r"\b(?:ce |le |this |the |over the )?week end\b")
        for _ in found:
            self._add(_next_weekday(today, 6, strict=False))
        text, found = self._take(text, r"\bsous (huitaine|quinzaine)\b|\b(?:dans|in) a fortnight\b")
        for m in found:
            self._add(today + timedelta(days=14 if m.group(1) != "huitaine" else 7))
        text, found = self._take(
            text, rf"\b(?:dans|sous|d ici|in|within|en) (?:les |the next |the )?({_NUM}) "
                  r"(jours?|days?|semaines?|weeks?|mois|months?)\b"
        )
        for m in found:
            count = _number(m.group(1))
            unit = m.group(2)
            if count is None or count > 400:
                r.unusable = True
            elif unit.startswith(("jour", "day")):
                self._add(today + timedelta(days=count))
            elif unit.startswith(("semaine", "week")):
                self._add(today + timedelta(weeks=count))
            else:
                self._add(_add_months(today, count))
        text, found = self._take(
            text, rf"\b(?:le|avant le|au plus tard le|d ici le|jusqu au|pour le) (\d{{1,2}})(?:er|eme|e)?\b"
                  rf"{_NOT_AMOUNT}|\b(?:on|by|before) the (\d{{1,2}})(?:st|nd|rd|th)?\b{_NOT_AMOUNT}"
                  rf"|\b(\d{{1,2}})(?:st|nd|rd|th)\b"
        )
        for m in found:
            self._day_only(int(m.group(1) or m.group(2) or m.group(3)))
        text, found = self._take(
            text, r"\b(?:bientot|asap|au plus vite|des que possible|rapidement|prochainement|soon|as soon as possible|"
                  r"quelques jours|(?:a )?few days|couple of days|quand je (?:peux|pourrai)|when i can|sous peu|"
                  r"shortly|un de ces jours|plus tard|later|des que je peux|a la fin du mois|des reception)\b"
        )
        if found:
            r.vague = True
        return r


def read_dates(text: str, today: date, language: Language) -> ReplyDates:
    """Every date expression of ``text`` (normalised), resolved against ``today`` (the contact's)."""
    return _DateReader(today, language).read(text)
