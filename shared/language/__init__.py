"""Reading and writing French and English: pure functions and tables, no I/O and no vendor SDK.

- :mod:`~shared.language.text`: accent folding and normalising (one implementation of each).
- :mod:`~shared.language.vocabulary`: months, weekdays, number words, currencies, SMS spellings.
- :mod:`~shared.language.dates`: dates in a client's reply, resolved against today.
- :mod:`~shared.language.questions`: what a client's question asks about.
- :mod:`~shared.language.reply_rules`: the reply rules (payment claims, promises, opt-outs, STOP
  keywords, injection attempts) and the normaliser they read.
- :mod:`~shared.language.classifier`: the offline classifier, and ``classify_safely``.
- :mod:`~shared.language.mentions`: amounts, dates, links, references and phones written in a text.
- :mod:`~shared.language.statements`: what a draft may never say (discounts, cancellation…).
- :mod:`~shared.language.factcheck`: the facts check every draft and reply passes.
- :mod:`~shared.language.formatting`: amounts and dates as a client reads them.
- :mod:`~shared.language.drafts`: the offline drafter.
- :mod:`~shared.language.texts`: what Relance writes on its own (replies to clients, owner alerts).

The Gemini classifier, which calls google-genai, is :mod:`shared.gemini_classifier`.
"""
