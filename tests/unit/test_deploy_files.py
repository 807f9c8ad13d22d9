"""Static checks of the deployment files: compose.yaml, the Dockerfiles, .env.example, ignores.

No Docker engine is needed: the files are parsed with PyYAML and plain text handling
(tests/support/compose.py reads compose.yaml as Compose does), and checked against
:class:`shared.settings.Settings`, the CLI's argparse parser and what each process reads.
``docker compose config`` runs only when the compose plugin is installed; the Mongo init
script runs under node when node is installed. tests/integration/test_compose_processes.py
starts each process with the environment checked here.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import re
import shlex
import shutil
import subprocess
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from services.bootstrap import build_worker_deps
from services.cli import build_parser
from shared.errors import ConfigError
from shared.settings import Settings, load_settings
from tests.support.compose import (
    COMPOSE,
    COMPOSE_VARIABLES,
    ENV_EXAMPLE,
    ROOT,
    SECRETS,
    SETTINGS_SECRETS,
    VAR_REF,
    MissingVariable,
    as_argv,
    container_environment,
    declared_environment,
    env_example,
    interpolate,
    load_compose,
    operator_env,
    service_networks,
    services,
)

DOCKERFILES = {"webhook": ROOT / "Dockerfile.webhook", "worker": ROOT / "Dockerfile.worker"}
# What the images are made of, and what never goes into them.
PRODUCT_PACKAGES = ("shared", "services", "workers")
NOT_IN_IMAGES = ("devtools", "tests", "bench")
# The only places the product may import the development tools: inside these CLI commands, lazily.
LAZY_DEVTOOLS_IMPORTS = {("services/cli.py", "cmd_dev"), ("services/cli.py", "cmd_simulator")}
MONGO_INIT = ROOT / "deploy" / "mongo-init"

# Which secrets each compose service gets, worked out from the code (services/bootstrap.py and
# services/cli.py). The Relance processes also get MONGO_APP_PASSWORD and REDIS_PASSWORD, inside
# MONGODB_URI and REDIS_URL. A service or a secret missing here fails the test: decide first.
SERVICE_SECRETS: dict[str, set[str]] = {
    # build_webhook: require("twilio_auth_token") to check signatures; the shared key for the
    # webhooks Twilio signs with it; Stripe's signing secret for POST /payments/stripe.
    # METRICS_TOKEN: asked of whoever reads its GET /metrics.
    "webhook": {"TWILIO_AUTH_TOKEN", "TWILIO_WEBHOOK_SHARED_KEY", "STRIPE_WEBHOOK_SECRET", "METRICS_TOKEN"},
    # cmd_scheduler: build_inbound_backfill lists Twilio's inbound messages (no Twilio client without it).
    "scheduler": {"TWILIO_AUTH_TOKEN"},
    # relance console: API keys are checked against their hashes in MongoDB; no vendor is called.
    "console": {"METRICS_TOKEN"},  # asked of whoever reads its GET /metrics
    # build_drafter: Gemini. build_worker_deps builds the Twilio client for the sending queue only.
    "worker-drafting": {"GEMINI_API_KEY"},
    # build_sender: require("twilio_account_sid", "twilio_auth_token"); no drafting there.
    "worker-sending": {"TWILIO_AUTH_TOKEN"},
    # build_classifier and the answers' drafts: Gemini; its messages are sent by worker-sending.
    "worker-replies": {"GEMINI_API_KEY"},
    # POSTs to the business's own webhooks, signed with each subscription's secret (from MongoDB).
    "worker-outbound": set(),
    "ngrok": {"NGROK_AUTHTOKEN"},
    "caddy": set(),
    "prometheus": set(),
    "mongo": {"MONGO_ROOT_PASSWORD", "MONGO_APP_PASSWORD"},
    "redis": {"REDIS_PASSWORD"},
}
APP_STORE_SECRETS = {"MONGO_APP_PASSWORD", "REDIS_PASSWORD"}
# Settings no compose service gets, and why.
NOT_FORWARDED = {
    "TARGET_PHONE_NUMBER": "a personal phone number read by `relance dev` only",
    "NGROK_AUTHTOKEN": "read by the ngrok container, not by Relance",
    "MONGODB_URI": "compose builds it from the credentials",
    "REDIS_URL": "compose builds it from the credentials",
}
# Secrets that let a process call an outside API: it needs a network with a route out.
OUTBOUND_SECRETS = {"TWILIO_AUTH_TOKEN", "GEMINI_API_KEY"}

# The subcommands the CLI promises, checked with its parser too.
KNOWN_COMMANDS = {
    ("webhook",),
    ("console",),
    ("scheduler",),
    ("worker", "drafting"),
    ("worker", "sending"),
    ("worker", "replies"),
    ("worker", "outbound"),
    # Not `simulator` nor `dev`: the development tools are not in the images.
    ("db", "init"),
    ("healthcheck", "worker"),
    ("contacts", "import"),
    ("campaigns", "create"),
    ("campaigns", "enrol"),
}
WORKER_QUEUES = ("drafting", "sending", "replies", "outbound")
PLACEHOLDER = re.compile(r"(your-[a-z0-9-]+-here|changeme|<[a-z0-9 _-]+>)", re.IGNORECASE)
# A full version (major.minor.patch), an optional variant, an optional digest.
PINNED_IMAGE = re.compile(r"[\w./-]+:v?\d+\.\d+\.\d+(?:[-.][\w.]+)?(?:@sha256:[0-9a-f]{64})?")
PYTHON_BASE = re.compile(r"python:3\.1[1-9]\.\d+-slim-[a-z]+(?:@sha256:[0-9a-f]{64})?")


# --- helpers --------------------------------------------------------------------------------


def settings_env_names() -> set[str]:
    """Every Settings field as its environment variable."""
    return {name.upper() for name in Settings.model_fields}


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


def secrets_given(service: Mapping[str, Any], env: Mapping[str, str]) -> set[str]:
    """The secrets whose value reaches the service: environment, command or healthcheck."""
    haystack = list(container_environment(service, env).values())
    for key in ("command", "entrypoint"):
        if key in service:
            haystack += [interpolate(part, env) for part in as_argv(service[key])]
    test = (service.get("healthcheck") or {}).get("test") or []
    haystack += [interpolate(str(part), env) for part in (test if isinstance(test, list) else [test])]
    return {name for name in SECRETS if any(env[name] in text for text in haystack)}


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


# --- compose: services and commands -----------------------------------------------------------


def test_compose_parses_with_expected_services() -> None:
    found = services()
    expected = {
        "mongo", "redis", "webhook", "scheduler",
        "worker-drafting", "worker-sending", "worker-replies", "ngrok", "caddy",
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
        "scheduler", "worker-drafting", "worker-sending", "worker-replies", "worker-outbound",
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
    parser = build_parser()
    for origin, argv in relance_commands():
        try:
            parser.parse_args(argv)
        except SystemExit as exc:
            pytest.fail(f"{origin}: `relance {' '.join(argv)}` is rejected by the CLI ({exc})")


def test_worker_services_can_be_scaled() -> None:
    workers = worker_services()
    assert workers
    for name, svc in workers.items():
        assert "container_name" not in svc, f"{name} has a container_name: --scale would fail"
        assert not svc.get("ports"), f"{name} publishes host ports: --scale would fail"
    assert "container_name" not in services()["webhook"]


def test_compose_depends_on_nothing_outside_itself() -> None:
    """Everything compose uses is declared in compose.yaml: no host network, no external objects."""
    data = load_compose()
    for name, svc in services().items():
        for key in ("network_mode", "external_links", "extra_hosts", "env_file", "pid", "ipc"):
            assert key not in svc, f"service {name} sets {key}"
        for mount in svc.get("volumes") or []:
            source = str(mount).split(":", 1)[0]
            if source.startswith((".", "/")):
                assert source.startswith("./"), f"{name} mounts {source} from outside the checkout"
                assert (ROOT / source).exists(), f"{name} mounts {source}, which does not exist"
    for section in ("networks", "volumes"):
        for name, spec in (data.get(section) or {}).items():
            assert not (spec or {}).get("external"), f"{section} {name} is external"


# --- compose: stores with authentication ------------------------------------------------------


def test_store_credentials_are_required() -> None:
    """Compose refuses to start without each store credential rather than run without a password."""
    text = COMPOSE.read_text(encoding="utf-8")
    used = {match.group(1) for match in VAR_REF.finditer(text)}
    assert used >= COMPOSE_VARIABLES, f"compose.yaml never uses {COMPOSE_VARIABLES - used}"
    for match in VAR_REF.finditer(text):
        if match.group(1) in COMPOSE_VARIABLES:
            assert (match.group(2) or "").startswith(":?"), (
                f"{match.group(0)}: write ${{{match.group(1)}:?message}} so that an empty value stops compose"
            )
    for name in sorted(COMPOSE_VARIABLES):
        for missing in ({}, {name: ""}):
            env = {key: value for key, value in operator_env().items() if key != name} | missing
            with pytest.raises(MissingVariable) as refused:
                interpolate(text, env)
            assert refused.value.name in COMPOSE_VARIABLES


def test_mongo_requires_authentication_and_relance_uses_its_own_user() -> None:
    env = operator_env()
    mongo = container_environment(services()["mongo"], env)
    # The image turns --auth on and creates the root user when both are set.
    assert mongo["MONGO_INITDB_ROOT_USERNAME"] == env["MONGO_ROOT_USERNAME"]
    assert mongo["MONGO_INITDB_ROOT_PASSWORD"] == env["MONGO_ROOT_PASSWORD"]
    assert mongo["MONGO_APP_USERNAME"] == env["MONGO_APP_USERNAME"]
    assert mongo["MONGO_APP_PASSWORD"] == env["MONGO_APP_PASSWORD"]
    mounts = [str(mount) for mount in services()["mongo"].get("volumes") or []]
    assert "./deploy/mongo-init:/docker-entrypoint-initdb.d:ro" in mounts
    assert list(MONGO_INIT.glob("*.js")), "deploy/mongo-init holds no init script"
    for name, svc in built_services().items():
        uri = urlsplit(container_environment(svc, env)["MONGODB_URI"])
        assert (uri.username, uri.password) == (env["MONGO_APP_USERNAME"], env["MONGO_APP_PASSWORD"]), name
        assert uri.hostname == "mongo" and uri.port == 27017, name
        settings = load_settings(environ=container_environment(svc, env))
        # The user lives in the application's database, the URI's default authSource.
        assert settings.mongodb_database == mongo["MONGO_APP_DATABASE"] == "relance"
        assert "authSource" not in (uri.query or ""), name


def test_mongo_init_script_creates_a_read_write_user() -> None:
    """The init script, run under node with a stand-in for mongosh's ``db``: one readWrite user."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    (script,) = MONGO_INIT.glob("*.js")
    harness = """
const calls = [];
const users = new Set(JSON.parse(process.argv[2]));
globalThis.print = () => {};
globalThis.db = { getSiblingDB: (name) => ({
  getUser: (user) => users.has(user) ? { user } : null,
  createUser: (spec) => calls.push(["create", name, spec]),
  updateUser: (user, spec) => calls.push(["update", name, user, spec]),
}) };
try { require(process.argv[1]); } catch (error) { calls.push(["error", String(error.message)]); }
console.log(JSON.stringify(calls));
"""
    base = {"PATH": "/usr/bin:/bin", "MONGO_APP_USERNAME": "relance", "MONGO_APP_PASSWORD": "s3cret",
            "MONGO_APP_DATABASE": "relance"}

    def run(env: dict[str, str], existing: list[str]) -> list[Any]:
        done = subprocess.run([node, "-e", harness, "--", str(script), json.dumps(existing)], env=env,
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        result: list[Any] = json.loads(done.stdout)
        return result

    role = [{"role": "readWrite", "db": "relance"}]
    assert run(base, []) == [["create", "relance", {"user": "relance", "pwd": "s3cret", "roles": role}]]
    assert run(base, ["relance"]) == [["update", "relance", "relance", {"pwd": "s3cret", "roles": role}]]
    without_password = {key: value for key, value in base.items() if key != "MONGO_APP_PASSWORD"}
    assert run(without_password, [])[0][0] == "error"


def test_redis_requires_a_password() -> None:
    env = operator_env()
    redis = services()["redis"]
    argv = [interpolate(part, env) for part in as_argv(redis["command"])]
    assert argv[0] == "redis-server" and "--appendonly" in argv
    assert argv[argv.index("--requirepass") + 1] == env["REDIS_PASSWORD"]
    # The healthcheck authenticates (redis-cli reads REDISCLI_AUTH) and wants the PONG itself.
    assert container_environment(redis, env)["REDISCLI_AUTH"] == env["REDIS_PASSWORD"]
    test = redis["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL" and "redis-cli ping" in test[1] and "PONG" in test[1]
    for name, svc in built_services().items():
        url = urlsplit(container_environment(svc, env)["REDIS_URL"])
        assert url.password == env["REDIS_PASSWORD"] and url.hostname == "redis" and url.port == 6379, name


def test_app_services_reach_the_stores_and_wait_for_them() -> None:
    env = operator_env()
    for name, svc in built_services().items():
        settings = load_settings(environ=container_environment(svc, env))
        assert settings.mongodb_uri.startswith("mongodb://") and "@mongo:27017/" in settings.mongodb_uri
        assert settings.redis_url.startswith("redis://") and "@redis:6379/" in settings.redis_url
        depends = svc.get("depends_on") or {}
        assert isinstance(depends, dict), f"service {name}: depends_on needs conditions"
        for store in ("mongo", "redis"):
            assert depends.get(store, {}).get("condition") == "service_healthy", (name, store)
        assert svc.get("restart") == "unless-stopped", name


def test_stores_have_healthchecks_and_volumes() -> None:
    found = services()
    assert str(found["mongo"]["image"]).startswith("mongo:7.")
    assert str(found["redis"]["image"]).startswith("redis:7.")
    mongo_test = " ".join(found["mongo"]["healthcheck"]["test"])
    assert "mongosh" in mongo_test and "ping" in mongo_test
    volumes = load_compose().get("volumes") or {}
    for store in ("mongo", "redis"):
        mounts = found[store].get("volumes") or []
        named = [str(m).split(":", 1)[0] for m in mounts]
        assert any(name in volumes for name in named), f"{store} keeps no named volume"
        assert found[store].get("restart") == "unless-stopped"


# --- compose: networks, ports, images -----------------------------------------------------------


def test_stores_sit_on_an_internal_network_that_ngrok_does_not_join() -> None:
    data, found, env = load_compose(), services(), operator_env()
    networks = data.get("networks") or {}
    internal = {name for name, spec in networks.items() if (spec or {}).get("internal")}
    for store in ("mongo", "redis"):
        joined = service_networks(found[store])
        assert joined and joined <= internal, f"{store} is on {joined - internal}, which reach outside"
        assert not found[store].get("ports"), f"{store} publishes ports"
    store_networks = service_networks(found["mongo"]) | service_networks(found["redis"])
    for name, svc in found.items():
        joined = service_networks(svc)
        assert joined <= set(networks) | {"default"}, f"{name} joins undeclared networks"
        if "build" in svc:
            assert joined & store_networks, f"{name} cannot reach the stores"
        elif name not in ("mongo", "redis"):
            assert not joined & store_networks, f"{name} is on the stores' network {joined & store_networks}"
        if secrets_given(svc, env) & OUTBOUND_SECRETS:
            assert joined - internal, f"{name} calls Twilio or Gemini but has no network with a route out"
    assert not service_networks(found["ngrok"]) & internal


def test_images_are_pinned() -> None:
    for name, svc in services().items():
        if "build" in svc:
            assert str(svc.get("image", "")).endswith(":local"), f"{name}: built image tagged :local"
            continue
        image = str(svc["image"])
        assert PINNED_IMAGE.fullmatch(image), f"{name}: {image} is not pinned to a full version"
        assert ":latest" not in image
    for path in DOCKERFILES.values():
        (base,) = [text.split()[0] for text in instruction_args(path, "FROM")]
        assert PYTHON_BASE.fullmatch(base), f"{path.name}: FROM {base} must pin python:3.X.Y-slim-<debian release>"


def test_webhook_port_is_published_on_loopback_only() -> None:
    default_port = Settings.model_fields["backend_port"].default
    assert default_port == 3000
    ports = services()["webhook"].get("ports") or []
    assert len(ports) == 1, "the webhook publishes exactly one port"
    published = interpolate(str(ports[0]), {})
    assert published == f"127.0.0.1:{default_port}:{default_port}", published
    # The same port when BACKEND_PORT is set: both sides follow it.
    assert interpolate(str(ports[0]), {"BACKEND_PORT": "8080"}) == "127.0.0.1:8080:8080"
    exposed = {
        port.split("/")[0]
        for text in instruction_args(DOCKERFILES["webhook"], "EXPOSE")
        for port in text.split()
    }
    assert exposed == {str(default_port)}, f"Dockerfile.webhook exposes {exposed}"
    assert env_example()["BACKEND_PORT"] == str(default_port)


def test_ngrok_is_optional_and_targets_the_webhook() -> None:
    ngrok = services()["ngrok"]
    assert "ngrok" in (ngrok.get("profiles") or [])
    argv = as_argv(interpolate(str(ngrok["command"]), {}))
    assert argv == ["http", f"webhook:{Settings.model_fields['backend_port'].default}"]
    assert "NGROK_AUTHTOKEN" in declared_environment(ngrok)
    assert [str(port) for port in ngrok.get("ports") or []] == ["127.0.0.1:4040:4040"]
    assert service_networks(ngrok) & service_networks(services()["webhook"])


def test_caddy_profile_puts_https_in_front_of_the_webhook() -> None:
    caddy, env = services()["caddy"], operator_env()
    assert "tls" in (caddy.get("profiles") or [])
    argv = [interpolate(part, env) for part in as_argv(caddy["command"])]
    assert argv[:2] == ["caddy", "reverse-proxy"]
    # The certificate is for the URL Twilio signs; the webhook is reached inside compose.
    assert argv[argv.index("--from") + 1] == env["PUBLIC_BASE_URL"]
    assert argv[argv.index("--to") + 1] == f"webhook:{env['BACKEND_PORT']}"
    assert sorted(str(port) for port in caddy.get("ports") or []) == ["443:443", "80:80"]
    assert any(str(mount).startswith("caddy-data:/data") for mount in caddy.get("volumes") or [])
    assert service_networks(caddy) & service_networks(services()["webhook"])


# --- compose: settings and secrets per service --------------------------------------------------


def test_compose_env_references_are_known_variables() -> None:
    allowed = settings_env_names() | COMPOSE_VARIABLES
    text = COMPOSE.read_text(encoding="utf-8").replace("$$", "")
    referenced = {match.group(1) for match in VAR_REF.finditer(text)}
    assert not re.search(r"\$[A-Za-z_]", text), "use ${VAR}, not $VAR, in compose.yaml"
    for name, svc in services().items():
        if "build" in svc or name == "ngrok":
            referenced |= set(declared_environment(svc))
    unknown = referenced - allowed
    assert not unknown, f"compose.yaml uses variables that are neither Settings fields nor store credentials: {unknown}"
    for path in DOCKERFILES.values():
        in_dockerfile = {m.group(1) for m in VAR_REF.finditer(path.read_text(encoding="utf-8"))}
        assert in_dockerfile <= allowed, f"{path.name}: unknown variables {in_dockerfile - allowed}"


def test_each_service_gets_only_the_secrets_it_needs() -> None:
    env = operator_env()
    found = services()
    assert set(found) <= set(SERVICE_SECRETS), f"decide which secrets {set(found) - set(SERVICE_SECRETS)} need"
    decided = set().union(*SERVICE_SECRETS.values()) | set(NOT_FORWARDED)
    assert SETTINGS_SECRETS <= decided, f"decide which services need {SETTINGS_SECRETS - decided}"
    for name, svc in found.items():
        expected = SERVICE_SECRETS[name] | (APP_STORE_SECRETS if "build" in svc else set())
        assert secrets_given(svc, env) == expected, f"service {name}"


def test_every_setting_reaches_every_relance_process() -> None:
    """A setting in .env is never silently ignored: each process gets every non-secret setting."""
    forwarded = settings_env_names() - SETTINGS_SECRETS - set(NOT_FORWARDED)
    env = operator_env()
    for name, svc in built_services().items():
        declared = declared_environment(svc)
        missing = forwarded - set(declared)
        assert not missing, f"service {name} does not pass {sorted(missing)} on: add them to x-settings"
        leaked = {key for key in declared if key in NOT_FORWARDED and key not in ("MONGODB_URI", "REDIS_URL")}
        assert not leaked, f"service {name} gets {leaked}"
        # With an operator's .env, the process reads what it would read from that .env directly.
        inside = load_settings(environ=container_environment(svc, env))
        outside = load_settings(environ=env)
        for field in forwarded:
            assert getattr(inside, field.lower()) == getattr(outside, field.lower()), (name, field)


def test_unset_settings_keep_their_defaults_in_the_containers() -> None:
    """A setting missing from .env is left out of the container (not set empty): its default applies."""
    env = {name: operator_env()[name] for name in COMPOSE_VARIABLES}
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    for name, svc in built_services().items():
        inside = container_environment(svc, env)
        assert set(inside) == {"MONGODB_URI", "REDIS_URL"}, f"service {name} sets {set(inside)}"
        settings = load_settings(environ=inside)
        for field in Settings.model_fields:
            if field not in ("mongodb_uri", "redis_url"):
                assert getattr(settings, field) == getattr(defaults, field), (name, field)


def test_docker_compose_config_when_available(tmp_path: Path) -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("docker is not installed")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip("the docker compose plugin is not installed")
    for name in ("compose.yaml", "Dockerfile.webhook", "Dockerfile.worker"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(MONGO_INIT, tmp_path / "deploy" / "mongo-init")
    command = [docker, "compose", "--profile", "ngrok", "--profile", "tls", "config", "--quiet"]
    shutil.copy(ENV_EXAMPLE, tmp_path / ".env")
    refused = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
    assert refused.returncode != 0 and "PASSWORD" in refused.stderr, "compose started without passwords"
    lines = [f"{key}={value}" for key, value in operator_env().items()]
    (tmp_path / ".env").write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
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
    assert "useradd" in installs


@pytest.mark.parametrize("label", sorted(DOCKERFILES))
def test_dockerfile_installs_from_the_lock(label: str) -> None:
    """The images install the versions of constraints.txt, dependencies and build tools alike."""
    path = DOCKERFILES[label]
    steps = instructions(path)
    copied = [index for index, (key, text) in enumerate(steps) if key == "COPY" and "constraints.txt" in text]
    assert copied, f"{path.name} does not copy constraints.txt"
    runs = [(index, text) for index, (key, text) in enumerate(steps) if key == "RUN" and "pip install" in text]
    assert runs and all(index > copied[0] for index, _ in runs), f"{path.name} installs before copying the lock"
    commands = [part.strip() for _, text in runs for part in text.split("&&") if "pip install" in part]
    for command in commands:
        argv = shlex.split(command)
        assert argv[argv.index("--constraint") + 1] == "constraints.txt", f"{path.name}: {command}"
    project = [command for command in commands if shlex.split(command)[-1] == "."]
    assert len(project) == 1, f"{path.name} must install the project once"
    argv = shlex.split(project[0])
    assert argv[argv.index("--build-constraint") + 1] == "constraints.txt", f"{path.name}: build tools unpinned"
    # pip is installed from the lock first: --build-constraint needs pip 25.3 or newer.
    assert shlex.split(commands[0])[-1] == "pip", f"{path.name}: pin pip before installing the project"
    assert "pip check" in " ".join(text for _, text in runs), f"{path.name}: run pip check after installing"


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


# --- the development tools stay out of the images ----------------------------------------------


def brought_in(source: str) -> set[str]:
    """The top-level entries of the checkout a COPY source brings into the build (before .dockerignore)."""
    first = source.strip("/").removeprefix("./").split("/")[0] or "."
    if first == ".":
        return {path.name for path in ROOT.iterdir()}
    return {path.name for path in ROOT.iterdir() if fnmatch.fnmatch(path.name, first)}


@pytest.mark.parametrize("label", sorted(DOCKERFILES))
def test_no_dockerfile_copies_the_development_tools(label: str) -> None:
    """devtools/, tests/ and bench/ are never copied, neither by name nor through a broader COPY."""
    path = DOCKERFILES[label]
    patterns = ignore_patterns(ROOT / ".dockerignore")
    for source in copy_sources(path):
        named = source.strip("/").removeprefix("./").split("/")[0] in NOT_IN_IMAGES
        assert not named, f"{path.name} copies {source}: the development tools stay out of the images"
        leaked = {entry for entry in brought_in(source) & set(NOT_IN_IMAGES) if not dockerignored(entry, patterns)}
        assert not leaked, f"{path.name}: COPY {source} brings {sorted(leaked)} into the image"
    for entry in NOT_IN_IMAGES:
        assert (ROOT / entry).is_dir(), f"{entry}/ is gone: update NOT_IN_IMAGES"
        assert dockerignored(entry, patterns), f".dockerignore does not exclude {entry}/"


def devtools_imports(path: Path) -> Iterator[tuple[int, str | None]]:
    """Where a file imports devtools: (line, outermost enclosing function, or None when run on import)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))

    def names(node: ast.AST) -> list[str]:
        if isinstance(node, ast.Import):
            return [alias.name for alias in node.names]
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            return [node.module]
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                return [node.args[0].value]
        return []

    def visit(nodes: Iterable[ast.AST], function: str | None) -> Iterator[tuple[int, str | None]]:
        for node in nodes:
            if any(name == "devtools" or name.startswith("devtools.") for name in names(node)):
                yield node.lineno, function  # type: ignore[attr-defined]
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                # Decorators and defaults run when the module is imported; the body when called.
                yield from visit([*node.decorator_list, node.args], function)
                yield from visit(node.body, function or node.name)
            else:
                yield from visit(ast.iter_child_nodes(node), function)

    yield from visit([tree], None)


def test_the_product_imports_the_development_tools_only_lazily() -> None:
    """shared, services and workers never import devtools at module level: an image runs without it."""
    found: set[tuple[str, str | None]] = set()
    for package in PRODUCT_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            for line, function in devtools_imports(path):
                where = (relative, function)
                assert where in LAZY_DEVTOOLS_IMPORTS, (
                    f"{relative}:{line} imports devtools "
                    + (f"in {function}()" if function else "at module level")
                    + ": only `relance dev` and `relance simulator` may, lazily, inside the command"
                )
                found.add(where)
    # The scan sees what it must: the two commands' own imports.
    assert found == LAZY_DEVTOOLS_IMPORTS


def test_the_import_scan_sees_every_form(tmp_path: Path) -> None:
    """The scan above on known cases: module level, under a condition, in a function or method, by name."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import devtools\n"
        "if True:\n    from devtools.simulator import create_app\n"
        "def f():\n    import devtools.embedded as e\n"
        "class C:\n    def m(self):\n        importlib.import_module('devtools.devstack')\n"
        "def g(x=__import__('devtools')):\n    pass\n"
        "import devtoolsy\nfrom shared import devtools_like\n",
        encoding="utf-8",
    )
    assert list(devtools_imports(sample)) == [(1, None), (3, None), (5, "f"), (8, "m"), (9, None)]


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def setuptools_packages() -> list[str]:
    """The packages `pip install .` installs: pyproject's find patterns over the checkout's folders.

    Setuptools matches each dotted package name against the include patterns (fnmatch);
    tests/unit/test_packaging.py checks the same on a real build.
    """
    setuptools = pyproject()["tool"]["setuptools"]
    assert set(setuptools.get("package-dir", {"": "."})) == {""}, "map no package to another folder"
    find = setuptools["packages"]["find"]
    include, exclude = find.get("include", ["*"]), find.get("exclude", [])
    found = set()
    for module in ROOT.rglob("*.py"):
        folder = module.parent.relative_to(ROOT)
        if not folder.parts or any(part.startswith(".") for part in folder.parts):
            continue
        name = ".".join(folder.parts)
        if any(fnmatch.fnmatch(name, p) for p in include) and not any(fnmatch.fnmatch(name, p) for p in exclude):
            found.add(name)
    return sorted(found)


def test_the_installed_packages_exclude_the_development_tools() -> None:
    """What the images install (`pip install .`) holds the product packages and nothing else."""
    assert (ROOT / "devtools" / "__init__.py").is_file(), "the check must see devtools/ to leave it out"
    tops = {name.split(".")[0] for name in setuptools_packages()}
    assert tops == set(PRODUCT_PACKAGES), f"pip install . would install {sorted(tops)}"
    package_data = pyproject()["tool"]["setuptools"].get("package-data", {})
    for package, files in package_data.items():
        assert package.split(".")[0] in PRODUCT_PACKAGES, f"package-data for {package}"
        assert not any("devtools" in pattern or "demo" in pattern for pattern in files), (package, files)


# --- .env.example and ignores -----------------------------------------------------------------


def test_env_example_lists_exactly_the_settings_fields_and_compose_variables() -> None:
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
    expected = settings_env_names() | COMPOSE_VARIABLES
    assert set(keys) - expected == set(), f"neither Settings fields nor compose variables: {set(keys) - expected}"
    assert expected - set(keys) == set(), f"missing from .env.example: {expected - set(keys)}"


def test_env_example_is_valid_settings() -> None:
    values = env_example()
    settings = load_settings(environ=values)
    assert settings.backend_port == 3000
    # For processes run outside compose; compose builds its own (checked above).
    assert values["MONGODB_URI"] == "mongodb://127.0.0.1:27017/relance"
    assert values["REDIS_URL"] == "redis://127.0.0.1:6379/0"


def test_env_example_holds_no_secrets() -> None:
    values = env_example()
    for name in sorted(SECRETS | {"TWILIO_ACCOUNT_SID", "TARGET_PHONE_NUMBER"}):
        value = values.get(name, "")
        assert value == "" or PLACEHOLDER.fullmatch(value), (
            f"{name} must be empty or an obvious placeholder in .env.example"
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
    for name in (".venv", ".git", "tests", "devtools", "bench", ".pytest_cache", ".mypy_cache", ".ruff_cache"):
        assert dockerignored(name, docker_patterns), f".dockerignore does not exclude {name}"
    assert dockerignored("shared/__pycache__", docker_patterns)
    assert not dockerignored("constraints.txt", docker_patterns)


# --- what each process builds -----------------------------------------------------------------


@pytest.mark.parametrize("queue", WORKER_QUEUES)
def test_only_the_sending_worker_builds_a_twilio_client(queue: str) -> None:
    """The drafting and replies workers start without Twilio credentials (compose gives them none)."""
    settings = load_settings(environ={"TWILIO_ACCOUNT_SID": "", "TWILIO_AUTH_TOKEN": ""})
    if queue == "sending":
        with pytest.raises(ConfigError, match="TWILIO_ACCOUNT_SID"):
            build_worker_deps(settings, queues=[queue])
        return
    deps, broker, client = build_worker_deps(settings, queues=[queue])
    try:
        with pytest.raises(ConfigError, match="sending queue"):
            deps.sender.fetch_status("SM" + "0" * 32)
    finally:
        broker.close()
        client.close()


# --- compose: the monitoring profile ------------------------------------------------------------


def test_monitoring_profile_scrapes_every_relance_process() -> None:
    """Prometheus is optional (its own profile) and its configuration names every Relance process."""
    found = services()
    prometheus = found["prometheus"]
    assert (prometheus.get("profiles") or []) == ["monitoring"]
    assert PINNED_IMAGE.fullmatch(str(prometheus["image"]))
    assert [str(port) for port in prometheus.get("ports") or []] == ["127.0.0.1:9090:9090"]
    # Reaches each Relance process on a network they share, never the stores' network.
    for name in built_services():
        assert service_networks(prometheus) & service_networks(found[name]), f"prometheus cannot reach {name}"
    assert not service_networks(prometheus) & service_networks(found["mongo"])
    # The other services do not depend on the profile.
    for name, svc in found.items():
        if name != "prometheus":
            assert "monitoring" not in (svc.get("profiles") or []), name
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    targets: set[str] = set()
    dramatiq: set[str] = set()
    for job in config["scrape_configs"]:
        for static in job.get("static_configs") or []:
            targets |= {target.split(":")[0] for target in static["targets"]}
        for dns in job.get("dns_sd_configs") or []:
            assert dns["port"] in (9100, 9191)
            (targets if dns["port"] == 9100 else dramatiq).update(dns["names"])
    assert targets == set(built_services()), targets
    # Every worker is scraped a second time, on dramatiq's own middleware's port, which it exposes.
    workers = {name for name, svc in built_services().items() if as_argv(svc.get("command") or [])[1:2] == ["worker"]}
    assert workers and dramatiq == workers, dramatiq
    for name in workers:
        assert {str(port) for port in found[name].get("expose") or []} == {"9100", "9191"}, name
        assert not found[name].get("ports"), name
    assert "./deploy/prometheus:/etc/prometheus:ro" in [str(m) for m in prometheus.get("volumes") or []]
