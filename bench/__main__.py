"""``python -m bench [--quick]``: the benchmarks of docs/benchmarks.md, in one run.

Each benchmark alternates its baselines and the system round by round (A B A B …) after a
warm-up round, so a change in the machine's load hits both sides alike; ratios are taken per
round, then their median. Targets are printed PASS/FAIL; the exit status is 0 either way.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import aio_pika
import asyncpg
import uvloop

from bench import report
from bench.gmail import GmailSync
from bench.measure import (
    HttpPool,
    OpenLoopResult,
    ProcessMeter,
    Spread,
    WrkResult,
    closed_loop,
    open_loop,
    percentile,
    run_wrk,
    sample_process,
    wrk_available,
)
from bench.pipeline import RawBroker, RawDatabaseAndBroker, SystemPipeline, asyncpg_dsn
from bench.stack import Stack, make_stack, minter
from bench.timeline import PAGE_SIZE, Dataset, RawPages, ensure_dataset
from pipedesk_common.settings import DEFAULT_AMQP_URL

T = TypeVar("T")
ORG, USER, TEAM = "bench-org", "bench-rep", "bench-team"
RSS_LIMIT_MB = 150


@dataclass(frozen=True)
class Plan:
    quick: bool
    warmup: bool  # one uncounted round before the counted ones
    rounds: int
    round_seconds: float  # pipeline throughput: how long the writers write, per round
    lag_seconds: float
    fixed_seconds: float  # each fixed-rate phase
    max_seconds: int  # each maximum-throughput phase (wrk takes whole seconds)
    timeline_items: int
    timeline_rate: float
    gateway_rate: float
    writers: int
    connections: int
    probe_every: float
    deadline_seconds: float
    idle_seconds: float = 3.0
    name: str = "full"
    gmail_messages: int = 100  # new messages per Gmail sync round

    @classmethod
    def full(cls) -> Plan:
        return cls(False, True, 5, 4.0, 6.0, 2.0, 2, 1_000_000, 200, 100, 16, 16, 0.1, 570)

    @classmethod
    def small(cls) -> Plan:
        return cls(True, True, 1, 1.0, 1.5, 1.0, 1, 2_000, 50, 50, 4, 4, 0.2, 240, 3.0, "QUICK", 50)

    @classmethod
    def tiny(cls) -> Plan:
        """Every phase once, for a fraction of a second: that the bench still runs end to end."""
        return cls(True, False, 1, 0.5, 1.0, 0.5, 1, 300, 20, 20, 2, 2, 0.2, 90, 0.5, "TINY", 10)

    @property
    def first_round(self) -> int:
        return 0 if self.warmup else 1

    @property
    def summary(self) -> str:
        kind = f"{self.name} (small sizes, verdicts indicative only)" if self.quick else "full"
        return (
            f"{kind}: {'warm-up + ' if self.warmup else ''}"
            f"{self.rounds} rounds; pipeline {self.round_seconds:g} s of writes per round, lag "
            f"{self.lag_seconds:g} s; fixed-rate phases {self.fixed_seconds:g} s; maximum-rate "
            f"phases {self.max_seconds} s"
        )


class Runs:
    """Per-variant round results and the resources each variant's phases used."""

    def __init__(
        self, meter: ProcessMeter, deadline: float, settle: Callable[[], Awaitable[None]]
    ) -> None:
        self.meter = meter
        self.deadline = deadline
        self.settle = settle
        self.rounds: dict[str, list[Any]] = defaultdict(list)
        self.usage: dict[str, dict[str, dict[str, float]]] = {}
        self.wall: dict[str, float] = defaultdict(float)

    def time_left(self) -> float:
        return self.deadline - time.monotonic()

    async def phase(self, variant: str, run: Callable[[], Awaitable[T]], *, keep: bool) -> T:
        self.meter.start()
        started = time.monotonic()
        result = await run()
        usage = self.meter.stop()
        await self.settle()  # an overloaded phase's backlog must not spill into the next one
        if keep:
            self.rounds[variant].append(result)
            self.wall[variant] += time.monotonic() - started
            total = self.usage.setdefault(variant, {})
            for process, values in usage.items():
                seen = total.setdefault(process, {"cpu_s": 0.0, "rss_mb": 0.0})
                seen["cpu_s"] += values["cpu_s"]
                seen["rss_mb"] = max(seen["rss_mb"], values["rss_mb"])
        return result

    def cpu_table(self, variant: str) -> dict[str, dict[str, float]]:
        wall = self.wall[variant]
        return {
            process: {**values, "cpu_pct": 100 * values["cpu_s"] / wall if wall else 0.0}
            for process, values in self.usage.get(variant, {}).items()
        }


