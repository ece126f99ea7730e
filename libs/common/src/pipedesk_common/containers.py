"""PostgreSQL, RabbitMQ and Redis in Docker containers, with testcontainers: the real side of the
preflight's ``Containers`` seam, for a machine with Docker and without those servers.

The images are pinned here, and only here. Docker is found as testcontainers finds it
(``DOCKER_HOST``, the current Docker context, ``~/.testcontainers.properties``).

A container gets a random password and a random port, published on 127.0.0.1 when Docker runs on
this machine. It is removed when the run ends, and by testcontainers' reaper (Ryuk) should the run
die without removing it.

With ``PIPEDESK_KEEP_CONTAINERS=1`` a container is kept instead: named ``pipedesk-<server>-<port>``,
published on 127.0.0.1 at the port of the URL that did not answer, with that URL's credentials
(PostgreSQL trusts every connection when the URL has no password), and restarted with Docker. The
next run finds the server answering at that URL and uses it like a local one.
"""

from __future__ import annotations

import gc
import secrets
import sys
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final
from urllib.parse import SplitResult, quote, unquote, urlsplit, urlunsplit

from docker.errors import DockerException, NotFound
from testcontainers.core.config import ConnectionMode, testcontainers_config
from testcontainers.core.container import DockerContainer
from testcontainers.core.docker_client import DockerClient, get_docker_host
from testcontainers.core.exceptions import ContainerConnectException, ContainerStartException

from pipedesk_common.preflight import ContainerStartFailed, Server, Started, reason

IMAGES: Final = {
    "postgresql": "postgres:15.13-bookworm",  # pg_trgm is among its contrib extensions
    "rabbitmq": "rabbitmq:3.13.7-alpine",  # quorum queues, as on 3.10
    "redis": "redis:7.2.7-alpine",
}
PORTS: Final = {"postgresql": 5432, "rabbitmq": 5672, "redis": 6379}
# The user a URL without one means: asyncpg's usual superuser, RabbitMQ's default account.
_DEFAULT_USERS: Final = {"postgresql": "postgres", "rabbitmq": "guest"}
KEEP_SETTING: Final = "PIPEDESK_KEEP_CONTAINERS"
LABEL: Final = "io.pipedesk.server"  # on every container started here, naming its server
_LOOPBACK: Final = frozenset({"localhost", "127.0.0.1", "::1"})
_CHECK_TIMEOUT_SECONDS: Final = 5
_DOCKER_FAILURES: Final = (
    DockerException,
    ContainerStartException,
    ContainerConnectException,
    OSError,  # TimeoutError and the HTTP client's errors among them
)


@dataclass(frozen=True)
class _Credentials:
    user: str
    password: str | None


def _credentials_in(server: Server, url: SplitResult) -> _Credentials:
    # Redis is asked with a password alone (``requirepass``).
    user = (
        "" if server.key == "redis" else unquote(url.username or "") or _DEFAULT_USERS[server.key]
    )
    password = unquote(url.password) if url.password is not None else None
    if server.key == "rabbitmq" and password is None:
        password = "guest"  # noqa: S105 - what aio-pika sends for a URL without one
    return _Credentials(user, password)


def _with_address(url: SplitResult, credentials: _Credentials, host: str, port: int) -> str:
    login = quote(credentials.user, safe="")
    if credentials.password is not None:
        login += ":" + quote(credentials.password, safe="")
    netloc = f"{login}@{host}:{port}" if login else f"{host}:{port}"
    return urlunsplit(url._replace(netloc=netloc))


