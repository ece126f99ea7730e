"""Which environment variables a PipeDesk process reads, from its settings class, and a way to
build its settings from a container's environment alone."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Final
from unittest import mock

from pydantic import AliasChoices

from deploy.tests.system import Process
from pipedesk_common.settings import PORT_OFFSETS, BaseServiceSettings

# Read by the libraries a process runs, not by its settings class.
LIBRARY_VARIABLES: Final = {
    "FORWARDED_ALLOW_IPS",  # uvicorn: proxies trusted for X-Forwarded-For
    "OTEL_SERVICE_NAME",  # pipedesk_common.observability: the traces' service.name
    "OTEL_TRACES_EXPORTER",  # pipedesk_common.observability: "console" prints spans
    "NO_GCE_CHECK",  # google-auth: never probe a cloud metadata address
}
# The image's own: the interpreter's (PYTHONUNBUFFERED…), and PATH.
IMAGE_VARIABLES: Final = {"PATH", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED"}


def settings_variables(settings: type[BaseServiceSettings]) -> set[str]:
    """The variables a settings class reads: each field's alias, or the prefix and its name;
    ``<PREFIX>DATABASE_URL`` and the other per-service overrides; and ``<PROCESS>_URL``, where
    ``url_of`` finds every other process."""
    prefix = settings.env_prefix()
    names: set[str] = set()
    for field_name, field in settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names |= {choice.upper() for choice in alias.choices if isinstance(choice, str)}
        elif isinstance(alias, str):
            names.add(alias.upper())
        else:
            names.add(f"{prefix}{field_name}".upper())
    names |= {f"{prefix}{shared}" for shared in ("DATABASE_URL", "AMQP_URL", "REDIS_URL")}
    names |= {f"{process.upper()}_URL" for process in PORT_OFFSETS}
    return names


def known_variables(process: Process) -> set[str]:
    return settings_variables(process.settings) | LIBRARY_VARIABLES | IMAGE_VARIABLES


def settings_in(process: Process, environment: Mapping[str, str]) -> BaseServiceSettings:
    """The process's settings as it would build them in a container with only ``environment``;
    ``url_of`` answers from the same environment while the settings are in use."""
    with mock.patch.dict(os.environ, dict(environment), clear=True):
        return process.settings()


def urls_in(
    settings: BaseServiceSettings, environment: Mapping[str, str], processes: list[str]
) -> dict[str, str]:
    """Where ``settings`` finds each of ``processes`` with only ``environment`` set."""
    with mock.patch.dict(os.environ, dict(environment), clear=True):
        return {process: settings.url_of(process) for process in processes}