class RssWatch:
    """The peak resident memory of every process of the stack, sampled twice a second."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.peak: dict[str, float] = defaultdict(float)

    async def run(self) -> None:
        while True:
            for name, pid in self.pids.items():
                sample = sample_process(pid)
                if sample is not None:
                    self.peak[name] = max(self.peak[name], sample.rss_bytes / 2**20)
            await asyncio.sleep(0.5)


class ConnectionWatch:
    """The most database connections each service held at once (``pg_stat_activity`` by the
    ``application_name`` the services set, ``pipedesk-<service>``), sampled twice a second."""

    def __init__(self, database_url: str) -> None:
        self.dsn = asyncpg_dsn(database_url)
        self.database = self.dsn.rsplit("/", 1)[-1].split("?", 1)[0]
        self.peak: dict[str, int] = defaultdict(int)

    async def run(self) -> None:
        connection = await asyncpg.connect(self.dsn)
        try:
            while True:
                rows = await connection.fetch(
                    "SELECT application_name, count(*) AS n FROM pg_stat_activity "
                    "WHERE datname = $1 AND application_name LIKE 'pipedesk-%' "
                    "GROUP BY application_name",
                    self.database,
                )
                for row in rows:
                    name = row["application_name"].removeprefix("pipedesk-")
                    self.peak[name] = max(self.peak[name], row["n"])
                await asyncio.sleep(0.5)
        finally:
            await connection.close()

    def report(self) -> dict[str, int]:
        print(
            "Database connections in use (peak per service, all its processes): "
            + ", ".join(f"{name} {count}" for name, count in sorted(self.peak.items())),
            flush=True,
        )
        return dict(self.peak)


async def settle(pools: dict[str, HttpPool], within: float = 15.0) -> None:
    """Wait until every service answers its health check promptly again (its backlog is gone)."""
    deadline = time.perf_counter() + within
    for pool in pools.values():
        while time.perf_counter() < deadline:
            asked = time.perf_counter()
            status, _ = await pool.call("GET", "/healthz")
            if status == 200 and time.perf_counter() - asked < 0.02:
                break
            await asyncio.sleep(0.05)


def wrk_phase(url: str, headers: dict[str, str], plan: Plan) -> Callable[[], Awaitable[WrkResult]]:
    return partial(
        asyncio.to_thread,
        run_wrk,
        url,
        headers=headers,
        duration=plan.max_seconds,
        connections=plan.connections,
    )


def ms(seconds: float) -> float:
    return seconds * 1000


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


async def bench_pipeline(
    plan: Plan, runs: Runs, stack: Stack, crm: HttpPool, timeline: HttpPool
) -> dict[str, Any]:
    system = SystemPipeline(crm, timeline, plan.writers)
    await system.create_leads()
    async with (
        RawBroker(stack.amqp_url, stack.broker_prefix) as raw_broker,
        RawDatabaseAndBroker(
            stack.database_url, stack.amqp_url, stack.broker_prefix, plan.writers
        ) as raw_db,
    ):
        variants = {
            "raw broker": raw_broker.round,
            "raw database + broker": raw_db.round,
            "system": system.round,
        }
        for round_number in range(plan.first_round, plan.rounds + 1):
            if round_number > 1 and runs.time_left() < 300:
                print("  (time budget: fewer pipeline rounds)", flush=True)
                break
            for name, run in variants.items():
                duration = plan.round_seconds if round_number else plan.round_seconds / 2
                result = await runs.phase(
                    f"pipeline: {name}",
                    partial(run, duration),
                    keep=round_number > 0,
                )
                label = f"round {round_number}" if round_number else "warm-up"
                backlog = (
                    f"; CRM outbox backlog when writes stopped: {result.outbox_backlog_at_stop:.0f}"
                    if result.outbox_backlog_at_stop is not None
                    else ""
                )
                print(
                    f"  pipeline {label}: {name}: {result.per_second:,.0f} events/s "
                    f"({result.events} in {result.seconds:.1f} s{backlog})",
                    flush=True,
                )
    rates = {name: [r.per_second for r in runs.rounds[f"pipeline: {name}"]] for name in variants}
    system_rate = Spread.of(rates["system"]).median
    lag_rate = max(1.0, system_rate / 2)
    for round_number in range(plan.rounds):
        if round_number > 0 and runs.time_left() < 200:
            print("  (time budget: fewer lag rounds)", flush=True)
            break
        lag = await runs.phase(
            "pipeline: system at 50%",
            lambda: system.lag_round(lag_rate, plan.lag_seconds, plan.probe_every),
            keep=True,
        )
        print(
            f"  pipeline lag round {round_number + 1} at {lag_rate:,.0f} updates/s: "
            f"p50 {ms(lag.p(0.5)):.0f} ms, p99 {ms(lag.p(0.99)):.0f} ms "
            f"({len(lag.lags)} probes, {lag.failures} failed updates)",
            flush=True,
        )
    lags = [value for result in runs.rounds["pipeline: system at 50%"] for value in result.lags]
    per_round = list(zip(rates["system"], rates["raw database + broker"], strict=True))
    broker_rounds = list(zip(rates["system"], rates["raw broker"], strict=True))
    return {
        "events_per_second": {name: Spread.of(values).as_dict() for name, values in rates.items()},
        "ratio_to_raw_database_broker": Spread.of(s / r for s, r in per_round).as_dict(),
        "ratio_to_raw_broker": Spread.of(s / r for s, r in broker_rounds).as_dict(),
        "lag_rate": lag_rate,
        "lag_ms": {
            "p50": ms(percentile(lags, 0.5)),
            "p99": ms(percentile(lags, 0.99)),
            "max": ms(max(lags)),
            "probes": len(lags),
            "p99_per_round": [
                ms(result.p(0.99)) for result in runs.rounds["pipeline: system at 50%"]
            ],
        },
    }


def _open_loop_summary(results: list[OpenLoopResult]) -> dict[str, Any]:
    return {
        "p50_ms": Spread.of(ms(r.p(0.5)) for r in results).as_dict(),
        "p99_ms": Spread.of(ms(r.p(0.99)) for r in results).as_dict(),
        "errors": sum(r.errors for r in results),
        "statuses": {
            str(status): sum(r.statuses.get(status, 0) for r in results)
            for status in sorted({status for r in results for status in r.statuses})
        },
        "sent": sum(r.sent for r in results),
    }


async def bench_timeline(
    plan: Plan,
    runs: Runs,
    stack: Stack,
    dataset: Dataset,
    pools: dict[str, HttpPool],
    headers: dict[str, str],
) -> dict[str, Any]:
    lead = dataset.lead_id
    first_path = f"/api/timeline/lead/{lead}?limit={PAGE_SIZE}"
    deep_path = f"{first_path}&cursor={dataset.deep_cursor}"
    deep = f"page {dataset.deep_page:,}"
    async with RawPages(stack.database_url, dataset) as raw:
        fixed: dict[str, Callable[[], Awaitable[int]]] = {}
        for page, path, raw_send in (
            ("page 1", first_path, raw.first),
            (deep, deep_path, raw.deep),
        ):
            fixed[f"raw query, {page}"] = raw_send
            for via in ("timeline", "gateway"):
                request = pools[via].request_bytes("GET", path)

                async def send(pool: HttpPool = pools[via], request: bytes = request) -> int:
                    return (await pool.send(request))[0]

                fixed[f"{'service' if via == 'timeline' else 'gateway'}, {page}"] = send
        for round_number in range(plan.first_round, plan.rounds + 1):
            if round_number > 1 and runs.time_left() < 150:
                print("  (time budget: fewer timeline rounds)", flush=True)
                break
            keep = round_number > 0
            for name, sender in fixed.items():
                result = await runs.phase(
                    f"timeline {plan.timeline_rate:g}/s: {name}",
                    partial(
                        open_loop, sender, rate=plan.timeline_rate, duration=plan.fixed_seconds
                    ),
                    keep=keep,
                )
                print(
                    f"  timeline {'round ' + str(round_number) if keep else 'warm-up'}: {name} "
                    f"at {plan.timeline_rate:g}/s: p50 {ms(result.p(0.5)):.1f} ms, p99 "
                    f"{ms(result.p(0.99)):.1f} ms, errors {result.errors}",
                    flush=True,
                )
            for name, page_path, raw_send in (
                ("page 1", first_path, raw.first),
                (deep, deep_path, raw.deep),
            ):
                count = await runs.phase(
                    f"timeline max: raw query, {name}",
                    partial(
                        closed_loop, raw_send, workers=plan.connections, duration=plan.max_seconds
                    ),
                    keep=keep,
                )
                rps = {f"raw query, {name}": count / plan.max_seconds}
                for via, label in (("timeline", "service"), ("gateway", "gateway")):
                    wrk = await runs.phase(
                        f"timeline max: {label}, {name}",
                        wrk_phase(stack.url(via) + page_path, headers, plan),
                        keep=keep,
                    )
                    rps[f"{label}, {name}"] = wrk.ok_per_second
                print(
                    "  timeline max: "
                    + ", ".join(f"{key} {value:,.0f}/s" for key, value in rps.items()),
                    flush=True,
                )
    summary: dict[str, Any] = {"fixed_rate": {}, "max_rps": {}, "wrk_cpu_s_per_request": {}}
    for name in fixed:
        summary["fixed_rate"][name] = _open_loop_summary(
            runs.rounds[f"timeline {plan.timeline_rate:g}/s: {name}"]
        )
    for name in fixed:
        results = runs.rounds[f"timeline max: {name}"]
        if name.startswith("raw"):
            values = [count / plan.max_seconds for count in results]
        else:
            values = [r.ok_per_second for r in results]
            summary["wrk_cpu_s_per_request"][name] = sum(r.cpu_seconds for r in results) / max(
                1, sum(r.requests for r in results)
            )
        summary["max_rps"][name] = Spread.of(values).as_dict()
    return summary


async def bench_gmail(plan: Plan, runs: Runs, stack: Stack) -> dict[str, Any]:
    print("Gmail sync", flush=True)
    stack.launch("emulator")
    stack.wait_ready("emulator")
    settings = {
        "port_base": stack.port_base,
        "database_url": stack.database_url,
        "amqp_url": stack.amqp_url,
        "broker_prefix": stack.broker_prefix,
        "broker_queue_expires_ms": int(stack.env["BROKER_QUEUE_EXPIRES_MS"]),
    }
    async with GmailSync(stack.url("emulator"), settings, plan.gmail_messages).running() as gmail:
        variants = {"raw loop": gmail.raw_round, "service": gmail.service_round}
        for round_number in range(plan.first_round, plan.rounds + 1):
            if round_number > 1 and runs.time_left() < 60:
                print("  (time budget: fewer gmail rounds)", flush=True)
                break
            for name, sync in variants.items():
                result = await runs.phase(f"gmail sync: {name}", sync, keep=round_number > 0)
                label = f"round {round_number}" if round_number else "warm-up"
                print(
                    f"  gmail {label}: {name}: {result.per_second:,.0f} messages/s "
                    f"({result.messages} in {result.seconds:.2f} s)",
                    flush=True,
                )
    rates = {name: [r.per_second for r in runs.rounds[f"gmail sync: {name}"]] for name in variants}
    pairs = zip(rates["service"], rates["raw loop"], strict=True)
    return {
        "messages_per_round": plan.gmail_messages,
        "messages_per_second": {name: Spread.of(v).as_dict() for name, v in rates.items()},
        "ratio_to_raw_loop": Spread.of(s / r for s, r in pairs).as_dict(),
    }


async def bench_gateway(
    plan: Plan,
    runs: Runs,
    stack: Stack,
    lead_id: str,
    pools: dict[str, HttpPool],
    headers: dict[str, str],
) -> dict[str, Any]:
    path = f"/api/leads/{lead_id}"
    sends = {}
    for via in ("crm", "gateway"):
        request = pools[via].request_bytes("GET", path)

        async def send(pool: HttpPool = pools[via], request: bytes = request) -> int:
            return (await pool.send(request))[0]

        sends["direct" if via == "crm" else "through gateway"] = (via, send)
    for round_number in range(plan.first_round, plan.rounds + 1):
        if round_number > 1 and runs.time_left() < 40:
            print("  (time budget: fewer gateway rounds)", flush=True)
            break
        keep = round_number > 0
        for name, (via, send) in sends.items():
            result = await runs.phase(
                f"gateway {plan.gateway_rate:g}/s: {name}",
                partial(open_loop, send, rate=plan.gateway_rate, duration=plan.fixed_seconds),
                keep=keep,
            )
            wrk = await runs.phase(
                f"gateway max: {name}",
                wrk_phase(stack.url(via) + path, headers, plan),
                keep=keep,
            )
            print(
                f"  gateway {'round ' + str(round_number) if keep else 'warm-up'}: {name}: "
                f"p50 {ms(result.p(0.5)):.1f} ms, p99 {ms(result.p(0.99)):.1f} ms at "
                f"{plan.gateway_rate:g}/s; max {wrk.ok_per_second:,.0f}/s",
                flush=True,
            )
    direct = runs.rounds[f"gateway {plan.gateway_rate:g}/s: direct"]
    through = runs.rounds[f"gateway {plan.gateway_rate:g}/s: through gateway"]
    pairs = list(zip(direct, through, strict=True))
    max_direct = runs.rounds["gateway max: direct"]
    max_through = runs.rounds["gateway max: through gateway"]
    fixed_usage = runs.usage[f"gateway {plan.gateway_rate:g}/s: through gateway"]["gateway"]
    max_usage = runs.usage["gateway max: through gateway"]["gateway"]
    return {
        "direct": _open_loop_summary(direct),
        "through_gateway": _open_loop_summary(through),
        "added_p50_ms": Spread.of(ms(b.p(0.5) - a.p(0.5)) for a, b in pairs).as_dict(),
        "added_p99_ms": Spread.of(ms(b.p(0.99) - a.p(0.99)) for a, b in pairs).as_dict(),
        "gateway_cpu_ms_per_request_fixed_rate": ms(
            fixed_usage["cpu_s"] / max(1, sum(r.sent for r in through))
        ),
        "gateway_cpu_ms_per_request_max_rate": ms(
            max_usage["cpu_s"] / max(1, sum(r.requests for r in max_through))
        ),
        "max_rps_direct": Spread.of(r.ok_per_second for r in max_direct).as_dict(),
        "max_rps_through_gateway": Spread.of(r.ok_per_second for r in max_through).as_dict(),
        # A round where the service answered nothing at all (an overloaded machine) has no ratio.
        "throughput_ratio": Spread.of(
            b.ok_per_second / a.ok_per_second if a.ok_per_second else math.nan
            for a, b in zip(max_direct, max_through, strict=True)
        ).as_dict(),
        "wrk_cpu_s_per_request": sum(r.cpu_seconds for r in max_direct + max_through)
        / max(1, sum(r.requests for r in max_direct + max_through)),
    }


def machine_facts() -> dict[str, Any]:
    cores = os.cpu_count() or 0
    model = "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "host": socket.gethostname(),
        "cores": cores,
        "cpu": model,
        "memory_gb": round(memory_gb, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg_at_start": " ".join(f"{v:.2f}" for v in os.getloadavg()),
        "summary": f"{cores} cores ({model}), {memory_gb:.0f} GB",
        "note": "The machine is shared: others run tests on it at the same time, which moves "
        "absolute numbers; the A/B ratios are the robust figures.",
    }


def settings_of(stack: Stack, plan: Plan) -> dict[str, Any]:
    workers = int(stack.env.get("WORKERS") or 1)
    wrk_version = "not installed"
    if wrk_available():
        wrk_version = (
            subprocess.run(
                ["wrk", "-v"], capture_output=True, text=True, check=False
            ).stdout.splitlines()[0:1]
            or ["?"]
        )[0]
    return {
        "processes": "Procfile: identity, crm, timeline, gateway (as `make run` starts them); "
        "emulator for the Gmail sync, whose gmail service runs in the bench process",
        "GMAIL_QUOTA_UNITS_PER_SECOND": "lifted for the Gmail sync (the service paces a "
        "mailbox to Gmail's 250 units/s; the emulator has no quota)",
        "PORT_BASE": stack.port_base,
        "DATABASE_URL": stack.database_url,
        "AMQP_URL": stack.amqp_url,
        "BROKER_PREFIX": stack.broker_prefix,
        "BROKER_QUEUE_EXPIRES_MS": stack.env["BROKER_QUEUE_EXPIRES_MS"],
        "GATEWAY_RATE_LIMIT_DEFAULT": stack.env["RATE_LIMIT_DEFAULT"]
        + " (raised from 600/60 so the limiter answers every request with a pass; "
        "the same bucket arithmetic runs per request)",
        "WORKERS": f"{workers} process(es) per service, each pooling "
        f"{max(1, 5 // workers)}+{5 // workers} of the service's 5+5 database connections",
        "other service settings": "make run's defaults (pools 5+5 per service, consumer prefetch "
        "100, relay poll 1 s + LISTEN/NOTIFY, LOG_LEVEL INFO to a log file, in-memory rate "
        "limiter)",
        "postgres synchronous_commit": "server default (not changed by the bench)",
        "load generator": f"open loop in the bench process (uvloop); {wrk_version}",
        "event loop (bench)": "uvloop",
        "plan": plan.summary,
        "writers / connections": f"{plan.writers} / {plan.connections}",
    }


async def run(plan: Plan, port_base: int | None) -> dict[str, Any]:
    started_at = datetime.now(UTC)
    began = time.monotonic()
    database_url = os.environ.get("DATABASE_URL", "")
    if "bench" not in database_url:
        raise SystemExit("DATABASE_URL must name the bench's own database (make bench sets it)")
    amqp_url = os.environ.get("AMQP_URL", DEFAULT_AMQP_URL)
    stack = make_stack(database_url, amqp_url, port_base)
    stack.env["RATE_LIMIT_DEFAULT"] = "100000000/60"
    settings = settings_of(stack, plan)
    machine = machine_facts()
    print("Settings:", flush=True)
    for name, value in settings.items():
        print(f"  {name} = {value}", flush=True)
    print(f"Machine: {machine['summary']}; load average {machine['loadavg_at_start']}", flush=True)
    try:
        stack.start()
    except BaseException:
        stack.stop()
        raise
    token = minter().mint(sub=USER, org_id=ORG, role="rep", email=None, team_ids=[TEAM])
    headers = {"Authorization": f"Bearer {token}"}
    pools = {
        name: HttpPool(stack.url(name), headers=headers, size=64)
        for name in ("crm", "timeline", "gateway")
    }
    meter = ProcessMeter(
        stack.pids, groups={"postgres (shared)": "postgres", "rabbitmq (shared)": "beam.smp"}
    )
    rss, connections = RssWatch(stack.pids), ConnectionWatch(database_url)
    watchers = [asyncio.create_task(rss.run()), asyncio.create_task(connections.run())]
    runs = Runs(meter, began + plan.deadline_seconds, partial(settle, pools))
    record: dict[str, Any] = {}
    try:
        dataset = await ensure_dataset(
            database_url, pools["crm"], pools["timeline"], ORG, plan.timeline_items
        )
        print(
            f"Timeline dataset {dataset.name}: {dataset.items:,} items, "
            f"{'reused' if dataset.reused else f'loaded in {dataset.loaded_seconds:.0f} s'}",
            flush=True,
        )
        await runs.phase("idle", lambda: asyncio.sleep(plan.idle_seconds), keep=True)
        print("Event pipeline", flush=True)
        pipeline = await bench_pipeline(plan, runs, stack, pools["crm"], pools["timeline"])
        print("Timeline page", flush=True)
        timeline = await bench_timeline(plan, runs, stack, dataset, pools, headers)
        print("Gateway", flush=True)
        gateway = await bench_gateway(plan, runs, stack, dataset.lead_id, pools, headers)
        record = assemble(
            plan,
            runs,
            settings,
            machine,
            started_at,
            began,
            dataset,
            pipeline,
            timeline,
            gateway,
            await bench_gmail(plan, runs, stack),
        )
        record["rss_peak_mb"], record["database_connections"] = dict(rss.peak), connections.report()
        record["targets"] = targets(plan, record, rss.peak)
    finally:
        for watcher in watchers:
            watcher.cancel()
        for pool in pools.values():
            await pool.close()
        stack.stop()
        try:
            await asyncio.wait_for(delete_exchanges(amqp_url, stack.broker_prefix), timeout=15)
        except (TimeoutError, OSError, aio_pika.exceptions.AMQPException) as exc:
            print(f"could not delete the bench's exchanges ({exc!r})", file=sys.stderr)
    record["elapsed_seconds"] = time.monotonic() - began
    shutil.rmtree(stack.log_dir, ignore_errors=True)  # kept only when the run failed
    return record


async def delete_exchanges(amqp_url: str, prefix: str) -> None:
    """The stack's durable exchanges (its queues expire on their own)."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        for name in ("pipedesk.events", "pipedesk.dlx"):
            await channel.exchange_delete(prefix + name)
    finally:
        await connection.close()


