"""Running the real ``relance`` entry point in a test, on the test's own database.

The ``relance`` fixture (tests/conftest.py) is :func:`relance_runner` with the defaults; a test
module needing more (Redis, the logs kept) defines its own ``relance`` fixture from it.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

import pytest

from services.cli import main
from shared.settings import Settings, load_settings

# ``relance(*argv, stdin=None, typed=())`` → (exit code, stdout, stderr)
Relance = Callable[..., tuple[int, str, str]]
# A log record's line on stderr (the commands' own messages are not logged).
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z]+ ")


def relance_runner(mongo_uri: str, db_name: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                   *, env: Mapping[str, str] | None = None, keep_logs: bool = False) -> Relance:
    """A function running ``relance ARGV…`` with MONGODB_URI on ``db_name`` (and ``env``); it returns the
    exit code, stdout and stderr (log lines left out unless ``keep_logs``). ``stdin``: what the command
    reads from its standard input; ``typed``: the answers to its hidden prompts (getpass), in order."""
    uri = urlsplit(mongo_uri)._replace(path=f"/{db_name}").geturl()
    settings: Settings = load_settings({"MONGODB_URI": uri, **(env or {})})

    def run(*argv: str, stdin: str | None = None, typed: tuple[str, ...] = ()) -> tuple[int, str, str]:
        if stdin is not None:
            monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        if typed:
            answers = iter(typed)
            monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
        capsys.readouterr()
        code = main(list(argv), load=lambda: settings)
        out, err = capsys.readouterr()
        if not keep_logs:
            err = "".join(line for line in err.splitlines(keepends=True) if not LOG_LINE.match(line))
        return code, out, err

    return run
