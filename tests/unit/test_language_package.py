"""The language package (``shared/language/``): pure, small modules, each table and folding once.

It reads and writes French and English and nothing else: no database, no network, no vendor SDK,
no process code. Read with ``ast`` (nothing is imported to check it).
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LANGUAGE = ROOT / "shared" / "language"
PRODUCT = ("shared", "services", "workers")
MAX_LINES = 450
# Besides the standard library and itself, the language package may import the pure modules the
# rest of the system describes its data with: the models (shared/domain/ once they move there), the
# ports' request and result types, and the errors.
PURE_SHARED = ("shared.domain", "shared.ports", "shared.errors")
# Third-party libraries that may be reached through those modules, all without I/O: the models'
# validation, and the phone-number metadata with which shared.errors masks numbers in its messages.
PURE_THIRD_PARTY = {"pydantic", "pydantic_core", "phonenumbers"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> Iterator[tuple[str, int]]:
    """Every module a file imports (dotted, relative imports resolved), wherever the import is written.

    ``importlib.import_module`` and ``__import__`` calls are reported as ``<dynamic import>``: what
    they import cannot be read.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            yield module, node.lineno
            for alias in node.names:  # "from shared.language import text" imports shared.language.text
                yield f"{module}.{alias.name}", node.lineno
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name in ("import_module", "__import__"):
                yield "<dynamic import>", node.lineno


def is_under(dotted: str, prefix: str) -> bool:
    return dotted == prefix or dotted.startswith(prefix + ".")


def file_of(dotted: str) -> Path | None:
    """The project file a dotted name is, or is in (``shared.language.text.fold`` → text.py)."""
    parts = dotted.split(".")
    for depth in range(len(parts), 0, -1):
        base = ROOT.joinpath(*parts[:depth])
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


def language_files() -> list[Path]:
    return sorted(LANGUAGE.glob("*.py"))


def test_the_language_package_exists_and_is_read() -> None:
    names = {path.stem for path in language_files()}
    assert {"text", "vocabulary", "dates", "reply_rules", "classifier", "factcheck", "drafts", "texts"} <= names
    found = {dotted for path in language_files() for dotted, _ in imported(path)}
    assert "shared.language.text" in found and "shared.ports" in found and "re" in found


@pytest.mark.parametrize("path", language_files(), ids=lambda p: p.name)
def test_language_modules_import_only_the_standard_library_itself_and_pure_shared_modules(path: Path) -> None:
    problems = []
    for dotted, line in imported(path):
        top = dotted.split(".")[0]
        if top == "__future__" or top in sys.stdlib_module_names:
            continue
        if is_under(dotted, "shared.language") or any(is_under(dotted, p) for p in PURE_SHARED):
            continue
        problems.append(f"{path.relative_to(ROOT)}:{line} imports {dotted}")
    assert not problems, "the language package must stay pure:\n" + "\n".join(problems)


def test_nothing_reachable_from_the_language_package_talks_to_the_outside() -> None:
    """Through the pure shared modules too: no database, broker, HTTP, vendor SDK or process code."""
    seen: set[Path] = set()
    stack = language_files()
    problems = []
    while stack:
        path = stack.pop()
        if path in seen:
            continue
        seen.add(path)
        for dotted, line in imported(path):
            top = dotted.split(".")[0]
            if top == "__future__" or top in sys.stdlib_module_names or top in PURE_THIRD_PARTY:
                continue
            where = f"{path.relative_to(ROOT)}:{line} imports {dotted}"
            if top in ("services", "workers") or dotted == "<dynamic import>":
                problems.append(where)
            elif top == "shared":
                target = file_of(dotted)
                if target is None:
                    problems.append(where + " (not found)")
                else:
                    stack.append(target)
            else:
                problems.append(where)
    assert LANGUAGE / "text.py" in seen and ROOT / "shared" / "domain" / "models.py" in seen
    assert not problems, "reachable from shared/language:\n" + "\n".join(problems)


@pytest.mark.parametrize("path", language_files(), ids=lambda p: p.name)
def test_no_language_module_is_over_450_lines(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines: split it by job (at most {MAX_LINES})"


def product_files() -> Iterator[Path]:
    for folder in PRODUCT:
        yield from sorted((ROOT / folder).rglob("*.py"))


def test_accents_are_folded_in_one_place() -> None:
    """Accent folding (a compatibility decomposition, combining marks dropped) lives in text.py alone."""
    problems = []
    for path in product_files():
        if path == LANGUAGE / "text.py":
            continue
        source = path.read_text(encoding="utf-8")
        for word in ('"NFKD"', '"NFKC"', "combining("):
            if word in source:
                problems.append(f"{path.relative_to(ROOT)} uses {word}: use shared.language.text")
    assert not problems, "\n".join(problems)


def _words(node: ast.AST) -> set[str]:
    """The lower-case words of the string constants inside ``node``."""
    found: set[str] = set()
    for inner in ast.walk(node):
        if isinstance(inner, ast.Constant) and isinstance(inner.value, str):
            found.update(re.findall(r"[a-zà-ÿ]+", inner.value.lower()))
    return found


MONTHS = {"janvier", "février", "fevrier", "avril", "juillet", "août", "aout", "septembre", "octobre", "novembre",
          "décembre", "decembre", "january", "february", "march", "april", "june", "july", "august",
          "september", "october", "november", "december"}
WEEKDAYS = {"lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche", "monday", "tuesday",
            "wednesday", "thursday", "friday", "saturday", "sunday"}


def test_month_and_weekday_names_are_listed_once() -> None:
    """A table (a literal, or one string split into words) naming three months or three weekdays
    is written in vocabulary.py only; everything else reads the calendar from there."""
    problems = []
    for path in product_files():
        if path == LANGUAGE / "vocabulary.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
                      and node.body and isinstance(node.body[0], ast.Expr)}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Dict, ast.Set, ast.List, ast.Tuple)) or (
                isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
            ):
                words = _words(node)
                if len(words & MONTHS) >= 3 or len(words & WEEKDAYS) >= 3:
                    problems.append(f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}")
    assert not problems, "month or weekday names listed outside shared/language/vocabulary.py:\n" + "\n".join(
        sorted(set(problems)))
