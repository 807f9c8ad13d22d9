#!/usr/bin/env python3
"""Set up and run Relance on a fresh machine with nothing but Python 3.11+.

    python3 dev.py demo    create .venv, install, run the whole stack locally with a demo campaign
    python3 dev.py test    create .venv, install, run the test suite (starts its own servers)
    python3 dev.py lint    ruff and mypy
    python3 dev.py lock    regenerate constraints.txt (newest versions pyproject.toml allows)

Installs use constraints.txt, the exact versions the Docker images install too, and happen again
whenever pyproject.toml or constraints.txt changes. Standard library only: it must run before
anything is installed.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
LOCK = ROOT / "constraints.txt"
# What an install is made from: any change to these files installs again.
INSTALL_INPUTS = ("pyproject.toml", "constraints.txt")


def _bin(env: Path) -> Path:
    return env / ("Scripts" if os.name == "nt" else "bin")


def _python(env: Path) -> Path:
    return _bin(env) / ("python.exe" if os.name == "nt" else "python")


BIN = _bin(VENV)
PYTHON = _python(VENV)


def install_digest(root: Path = ROOT) -> str:
    """A digest of the install inputs (pyproject.toml and the lock), stored in .venv once installed."""
    digest = hashlib.sha256()
    for name in INSTALL_INPUTS:
        digest.update(f"{name}\0".encode())
        digest.update((root / name).read_bytes())
    return digest.hexdigest()


def install_commands(python: Path, root: Path = ROOT) -> list[list[str]]:
    """The pip commands that install Relance with its dev extras at the locked versions."""
    lock = str(root / LOCK.name)
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    # pip itself first, at the locked version: --build-constraint needs pip 25.3 or newer.
    return [
        [*pip, "--constraint", lock, "pip"],
        [*pip, "--constraint", lock, "--build-constraint", lock, "-e", f"{root}[dev]"],
    ]


def setup() -> None:
    """Create the virtual environment and install the project with its dev extras, once per change."""
    if sys.version_info < (3, 11):  # noqa: UP036 - this script runs before anything is checked
        sys.exit(f"Relance needs Python 3.11 or newer (this is {sys.version.split()[0]})")
    if not PYTHON.exists():
        print("creating .venv …", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    stamp = VENV / ".relance-installed"
    digest = install_digest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    print("installing Relance and its dependencies into .venv (after a change to pyproject.toml or "
          "constraints.txt) …", flush=True)
    for command in install_commands(PYTHON):
        subprocess.run(command, check=True)
    stamp.write_text(digest)


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_text(frozen: str, header: str) -> str:
    """The lock file: ``header`` then the ``name==version`` lines of ``frozen``, sorted, Relance left out."""
    pins = {}
    for line in frozen.splitlines():
        name, sep, version = line.strip().partition("==")
        if sep and _canonical(name) != "relance":
            pins[_canonical(name)] = f"{name}=={version}"
    return header + "".join(f"{pins[key]}\n" for key in sorted(pins))


def lock_header(path: Path = LOCK) -> str:
    """The comment block at the top of the current lock file (kept when it is regenerated)."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True) if path.exists() else []
    header = ""
    for line in lines:
        if not line.startswith("#"):
            break
        header += line
    return header or "# Exact versions for reproducible installs: regenerate with `python3 dev.py lock`.\n"


def lock(output: Path = LOCK) -> int:
    """Resolve the newest versions pyproject.toml allows in a fresh virtual environment, and pin them."""
    with tempfile.TemporaryDirectory(prefix="relance-lock-") as tmp:
        env = Path(tmp) / "venv"
        print(f"resolving in a fresh virtual environment ({env}) …", flush=True)
        venv.EnvBuilder(with_pip=True).create(env)
        pip = [str(_python(env)), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
        # The build tools as well: the images and dev.py build Relance with them (--build-constraint).
        subprocess.run([*pip, "--upgrade", "pip", "setuptools", "wheel"], check=True)
        subprocess.run([*pip, f"{ROOT}[dev]"], check=True)
        frozen = subprocess.run([str(_python(env)), "-m", "pip", "freeze", "--all", "--disable-pip-version-check"],
                                check=True, capture_output=True, text=True).stdout
    output.write_text(lock_text(frozen, lock_header()), encoding="utf-8")
    print(f"wrote {output}: run `python3 dev.py test` (it reinstalls .venv from it) before committing it")
    return 0


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "help"
    rest = argv[1:]
    if command not in {"demo", "test", "lint", "lock"}:
        print(__doc__)
        return 0 if command in {"help", "-h", "--help"} else 2
    if command == "lock":
        return lock()
    setup()
    os.chdir(ROOT)
    if command == "demo":
        return subprocess.call([str(BIN / "relance"), "dev", *rest])
    if command == "test":
        return subprocess.call([str(PYTHON), "-m", "pytest", *rest])
    code = subprocess.call([str(PYTHON), "-m", "ruff", "check", "."])
    return code or subprocess.call([str(PYTHON), "-m", "mypy"])


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except subprocess.CalledProcessError as exc:
        sys.exit(f"setup failed: {' '.join(map(str, exc.cmd))} exited with {exc.returncode}")
    except KeyboardInterrupt:
        sys.exit(130)
