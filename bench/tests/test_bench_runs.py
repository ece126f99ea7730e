"""The bench itself, end to end at tiny sizes (``python -m bench --tiny``) on a fresh database:
every phase runs and every target gets a verdict. Whether a verdict is PASS is never asserted
here — at these sizes and on a loaded machine it means nothing; ``make bench`` is where speed is
checked. This only keeps the bench from silently falling behind the system it measures."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.stack import REPO
from pipedesk_testkit.database import create_run_database, drop_database

pytestmark = pytest.mark.slow

PHASE_LINES = (
    r"Timeline dataset lead-\d+-v\d+: [\d,]+ items, loaded",
    r"pipeline round 1: raw broker: [\d,]+ events/s",
    r"pipeline round 1: raw database \+ broker: [\d,]+ events/s",
    r"pipeline round 1: system: [\d,]+ events/s",
    r"pipeline lag round 1 at [\d,]+ updates/s: p50 \d+ ms",
    r"timeline round 1: raw query, page 1 at [\d.]+/s: p50",
    r"timeline round 1: service, page 1 at [\d.]+/s: p50",
    r"timeline round 1: gateway, page 1 at [\d.]+/s: p50",
    r"timeline round 1: service, page [\d,]+ at [\d.]+/s: p50",
    r"timeline max: raw query, page 1 [\d,]+/s, service, page 1 [\d,]+/s, gateway, page 1",
    r"gateway round 1: direct: p50 [\d.]+ ms",
    r"gateway round 1: through gateway: p50 [\d.]+ ms",
    r"gmail round 1: raw loop: [\d,]+ messages/s",
    r"gmail round 1: service: [\d,]+ messages/s",
    r"Database connections in use \(peak per service, all its processes\): .*crm \d+",
)
TARGETS = (
    "pipeline ≥ 0.5 x raw database + broker",
    "lag p99 < 150 ms in every round",
    "timeline p99 via service ≤ raw p99 + 5 ms",
    "timeline p99 via gateway ≤ raw p99 + 7 ms",
    "within 10% of page 1",
    "gateway adds ≤ 1 ms p50",
    "gateway adds ≤ 5 ms p99",
    "gateway CPU ≤ 0.5 ms per request",
    "gmail sync ≥ 0.5 x raw loop",
    "every service < 150 MB RSS",
)


@pytest.fixture
def fresh_database() -> Iterator[str]:
    server = os.environ.get("DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/x")
    url = asyncio.run(create_run_database(server, purpose="bench"))
    yield url
    asyncio.run(drop_database(url))


def test_every_phase_runs_and_every_target_gets_a_verdict(
    fresh_database: str, tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    env = {**os.environ, "DATABASE_URL": fresh_database, "DEV_KEY_DIR": str(keys)}
    subprocess.run(
        [sys.executable, "-m", "dev_identity", "init"], cwd=REPO, env=env, check=True, timeout=60
    )
    results = tmp_path / "results"
    finished = subprocess.run(
        [sys.executable, "-m", "bench", "--tiny", "--results-dir", str(results)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    output = finished.stdout + finished.stderr
    assert finished.returncode == 0, output[-4000:]
    for line in PHASE_LINES:
        assert re.search(line, output), f"no line matching {line!r}:\n{output[-4000:]}"
    [record_file] = results.glob("*-tiny.json")
    record = json.loads(record_file.read_text())
    verdicts = {target["name"]: target["result"] for target in record["targets"]}
    assert all(any(target in name for name in verdicts) for target in TARGETS), verdicts
    assert len(verdicts) == 12, verdicts  # both pages for the service and the gateway
    for name, result in verdicts.items():
        assert re.fullmatch(r"(PASS|FAIL) \(TINY: indicative\)", result), verdicts
        assert re.search(rf"(PASS|FAIL) \(TINY: indicative\) +{re.escape(name)}", output)
    assert {path.suffix for path in results.iterdir()} == {".json", ".md", ".png"}
