"""The bench's outputs: a JSON record, a Markdown table and a PNG chart, in ``bench/results``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

RESULTS = Path(__file__).resolve().parent / "results"


def _fmt(value: float, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return text + unit


def spread_cell(spread: dict[str, Any], unit: str = "", scale: float = 1.0) -> str:
    return (
        f"{_fmt(spread['median'] * scale, unit)} "
        f"({_fmt(spread['min'] * scale)}-{_fmt(spread['max'] * scale)})"
    )


def markdown(record: dict[str, Any]) -> str:
    lines = [
        f"# Bench results — {record['started_at']} on `{record['machine']['host']}`",
        "",
        f"Machine: {record['machine']['summary']}. "
        f"Load average at start: {record['machine']['loadavg_at_start']}. "
        + record["machine"]["note"],
        "",
        f"Run: {record['plan']['summary']}; whole bench {record['elapsed_seconds']:.0f} s.",
        "Cells are the median over rounds, (min-max) across rounds.",
        "",
        "## Targets",
        "",
        "| target | measured | result |",
        "|---|---|---|",
    ]
    lines += [
        f"| {target['name']} | {target['measured']} | {target['result']} |"
        for target in record["targets"]
    ]
    for section in record["tables"]:
        lines += ["", f"## {section['title']}", ""]
        lines += ["| " + " | ".join(section["columns"]) + " |"]
        lines += ["|" + "---|" * len(section["columns"])]
        lines += ["| " + " | ".join(row) + " |" for row in section["rows"]]
        if section.get("note"):
            lines += ["", section["note"]]
    lines += ["", "## Settings", "", "```"]
    lines += [f"{name} = {value}" for name, value in record["settings"].items()]
    lines += ["```", ""]
    return "\n".join(lines)


def chart(record: dict[str, Any], path: Path) -> None:
    figure, axes = plt.subplots(2, 2, figsize=(14, 10))
    pipeline = record["series"]["pipeline"]
    ax = axes[0][0]
    for name, rounds in pipeline.items():
        ax.plot(range(1, len(rounds) + 1), rounds, marker="o", label=name)
    ax.set_title("Event pipeline: events/s per round")
    ax.set_xlabel("round")
    ax.set_ylabel("events/s")
    ax.set_yscale("log")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend()
    ax.grid(alpha=0.3)

    ax = axes[0][1]
    latencies = record["series"]["timeline_latency_ms"]
    names = list(latencies)
    ax.boxplot([latencies[name] or [math.nan] for name in names], whis=(1, 99), showfliers=False)
    ax.set_xticks(range(1, len(names) + 1), names, rotation=20, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_title(f"Timeline page latency at {record['plan']['timeline_rate']} req/s (p1-p99)")
    ax.set_ylabel("ms from intended send time")
    ax.grid(alpha=0.3)

    ax = axes[1][0]
    for name, rounds in record["series"]["max_throughput"].items():
        ax.plot(range(1, len(rounds) + 1), rounds, marker="o", label=name)
    ax.set_title("Maximum requests/s per round")
    ax.set_xlabel("round")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel("requests/s")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)

    ax = axes[1][1]
    for name, values in record["series"]["gateway_latency_ms"].items():
        ordered = sorted(values)
        if ordered:
            ax.plot(
                ordered, [(index + 1) / len(ordered) for index in range(len(ordered))], label=name
            )
    ax.set_xscale("log")
    ax.set_title(f"Cheap endpoint at {record['plan']['gateway_rate']} req/s: latency CDF")
    ax.set_xlabel("ms from intended send time")
    ax.set_ylabel("fraction of requests")
    ax.legend()
    ax.grid(alpha=0.3)

    figure.suptitle(f"PipeDesk bench {record['started_at']} — {record['machine']['summary']}")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def write(record: dict[str, Any], stem: str, results: Path = RESULTS) -> dict[str, Path]:
    results.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": results / f"{stem}.json",
        "markdown": results / f"{stem}.md",
        "chart": results / f"{stem}.png",
    }
    paths["json"].write_text(json.dumps(record, indent=2, default=str) + "\n")
    paths["markdown"].write_text(markdown(record))
    chart(record, paths["chart"])
    return paths
