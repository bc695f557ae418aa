"""The Dockerfile, the compose example and docs/scale-out.md say only what the CLI accepts.

The compose file is parsed as YAML and each inspector replica's environment and command
go through the CLI's own parser, as the container would run them.
"""

from __future__ import annotations

import argparse
import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from app.cli import ENV_PREFIX, build_parser, settings_from_args
from app.config import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "examples" / "scale-out" / "compose.yaml"
_VARIABLE = re.compile(r"\$\{(\w+)(?::?[-?][^}]*)?\}")


class _Asked(dict[str, str]):
    """An environment that remembers which variables the CLI looked up."""

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.asked: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.add(key)
        return super().get(key, default)


def accepted_env_names() -> set[str]:
    environ = _Asked({})
    build_parser(environ)
    return {name for name in environ.asked if name.startswith(ENV_PREFIX)}


def serve_parser() -> argparse.ArgumentParser:
    parser, _ = build_parser({})
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    serve: argparse.ArgumentParser = commands.choices["serve"]
    return serve


def accepted_flags() -> set[str]:
    return {flag for action in serve_parser()._actions for flag in action.option_strings}


def substituted(value: object) -> str:
    """What compose makes of `${VAR:?message}` / `${VAR:-default}`, with a token-sized stand-in."""
    return _VARIABLE.sub("a-stand-in-value-of-32-characters", str(value))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return document


def inspectors(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: service for name, service in compose["services"].items() if "build" in service}


def settings_of(service: dict[str, Any]) -> Settings:
    environment = {key: substituted(value) for key, value in service.get("environment", {}).items()}
    parser, env = build_parser(environment)
    args = parser.parse_args([str(part) for part in service.get("command", ["serve"])])
    assert env.errors == []
    return settings_from_args(args)


def test_compose_runs_two_inspector_replicas_with_settings_the_cli_accepts(compose: dict[str, Any]) -> None:
    replicas = inspectors(compose)
    assert len(replicas) >= 2
    names = accepted_env_names()
    flags = accepted_flags()
    for name, service in replicas.items():
        unknown = {key for key in service["environment"] if key.startswith(ENV_PREFIX)} - names
        assert unknown == set(), f"{name}: the CLI reads no {unknown}"
        command = [str(part) for part in service["command"]]
        assert command[0] == "serve"
        assert {part.split("=")[0] for part in command if part.startswith("--")} <= flags
        settings = settings_of(service)
        store = urlsplit(settings.store)
        assert store.scheme == "redis" and store.hostname in compose["services"], settings.store
        container_ports = {int(str(mapping).rsplit(":", 1)[1]) for mapping in service["ports"]}
        assert container_ports == {settings.http_port}, f"{name} publishes {container_ports}"
    prefixes = {settings_of(service).store_prefix for service in replicas.values()}
    stores = {settings_of(service).store for service in replicas.values()}
    assert len(prefixes) == len(stores) == 1, "replicas share one store and prefix"


def test_the_gateway_balances_over_every_replica(compose: dict[str, Any]) -> None:
    gateway = compose["services"]["gateway"]["environment"]
    target = urlsplit(gateway["TYK_GW_COPROCESSOPTIONS_COPROCESSGRPCSERVER"])
    assert target.scheme == "dns" and gateway["TYK_GW_COPROCESSOPTIONS_GRPCROUNDROBINLOADBALANCING"] == "true"
    host, port = target.path.lstrip("/").rsplit(":", 1)
    for name, service in inspectors(compose).items():
        assert host in service["networks"]["default"]["aliases"], f"{name} is not behind {host}"
        assert settings_of(service).grpc_address.rsplit(":", 1)[1] == port
    assert int(gateway["TYK_GW_COPROCESSOPTIONS_GRPCRECVMAXSIZE"]) <= Settings().max_message_bytes
    assert gateway["TYK_GW_STORAGE_HOST"] in compose["services"]


def test_the_example_api_calls_the_inspector_and_reaches_the_upstream(compose: dict[str, Any]) -> None:
    volume = next(v for v in compose["services"]["gateway"]["volumes"] if v.startswith("./apps:"))
    apps = COMPOSE.parent / volume.split(":")[0]
    definitions = [yaml.safe_load(path.read_text()) for path in apps.glob("*.json")]
    assert definitions
    for definition in definitions:
        assert definition["custom_middleware"]["driver"] == "grpc"
        assert urlsplit(definition["proxy"]["target_url"]).hostname in compose["services"]


def test_the_dockerfile_runs_the_cli_on_its_default_ports() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    exposed = {int(port) for line in dockerfile.splitlines() if line.startswith("EXPOSE") for port in line.split()[1:]}
    defaults = Settings()
    assert exposed == {int(defaults.grpc_address.rsplit(":", 1)[1]), defaults.http_port}
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert f'ENTRYPOINT ["{next(iter(scripts))}"]' in dockerfile
    for name in re.findall(r"ENV (TYK_INSPECTOR_\w+)=", dockerfile):
        assert name in accepted_env_names()


def test_scale_out_doc_names_only_settings_that_exist() -> None:
    doc = (ROOT / "docs" / "scale-out.md").read_text()
    names = set(re.findall(r"\b(TYK_INSPECTOR_[A-Z_]+)\b", doc))
    assert names and names <= accepted_env_names()
    flags = set(re.findall(r"`(--[a-z][a-z-]*[a-z])", doc))  # flags the text names, not shell lines
    assert {"--store", "--store-prefix"} <= flags <= accepted_flags()


def readme_option_rows() -> list[tuple[str, str]]:
    """(options, environment variables) of every row of README's option tables."""
    readme = (ROOT / "README.md").read_text()
    rows = []
    for table in re.findall(r"^\| option \| environment variable \|.*?\n((?:\|.*\n)+)", readme, re.MULTILINE):
        for line in table.splitlines()[1:]:
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            rows.append((cells[0], cells[1]))
    return rows


def test_readme_option_tables_name_every_serve_option_and_only_those() -> None:
    rows = readme_option_rows()
    named = {flag for options, _ in rows for flag in re.findall(r"`(--[a-z0-9-]+)", options)}
    assert named == accepted_flags() - {"-h", "--help"}, "README's option tables and `serve --help` differ"
    env_names = {name for _, env in rows for name in re.findall(r"\b(TYK_INSPECTOR_[A-Z_]+[A-Z])\b", env)}
    assert env_names and env_names <= accepted_env_names()
