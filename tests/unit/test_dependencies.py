"""Dependencies: every imported library is declared, and constraints.txt pins all of them.

The lock (constraints.txt) is what the Dockerfiles and dev.py install from; these tests check
it against pyproject.toml and the installed distributions' own requirements, on each Python the
images or the Quickstart may run (markers evaluated for 3.11 and 3.12), and that this .venv was
installed from it.
"""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import importlib.util
import sys
import tomllib
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path
from types import ModuleType

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "constraints.txt"
# The Pythons the lock is checked for: the development machines' 3.11 and the images' (the
# Dockerfiles' FROM, checked below). Markers are evaluated with these exact versions.
PYTHONS = ("3.11.7", "3.12.13")
DOCKERFILES = (ROOT / "Dockerfile.webhook", ROOT / "Dockerfile.worker")
FIRST_PARTY = {"shared", "services", "workers", "devtools", "tests", "bench"}
# Where the code lives, and which part of pyproject.toml may cover its imports.
PRODUCT = ("shared", "services", "workers")
# devtools/ is left out of the wheel and the images: it may use the dev and embedded extras.
TOOLING = ("devtools", "bench", "tests")
# GPL-2.0: run as its own process, never imported (DESIGN.md).
NEVER_IMPORTED = {"secantusdb"}


def pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def declared(group: str) -> list[Requirement]:
    """Requirements of ``dependencies``, of an extra, or of ``build-system``; self-references left out."""
    data = pyproject()
    if group == "dependencies":
        texts = data["project"]["dependencies"]  # type: ignore[index]
    elif group == "build-system":
        texts = data["build-system"]["requires"]  # type: ignore[index]
    else:
        texts = data["project"]["optional-dependencies"][group]  # type: ignore[index]
    requirements = [Requirement(text) for text in texts]  # type: ignore[union-attr]
    return [req for req in requirements if canonicalize_name(req.name) != "relance"]


def declared_names(*groups: str) -> set[str]:
    return {canonicalize_name(req.name) for group in groups for req in declared(group)}


def lock_pins(path: Path = LOCK) -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, version = line.partition("==")
        assert sep and ";" not in line and "--" not in line, f"constraints.txt: {line!r} is not name==version"
        assert canonicalize_name(name) not in pins, f"constraints.txt pins {name} twice"
        pins[canonicalize_name(name)] = Version(version)
    return pins


def marker_environments() -> list[dict[str, str]]:
    base = default_environment()
    return [{**base, "python_version": full.rsplit(".", 1)[0], "python_full_version": full} for full in PYTHONS]


def needed(requirements: Iterable[Requirement], extras: Iterable[str], env: dict[str, str]) -> Iterator[Requirement]:
    """The requirements whose markers hold in ``env`` with the given extras requested."""
    wanted = [*extras] or [""]
    for req in requirements:
        if req.marker is None or any(req.marker.evaluate({**env, "extra": extra}) for extra in wanted):
            yield req


@cache
def closure() -> dict[str, list[Requirement]]:
    """Every distribution relance[dev] and its build need, on each Python, with what asks for it."""
    top = [*declared("dependencies"), *declared("dev"), *declared("embedded"), *declared("build-system"),
           Requirement("pip")]  # dev.py and the Dockerfiles install pip from the lock too
    found: dict[str, list[Requirement]] = {}
    seen: set[tuple[str, frozenset[str], str]] = set()
    for env in marker_environments():
        stack = list(needed(top, [], env))
        while stack:
            req = stack.pop()
            name = canonicalize_name(req.name)
            found.setdefault(name, []).append(req)
            key = (name, frozenset(req.extras), env["python_version"])
            if key in seen:
                continue
            seen.add(key)
            try:
                children = [Requirement(text) for text in metadata.requires(name) or []]
            except metadata.PackageNotFoundError:
                continue  # needed on another Python only: pinned, but nothing installed here to read
            stack.extend(needed(children, req.extras, env))
    return found


