"""The container files only name real settings, valid values and real entry points."""

from __future__ import annotations

import importlib
import json
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from assetwatch.cli import build_parser
from assetwatch.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "ASSETWATCH_"
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
BUILT = {name: svc for name, svc in SERVICES.items() if "build" in svc}


def _instructions() -> list[tuple[str, str]]:
    """Dockerfile instructions as (KEYWORD, rest), continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = (line.strip() for line in text.splitlines())
    return [
        (word.upper(), rest.strip())
        for word, _, rest in (line.partition(" ") for line in lines if line)
        if not word.startswith("#")
    ]


def _dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, rest in _instructions():
        if keyword != "ENV":
            continue
        tokens = shlex.split(rest)
        if all("=" in token for token in tokens):
            env.update(token.partition("=")[::2] for token in tokens)
        else:  # legacy form: ENV KEY value
            env[tokens[0]] = " ".join(tokens[1:])
    return env


def _assert_real_settings(env: dict[str, Any], where: str) -> None:
    for name, value in env.items():
        assert name.startswith(PREFIX), f"{where}: {name} is not an {PREFIX}* setting"
        field = name.removeprefix(PREFIX).lower()
        assert field in Settings.model_fields, f"{where}: {name} names no Settings field"
        kwargs: dict[str, Any] = {"_env_file": None, field: str(value)}  # no .env, no env vars
        settings = Settings(**kwargs)
        assert field in settings.model_fields_set, f"{where}: {name} was not applied"


def test_assetwatch_services_are_built_from_the_dockerfile() -> None:
    assert {"topics", "trainer", "worker", "simulator"} <= BUILT.keys()


@pytest.mark.parametrize("name", sorted(BUILT))
def test_assetwatch_service_environment_names_real_settings(name: str) -> None:
    env = BUILT[name].get("environment")
    assert isinstance(env, dict) and env, f"{name}: environment must be a non-empty mapping"
    _assert_real_settings(env, name)


@pytest.mark.parametrize("name", sorted(n for n, s in BUILT.items() if "entrypoint" not in s))
def test_assetwatch_service_command_parses(name: str) -> None:
    build_parser().parse_args(BUILT[name]["command"])


def test_compose_has_the_stack() -> None:
    assert {"kafka", "kafka-ui", "mlflow", "worker", "simulator"} <= SERVICES.keys()


def test_kafka_runs_in_kraft_mode() -> None:
    env = SERVICES["kafka"]["environment"]
    assert {"broker", "controller"} <= set(env["KAFKA_PROCESS_ROLES"].split(","))
    assert "KAFKA_ZOOKEEPER_CONNECT" not in env
    assert not [n for n, s in SERVICES.items() if "zookeeper" in f"{n} {s.get('image', '')}"]
    assert str(env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"]).lower() == "false"
    advertised = env["KAFKA_ADVERTISED_LISTENERS"]
    for svc in BUILT.values():
        assert f"//{svc['environment'][PREFIX + 'KAFKA_BOOTSTRAP_SERVERS']}" in advertised


def test_dockerfile_entrypoint_is_the_console_script() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    instructions = dict(_instructions())
    entrypoint = json.loads(instructions["ENTRYPOINT"])
    assert entrypoint == ["assetwatch"]
    module, _, func = scripts[entrypoint[0]].partition(":")
    assert callable(getattr(importlib.import_module(module), func))
    build_parser().parse_args(json.loads(instructions["CMD"]))


def test_dockerfile_env_names_real_settings() -> None:
    env = {k: v for k, v in _dockerfile_env().items() if k.startswith(PREFIX)}
    assert env.get(PREFIX + "DATA_DIR") == "/data"
    _assert_real_settings(env, "Dockerfile")


def test_env_example_documents_every_setting() -> None:
    """.env.example names each Settings field once, with its description above it."""
    text = (ROOT / ".env.example").read_text()
    names = {line.split("=", 1)[0].lstrip("# ").strip() for line in text.splitlines()
             if line.startswith("# ASSETWATCH_")}
    assert names == {f"ASSETWATCH_{name.upper()}" for name in Settings.model_fields}
    for name, field in Settings.model_fields.items():
        assert f"# {field.description}\n# ASSETWATCH_{name.upper()}=" in text
