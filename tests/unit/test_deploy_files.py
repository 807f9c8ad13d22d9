"""Static checks of the deployment files: compose.yaml, the Dockerfiles, .env.example, ignores.

No Docker engine is needed: the files are parsed with PyYAML and plain text handling, and
checked against :class:`shared.settings.Settings` and, when it exists, the CLI's argparse
parser (``services.cli.build_parser``). ``docker compose config`` runs only when the compose
plugin is installed.
"""

from __future__ import annotations

import fnmatch
import importlib
import importlib.util
import json
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from dotenv import dotenv_values
from pydantic import SecretStr

from shared.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILES = {"webhook": ROOT / "Dockerfile.webhook", "worker": ROOT / "Dockerfile.worker"}

# Variables compose may reference besides Settings fields (read by other containers).
EXTRA_ENV = {"NGROK_AUTHTOKEN"}
# The subcommands the CLI promises; used when services.cli is not there to ask.
KNOWN_COMMANDS = {
    ("webhook",),
    ("scheduler",),
    ("worker", "drafting"),
    ("worker", "sending"),
    ("worker", "replies"),
    ("simulator",),
    ("db", "init"),
    ("healthcheck", "worker"),
    ("contacts", "import"),
    ("campaigns", "create"),
    ("campaigns", "enrol"),
}
WORKER_QUEUES = ("drafting", "sending", "replies")
# Settings fields whose example value must be blank or an obvious placeholder.
SECRET_FIELDS = {
    name for name, field in Settings.model_fields.items() if field.annotation is SecretStr
} | {"twilio_account_sid", "target_phone_number"}
PLACEHOLDER = re.compile(r"(your-[a-z0-9-]+-here|changeme|<[a-z0-9 _-]+>)", re.IGNORECASE)
VAR_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)((?::?[-?+])([^}]*))?\}")


# --- helpers --------------------------------------------------------------------------------


def settings_env_names() -> set[str]:
    """Every Settings field as its environment variable."""
    return {name.upper() for name in Settings.model_fields}


def load_compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict), "compose.yaml must be a mapping"
    return data


def services() -> dict[str, dict[str, Any]]:
    found = load_compose().get("services")
    assert isinstance(found, dict) and found, "compose.yaml has no services"
    return found


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose-style ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?err}``."""

    def replace(match: re.Match[str]) -> str:
        name, operator, default = match.group(1), match.group(2) or "", match.group(3) or ""
        value = env.get(name)
        if operator.startswith(":-"):
            return value if value else default
        if operator.startswith("-"):
            return value if value is not None else default
        if operator.startswith(":?") or operator.startswith("?"):
            if not value:
                raise AssertionError(f"${{{name}}} is required: {default}")
            return value
        return value or ""

    return VAR_REF.sub(replace, text.replace("$$", "\0")).replace("\0", "$")


def service_env(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's ``environment:`` as a mapping (either compose syntax)."""
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        pairs = (item.split("=", 1) if "=" in item else (item, "") for item in environment)
        return {key: value for key, value in pairs}
    return {str(key): "" if value is None else str(value) for key, value in environment.items()}


def as_argv(command: str | list[str]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def built_services() -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in services().items() if "build" in svc}


def dockerfile_of(service: Mapping[str, Any]) -> Path:
    build = service["build"]
    if isinstance(build, str):
        return ROOT / build / "Dockerfile"
    return ROOT / build.get("context", ".") / build.get("dockerfile", "Dockerfile")


def worker_services() -> dict[str, dict[str, Any]]:
    return {
        name: svc
        for name, svc in built_services().items()
        if dockerfile_of(svc).resolve() == DOCKERFILES["worker"].resolve()
    }


