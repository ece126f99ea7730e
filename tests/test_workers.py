"""WORKERS processes per service, sharing the service's database budget: two workers of the CRM
both serve, and neither pools more than its share of DATABASE_POOL_SIZE + DATABASE_MAX_OVERFLOW."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from crm_service.settings import CrmSettings
from pipedesk_common.db import create_engine
from pipedesk_testkit.servers import free_port, run_process


@pytest.mark.parametrize(
    ("workers", "pool", "overflow"), [(1, 5, 5), (2, 2, 2), (4, 1, 1), (8, 1, 0)]
)
def test_each_process_pools_its_share_of_the_services_budget(
    workers: int, pool: int, overflow: int
) -> None:
    settings = CrmSettings(database_pool_size=5, database_max_overflow=5, workers=workers)
    assert (settings.process_pool_size, settings.process_max_overflow) == (pool, overflow)
    engine = create_engine(settings)
    try:
        assert engine.pool.size() == pool  # type: ignore[attr-defined]
        assert engine.pool._max_overflow == overflow  # type: ignore[attr-defined]
    finally:
        engine.sync_engine.dispose()


def _spawned_workers(parent: int) -> list[int]:
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    return [
        int(pid)
        for pid in children
        if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    ]


@pytest.mark.slow
def test_workers_processes_serve_the_service(service_env: dict[str, str]) -> None:
    port = free_port()
    env = {**service_env, "WORKERS": "2", "CRM_PORT": str(port)}
    with run_process(
        ["-m", "crm_service"], env=env, ready_url=f"http://127.0.0.1:{port}/healthz", timeout=60
    ) as process:
        assert len(_spawned_workers(process.pid)) == 2
        for _ in range(10):
            assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
