"""``python -m bench.profile --tag NAME``: flame graphs of where the hot paths spend their CPU.

Starts the bench's stack (``make run``'s processes on ``DATABASE_URL``, the QUICK bench
database with its 2,000-item timeline dataset, which nothing else may use meanwhile) and, per
scenario, loads one path while py-spy samples the processes doing the work:

- ``gateway``: ``GET /api/leads/{id}`` through the gateway with wrk (the gateway and the CRM);
- ``timeline``: a 50-item timeline page straight on the timeline service with wrk;
- ``pipeline``: the bench's writers updating leads back to back (the CRM with its relay, the
  timeline with its consumer).

The SVGs go to ``bench/results/profiles/<tag>-<scenario>-<process>.svg``; idle threads are left
out (py-spy's default). It needs ptrace rights over the processes (root, or
``kernel.yama.ptrace_scope=0``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import uvloop

from bench.measure import HttpPool, run_wrk
from bench.pipeline import SystemPipeline
from bench.stack import REPO, make_stack, minter
from bench.timeline import PAGE_SIZE, ensure_dataset
from pipedesk_common.settings import DEFAULT_AMQP_URL

ORG, USER, TEAM = "bench-org", "bench-rep", "bench-team"
PROFILES = REPO / "bench" / "results" / "profiles"
PY_SPY = Path(sys.executable).with_name("py-spy")


def record(pid: int, output: Path, seconds: int, rate: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            str(PY_SPY),
            "record",
            "--pid",
            str(pid),
            "--rate",
            str(rate),
            "--duration",
            str(seconds),
            "--format",
            "flamegraph",
            "--output",
            str(output),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


async def profiled(
    name: str,
    pids: dict[str, int],
    load: Callable[[], Awaitable[str]],
    *,
    tag: str,
    seconds: int,
    rate: int,
    out: Path,
) -> None:
    samplers = {
        process: record(pid, out / f"{tag}-{name}-{process}.svg", seconds, rate)
        for process, pid in pids.items()
    }
    summary = await load()
    for process, sampler in samplers.items():
        _, errors = await asyncio.to_thread(sampler.communicate)
        if sampler.returncode != 0:
            raise RuntimeError(f"py-spy on {process} failed: {errors.decode()[-500:]}")
    print(f"  {name}: {summary}; " + ", ".join(f"{tag}-{name}-{p}.svg" for p in pids), flush=True)


async def run(
    tag: str,
    seconds: int,
    rate: int,
    connections: int,
    out: Path,
    only: set[str],
    port_base: int | None = None,
) -> None:
    database_url = os.environ.get("DATABASE_URL", "")
    if "bench" not in database_url:
        raise SystemExit("DATABASE_URL must name the bench's own database (make bench sets it)")
    stack = make_stack(database_url, os.environ.get("AMQP_URL", DEFAULT_AMQP_URL), port_base)
    stack.env["RATE_LIMIT_DEFAULT"] = "100000000/60"
    try:
        stack.start()
    except BaseException:
        stack.stop()  # the processes that did start, so none outlives the run
        raise
    token = minter().mint(sub=USER, org_id=ORG, role="rep", email=None, team_ids=[TEAM])
    headers = {"Authorization": f"Bearer {token}"}
    pools = {
        name: HttpPool(stack.url(name), headers=headers, size=64)
        for name in ("crm", "timeline", "gateway")
    }
    try:
        dataset = await ensure_dataset(database_url, pools["crm"], pools["timeline"], ORG, 2_000)
        pids = stack.pids

        def wrk(url: str) -> Callable[[], Awaitable[str]]:
            async def load() -> str:
                result = await asyncio.to_thread(
                    run_wrk, url, headers=headers, duration=seconds, connections=connections
                )
                return f"{result.ok_per_second:,.0f} requests/s (wrk -c{connections})"

            return load

        lead_url = stack.url("gateway") + f"/api/leads/{dataset.lead_id}"
        page_url = stack.url("timeline") + f"/api/timeline/lead/{dataset.lead_id}?limit={PAGE_SIZE}"
        system = SystemPipeline(pools["crm"], pools["timeline"], 16)
        await system.create_leads()

        async def pipeline() -> str:
            result = await system.round(seconds - 1)
            return f"{result.per_second:,.0f} events/s (16 writers)"

        print(f"Profiling with py-spy at {rate} Hz, {seconds} s per scenario", flush=True)
        scenarios: list[tuple[str, tuple[str, ...], Callable[[], Awaitable[str]]]] = [
            ("gateway", ("gateway", "crm"), wrk(lead_url)),
            ("timeline", ("timeline",), wrk(page_url)),
            ("pipeline", ("crm", "timeline"), pipeline),
        ]
        for name, processes, load in scenarios:
            if only and name not in only:
                continue
            await profiled(
                name,
                {process: pids[process] for process in processes},
                load,
                tag=tag,
                seconds=seconds,
                rate=rate,
                out=out,
            )
    finally:
        for pool in pools.values():
            await pool.close()
        stack.stop()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--tag", required=True, help="names the files, e.g. before or after")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rate", type=int, default=200, help="samples per second")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--out", type=Path, default=PROFILES)
    parser.add_argument(
        "--port-base", type=int, default=None, help="the stack's PORT_BASE (a free one from 31000)"
    )
    parser.add_argument(
        "--only", default="", help="comma-separated scenarios: gateway,timeline,pipeline (all)"
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    only = {name.strip() for name in args.only.split(",") if name.strip()}
    uvloop.run(
        run(args.tag, args.seconds, args.rate, args.connections, args.out, only, args.port_base)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