def assemble(
    plan: Plan,
    runs: Runs,
    settings: dict[str, Any],
    machine: dict[str, Any],
    started_at: datetime,
    began: float,
    dataset: Dataset,
    pipeline: dict[str, Any],
    timeline: dict[str, Any],
    gateway: dict[str, Any],
    gmail: dict[str, Any],
) -> dict[str, Any]:
    resources = {variant: runs.cpu_table(variant) for variant in runs.usage}
    deep = f"page {dataset.deep_page:,}"
    tables = [
        {
            "title": "Event pipeline",
            "columns": ["variant", "events/s", "ratio (system ÷ variant)"],
            "rows": [
                [
                    name,
                    report.spread_cell(values),
                    report.spread_cell(pipeline["ratio_to_raw_database_broker"])
                    if name == "raw database + broker"
                    else report.spread_cell(pipeline["ratio_to_raw_broker"])
                    if name == "raw broker"
                    else "—",
                ]
                for name, values in pipeline["events_per_second"].items()
            ]
            + [
                [
                    f"system at 50% ({pipeline['lag_rate']:,.0f} updates/s): lag commit → item",
                    f"p50 {pipeline['lag_ms']['p50']:.0f} ms, p99 {pipeline['lag_ms']['p99']:.0f}"
                    f" ms ({pipeline['lag_ms']['probes']} probes)",
                    "—",
                ]
            ],
            "note": "An event is one lead update: a CRM commit with two outbox rows, the relay's "
            "batched commit, two persistent confirmed publishes, one consumer commit + ack. "
            "Lag is measured by probe updates polled through the timeline API every 10 ms.",
        },
        {
            "title": f"Timeline page ({dataset.items:,} items on one lead)",
            "columns": [
                "variant",
                f"p50 ms at {plan.timeline_rate:g}/s",
                f"p99 ms at {plan.timeline_rate:g}/s",
                "errors",
                "max requests/s",
            ],
            "rows": [
                [
                    name,
                    report.spread_cell(values["p50_ms"]),
                    report.spread_cell(values["p99_ms"]),
                    str(values["errors"]),
                    report.spread_cell(timeline["max_rps"][name]),
                ]
                for name, values in timeline["fixed_rate"].items()
            ],
            "note": f"The raw query's maximum is asyncpg in the bench process "
            f"({plan.connections} connections); the service's and the gateway's come from wrk "
            f"(-c{plan.connections}). {deep} is reached by following next_cursor.",
        },
        {
            "title": "Gateway (GET /api/leads/{id})",
            "columns": ["measure", "value"],
            "rows": [
                ["direct p50 / p99 ms", _pair(gateway["direct"])],
                ["through gateway p50 / p99 ms", _pair(gateway["through_gateway"])],
                ["added p50 ms", report.spread_cell(gateway["added_p50_ms"])],
                ["added p99 ms", report.spread_cell(gateway["added_p99_ms"])],
                [
                    "gateway CPU ms per request (fixed rate / saturated)",
                    f"{gateway['gateway_cpu_ms_per_request_fixed_rate']:.2f} / "
                    f"{gateway['gateway_cpu_ms_per_request_max_rate']:.2f}",
                ],
                ["max requests/s direct", report.spread_cell(gateway["max_rps_direct"])],
                [
                    "max requests/s through gateway",
                    report.spread_cell(gateway["max_rps_through_gateway"]),
                ],
                [
                    "throughput ratio (gateway ÷ direct)",
                    report.spread_cell(gateway["throughput_ratio"]),
                ],
            ],
        },
        gmail_table(gmail),
        {
            "title": "CPU and memory per phase",
            "columns": ["phase", "process", "CPU %", "CPU s", "peak RSS MB"],
            "rows": [
                [variant, process, f"{v['cpu_pct']:.0f}", f"{v['cpu_s']:.1f}", f"{v['rss_mb']:.0f}"]
                for variant, processes in resources.items()
                for process, v in processes.items()
                if variant == "idle" or v["cpu_pct"] >= 1 or "bench" in process
            ],
            "note": "CPU % is of one core (200% = both cores). Shared servers are summed over "
            "all their processes and include other people's load. Rows under 1% CPU are left "
            "out except at idle. wrk's own CPU: "
            + ", ".join(
                f"{name} {ms(value):.3f} ms/request"
                for name, value in timeline["wrk_cpu_s_per_request"].items()
            )
            + f"; gateway bench {ms(gateway['wrk_cpu_s_per_request']):.3f} ms/request.",
        },
    ]
    series = {
        "pipeline": {
            name: values["rounds"] for name, values in pipeline["events_per_second"].items()
        },
        "timeline_latency_ms": {
            name: [
                round(ms(value), 3)
                for result in runs.rounds[f"timeline {plan.timeline_rate:g}/s: {name}"]
                for value in result.latencies
            ]
            for name in timeline["fixed_rate"]
        },
        "max_throughput": {
            **{f"timeline {n}": v["rounds"] for n, v in timeline["max_rps"].items()},
            "gateway bench: direct": gateway["max_rps_direct"]["rounds"],
            "gateway bench: through gateway": gateway["max_rps_through_gateway"]["rounds"],
        },
        "gateway_latency_ms": {
            name: [
                round(ms(value), 3)
                for result in runs.rounds[f"gateway {plan.gateway_rate:g}/s: {name}"]
                for value in result.latencies
            ]
            for name in ("direct", "through gateway")
        },
    }
    return {
        "started_at": started_at.strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine,
        "plan": {**asdict(plan), "summary": plan.summary},
        "settings": settings,
        "dataset": {
            "name": dataset.name,
            "items": dataset.items,
            "deep_page": dataset.deep_page,
            "reused": dataset.reused,
            "copy_seconds": dataset.loaded_seconds,
        },
        "pipeline": pipeline,
        "timeline": timeline,
        "gateway": gateway,
        "gmail": gmail,
        "resources": resources,
        "tables": tables,
        "series": series,
        "elapsed_seconds": time.monotonic() - began,
    }


