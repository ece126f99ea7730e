"""The alert rules of components/monitoring: promtool accepts them and their unit tests pass,
every alert is shown firing and has its runbook, and they watch only metrics PipeDesk exports."""

from __future__ import annotations

import importlib
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

from deploy.tests.manifests import K8S, one
from deploy.tests.system import REPO, processes

RULES_FILE = "pipedesk-alerts.rules.yaml"  # the name alerts.test.yaml loads
ALERT_TESTS = K8S / "components" / "monitoring" / "alerts.test.yaml"
RUNBOOKS = REPO / "docs" / "operations" / "alerts.md"


@pytest.fixture(scope="module")
def promtool() -> Path:
    """promtool from Debian's prometheus package (``make test`` fetches it into .dev/tools)."""
    fetched = REPO / ".dev" / "tools" / "usr" / "bin" / "promtool"
    found = fetched if fetched.exists() else shutil.which("promtool")
    assert found, "promtool is missing: `make test` fetches it (make .dev/tools/usr/bin/promtool)"
    return Path(found)


def rule_groups() -> list[dict[str, object]]:
    groups: list[dict[str, object]] = one(
        "overlays/production", "PrometheusRule", "pipedesk-alerts"
    )["spec"]["groups"]
    return groups


def alerts() -> dict[str, dict[str, object]]:
    return {
        rule["alert"]: rule
        for group in rule_groups()
        for rule in group["rules"]  # type: ignore[attr-defined]
        if "alert" in rule
    }


def test_the_rules_pass_promtool_check_and_every_unit_test(promtool: Path, tmp_path: Path) -> None:
    (tmp_path / RULES_FILE).write_text(yaml.safe_dump({"groups": rule_groups()}))
    shutil.copy(ALERT_TESTS, tmp_path / "alerts.test.yaml")
    for command in (["check", "rules", RULES_FILE], ["test", "rules", "alerts.test.yaml"]):
        result = subprocess.run(
            [str(promtool), *command], check=False, cwd=tmp_path, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_shown_firing_and_quiet_and_names_its_runbook_section() -> None:
    cases = yaml.safe_load(ALERT_TESTS.read_text())["tests"]
    checks = [check for case in cases for check in case["alert_rule_test"]]
    headings = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in RUNBOOKS.read_text().splitlines()
        if line.startswith("## ")
    }
    for name, rule in alerts().items():
        fired = [check for check in checks if check["alertname"] == name and check["exp_alerts"]]
        quiet = [c for c in checks if c["alertname"] == name and not c["exp_alerts"]]
        assert fired, f"{name} is never shown firing in {ALERT_TESTS.name}"
        assert quiet or len(fired[0]["exp_alerts"]) == 1, f"{name} is never shown quiet"
        annotations = rule["annotations"]
        assert isinstance(annotations, dict)
        page, _, anchor = annotations["runbook_url"].partition("#")
        assert page == "docs/operations/alerts.md"
        assert anchor in headings, f"{name}: no section #{anchor} in {RUNBOOKS.name}"
        assert rule["labels"]["severity"] in {"warning", "critical"}  # type: ignore[index]


def exported_metric_names() -> set[str]:
    """Every series name the processes can export: their modules register their metrics."""
    for process in processes():
        importlib.import_module(f"{process.module}.app")
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_sum", "_count"),
        "gauge": ("",),
        "summary": ("_sum", "_count"),
    }
    return {
        family.name + suffix
        for family in REGISTRY.collect()
        for suffix in suffixes.get(family.type, ("",))
    }


def test_alerts_watch_only_metrics_that_pipedesk_exports() -> None:
    exported = exported_metric_names()
    for name, rule in alerts().items():
        expression = str(rule["expr"])
        used = set(re.findall(r"\bpipedesk_[a-z_]+", expression))
        ours = 'app_kubernetes_io_part_of="pipedesk"' in expression
        assert used or ours, f"{name} watches no PipeDesk metric and no PipeDesk target"
        assert used <= exported, f"{name} watches {sorted(used - exported)}, exported by nothing"
