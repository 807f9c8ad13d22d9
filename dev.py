#!/usr/bin/env python3
"""Set up and run Relance on a fresh machine with nothing but Python 3.11+.

    python3 dev.py demo    create .venv, install, run the whole stack locally with a demo campaign
    python3 dev.py test    create .venv, install, run the test suite (starts its own servers)
    python3 dev.py lint    ruff and mypy

Standard library only: it must run before anything is installed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")


def setup() -> None:
    """Create the virtual environment and install the project with its dev extras, once per change."""
    if sys.version_info < (3, 11):  # noqa: UP036 - this script runs before anything is checked
        sys.exit(f"Relance needs Python 3.11 or newer (this is {sys.version.split()[0]})")
    if not PYTHON.exists():
        print("creating .venv …", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    stamp = VENV / ".relance-installed"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    print("installing Relance and its dependencies into .venv (first run only) …", flush=True)
    pip = [str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-e", f"{ROOT}[dev]"], check=True)
    stamp.write_text(digest)


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "help"
    rest = argv[1:]
    if command not in {"demo", "test", "lint"}:
        print(__doc__)
        return 0 if command in {"help", "-h", "--help"} else 2
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