def instructions(path: Path) -> list[tuple[str, str]]:
    """A Dockerfile's instructions, continuation lines joined, comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        if full:
            keyword, _, rest = full.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    assert not pending, f"{path.name} ends with a continuation line"
    return result


def instruction_args(path: Path, keyword: str) -> list[str]:
    return [rest for key, rest in instructions(path) if key == keyword]


def command_form(text: str) -> list[str] | str:
    """Exec form (JSON array) as a list; shell form as the string."""
    if text.startswith("["):
        parsed = json.loads(text)
        assert isinstance(parsed, list)
        return [str(part) for part in parsed]
    return text


def healthcheck_command(path: Path) -> list[str] | str:
    (text,) = instruction_args(path, "HEALTHCHECK")
    match = re.fullmatch(r"(?:--\S+\s+)*CMD\s+(.+)", text, re.DOTALL | re.IGNORECASE)
    assert match, f"{path.name}: HEALTHCHECK must be [OPTIONS] CMD command"
    return command_form(match.group(1).strip())


def relance_commands() -> Iterator[tuple[str, list[str]]]:
    """Every ``relance ...`` invocation in compose.yaml and the Dockerfiles, as argv."""
    for name, svc in services().items():
        candidates: list[str | list[str]] = []
        if "command" in svc:
            candidates.append(svc["command"])
        test = (svc.get("healthcheck") or {}).get("test")
        if isinstance(test, list) and test and test[0] in ("CMD", "CMD-SHELL"):
            candidates.append(test[1] if test[0] == "CMD-SHELL" else test[1:])
        for candidate in candidates:
            argv = as_argv(candidate)
            if argv and argv[0] == "relance":
                yield f"compose service {name}", argv[1:]
    for label, path in DOCKERFILES.items():
        forms = [command_form(text) for text in instruction_args(path, "CMD")]
        forms += [command_form(text) for text in instruction_args(path, "ENTRYPOINT")]
        forms.append(healthcheck_command(path))
        for form in forms:
            argv = as_argv(form)
            if argv and argv[0] == "relance":
                yield f"Dockerfile.{label}", argv[1:]


def env_example() -> dict[str, str]:
    values = dotenv_values(ENV_EXAMPLE)
    return {key: value or "" for key, value in values.items()}


def ignore_patterns(path: Path) -> list[str]:
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def dockerignored(relative: str, patterns: list[str]) -> bool:
    """Whether .dockerignore excludes a path (the last matching pattern wins; parents count)."""
    parts = relative.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern[1:] if negate else pattern
        body = body.strip("/")
        if any(fnmatch.fnmatch(candidate, body) for candidate in candidates):
            excluded = not negate
    return excluded


def copy_sources(path: Path) -> list[str]:
    sources: list[str] = []
    for text in instruction_args(path, "COPY"):
        words = [word for word in shlex.split(text) if not word.startswith("--")]
        sources += words[:-1]
    return sources


# --- compose ----------------------------------------------------------------------------------


def test_compose_parses_with_expected_services() -> None:
    found = services()
    expected = {
        "mongo", "redis", "webhook", "scheduler",
        "worker-drafting", "worker-sending", "worker-replies", "ngrok",
    }
    assert expected <= set(found), f"missing services: {sorted(expected - set(found))}"
    for name, svc in found.items():
        assert isinstance(svc, dict), f"service {name} is not a mapping"


def test_every_build_uses_an_existing_dockerfile() -> None:
    built = built_services()
    assert {"webhook", "scheduler", "worker-drafting", "worker-sending", "worker-replies"} <= set(
        built
    )
    for name, svc in built.items():
        dockerfile = dockerfile_of(svc)
        assert dockerfile.is_file(), f"service {name} builds {dockerfile}, which does not exist"
    assert dockerfile_of(built["webhook"]).resolve() == DOCKERFILES["webhook"].resolve()
    assert set(worker_services()) == {
        "scheduler", "worker-drafting", "worker-sending", "worker-replies",
    }


def test_worker_services_run_one_queue_each() -> None:
    found = services()
    assert as_argv(found["scheduler"]["command"]) == ["relance", "scheduler"]
    assert as_argv(found["webhook"].get("command", ["relance", "webhook"])) == [
        "relance", "webhook",
    ]
    for queue in WORKER_QUEUES:
        argv = as_argv(found[f"worker-{queue}"]["command"])
        assert argv[:3] == ["relance", "worker", queue], f"worker-{queue} runs {argv}"


def test_relance_commands_are_known_subcommands() -> None:
    commands = list(relance_commands())
    assert commands, "no relance command found in compose.yaml or the Dockerfiles"
    for origin, argv in commands:
        assert any(tuple(argv[: len(known)]) == known for known in KNOWN_COMMANDS), (
            f"{origin} runs `relance {' '.join(argv)}`, not a documented subcommand"
        )


def test_relance_commands_parse_with_the_cli() -> None:
    if importlib.util.find_spec("services.cli") is None:
        pytest.skip("services.cli does not exist yet: cannot ask its parser")
    cli = importlib.import_module("services.cli")
    build_parser = getattr(cli, "build_parser", None)
    if build_parser is None:
        pytest.skip("services.cli exposes no build_parser(): cannot check subcommands")
    parser = build_parser()
    for origin, argv in relance_commands():
        try:
            parser.parse_args(argv)
        except SystemExit as exc:
            pytest.fail(f"{origin}: `relance {' '.join(argv)}` is rejected by the CLI ({exc})")


def test_compose_env_references_are_settings_fields() -> None:
    allowed = settings_env_names() | EXTRA_ENV
    text = COMPOSE.read_text(encoding="utf-8").replace("$$", "")
    referenced = {match.group(1) for match in VAR_REF.finditer(text)}
    assert not re.search(r"\$[A-Za-z_]", text), "use ${VAR}, not $VAR, in compose.yaml"
    for name, svc in services().items():
        if "build" in svc or name == "ngrok":
            referenced |= set(service_env(svc))
    unknown = referenced - allowed
    assert not unknown, f"compose.yaml uses variables that are not Settings fields: {unknown}"
    for path in DOCKERFILES.values():
        in_dockerfile = {m.group(1) for m in VAR_REF.finditer(path.read_text(encoding="utf-8"))}
        assert in_dockerfile <= allowed, f"{path.name}: unknown variables {in_dockerfile - allowed}"


def test_app_services_reach_the_stores_by_service_name() -> None:
    for name, svc in built_services().items():
        env = {key: interpolate(value, {}) for key, value in service_env(svc).items()}
        assert env.get("MONGODB_URI", "").startswith("mongodb://mongo:"), name
        assert env.get("REDIS_URL", "").startswith("redis://redis:"), name
        settings = load_settings(environ=env)
        assert settings.mongodb_database == "relance"
        env_file = svc.get("env_file")
        files = [env_file] if isinstance(env_file, (str, dict)) else list(env_file or [])
        paths = [item["path"] if isinstance(item, dict) else item for item in files]
        assert ".env" in paths, f"service {name} does not read .env"
        depends = svc.get("depends_on") or {}
        assert isinstance(depends, dict), f"service {name}: depends_on needs conditions"
        for store in ("mongo", "redis"):
            assert depends.get(store, {}).get("condition") == "service_healthy", (name, store)
        assert svc.get("restart") == "unless-stopped", name


def test_stores_have_healthchecks_and_volumes() -> None:
    found = services()
    assert str(found["mongo"]["image"]).startswith("mongo:7")
    assert str(found["redis"]["image"]).startswith("redis:7")
    mongo_test = " ".join(found["mongo"]["healthcheck"]["test"])
    assert "mongosh" in mongo_test and "ping" in mongo_test
    assert "redis-cli" in found["redis"]["healthcheck"]["test"]
    assert "--appendonly" in as_argv(found["redis"]["command"])
    volumes = load_compose().get("volumes") or {}
    for store in ("mongo", "redis"):
        mounts = found[store].get("volumes") or []
        named = [str(m).split(":", 1)[0] for m in mounts]
        assert any(name in volumes for name in named), f"{store} keeps no named volume"
        assert found[store].get("restart") == "unless-stopped"


def test_ngrok_is_optional_and_targets_the_webhook() -> None:
    ngrok = services()["ngrok"]
    assert "ngrok" in (ngrok.get("profiles") or [])
    argv = as_argv(interpolate(str(ngrok["command"]), {}))
    assert argv == ["http", f"webhook:{Settings.model_fields['backend_port'].default}"]
    assert "NGROK_AUTHTOKEN" in service_env(ngrok)
    assert any("4040" in str(port) for port in ngrok.get("ports") or [])


def test_webhook_port_matches_settings_and_dockerfile() -> None:
    default_port = Settings.model_fields["backend_port"].default
    assert default_port == 3000
    ports = services()["webhook"].get("ports") or []
    assert len(ports) == 1, "the webhook publishes exactly one port"
    published = interpolate(str(ports[0]), {})
    host, _, container = published.rpartition(":")
    assert host.rsplit(":", 1)[-1] == str(default_port), published
    assert container == str(default_port), published
    # The same port when BACKEND_PORT is set: both sides follow it.
    assert interpolate(str(ports[0]), {"BACKEND_PORT": "8080"}).endswith("8080:8080")
    exposed = {
        port.split("/")[0]
        for text in instruction_args(DOCKERFILES["webhook"], "EXPOSE")
        for port in text.split()
    }
    assert exposed == {str(default_port)}, f"Dockerfile.webhook exposes {exposed}"
    assert env_example()["BACKEND_PORT"] == str(default_port)


def test_worker_services_can_be_scaled() -> None:
    workers = worker_services()
    assert workers
    for name, svc in workers.items():
        assert "container_name" not in svc, f"{name} has a container_name: --scale would fail"
        assert not svc.get("ports"), f"{name} publishes host ports: --scale would fail"
    assert "container_name" not in services()["webhook"]


def test_docker_compose_config_when_available(tmp_path: Path) -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("docker is not installed")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip("the docker compose plugin is not installed")
    for name in ("compose.yaml", "Dockerfile.webhook", "Dockerfile.worker"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copy(ENV_EXAMPLE, tmp_path / ".env")
    result = subprocess.run(
        [docker, "compose", "--profile", "ngrok", "config", "--quiet"],
        cwd=tmp_path, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr


# --- Dockerfiles ------------------------------------------------------------------------------


@pytest.mark.parametrize("label", sorted(DOCKERFILES))
def test_dockerfile_is_slim_non_root_and_healthchecked(label: str) -> None:
    path = DOCKERFILES[label]
    assert path.is_file()
    bases = instruction_args(path, "FROM")
    assert bases, f"{path.name} has no FROM"
    image = bases[-1].split()[0]
    assert re.fullmatch(r"python:3\.1[1-9][\w.]*-slim(-[a-z]+)?", image), image
    users = instruction_args(path, "USER")
    assert users, f"{path.name} runs as root: add USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), f"{path.name} ends as {user}"
    assert len(instruction_args(path, "HEALTHCHECK")) == 1, f"{path.name}: one HEALTHCHECK"
    assert instruction_args(path, "CMD"), f"{path.name} has no CMD"
    installs = " ".join(instruction_args(path, "RUN"))
    assert re.search(r"pip install --no-cache-dir .*\s\.(\s|$)", installs), f"{path.name} does not install ."
    assert "--constraint constraints.txt" in installs and "--build-constraint constraints.txt" in installs
    assert "useradd" in installs


def test_dockerfile_commands() -> None:
    webhook_cmd = as_argv(command_form(instruction_args(DOCKERFILES["webhook"], "CMD")[-1]))
    assert webhook_cmd == ["relance", "webhook"]
    worker_cmd = as_argv(command_form(instruction_args(DOCKERFILES["worker"], "CMD")[-1]))
    assert worker_cmd[:2] in (["relance", "worker"], ["relance", "scheduler"])
    assert as_argv(healthcheck_command(DOCKERFILES["worker"])) == [
        "relance", "healthcheck", "worker",
    ]
    webhook_check = healthcheck_command(DOCKERFILES["webhook"])
    assert isinstance(webhook_check, str), "shell form, so ${BACKEND_PORT} expands"
    assert "urllib" in webhook_check
    url = interpolate(webhook_check, {})
    assert f"http://127.0.0.1:{Settings.model_fields['backend_port'].default}/healthz" in url


@pytest.mark.parametrize("label", sorted(DOCKERFILES))
def test_dockerfile_copies_exist_and_are_not_dockerignored(label: str) -> None:
    path = DOCKERFILES[label]
    patterns = ignore_patterns(ROOT / ".dockerignore")
    sources = copy_sources(path)
    for package in ("pyproject.toml", "constraints.txt", "shared", "services", "workers"):
        assert package in sources, f"{path.name} does not copy {package}"
    for source in sources:
        if any(char in source for char in "*?["):
            continue
        assert (ROOT / source).exists(), f"{path.name} copies {source}, which does not exist"
        files = [ROOT / source] if (ROOT / source).is_file() else (ROOT / source).rglob("*")
        for file in files:
            relative = file.relative_to(ROOT).as_posix()
            if file.is_dir() or "__pycache__" in relative or relative.endswith(".pyc"):
                continue
            assert not dockerignored(relative, patterns), f".dockerignore excludes {relative}"


# --- .env.example and ignores -----------------------------------------------------------------


def test_env_example_lists_exactly_the_settings_fields() -> None:
    keys: list[str] = []
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Z][A-Z0-9_]*", key), f"line {number + 1}: {line!r}"
        assert " #" not in value and not value.startswith("#"), (
            f"{key}: put comments on their own line (compose and dotenv differ on inline ones)"
        )
        assert value == value.strip() and not value.startswith(("'", '"')), f"{key}: plain value"
        comment: list[str] = []
        above = number - 1
        while above >= 0 and lines[above].startswith("#"):
            comment.insert(0, lines[above])
            above -= 1
        assert comment, f"{key} has no comment above it"
        text = " ".join(comment).lower()
        assert "required" in text or "optional" in text, f"{key}: say if production needs it"
        keys.append(key)
    assert len(keys) == len(set(keys)), "duplicate variables in .env.example"
    expected = settings_env_names()
    assert set(keys) - expected == set(), f"not Settings fields: {set(keys) - expected}"
    assert expected - set(keys) == set(), f"missing from .env.example: {expected - set(keys)}"


def test_env_example_is_valid_settings() -> None:
    values = env_example()
    settings = load_settings(environ=values)
    assert settings.backend_port == 3000
    assert values["MONGODB_URI"] == "mongodb://mongo:27017/relance"
    assert values["REDIS_URL"] == "redis://redis:6379/0"


def test_env_example_holds_no_secrets() -> None:
    values = env_example()
    for field in sorted(SECRET_FIELDS):
        value = values.get(field.upper(), "")
        assert value == "" or PLACEHOLDER.fullmatch(value), (
            f"{field.upper()} must be empty or an obvious placeholder in .env.example"
        )
    looks_secret = [
        re.compile(r"AC[0-9a-fA-F]{32}"),  # Twilio account SID
        re.compile(r"SK[0-9a-fA-F]{32}"),  # Twilio API key
        re.compile(r"AIza[0-9A-Za-z_\-]{20,}"),  # Google API key
        re.compile(r"[A-Za-z0-9_\-]{24,}"),  # any long token
        re.compile(r"://[^/@\s]*:[^/@\s]*@"),  # password inside a URL
    ]
    for key, value in values.items():
        for pattern in looks_secret:
            assert not pattern.search(value), f"{key} looks like a real secret"


def test_env_is_ignored_by_git_and_docker() -> None:
    gitignore = ignore_patterns(ROOT / ".gitignore")
    assert ".env" in gitignore or "/.env" in gitignore
    docker_patterns = ignore_patterns(ROOT / ".dockerignore")
    assert dockerignored(".env", docker_patterns)
    for name in (".venv", ".git", "tests", ".pytest_cache", ".mypy_cache", ".ruff_cache"):
        assert dockerignored(name, docker_patterns), f".dockerignore does not exclude {name}"
    assert dockerignored("shared/__pycache__", docker_patterns)
