"""Campaign files (YAML or JSON): loading and checking against contacts.

Creating and enrolling are use cases (:mod:`shared.usecases.campaigns`).

A campaign file looks like::

    id: relance-factures
    name: Relance factures
    steps:
      - delay: 3d
        anchor: due_date        # "enrolment", "previous" or a date field of the contacts
        relation: after         # or "before" (date anchors only)
        tone: courteous
        template:
          content_sid: HX0123456789abcdef0123456789abcdef
          variables: {"1": name, "2": invoice_number}
          preview: {fr: "Bonjour {{1}}, la facture {{2}}…", en: "Hello {{1}}, invoice {{2}}…"}
    send_window: {days: [mon, tue, wed, thu, fri], start: "09:00", end: "18:00"}
    enrol: {tags: [clients], filter: {currency: EUR}}

Problems are reported as one :class:`InputError` listing each with its place in the file,
e.g. ``campaign.yaml: steps[1].delay: invalid duration '3x'`` (list indexes in these paths
count from 0; prose such as "step 2" counts from 1).
"""

from __future__ import annotations

import copy
import difflib
import json
import re
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from shared.domain.models import (
    INVOICE_VARIABLES,
    OLDEST_DUE_DATE,
    Campaign,
    Contact,
    EnrolRule,
    InvoiceSelector,
    SendWindow,
    Step,
    TemplateRef,
)
from shared.durations import parse_duration
from shared.errors import InputError
from shared.phones import mask_phone
from shared.policy import parse_field_date

MAX_EXAMPLES = 3
_FIELD_NAME = re.compile(r"^[a-z0-9_]+$")
_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_NON_FIELD_ANCHORS = ("enrolment", "previous", OLDEST_DUE_DATE)
_KNOWN_KEYS = sorted({
    name for model in (Campaign, Step, TemplateRef, SendWindow, EnrolRule, InvoiceSelector)
    for name in model.model_fields
})


