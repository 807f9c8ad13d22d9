"""compose.yaml read the way Docker Compose reads it, for tests on a machine without Docker.

What compose.yaml relies on is covered: ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}`` and
``${VAR:?message}`` / ``${VAR?message}`` interpolation (``$$`` for a literal ``$``), YAML merge
keys (PyYAML resolves them), and ``environment`` entries without a value, which Compose passes
through from the shell or the project's ``.env`` when set there and leaves out otherwise
(compose-go: ``MappingWithEquals.Resolve`` over the project environment, ``.env`` included).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from dotenv import dotenv_values
from pydantic import SecretStr

from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
VAR_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)((?::?[-?+])([^}]*))?\}")

# Variables of .env that only compose reads (the stores' credentials), not Settings fields.
COMPOSE_VARIABLES = {
    "MONGO_ROOT_USERNAME", "MONGO_ROOT_PASSWORD", "MONGO_APP_USERNAME", "MONGO_APP_PASSWORD", "REDIS_PASSWORD",
}
STORE_PASSWORDS = {"MONGO_ROOT_PASSWORD", "MONGO_APP_PASSWORD", "REDIS_PASSWORD"}
SETTINGS_SECRETS = {name.upper() for name, field in Settings.model_fields.items() if field.annotation is SecretStr}
SECRETS = SETTINGS_SECRETS | STORE_PASSWORDS


class MissingVariable(AssertionError):
    """A ``${VAR:?message}`` (or ``${VAR?message}``) whose variable is missing: compose refuses to start."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"${{{name}}} is required: {message}")
        self.name = name


def env_example() -> dict[str, str]:
    """.env.example as compose and pydantic-settings read it."""
    return {key: value or "" for key, value in dotenv_values(ENV_EXAMPLE).items()}


def operator_env() -> dict[str, str]:
    """The .env of an operator who followed .env.example: every secret set, each to a distinct value."""
    env = env_example()
    env.update({
        "TWILIO_ACCOUNT_SID": "AC" + "0123456789abcdef" * 2,
        "PUBLIC_BASE_URL": "https://relance.example.com",
        "OWNER_WHATSAPP_NUMBER": "+33612345678",
        "TARGET_PHONE_NUMBER": "+33698765432",
        "MONGO_ROOT_USERNAME": "admin",
        "MONGO_APP_USERNAME": "relance",
    })
    for name in sorted(SECRETS):
        env[name] = f"sample-{name.lower().replace('_', '-')}-value"
    return env


def load_compose(path: Path = COMPOSE) -> dict[str, Any]:
    """The parsed compose file (merge keys resolved)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path.name} must be a mapping"
    return data


def services(path: Path = COMPOSE) -> dict[str, dict[str, Any]]:
    """The services of the compose file, by name."""
    found = load_compose(path).get("services")
    assert isinstance(found, dict) and found, f"{path.name} has no services"
    return found


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose-style interpolation of ``text`` with the variables ``env`` (the shell and ``.env``)."""

    def replace(match: re.Match[str]) -> str:
        name, operator, default = match.group(1), match.group(2) or "", match.group(3) or ""
        value = env.get(name)
        if operator.startswith(":-"):
            return value if value else default
        if operator.startswith("-"):
            return value if value is not None else default
        if operator.startswith(":?"):
            if not value:
                raise MissingVariable(name, default)
            return value
        if operator.startswith("?"):
            if value is None:
                raise MissingVariable(name, default)
            return value
        if operator.startswith(":+"):
            return default if value else ""
        if operator.startswith("+"):
            return default if value is not None else ""
        return value or ""

    return VAR_REF.sub(replace, text.replace("$$", "\0")).replace("\0", "$")


def declared_environment(service: Mapping[str, Any]) -> dict[str, str | None]:
    """A service's ``environment:`` as written (either syntax); None marks a pass-through entry."""
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        result: dict[str, str | None] = {}
        for item in environment:
            key, sep, value = str(item).partition("=")
            result[key] = value if sep else None
        return result
    return {str(key): None if value is None else str(value) for key, value in environment.items()}


def container_environment(service: Mapping[str, Any], dotenv: Mapping[str, str]) -> dict[str, str]:
    """The variables the service's container gets when ``dotenv`` is the project's ``.env``.

    Values are interpolated; a pass-through entry takes the ``.env`` value when there is one
    and is left out of the container otherwise (so the process's own default applies).
    """
    result: dict[str, str] = {}
    for key, value in declared_environment(service).items():
        if value is None:
            if key in dotenv:
                result[key] = dotenv[key]
        else:
            result[key] = interpolate(value, dotenv)
    return result


def as_argv(command: str | list[str]) -> list[str]:
    """A compose ``command`` (string or list) as an argument vector."""
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def service_networks(service: Mapping[str, Any]) -> set[str]:
    """The networks a service joins (``default`` when it names none)."""
    networks = service.get("networks")
    if not networks:
        return {"default"}
    return set(networks) if isinstance(networks, (list, dict)) else {str(networks)}