def _container(
    server: Server, url: SplitResult, credentials: _Credentials, *, throwaway: bool
) -> DockerContainer:
    """The server's container, configured with ``credentials`` (ports are set by the caller)."""
    container = DockerContainer(IMAGES[server.key])
    labels = {LABEL: server.key}
    if throwaway:
        container.with_kwargs(labels=labels)
    else:
        container.with_kwargs(labels=labels, restart_policy={"Name": "unless-stopped"})
    if server.key == "postgresql":
        container.with_env("POSTGRES_USER", credentials.user)
        if credentials.password is None:
            container.with_env("POSTGRES_HOST_AUTH_METHOD", "trust")
        else:
            container.with_env("POSTGRES_PASSWORD", credentials.password)
        # The collation of the servers the suite's orderings are written against.
        container.with_env("POSTGRES_INITDB_ARGS", "--locale=C.UTF-8 --encoding=UTF8")
        if throwaway:  # its data lives as long as the run: no crash safety needed
            container.with_command(
                "postgres -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            )
    elif server.key == "rabbitmq":
        container.with_env("RABBITMQ_DEFAULT_USER", credentials.user)
        container.with_env("RABBITMQ_DEFAULT_PASS", credentials.password or "guest")
        container.with_env("RABBITMQ_DEFAULT_VHOST", unquote(url.path[1:]) or "/")
    else:
        command = ["redis-server", "--save", "", "--appendonly", "no"]
        if credentials.password is not None:
            command += ["--requirepass", credentials.password]
        container.with_command(command)
    return container


class DockerContainers:
    """Starts servers in containers on the Docker daemon testcontainers finds."""

    def __init__(self, *, keep: bool = False) -> None:
        self.keep = keep

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> DockerContainers:
        return cls(keep=environ.get(KEEP_SETTING, "").strip().lower() in {"1", "true", "yes"})

    def unavailable(self) -> str | None:
        with warnings.catch_warnings():
            # docker-py leaves the socket of a connection that failed open; it is collected
            # here, where its warning says nothing new.
            warnings.simplefilter("ignore", ResourceWarning)
            problem = _ping()
            if problem is not None:
                gc.collect()
        return problem

    @contextmanager
    def start(self, server: Server, url: str) -> Iterator[Started]:
        parts = urlsplit(url)
        if self.keep:
            yield self._start_kept(server, parts)
            return
        image, port = IMAGES[server.key], PORTS[server.key]
        credentials = _Credentials(_credentials_in(server, parts).user, secrets.token_hex(16))
        container: DockerContainer | None = None
        try:
            local = _on_this_machine()
            container = _container(server, parts, credentials, throwaway=True)
            _publish(container, port, on_loopback=local)
            container.start()
            host = "127.0.0.1" if local else container.get_container_host_ip()
            address = _with_address(parts, credentials, host, container.get_exposed_port(port))
        except _DOCKER_FAILURES as exc:
            if container is not None:
                _remove(container)
            raise ContainerStartFailed(f"{image}: {reason(exc)}") from exc
        try:
            yield Started(address, image)
        finally:
            _remove(container)

    def _start_kept(self, server: Server, url: SplitResult) -> Started:
        wanted = url.port or server.default_port
        name = f"pipedesk-{server.key}-{wanted}"
        image = IMAGES[server.key]
        not_here = ContainerStartFailed(
            f"{KEEP_SETTING} keeps a container at the address of {server.setting}, which needs "
            "Docker on this machine and 127.0.0.1 or localhost in the URL"
        )
        if (url.hostname or "localhost") not in _LOOPBACK:
            raise not_here
        testcontainers_config.ryuk_disabled = True  # its reaper would remove the container
        try:
            if not _on_this_machine():
                raise not_here
            with _docker() as docker:
                try:
                    existing = docker.client.containers.get(name)
                except NotFound:
                    existing = None
                if existing is not None and image not in existing.image.tags:
                    existing.remove(force=True)  # made from an image of another pin
                    existing = None
                if existing is not None:
                    existing.start()  # stopped by hand; starting a running one changes nothing
            if existing is None:
                container = _container(
                    server, url, _credentials_in(server, url), throwaway=False
                ).with_name(name)
                _publish(container, PORTS[server.key], on_loopback=True, at=wanted)
                try:
                    container.start()
                finally:
                    container.get_docker_client().client.close()
        except _DOCKER_FAILURES as exc:
            raise ContainerStartFailed(f"{name}: {reason(exc)}") from exc
        return Started(urlunsplit(url), f"{image}, kept as {name}", kept=True)


def _ping() -> str | None:
    try:
        client = DockerClient(timeout=_CHECK_TIMEOUT_SECONDS).client
    except (DockerException, OSError) as exc:
        where = get_docker_host() or "unix:///var/run/docker.sock"
        return f"Docker does not answer at {where}: {reason(_first_cause(exc))}"
    try:
        client.ping()
    except (DockerException, OSError) as exc:
        return f"Docker does not answer: {reason(_first_cause(exc))}"
    finally:
        client.close()
    return None


def _first_cause(exc: BaseException) -> BaseException:
    """What went wrong first: Docker's client wraps a refused connection three times over."""
    while (cause := exc.__cause__ or exc.__context__) is not None:
        exc = cause
    return exc


@contextmanager
def _docker(timeout: float = 60) -> Iterator[DockerClient]:
    client = DockerClient(timeout=timeout)
    try:
        yield client
    finally:
        client.client.close()


def _on_this_machine() -> bool:
    """Whether containers' published ports are this machine's (no remote or outer Docker)."""
    with _docker(_CHECK_TIMEOUT_SECONDS) as client:
        mode, host = client.get_connection_mode(), client.host()
    return mode is ConnectionMode.docker_host and host in _LOOPBACK


def _publish(
    container: DockerContainer, port: int, *, on_loopback: bool, at: int | None = None
) -> None:
    """Publish ``port`` at host port ``at`` (None: a random one), on 127.0.0.1 only when
    ``on_loopback``. docker-py takes (interface,) or (interface, port) for that."""
    binding = ("127.0.0.1", at) if at is not None else ("127.0.0.1",)
    container.ports[str(port)] = binding if on_loopback else at  # type: ignore[assignment]


def _remove(container: DockerContainer) -> None:
    try:
        container.stop()
    except (DockerException, OSError) as exc:  # Ryuk removes it when this process ends
        print(f"could not remove the {container.image} container: {reason(exc)}", file=sys.stderr)
