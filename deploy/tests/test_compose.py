"""deploy/compose.yaml, read as Compose reads it (YAML anchors and merges resolved): every process
of the workspace runs, each reads only settings it knows, listens where the others look for it,
and a browser on the host can complete the Google connect flow."""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import urlsplit

import pytest
import yaml

from accounts_service.settings import CALLBACK_PATH
from deploy.tests.dockerfile import environment_of
from deploy.tests.environment import known_variables, settings_in, urls_in
from deploy.tests.system import DEPLOY, process_named, process_of_command, processes, services
from pipedesk_common.settings import PORT_OFFSETS, Environment, port_for

COMPOSE: Final = DEPLOY / "compose.yaml"
# The dev processes' own variables (they have no settings class) and the migration command's.
DEV_PROCESS_VARIABLES: Final = {
    "google_emulator": {"EMULATOR_HOST", "EMULATOR_PORT", "PORT_BASE"},
    "dev_identity": {"IDENTITY_HOST", "PORT_BASE", "DEV_KEY_DIR", "AUTH_ISSUER", "AUTH_AUDIENCE"},
    "pipedesk_common.migrations": {"DATABASE_URL"}
    | {f"{name.upper()}_DATABASE_URL" for name in PORT_OFFSETS},
}
# Where the servers of the stack listen, by compose service.
SERVERS: Final = {"postgres": 5432, "rabbitmq": 5672, "redis": 6379}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    text = COMPOSE.read_text()
    assert "Docker Compose v2" in text, "the file states the Compose version it needs"
    document: dict[str, Any] = yaml.safe_load(text)
    return document


def ours(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The containers that run the PipeDesk image."""
    return {
        name: service
        for name, service in compose["services"].items()
        if str(service.get("image", "")).startswith("pipedesk")
    }


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A container's environment: the dev image's, then the compose file's."""
    return environment_of("dev") | {k: str(v) for k, v in service.get("environment", {}).items()}


def published(service: dict[str, Any]) -> dict[int, str]:
    """Container port → where the host publishes it (``127.0.0.1:8000``)."""
    mapping = {}
    for entry in service.get("ports", []):
        address, host_port, container_port = str(entry).split(":")
        mapping[int(container_port)] = f"{address}:{host_port}"
    return mapping


def container_of(compose: dict[str, Any], module: str) -> str:
    (name,) = [n for n, s in ours(compose).items() if s["command"][2] == module]
    return name


def test_every_process_runs_and_reads_only_settings_it_knows(compose: dict[str, Any]) -> None:
    running = set()
    for name, service in ours(compose).items():
        module = service["command"][2]
        given = set(service.get("environment", {}))
        process = process_of_command(service["command"])
        if process is None:
            known = DEV_PROCESS_VARIABLES[module]
        else:
            known = known_variables(process)
            running.add(process.name)
            assert name == process.name, f"run {process.module} as the service {process.name}"
        assert given <= known, f"{name}: {sorted(given - known)}"
    assert running == {process.name for process in processes()}


def test_each_process_listens_where_the_others_look_for_it(compose: dict[str, Any]) -> None:
    deployed = sorted(service.name for service in services())
    containers = ours(compose)
    for process in processes():
        env = environment(containers[process.name])
        settings = settings_in(process, env)
        assert settings.environment is Environment.DEVELOPMENT
        assert settings.host == "0.0.0.0"
        assert settings.listen_port == port_for(process.name)
        healthcheck = " ".join(containers[process.name]["healthcheck"]["test"])
        assert f"127.0.0.1:{port_for(process.name)}/healthz" in healthcheck
        urls = urls_in(settings, env, deployed)
        assert urls == {name: f"http://{name}:{port_for(name)}" for name in deployed}
        for url, server in [(settings.database_url, "postgres"), (settings.amqp_url, "rabbitmq")]:
            parts = urlsplit(url)
            assert (parts.hostname, parts.port) == (server, SERVERS[server]), process.name
        identity = f"http://{container_of(compose, 'dev_identity')}:{port_for('identity')}"
        assert settings.jwks_url.startswith(identity + "/")
        assert settings.service_keys_url.startswith(identity + "/")
        emulator = (
            f"http://{container_of(compose, 'google_emulator')}:{port_for('google_emulator')}"
        )
        assert settings.google_root_url == emulator + "/"
    gateway = settings_in(process_named("gateway"), environment(containers["gateway"]))
    assert sorted(gateway.ready_services) == deployed  # type: ignore[attr-defined]


def test_the_stack_is_one_stack_on_one_broker_namespace(compose: dict[str, Any]) -> None:
    containers = ours(compose)
    stacks = {
        (settings.stack, settings.broker_prefix, settings.amqp_url)
        for settings in (
            settings_in(process, environment(containers[process.name])) for process in processes()
        )
    }
    assert len(stacks) == 1


def test_a_browser_on_the_host_completes_the_google_connect_flow(compose: dict[str, Any]) -> None:
    """The consent page and the callback are addresses of the host, on ports the emulator and
    the gateway publish and listen on in their containers."""
    containers = ours(compose)
    emulator = containers[container_of(compose, "google_emulator")]
    assert environment(emulator)["EMULATOR_HOST"] == "0.0.0.0"
    accounts = settings_in(process_named("accounts"), environment(containers["accounts"]))
    consent, callback = urlsplit(accounts.auth_url), urlsplit(accounts.redirect_uri)  # type: ignore[attr-defined]
    assert consent.hostname == "localhost"
    assert consent.path == "/o/oauth2/v2/auth"
    assert published(emulator)[port_for("google_emulator")] == f"127.0.0.1:{consent.port}"
    assert callback.hostname == "localhost"
    assert callback.path == CALLBACK_PATH
    assert published(containers["gateway"])[port_for("gateway")] == f"127.0.0.1:{callback.port}"
    # Nothing else of the stack is published but the broker's management UI.
    others = {name for name, service in compose["services"].items() if service.get("ports")}
    assert others == {"gateway", container_of(compose, "google_emulator"), "rabbitmq"}


def test_every_container_waits_for_what_it_needs(compose: dict[str, Any]) -> None:
    names = set(compose["services"])
    for name, service in ours(compose).items():
        needs = service.get("depends_on", {})
        assert set(needs) <= names, name
        process = process_of_command(service["command"])
        if process is None:
            continue
        assert needs["identity"] == {"condition": "service_healthy"}, name
        if process.migrates:
            assert needs["migrate"] == {"condition": "service_completed_successfully"}, name
