"""Running the Node.js contract checks of ``tools/contracts`` (installed by ``make
contract-tools``) from the tests."""

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / "tools" / "contracts"


@dataclass(frozen=True)
class Checked:
    """One document's verdict: whether it holds, and what the tool found wrong."""

    valid: bool
    problems: list[str]


def run_node(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    if node is None or not (TOOLS / "node_modules").is_dir():
        pytest.fail("the contract checks need Node.js and their npm packages: make contract-tools")
    return subprocess.run(
        [node, str(TOOLS / script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={"PATH": str(Path(node).parent), "SCARF_ANALYTICS": "false"},
    )


def checked(script: str, *args: str, documents: list[Path]) -> dict[Path, Checked]:
    """Each document's verdict from ``script`` (one JSON line per document it was given)."""
    done = run_node(script, *args, *map(str, documents))
    verdicts: dict[Path, Checked] = {}
    for line in done.stdout.splitlines():
        found: dict[str, Any] = json.loads(line)
        verdicts[Path(found["document"])] = Checked(found["valid"], found["problems"])
    assert set(verdicts) == set(documents), done.stderr
    assert done.returncode == (0 if all(v.valid for v in verdicts.values()) else 1), done.stderr
    return verdicts