# --- the lock ---------------------------------------------------------------------------------


def test_lock_pins_every_dependency_at_a_version_they_accept() -> None:
    pins = lock_pins()
    for name, requirements in sorted(closure().items()):
        assert name in pins, f"constraints.txt does not pin {name} (needed by relance[dev]): run python3 dev.py lock"
        for req in requirements:
            assert req.specifier.contains(pins[name], prereleases=True), (
                f"constraints.txt pins {name}=={pins[name]}, but {req} is required: run python3 dev.py lock"
            )


def test_the_images_run_a_python_the_lock_is_checked_for() -> None:
    for path in DOCKERFILES:
        bases = [line.split()[1] for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("FROM ")]
        versions = {base.split(":")[1].split("-")[0] for base in bases if base.startswith("python:")}
        assert versions and versions <= set(PYTHONS), f"{path.name}: python {versions}, lock checked for {PYTHONS}"


def test_this_environment_was_installed_from_the_lock() -> None:
    if not any(full.startswith(f"{sys.version_info.major}.{sys.version_info.minor}.") for full in PYTHONS):
        pytest.skip("constraints.txt is not checked for this Python")
    pins = lock_pins()
    env = default_environment()
    for name in sorted(closure()):
        if name in ("pip", "setuptools", "wheel"):
            continue  # build tools: used in the isolated build environment, not necessarily here
        if not any(True for _ in needed([Requirement(name)], [], env)):
            continue
        try:
            installed = Version(metadata.version(name))
        except metadata.PackageNotFoundError:
            continue  # a dependency of another Python than this one
        assert installed == pins[name], (
            f"{name} {installed} is installed, constraints.txt says {pins[name]}: run python3 dev.py test "
            "(it reinstalls when the lock changes)"
        )


def test_lock_holds_nothing_but_pins_and_comments() -> None:
    pins = lock_pins()
    assert "relance" not in pins
    assert {"pip", "setuptools", "wheel"} <= set(pins), "pin the build tools too (--build-constraint)"


# --- dev.py and CI ------------------------------------------------------------------------------


