"""Every variable the manifests give a container is one its process reads, and every process
starts with them: the production checks of its settings pass (no development secret, every
required key), it listens where its Service sends traffic, and it finds every other process at
its Service."""

from __future__ import annotations

from deploy.tests.environment import known_variables, settings_in, urls_in
from deploy.tests.manifests import (
    OVERLAYS,
    container,
    container_environment,
    containers,
    one,
)
from deploy.tests.system import processes, services
from pipedesk_common.settings import (
    DEFAULT_AMQP_URL,
    DEFAULT_DATABASE_URL,
    Environment,
    port_for,
)


def test_every_variable_of_every_container_is_a_setting_of_its_process() -> None:
    for overlay in OVERLAYS:
        for process in processes():
            deployment = one(overlay, "Deployment", process.name)
            for item in containers(deployment):
                environment = container_environment(overlay, item, image=False)
                unknown = set(environment) - known_variables(process)
                assert not unknown, f"{process.name}/{item['name']}: {sorted(unknown)}"


def test_every_process_starts_with_what_the_manifests_give_it() -> None:
    deployed = sorted(service.name for service in services())
    for process in processes():
        deployment = one("overlays/production", "Deployment", process.name)
        for item in containers(deployment):
            # Raises if a production setting is missing or holds a development value.
            settings_in(process, container_environment("overlays/production", item))
        environment = container_environment("overlays/production", container(deployment))
        settings = settings_in(process, environment)
        assert settings.environment is Environment.PRODUCTION
        if process.name != "gateway":
            assert settings.database_url != DEFAULT_DATABASE_URL, process.name
            assert settings.amqp_url != DEFAULT_AMQP_URL, process.name
        assert settings.host == "0.0.0.0"
        assert settings.listen_port == port_for(process.name)
        urls = urls_in(settings, environment, deployed)
        assert urls == {name: f"http://{name}:{port_for(name)}" for name in deployed}


def test_the_gateway_requires_every_deployed_service_and_shares_its_limits() -> None:
    gateway = next(process for process in processes() if process.name == "gateway")
    deployment = one("overlays/production", "Deployment", "gateway")
    environment = container_environment("overlays/production", container(deployment))
    settings = settings_in(gateway, environment)
    assert sorted(settings.ready_services) == sorted(s.name for s in services())  # type: ignore[attr-defined]
    assert settings.redis_url is not None


def test_every_process_of_the_stack_shares_one_broker_namespace() -> None:
    """Set in pipedesk-config, not derived from each service's database: services with
    databases of their own still publish to, and consume from, one namespace."""
    namespaces = set()
    for process in processes():
        deployment = one("overlays/production", "Deployment", process.name)
        environment = container_environment("overlays/production", container(deployment))
        assert "BROKER_PREFIX" in environment, process.name
        namespaces.add(settings_in(process, environment).broker_prefix)
    assert len(namespaces) == 1
