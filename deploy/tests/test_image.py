"""The container image: each target installs what its processes need and nothing for tests,
lint, benchmarks or plots. The ``uv sync`` commands are read from deploy/Dockerfile and run into
a scratch environment, so what is checked is what the image build does."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from deploy.tests.dockerfile import environment_of, syncs_of
from deploy.tests.system import DEPLOY, REPO, processes

# Packages no runtime needs, whichever group pulls them in: test runners and their plugins,
# linters and type checkers, benchmark and plotting libraries and theirs.
NEVER_AT_RUNTIME = {
    "pytest",
    "pytest-asyncio",
    "hypothesis",
    "testcontainers",
    "docker",
    "ruff",
    "mypy",
    "import-linter",
    "supervisor",
    "matplotlib",
    "numpy",
    "pillow",
    "contourpy",
    "fonttools",
    "kiwisolver",
    "cycler",
}


def distributions(python: Path) -> set[str]:
    listing = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.metadata as m, json; "
            "print(json.dumps([d.metadata['Name'] for d in m.distributions()]))",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return {re.sub(r"[-_.]+", "-", name).lower() for name in json.loads(listing.stdout)}


@pytest.fixture(scope="module")
def image_venvs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The venv of each final target (``runtime``, ``dev``), built with the Dockerfile's syncs."""
    venvs: dict[str, Path] = {}
    for target in ("runtime", "dev"):
        venv = tmp_path_factory.mktemp(target) / ".venv"
        for arguments in syncs_of(target):
            subprocess.run(
                ["uv", "sync", "--quiet", *arguments],
                cwd=REPO,
                env={**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv), "UV_COMPILE_BYTECODE": "0"},
                check=True,
            )
        venvs[target] = venv
    return venvs


def dependency_group_members() -> set[str]:
    groups = tomllib.loads((REPO / "pyproject.toml").read_text())["dependency-groups"]
    names = set()
    for members in groups.values():
        for member in members:
            # A workspace package asked for with an extra (``pipedesk-common[containers]``)
            # is the runtime's own; what the extra adds is named in NEVER_AT_RUNTIME.
            if isinstance(member, str) and "[" not in member:
                names.add(re.split(r"[<>=!~ ;]", member, maxsplit=1)[0].lower())
    return names


def test_every_sync_of_the_image_leaves_out_the_dependency_groups() -> None:
    for target in ("runtime", "dev"):
        syncs = syncs_of(target)
        assert syncs, f"the {target} target installs nothing"
        for arguments in syncs:
            assert "--no-dev" in arguments, arguments
            assert "--locked" in arguments, arguments
            assert not {"--all-groups", "--group", "--dev", "--all-packages"} & set(arguments)


def test_runtime_image_holds_no_test_lint_bench_or_plotting_package(
    image_venvs: dict[str, Path],
) -> None:
    for target, venv in image_venvs.items():
        installed = distributions(venv / "bin" / "python")
        unwanted = (NEVER_AT_RUNTIME | dependency_group_members()) & installed
        assert not unwanted, f"the {target} image would ship {sorted(unwanted)}"


def test_uv_export_without_dev_holds_no_dependency_group_package() -> None:
    exported = subprocess.run(
        ["uv", "export", "--locked", "--no-dev", "--no-hashes", "--no-emit-workspace"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    names = {
        line.split("==")[0].lower()
        for line in exported.splitlines()
        if line and not line.startswith((" ", "#"))
    }
    assert {"fastapi", "aio-pika"} <= names
    assert not (NEVER_AT_RUNTIME | dependency_group_members()) & names


def test_each_image_target_runs_every_process_it_is_given(image_venvs: dict[str, Path]) -> None:
    """The runtime image runs the gateway and every service, and not the dev identity provider
    or the emulator; the dev image (compose) runs every command compose gives it."""
    modules = {process.module for process in processes()} | {"pipedesk_common.migrations"}
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    compose_modules = {
        service["command"][2]
        for service in compose["services"].values()
        if service.get("image", "").startswith("pipedesk")
    }
    expectations = {
        "runtime": dict.fromkeys(modules, True) | {"dev_identity": False, "google_emulator": False},
        "dev": dict.fromkeys(compose_modules | modules, True),
    }
    for target, expected in expectations.items():
        python = image_venvs[target] / "bin" / "python"
        for module, present in expected.items():
            probe = f"import importlib.util as u; print(u.find_spec({module!r}) is not None)"
            found = subprocess.run(
                [str(python), "-c", probe], check=True, capture_output=True, text=True
            ).stdout.strip()
            assert found == str(present), f"{target}: {module} present={found}"


def test_image_listens_on_all_interfaces_for_every_process() -> None:
    for target in ("runtime", "dev"):
        environment = environment_of(target)
        for process in processes():
            assert environment.get(f"{process.prefix}HOST") == "0.0.0.0", (target, process.name)