# ------------------------------------------------------------------------------------ parsing
class _Loader(yaml.SafeLoader):
    """SafeLoader without YAML 1.1 surprises: ``18:00`` stays a string (not 1080), dates stay text."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers
            if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:timestamp")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"), list("-+0123456789")
)


def _parse(path: Path) -> Any:
    label = path.name
    suffix = path.suffix.lower()
    if suffix not in (".yaml", ".yml", ".json"):
        raise InputError(f"{label}: unsupported file type {suffix or '(none)'!r}: "
                         "use .yaml, .yml or .json")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise InputError(f"{label}: not UTF-8 text") from None
    except OSError as exc:
        raise InputError(f"{label}: cannot read the file ({exc.strerror or exc})") from None
    if suffix == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{label}: invalid JSON at line {exc.lineno}, column {exc.colno}: "
                             f"{exc.msg}") from None
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise InputError(f"{label}: invalid YAML{where}: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{label}: invalid YAML: {exc}") from None


def _path(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _scalar_text(value: Any) -> Any:
    """YAML/JSON scalars a campaign compares as text (filter values, variable slots)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def _prepare(data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Normalise friendly spellings and check delays (so every problem gets a location)."""
    data = copy.deepcopy(data)
    problems: list[str] = []
    steps = data.get("steps")
    if isinstance(steps, list):
        for index, step in enumerate(steps):
            if not isinstance(step, dict):
                continue
            if "delay" in step:
                try:
                    parse_duration(str(step["delay"]))
                    step["delay"] = str(step["delay"])
                except InputError as exc:
                    problems.append(f"steps[{index}].delay: {exc}")
                    step["delay"] = "0s"  # let the other checks run
            template = step.get("template")
            if isinstance(template, dict) and isinstance(template.get("variables"), dict):
                template["variables"] = {str(k): _scalar_text(v) for k, v in template["variables"].items()}
    window = data.get("send_window")
    if isinstance(window, dict):
        for key in ("start", "end"):
            value = window.get(key)
            if isinstance(value, str) and re.fullmatch(r"\d:\d\d", value.strip()):
                window[key] = "0" + value.strip()
    enrol = data.get("enrol")
    if isinstance(enrol, dict) and isinstance(enrol.get("filter"), dict):
        enrol["filter"] = {str(k): _filter_value(str(k), _scalar_text(v), problems)
                           for k, v in enrol["filter"].items()}
    return data, problems


def _filter_value(key: str, value: str, problems: list[str]) -> str:
    """A filter value written as the import stores that field (``99.9`` → ``99.90``, ``15/03/2026`` → ISO)."""
    from shared.contact_rows import normalise_amount, normalise_date

    try:
        if key == "amount":
            return normalise_amount(value)[0]
        if key == "due_date":
            return normalise_date(value)
    except InputError as exc:
        problems.append(f"enrol.filter.{key}: {exc}")
        return value
    return value.strip().upper() if key == "currency" else value


def _pydantic_problems(exc: ValidationError) -> list[str]:
    problems: list[str] = []
    for error in exc.errors(include_url=False):
        loc = [part for part in error["loc"] if part != "[key]"]
        where = _path(loc) + (" (key)" if len(loc) != len(error["loc"]) else "")
        kind = error["type"]
        if kind == "missing":
            message = "is required"
        elif kind == "extra_forbidden":
            key = str(error["loc"][-1]) if error["loc"] else ""
            close = difflib.get_close_matches(key, _KNOWN_KEYS, n=1)
            message = "unknown key" + (f" (did you mean {close[0]!r}?)" if close else "")
        else:
            message = re.sub(r"^(Value|Assertion) error, ", "", str(error["msg"]))
            value = error.get("input")
            if isinstance(value, str | int | float) and not isinstance(value, bool) and len(str(value)) <= 40:
                message += f" (got {value!r})"
        problems.append(f"{where}: {message}")
    return problems


def _semantic_problems(campaign: Campaign) -> list[str]:
    problems: list[str] = []
    for index, step in enumerate(campaign.steps):
        where = f"steps[{index}]"
        if step.anchor not in _NON_FIELD_ANCHORS and not _FIELD_NAME.match(step.anchor):
            problems.append(f"{where}.anchor: {step.anchor!r} is neither enrolment, previous nor a "
                            "contact field name (lower_case_with_underscores, e.g. due_date)")
        if step.relation == "before" and step.anchor in ("enrolment", "previous"):
            problems.append(f"{where}.relation: 'before' needs a date anchor such as due_date "
                            f"(the anchor is {step.anchor!r})")
        if step.template is None:
            continue
        for slot, source in step.template.variables.items():
            if source != "name" and not _FIELD_NAME.match(source):
                problems.append(f"{where}.template.variables.{slot}: {source!r} is not a contact "
                                "field name (name, or lower_case_with_underscores, e.g. invoice_number)")
        for language, text in step.template.preview.items():
            unknown = sorted({m for m in _PLACEHOLDER.findall(text)} - set(step.template.variables))
            if unknown:
                listed = ", ".join("{{" + u + "}}" for u in unknown)
                problems.append(f"{where}.template.preview.{language.value}: {listed} not among "
                                "the template's variables")
    for key in campaign.enrol.filter:
        if not _FIELD_NAME.match(key):
            problems.append(f"enrol.filter.{key}: not a contact field name (lower_case_with_underscores)")
    return problems


def load_campaign(path: Path) -> Campaign:
    """Read and validate a campaign file (.yaml, .yml or .json); InputError listing every problem."""
    path = Path(path)
    return campaign_from_data(_parse(path), path.name)


def campaign_from_data(data: Any, label: str) -> Campaign:
    """Validate a campaign file's parsed content (what the console receives as JSON); InputError listing
    every problem, each prefixed with ``label``."""
    if not isinstance(data, dict):
        raise InputError(f"{label}: expected a mapping with id, name and steps at the top level")
    data, problems = _prepare(data)
    campaign: Campaign | None = None
    try:
        campaign = Campaign.model_validate(data)
    except ValidationError as exc:
        problems.extend(_pydantic_problems(exc))
    except InputError as exc:  # a validator raising our own error: no location to give
        problems.append(str(exc))
    if campaign is not None:
        problems.extend(_semantic_problems(campaign))
    if problems or campaign is None:
        raise InputError("\n".join(f"{label}: {p}" for p in problems))
    return campaign


# ------------------------------------------------------------------------------------ checks
def who(contact: Contact) -> str:
    """A contact as a report names it: its name and masked phone."""
    return f"{contact.name} ({mask_phone(contact.phone)})"


def field_uses(campaign: Campaign) -> dict[str, list[str]]:
    """Each referenced field → where the campaign uses it (steps counted from 1)."""
    uses: dict[str, list[str]] = {}
    for number, step in enumerate(campaign.steps, start=1):
        if step.anchor not in _NON_FIELD_ANCHORS:
            uses.setdefault(step.anchor, []).append(f"step {number} anchor")
        if step.template:
            for slot, source in step.template.variables.items():
                if source != "name" and not (campaign.about_invoices and source in INVOICE_VARIABLES):
                    uses.setdefault(source, []).append(f"step {number} template variable {{{{{slot}}}}}")
    for key in campaign.enrol.filter:
        uses.setdefault(key, []).append("the enrolment filter")
    for key in campaign.referenced_fields():
        uses.setdefault(key, ["the campaign"])
    return uses


def _date_fields(campaign: Campaign) -> set[str]:
    return {s.anchor for s in campaign.steps if s.anchor not in _NON_FIELD_ANCHORS}


def selects(campaign: Campaign, contact: Contact, extra_tags: Iterable[str] = ()) -> bool:
    """True when the campaign's enrolment rule (plus ``extra_tags``) selects this contact."""
    wanted = set(campaign.enrol.tags) | set(extra_tags)
    if not wanted <= set(contact.tags):
        return False
    return all(contact.fields.get(k) == v for k, v in campaign.enrol.filter.items())


def field_issues(campaign: Campaign, contact: Contact) -> list[tuple[str, str]]:
    """``(field, "missing" | "not_date")`` for each referenced field this contact cannot supply."""
    issues: list[tuple[str, str]] = []
    dates = _date_fields(campaign)
    for key in sorted(campaign.referenced_fields()):
        value = contact.fields.get(key, "")
        if not value.strip():
            issues.append((key, "missing"))
        elif key in dates and parse_field_date(value) is None:
            issues.append((key, "not_date"))
    return issues


def issue_reason(contact: Contact, key: str, kind: str, used_by: str) -> str:
    """Why this contact cannot supply ``key`` (a :func:`field_issues` kind), for a report."""
    if kind == "missing":
        return f"lacks field {key!r} used by {used_by}"
    return f"has {key} {_short(contact.fields.get(key, ''))}, not a date (used by {used_by})"


def _describe(contact: Contact, key: str, kind: str, used_by: str) -> str:
    return f"contact {who(contact)} {issue_reason(contact, key, kind, used_by)}"


def _short(value: str) -> str:
    return repr(value if len(value) <= 30 else value[:29] + "…")


def check_campaign_against_contacts(campaign: Campaign, contacts: list[Contact]) -> list[str]:
    """Problems with the fields the campaign needs, for the (not opted-out) contacts it selects.

    Problems are grouped per field: a mistake shared by many contacts gives one line with a
    count and a few examples rather than one line per contact.
    """
    uses = field_uses(campaign)
    groups: dict[tuple[str, str], list[Contact]] = {}
    for contact in contacts:
        if contact.opted_out or not selects(campaign, contact):
            continue
        for key, kind in field_issues(campaign, contact):
            groups.setdefault((key, kind), []).append(contact)
    problems: list[str] = []
    for (key, kind), affected in groups.items():
        used_by = ", ".join(uses.get(key, ["the campaign"]))
        if len(affected) <= MAX_EXAMPLES:
            problems.extend(_describe(c, key, kind, used_by) for c in affected)
            continue
        examples = ", ".join(
            who(c) if kind == "missing" else f"{who(c)} {_short(c.fields.get(key, ''))}"
            for c in affected[:MAX_EXAMPLES]
        )
        more = len(affected) - MAX_EXAMPLES
        if kind == "missing":
            problems.append(f"{len(affected)} contacts lack field {key!r} used by {used_by}, "
                            f"e.g. {examples} and {more} more")
        else:
            problems.append(f"{len(affected)} contacts have a {key} that is not a date (used by "
                            f"{used_by}), e.g. {examples} and {more} more")
    return problems
