"""What the deployed system is made of, read from the repository itself: a service added to the
workspace is expected in every manifest, runbook table and compose file without anyone listing it
here first."""

from __future__ import annotations

import importlib
import inspect
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pipedesk_common.migrations import registered_services
from pipedesk_common.settings import BaseServiceSettings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


@dataclass(frozen=True)
class Process:
    """A process of the system that deploy/ runs: the gateway or a service."""

    name: str
    module: str
    settings: type[BaseServiceSettings]

    @property
    def migrates(self) -> bool:
        return self.name in registered_services()

    @property
    def prefix(self) -> str:
        return self.settings.env_prefix()


def _settings_class(module: str, name: str) -> type[BaseServiceSettings]:
    settings = importlib.import_module(f"{module}.settings")
    found = [
        cls
        for _, cls in inspect.getmembers(settings, inspect.isclass)
        if issubclass(cls, BaseServiceSettings) and getattr(cls, "service_name", None) == name
    ]
    assert len(found) == 1, f"{module}.settings should define one settings class for {name}"
    return found[0]


@cache
def processes() -> tuple[Process, ...]:
    """The gateway, then every service of the workspace (``services/<name>``), by name."""
    found = [Process("gateway", "pipedesk_gateway", _settings_class("pipedesk_gateway", "gateway"))]
    for project in sorted((REPO / "services").glob("*/pyproject.toml")):
        name = project.parent.name
        module = f"{name}_service"
        declared = tomllib.loads(project.read_text())["project"]["name"]
        assert declared == f"{name}-service", f"{project}: expected the project {name}-service"
        found.append(Process(name, module, _settings_class(module, name)))
    return tuple(found)


def services() -> tuple[Process, ...]:
    """Every process but the gateway."""
    return tuple(process for process in processes() if process.name != "gateway")


def process_named(name: str) -> Process:
    return next(process for process in processes() if process.name == name)


def process_of_command(command: list[str]) -> Process | None:
    """The process a container command runs (``python -m crm_service``), if it is one of ours."""
    if command[:2] != ["python", "-m"] or len(command) < 3:
        return None
    return next((p for p in processes() if p.module == command[2]), None)
