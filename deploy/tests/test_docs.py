"""The deployment's instructions name every process: the first deployment's loops, and the
runbooks' tables of what scales, what to back up and which queues dead-letter."""

from __future__ import annotations

import re

from deploy.tests.manifests import objects
from deploy.tests.system import DEPLOY, REPO, processes, services

RUNBOOKS = REPO / "docs" / "operations"


def test_the_first_deployment_makes_a_key_and_waits_for_every_process() -> None:
    loops = re.findall(r"for process in ([a-z ]+); do", (DEPLOY / "README.md").read_text())
    assert len(loops) == 2
    for loop in loops:
        assert sorted(loop.split()) == sorted(process.name for process in processes())


def test_the_runbooks_cover_every_service() -> None:
    scaling = (RUNBOOKS / "scaling.md").read_text()
    backup = (RUNBOOKS / "backup-and-restore.md").read_text()
    for process in processes():
        assert f"\n| {process.name} |" in scaling, f"scaling.md: no row for {process.name}"
    for service in services():
        assert f"schema `{service.name}`" in backup, f"backup-and-restore.md: no {service.name}"
    dead_letters = (RUNBOOKS / "dead-letters.md").read_text()
    for scaled in objects("overlays/keda", "ScaledObject").values():
        (trigger,) = [t for t in scaled["spec"]["triggers"] if t["type"] == "rabbitmq"]
        queue = trigger["metadata"]["queueName"]
        assert f"| `{queue}` |" in dead_letters, f"dead-letters.md: no row for {queue}"