def gmail_table(gmail: dict[str, Any]) -> dict[str, Any]:
    return {
        "title": f"Gmail history sync ({gmail['messages_per_round']} new messages a round)",
        "columns": ["variant", "messages/s", "ratio (service ÷ variant)"],
        "rows": [
            [
                name,
                report.spread_cell(values),
                report.spread_cell(gmail["ratio_to_raw_loop"]) if name == "raw loop" else "—",
            ]
            for name, values in gmail["messages_per_second"].items()
        ],
        "note": "Raw loop: google-api-python-client against the emulator, history.list then "
        "messages.get of each message added. Service: the gmail service's history sync of one "
        "mailbox (the same calls, then parsing, matching, the mirror write and the outbox "
        "events), its quota pacing lifted.",
    }


def _pair(summary: dict[str, Any]) -> str:
    return f"{summary['p50_ms']['median']:.1f} / {summary['p99_ms']['median']:.1f}"


def targets(plan: Plan, record: dict[str, Any], rss_peak: dict[str, float]) -> list[dict[str, str]]:
    pipeline, timeline, gateway = record["pipeline"], record["timeline"], record["gateway"]
    deep = f"page {record['dataset']['deep_page']:,}"
    ratio = pipeline["ratio_to_raw_database_broker"]["median"]
    lag_p99 = pipeline["lag_ms"]["p99"]
    lag_rounds = pipeline["lag_ms"]["p99_per_round"]
    fixed = timeline["fixed_rate"]
    raw_p99 = fixed["raw query, page 1"]["p99_ms"]["median"]
    service_p99 = fixed["service, page 1"]["p99_ms"]["median"]
    service_deep_p99 = fixed[f"service, {deep}"]["p99_ms"]["median"]
    raw_deep_p99 = fixed[f"raw query, {deep}"]["p99_ms"]["median"]
    first_p50 = fixed["service, page 1"]["p50_ms"]["median"]
    deep_p50 = fixed[f"service, {deep}"]["p50_ms"]["median"]
    first_max = timeline["max_rps"]["service, page 1"]["median"]
    deep_max = timeline["max_rps"][f"service, {deep}"]["median"]
    added_p50 = gateway["added_p50_ms"]["median"]
    added_p99 = gateway["added_p99_ms"]["median"]
    cpu = gateway["gateway_cpu_ms_per_request_fixed_rate"]
    biggest = max(rss_peak.items(), key=lambda item: item[1])
    gmail_ratio = record["gmail"]["ratio_to_raw_loop"]["median"]
    gmail_rates = record["gmail"]["messages_per_second"]
    rows = [
        (
            "pipeline ≥ 0.5 x raw database + broker",
            f"{ratio:.2f} x (raw broker: {pipeline['ratio_to_raw_broker']['median']:.2f} x)",
            ratio >= 0.5,
        ),
        (
            f"lag p99 < 150 ms in every round at 50% load ({pipeline['lag_rate']:,.0f}/s)",
            f"p50 {pipeline['lag_ms']['p50']:.0f} ms, p99 {lag_p99:.0f} ms; per round "
            + ", ".join(f"{value:.0f}" for value in lag_rounds)
            + " ms",
            max(lag_rounds) < 150,
        ),
        (
            f"timeline p99 via service ≤ raw p99 + 5 ms at {plan.timeline_rate:g}/s, page 1",
            f"{service_p99:.1f} ms vs raw {raw_p99:.1f} ms",
            service_p99 <= raw_p99 + 5,
        ),
        (
            f"timeline p99 via service ≤ raw p99 + 5 ms at {plan.timeline_rate:g}/s, {deep}",
            f"{service_deep_p99:.1f} ms vs raw {raw_deep_p99:.1f} ms",
            service_deep_p99 <= raw_deep_p99 + 5,
        ),
        *(
            (
                f"timeline p99 via gateway ≤ raw p99 + 7 ms and 0 failed at "
                f"{plan.timeline_rate:g}/s, {page}",
                f"{fixed[f'gateway, {page}']['p99_ms']['median']:.1f} ms vs raw "
                f"{fixed[f'raw query, {page}']['p99_ms']['median']:.1f} ms; "
                f"{fixed[f'gateway, {page}']['errors']} failed",
                fixed[f"gateway, {page}"]["p99_ms"]["median"]
                <= fixed[f"raw query, {page}"]["p99_ms"]["median"] + 7
                and fixed[f"gateway, {page}"]["errors"] == 0,
            )
            for page in ("page 1", deep)
        ),
        (
            f"{deep} within 10% of page 1 (service p50 and max requests/s)",
            f"p50 {deep_p50:.1f} vs {first_p50:.1f} ms; max {deep_max:,.0f} vs {first_max:,.0f}/s",
            deep_p50 <= 1.1 * first_p50 and deep_max >= 0.9 * first_max,
        ),
        ("gateway adds ≤ 1 ms p50", f"{added_p50:.2f} ms", added_p50 <= 1),
        ("gateway adds ≤ 5 ms p99", f"{added_p99:.2f} ms", added_p99 <= 5),
        ("gateway CPU ≤ 0.5 ms per request", f"{cpu:.2f} ms", cpu <= 0.5),
        (
            "gmail sync ≥ 0.5 x raw loop",
            f"{gmail_ratio:.2f} x ({gmail_rates['service']['median']:,.0f} vs "
            f"{gmail_rates['raw loop']['median']:,.0f} messages/s)",
            gmail_ratio >= 0.5,
        ),
        (
            f"every service < {RSS_LIMIT_MB} MB RSS",
            ", ".join(f"{name} {value:.0f}" for name, value in rss_peak.items())
            + f" MB (largest: {biggest[0]})",
            biggest[1] < RSS_LIMIT_MB,
        ),
    ]
    return [
        {
            "name": name,
            "measured": measured,
            "result": f"{verdict(ok)} ({plan.name}: indicative)" if plan.quick else verdict(ok),
        }
        for name, measured, ok in rows
    ]


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument("--quick", action="store_true", help="small sizes, one round (~1 minute)")
    sizes.add_argument(
        "--tiny", action="store_true", help="every phase once, very briefly (make test runs it)"
    )
    parser.add_argument("--port-base", type=int, default=None)
    parser.add_argument(
        "--render", type=Path, default=None, help="only redraw the table and chart of a JSON record"
    )
    parser.add_argument(
        "--results-dir", type=Path, default=None, help="where to write the results (bench/results)"
    )
    args = parser.parse_args()
    if args.render is not None:
        record = json.loads(args.render.read_text())
        for kind, path in report.write(record, args.render.stem, args.render.parent).items():
            print(f"{kind}: {path}")
        return 0
    plan = Plan.tiny() if args.tiny else Plan.small() if args.quick else Plan.full()
    record = uvloop.run(run(plan, args.port_base))
    stem = f"{record['started_at'][:10]}-{socket.gethostname()}"
    if plan.quick:
        stem += f"-{plan.name.lower()}"
    paths = report.write(record, stem, *([args.results_dir] if args.results_dir else []))
    print("\nTargets (the bench exits 0 either way):")
    for target in record["targets"]:
        print(f"  {target['result']:<24} {target['name']}: {target['measured']}")
    print(f"\nWhole bench: {record['elapsed_seconds']:.0f} s")
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    print()
    print(report.markdown(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
