"""The chaos suite's short version (``python -m bench.chaos --short``): 500 events through CRM,
Calendar and Tasks on a private RabbitMQ node and PostgreSQL cluster, while the broker is
SIGKILLed, PostgreSQL crashes and two consumers are SIGKILLed, each started again. Every event is
one timeline item, exactly once, and nothing is left in a dead-letter queue or an outbox. The
recovery times it prints are never asserted (``make chaos`` and bench/results/ report them)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.chaos import SHORT_FAULTS
from bench.stack import REPO

pytestmark = pytest.mark.slow


def test_no_event_is_lost_or_doubled_across_a_broker_kill_a_database_crash_and_consumer_kills(
    tmp_path: Path,
) -> None:
    outcome_file = tmp_path / "chaos.json"
    run = subprocess.Popen(
        [sys.executable, "-m", "bench.chaos", "--short", "--json", str(outcome_file)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output, _ = run.communicate(timeout=1800)
    finally:
        if run.poll() is None:  # SIGTERM: it stops its private servers and removes their files
            run.terminate()
            output, _ = run.communicate(timeout=120)
    assert outcome_file.exists(), output[-5000:]
    outcome = json.loads(outcome_file.read_text())
    assert outcome["events"] == 500
    assert sum(outcome["driven"].values()) == 500
    assert outcome["items"] == 500, outcome["problems"]
    assert outcome["distinct_items"] == 500  # one source each: no redelivery made a second
    assert outcome["items_by_kind"] == {
        "audit": outcome["driven"]["lead"],
        "meeting": outcome["driven"]["meeting"],
        "task": outcome["driven"]["task"],
    }
    # The node's queues were listed (the consumers' dead-letter queues among them): all empty.
    assert outcome["dead_letters"], "no dead-letter queue was listed"
    assert not any(outcome["dead_letters"].values()), outcome["dead_letters"]
    assert set(outcome["outbox_pending"]) >= {"crm", "calendar", "tasks"}
    assert not any(outcome["outbox_pending"].values()), outcome["outbox_pending"]
    assert [recovery["fault"] for recovery in outcome["recoveries"]] == [
        fault.label for fault in SHORT_FAULTS
    ]
    assert outcome["retries"] > 0, "no request met a fault"
    assert outcome["problems"] == []
    assert run.returncode == 0, output[-5000:]
