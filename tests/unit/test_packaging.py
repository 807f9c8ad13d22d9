"""The wheel `pip install .` builds, and a production install made from it.

Built offline from a copy of the checkout with this .venv's own setuptools (the versions of
constraints.txt): no deprecation warning, the product packages (shared, services, workers) and
nothing else, the development tools (devtools/), tests and bench left out. Then installed into a
scratch environment that sees this .venv's dependencies but not the checkout, as in the images:
every product module imports there, and the dev commands end with one ``error:`` line.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCT_PACKAGES = ("shared", "services", "workers")
# What a source checkout holds beside the product: never in the wheel.
LEFT_OUT = ("devtools", "tests", "bench")
# Not part of a source checkout a user would build from (local state, caches, earlier builds).
NOT_SOURCE = (".git", ".venv", "venv", ".relance", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
              ".mypy_cache", ".ruff_cache", ".hypothesis", ".env")


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without what would put the checkout on sys.path or steer pip."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH" and not key.startswith("PIP_")}
    return env | extra


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The wheel built from a copy of the checkout, and everything the build printed."""
    tmp = tmp_path_factory.mktemp("packaging")
    source = tmp / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    out = tmp / "dist"
    # -v: pip shows the build backend's output (setuptools' warnings) only when verbose.
    # PYTHONWARNINGS=default: deprecation warnings Python hides by default are printed too.
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "-v", "-w", str(out), str(source)],
        cwd=tmp, env=clean_env(PYTHONWARNINGS="default"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout
    (wheel,) = out.glob("relance-*.whl")
    return wheel, result.stdout


def test_the_project_builds_without_deprecation_warnings(build: tuple[Path, str]) -> None:
    _, output = build
    assert "running bdist_wheel" in output or "Building wheel" in output, "the build's own output was not seen"
    warned = [line for line in output.splitlines() if re.search("deprecat", line, re.IGNORECASE)]
    assert not warned, "the build prints deprecation warnings:\n" + "\n".join(warned)


def test_the_wheel_holds_the_product_packages_and_nothing_else(build: tuple[Path, str]) -> None:
    wheel, _ = build
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (entry_points,) = [name for name in names if name.endswith(".dist-info/entry_points.txt")]
        scripts = archive.read(entry_points).decode()
    tops = {name.split("/")[0] for name in names if ".dist-info/" not in name}
    assert tops == set(PRODUCT_PACKAGES), f"the wheel holds {sorted(tops)}"
    assert not set(LEFT_OUT) & tops
    expected = {path.relative_to(ROOT).as_posix() for package in PRODUCT_PACKAGES
                for path in (ROOT / package).rglob("*.py")}
    packaged = {name for name in names if name.endswith(".py")}
    assert packaged == expected, f"missing {sorted(expected - packaged)}, extra {sorted(packaged - expected)}"
    assert re.search(r"^relance = services\.cli:main$", scripts, re.MULTILINE), scripts


@pytest.fixture(scope="module")
def production_python(build: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Python with the wheel installed and this .venv's dependencies, but not the checkout."""
    wheel, _ = build
    env = tmp_path_factory.mktemp("production") / "venv"
    venv.EnvBuilder(symlinks=os.name != "nt", with_pip=False).create(env)
    python = env / ("Scripts" if os.name == "nt" else "bin") / ("python.exe" if os.name == "nt" else "python")
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--disable-pip-version-check",
                    "-q", "--target", site, str(wheel)], env=clean_env(), check=True, timeout=300)
    # The dependencies, as a plain path entry: the .pth files in there (the editable install,
    # which names the checkout) are only read from a site directory, and this is not one.
    (Path(site) / "relance-dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n", encoding="utf-8")
    return python


def run_in(python: Path, args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``python ARGS`` from ``cwd`` (outside the checkout, as the images run from a home folder)."""
    return subprocess.run([str(python), *args], cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=120)


def test_a_production_install_has_the_product_and_not_the_dev_tools(production_python: Path, tmp_path: Path) -> None:
    result = run_in(production_python, ["-c", "import importlib.util, services.cli; print(services.cli.__file__); "
                                              "print(importlib.util.find_spec('devtools'))"], tmp_path)
    assert result.returncode == 0, result.stderr
    location, spec = result.stdout.splitlines()
    assert Path(location).is_relative_to(production_python.parent.parent), f"services.cli came from {location}"
    assert spec == "None", f"devtools is importable: {spec}"


def test_every_product_module_imports_without_the_dev_tools(production_python: Path, tmp_path: Path) -> None:
    """No product module needs devtools when it is imported (the ast scan of test_deploy_files, run for real)."""
    script = (
        "import importlib, pkgutil\n"
        f"for top in {PRODUCT_PACKAGES!r}:\n"
        "    package = importlib.import_module(top)\n"
        "    for module in pkgutil.walk_packages(package.__path__, top + '.'):\n"
        "        importlib.import_module(module.name)\n"
        "        print(module.name)\n"
    )
    result = run_in(production_python, ["-c", script], tmp_path)
    assert result.returncode == 0, result.stderr
    imported = set(result.stdout.split())
    assert {"services.cli", "services.webhook", "services.scheduler", "shared.settings"} <= imported


@pytest.mark.parametrize("command", [["simulator"], ["dev", "--exit-when-done", "--timeout", "1"]])
def test_dev_commands_in_a_production_install_end_with_one_error_line(
    production_python: Path, tmp_path: Path, command: list[str],
) -> None:
    result = run_in(production_python, ["-m", "services.cli", *command], tmp_path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert result.stderr == (f"error: the dev tools are not installed in this image: run relance {command[0]} "
                             "from a source checkout (python3 dev.py sets one up)\n")
    assert not (tmp_path / ".relance").exists(), "a refused `relance dev` created its data folder"
