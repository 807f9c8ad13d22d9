"""Which code may import what: MongoDB stays inside its adapter, the domain stays pure (``ast``, no I/O)."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MONGO_ADAPTER = ROOT / "shared" / "adapters" / "mongo"
DRIVER = {"pymongo", "bson", "gridfs", "motor"}


def _imports(path: Path) -> Iterator[tuple[str, int]]:
    """Every module ``path`` imports (at any depth: TYPE_CHECKING blocks and functions included)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from ((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, node.lineno


def _sources(*folders: str) -> Iterator[Path]:
    for folder in folders:
        yield from sorted((ROOT / folder).rglob("*.py"))


def test_the_mongodb_driver_is_imported_only_by_its_adapter() -> None:
    found = [f"{path.relative_to(ROOT)}:{line} imports {name}"
             for path in _sources("shared", "services", "workers") if not path.is_relative_to(MONGO_ADAPTER)
             for name, line in _imports(path) if name.split(".")[0] in DRIVER]
    assert found == []
    assert any(name.startswith("pymongo") for path in MONGO_ADAPTER.rglob("*.py") for name, _ in _imports(path))


def test_the_domain_imports_no_driver_no_adapter_no_entry_point() -> None:
    allowed_first_party = {"shared.domain", "shared.durations", "shared.errors"}
    found = []
    for path in _sources("shared/domain"):
        for name, line in _imports(path):
            top = name.split(".")[0]
            first_party = top in {"shared", "services", "workers", "tests"}
            if first_party and not any(name == ok or name.startswith(ok + ".") for ok in allowed_first_party):
                found.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
            elif not first_party and top not in sys.stdlib_module_names and top not in {"pydantic", "__future__"}:
                found.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert found == []


def test_the_in_memory_twins_need_no_driver() -> None:
    """The memory adapter shares the documents' shapes, not the MongoDB code."""
    found = [f"{path.relative_to(ROOT)}:{line} imports {name}"
             for path in [*_sources("shared/adapters/memory"), ROOT / "shared" / "adapters" / "documents.py"]
             for name, line in _imports(path)
             if name.split(".")[0] in DRIVER or name.startswith("shared.adapters.mongo")]
    assert found == []


def test_business_code_reads_rules_not_settings() -> None:
    """Use cases and actors read the frozen Rules built once by the composition root, never Settings."""
    business = [*_sources("shared/usecases", "shared/domain", "shared/language", "workers"),
                ROOT / "shared" / "pacing.py"]
    found = [f"{path.relative_to(ROOT)}:{line} imports {name}" for path in business
             for name, line in _imports(path) if name == "shared.settings" or name.startswith("shared.settings.")]
    assert found == []


def test_use_cases_import_no_entry_point() -> None:
    """The CLI, the scheduler loop, the webhook and the actors call the use cases, never the other way."""
    found = [f"{path.relative_to(ROOT)}:{line} imports {name}"
             for path in _sources("shared/usecases") for name, line in _imports(path)
             if name.split(".")[0] in {"services", "workers", "devtools"}]
    assert found == []


def test_the_cli_queue_is_built_in_one_public_place() -> None:
    """The commands and the console get their queue from services.bootstrap, not from another command's
    private helper (a rename there would break them only at run time)."""
    found = []
    for path in _sources("services", "workers", "shared"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "services.cli_invoices":
                found += [f"{path.relative_to(ROOT)}:{node.lineno} imports {alias.name}"
                          for alias in node.names if alias.name.startswith("_")]
    assert found == []
    from services.bootstrap import build_task_queue
    from shared.queue import DramatiqQueue
    from shared.settings import Settings

    assert isinstance(build_task_queue(Settings(redis_url="redis://127.0.0.1:1/0")), DramatiqQueue)


def test_the_relance_cli_test_runner_is_written_once() -> None:
    """Tests run the ``relance`` entry point through tests/support/cli.py (the ``relance`` fixture): a
    module may ask for more (Redis, the logs kept) but never writes its own copy of the runner."""
    support = ROOT / "tests" / "support" / "cli.py"
    copies = []
    for path in _sources("tests"):
        if path == support:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef) and node.name == "relance" and node.decorator_list:  # a fixture
                calls = {sub.func.id for sub in ast.walk(node) if isinstance(sub, ast.Call)
                         and isinstance(sub.func, ast.Name)}
                if "relance_runner" not in calls:
                    copies.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert copies == []
    assert "main(list(argv)" in support.read_text(encoding="utf-8")
