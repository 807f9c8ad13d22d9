"""Folding and normalising text: one implementation of each, named for what it keeps.

- :func:`strip_accents`: accents dropped (compatibility decomposition, combining marks removed).
- :func:`fold`: what the reply rules read: lower case, accents and ligatures dropped, emojis that
  mean a word replaced by it, apostrophes made plain.
- :func:`fold_same_length`: lower case and accents dropped one character for one, so that a span
  found in the folded text is the same span in the original (the statements check quotes words).
- :func:`plain_words`: lower-case ASCII letters and digits in words separated by single spaces
  (keywords such as STOP, ARRÊT, DÉSINSCRIRE, whatever the punctuation and emojis around them).
- :func:`correct_typo`: the word of a vocabulary that a typo stands for; :func:`any_of` builds the
  rules' patterns.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from shared.language.vocabulary import EMOJI_WORDS

__all__ = [
    "any_of",
    "correct_typo",
    "fold",
    "fold_same_length",
    "lower_same_length",
    "osa_distance",
    "plain_words",
    "strip_accents",
]

# Skin tones, variation selectors and joiners: "👍🏽" is "👍".
_MODIFIERS = re.compile("[\U0001f3fb-\U0001f3ff\ufe0f\u200d]")
_LIGATURES = str.maketrans({"œ": "oe", "Œ": "OE", "æ": "ae", "ß": "ss"})
_APOSTROPHES = re.compile(r"[’‘`´ʼ]")
# Typographic apostrophes and spaces made plain, one character for one.
_PLAIN_SAME_LENGTH = str.maketrans({"’": "'", "ʼ": "'", "‘": "'", "`": "'", "\u00a0": " ", "\u202f": " "})


def strip_accents(text: str) -> str:
    """``text`` in compatibility decomposition (NFKD) without its combining marks: ``"Réglé"`` → ``"Regle"``."""
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def name_key(name: str) -> str:
    """A name folded for sorting and searching by prefix: accents and case removed, spaces single.

    Stored on every contact (``name_key``) by the repositories' ``upsert``; ``"  Léa  PETIT"`` → ``"lea petit"``.
    """
    return " ".join(strip_accents(name).casefold().split())


def name_words(name: str) -> list[str]:
    """The folded name from each of its words on: what a search by the start of any word matches.

    Stored on every contact (``name_words``) beside ``name_key``; ``"Marie DUPONT"`` →
    ``["marie dupont", "dupont"]``, so "dupont" finds Marie Dupont by an index range.
    """
    key = name_key(name)
    words = key.split(" ")
    return [" ".join(words[i:]) for i in range(len(words))] if key else []


def fold(text: str) -> str:
    """Lower case, accents and ligatures dropped, emojis that mean a word replaced by it, apostrophes plain."""
    text = unicodedata.normalize("NFKC", text)
    text = _MODIFIERS.sub("", text)
    for emoji, word in EMOJI_WORDS.items():
        text = text.replace(emoji, word)
    return _APOSTROPHES.sub("'", strip_accents(text.translate(_LIGATURES)).lower())


def lower_same_length(text: str) -> str:
    """Lower case, typographic apostrophes and spaces made plain, one character for one."""
    return "".join(low if len(low := c.lower()) == 1 else c for c in text.translate(_PLAIN_SAME_LENGTH))


def fold_same_length(text: str) -> str:
    """:func:`lower_same_length` with accents dropped; each character maps to exactly one.

    A span found in the folded text is the same span in ``text``.
    """
    return "".join(
        (strip_accents(char)[:1] or char) if not char.isascii() else char for char in lower_same_length(text)
    )


def plain_words(text: str) -> str:
    """Lower-case, accents removed, punctuation and emoji dropped, spaces collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"[^a-z0-9 ]+", " ", strip_accents(text).lower())).strip()


def osa_distance(a: str, b: str, limit: int) -> int:
    """Optimal-string-alignment distance (typos: one letter added, dropped, changed or swapped).

    Anything above ``limit`` is reported as ``limit + 1``.
    """
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cost = 0 if ca == cb else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                current[j] = min(current[j], previous2[j - 2] + 1)
        if min(current) > limit:
            return limit + 1
        previous2, previous = previous, current
    return previous[-1]


def correct_typo(token: str, vocabulary: Iterable[str]) -> str:
    """The vocabulary word a typo stands for, else the token.

    Only words of six letters or more are corrected, to a word with the same first letter, one edit
    away (two for words of nine letters or more), when exactly one such word is the closest.
    """
    words = vocabulary if isinstance(vocabulary, (set, frozenset)) else frozenset(vocabulary)
    if token in words or len(token) < 6 or not token.isalpha():
        return token
    limit = 2 if len(token) >= 9 else 1
    best: list[tuple[int, str]] = []
    for word in words:
        if word[0] != token[0] or abs(len(word) - len(token)) > limit:
            continue
        distance = osa_distance(token, word, limit)
        if distance <= limit:
            best.append((distance, word))
    if not best:
        return token
    best.sort()
    if len(best) > 1 and best[0][0] == best[1][0]:
        return token  # two equally close words: leave it
    return best[0][1]


def any_of(patterns: Iterable[str]) -> re.Pattern[str]:
    """One pattern matching any of ``patterns`` (written for :func:`fold`-ed text)."""
    return re.compile("|".join(f"(?:{p})" for p in patterns))