@cache
def dev_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("relance_dev_script", ROOT / "dev.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dev_py_installs_from_the_lock() -> None:
    dev = dev_module()
    commands = dev.install_commands(Path("/venv/bin/python"), ROOT)
    lock = str(ROOT / "constraints.txt")
    for argv in commands:
        assert argv[:4] == ["/venv/bin/python", "-m", "pip", "install"]
        assert argv[argv.index("--constraint") + 1] == lock
    assert commands[0][-1] == "pip", "pip first, at its locked version"
    project = commands[-1]
    assert project[-2:] == ["-e", f"{ROOT}[dev]"]
    assert project[project.index("--build-constraint") + 1] == lock


def test_dev_py_reinstalls_when_the_lock_or_pyproject_changes(tmp_path: Path) -> None:
    dev = dev_module()
    for name in ("pyproject.toml", "constraints.txt"):
        (tmp_path / name).write_bytes((ROOT / name).read_bytes())
    before = dev.install_digest(tmp_path)
    assert dev.install_digest(tmp_path) == before
    for name in ("constraints.txt", "pyproject.toml"):
        path = tmp_path / name
        path.write_text(path.read_text(encoding="utf-8") + "\n# changed\n", encoding="utf-8")
        after = dev.install_digest(tmp_path)
        assert after != before, f"a change to {name} does not reinstall"
        before = after


def test_dev_py_lock_writes_sorted_pins_without_relance() -> None:
    dev = dev_module()
    frozen = "Zeta_Pkg==1.0\nrelance @ file:///src\nrelance==0.1.0\nalpha==2.0\n\n"
    assert dev.lock_text(frozen, "# header\n") == "# header\nalpha==2.0\nZeta_Pkg==1.0\n"
    assert dev.lock_header(LOCK).startswith("# ") and "python3 dev.py lock" in dev.lock_header(LOCK)


def test_ci_runs_the_quickstart_install() -> None:
    """CI installs through dev.py, hence from the same lock as the Quickstart and the images."""
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "python3 dev.py test" in script and "pip install" not in script


# --- every imported library declared ------------------------------------------------------------


def imports(path: Path) -> Iterator[tuple[str, int]]:
    """Absolute imports of a file (dotted names), except those guarded by ``except ImportError``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    optional: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(_catches_import_error(handler) for handler in node.handlers):
            optional |= {id(inner) for stmt in node.body for inner in ast.walk(stmt)}
    for node in ast.walk(tree):
        if id(node) in optional:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                yield f"{node.module}.{alias.name}", node.lineno


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    names = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(isinstance(name, ast.Name) and name.id in ("ImportError", "ModuleNotFoundError") for name in names)


@cache
def top_level_distributions() -> dict[str, list[str]]:
    return metadata.packages_distributions()


@cache
def files_by_module() -> dict[str, set[str]]:
    """Dotted module prefixes (``google``, ``google.genai``…) to the distributions whose files hold them."""
    owners: dict[str, set[str]] = {}
    for dist in metadata.distributions():
        name = canonicalize_name(dist.metadata["Name"])
        for file in dist.files or []:
            parts = Path(str(file)).with_suffix("").parts
            if not parts or parts[0].endswith((".dist-info", ".data")) or ".." in parts:
                continue
            for depth in range(1, min(len(parts), 3) + 1):
                owners.setdefault(".".join(parts[:depth]), set()).add(name)
    return owners


def distribution_of(dotted: str) -> str | None:
    """The distribution an import comes from (None for the standard library or our own code)."""
    top = dotted.split(".")[0]
    if top in sys.stdlib_module_names or top in FIRST_PARTY or top == "__future__":
        return None
    simple = top_level_distributions().get(top, [])
    if len(set(simple)) == 1:
        return canonicalize_name(simple[0])
    # A namespace package shared by several distributions (google.*): the longest prefix decides.
    parts = dotted.split(".")
    for depth in range(len(parts), 0, -1):
        owners = files_by_module().get(".".join(parts[:depth]), set())
        if len(owners) == 1:
            return next(iter(owners))
    raise AssertionError(f"cannot tell which installed distribution provides {dotted}")


def local_modules(folder: Path) -> set[str]:
    """Scripts importing a sibling by name (bench/webhook_cpu.py imports webhook_bench)."""
    return {path.stem for path in folder.glob("*.py")}


@pytest.mark.parametrize("folder", PRODUCT + TOOLING)
def test_every_imported_library_is_declared(folder: str) -> None:
    allowed = declared_names("dependencies")
    if folder in TOOLING:
        allowed |= declared_names("dev", "embedded")
    problems = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        siblings = local_modules(path.parent)
        for dotted, line in imports(path):
            if dotted.split(".")[0] in siblings:
                continue
            dist = distribution_of(dotted)
            if dist is None:
                continue
            where = f"{path.relative_to(ROOT)}:{line} imports {dotted}"
            if dist in NEVER_IMPORTED:
                problems.append(f"{where}, from {dist}, which must never be imported")
            elif dist not in allowed:
                problems.append(f"{where}, from {dist}, which pyproject.toml does not declare for {folder}/")
    assert not problems, "\n".join(problems)


def test_the_import_check_sees_what_it_must() -> None:
    """The helpers behind the check above, on known cases (so that it cannot pass by seeing nothing)."""
    assert distribution_of("requests.exceptions") == "requests"
    assert distribution_of("google.genai.types") == "google-genai"
    assert distribution_of("yaml") == "pyyaml"
    assert distribution_of("json") is None and distribution_of("shared.store") is None
    names = {name for name, _ in imports(ROOT / "shared" / "twilio_sender.py")}
    assert "requests" in names
    guarded = {name for name, _ in imports(ROOT / "bench" / "webhook_bench.py")}
    assert "uvloop" not in guarded  # optional: imported inside try/except ImportError
