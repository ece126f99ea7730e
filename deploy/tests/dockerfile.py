"""deploy/Dockerfile read as its stages: what each installs (its ``uv sync`` commands), which venv
a final target copies, and the environment each sets."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from functools import cache

from deploy.tests.system import DEPLOY


@dataclass
class Stage:
    name: str
    parent: str
    syncs: list[list[str]] = field(default_factory=list)
    venv_from: str | None = None
    environment: dict[str, str] = field(default_factory=dict)


@cache
def stages() -> dict[str, Stage]:
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    found: dict[str, Stage] = {}
    current: Stage | None = None
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if not words:
            continue
        if words[0] == "FROM":
            name = words[3] if len(words) > 3 and words[2].upper() == "AS" else words[1]
            current = found[name] = Stage(name, words[1])
        elif current is None:
            continue
        elif words[0] == "RUN" and "uv" in words and words[words.index("uv") + 1] == "sync":
            current.syncs.append(words[words.index("uv") + 2 :])
        elif words[0] == "COPY" and words[-1] == "/app/.venv":
            current.venv_from = words[1].removeprefix("--from=")
        elif words[0] == "ENV":
            for pair in words[1:]:
                name, _, value = pair.partition("=")
                current.environment[name] = value
    return found


def _chain(name: str) -> list[Stage]:
    """A stage and its ancestors among the Dockerfile's stages, the oldest first."""
    stage = stages()[name]
    return ([*_chain(stage.parent)] if stage.parent in stages() else []) + [stage]


def syncs_of(target: str) -> list[list[str]]:
    """Every ``uv sync`` that made the venv a final target copies, in order."""
    source = stages()[target].venv_from
    assert source is not None, f"the {target} target copies no venv"
    return [arguments for stage in _chain(source) for arguments in stage.syncs]


def environment_of(target: str) -> dict[str, str]:
    """The environment a target's containers start with (PATH aside)."""
    environment: dict[str, str] = {}
    for stage in _chain(target):
        environment |= stage.environment
    environment.pop("PATH", None)
    return environment
