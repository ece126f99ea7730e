"""``python -m bench.mutate [--only NAME,…]``: mutation testing of the modules that hold the
system's guarantees (``make mutate``).

mutmut changes one thing at a time in a module (a comparison, a constant, a call's argument…) and
runs the tests that exercise the changed function; a test must fail, or the change "survives".
Each module is run against the tests that should catch a bug in it, and no others (mutation runs
are CPU-hungry). A survivor is either explained in ``bench/mutation-survivors.toml`` (an
equivalent mutant: no behaviour changes) or a missing test. Each module's result goes
to ``bench/results/mutation/<name>.json`` and the summary of all of them to
``bench/results/mutation.md``; the exit status is 1 unless every module scored at least
``TARGET_SCORE`` with every survivor explained.

mutmut imports the mutated code from ``<workdir>/mutants/src``, so each module's package is
copied into a work directory of its own (``.mutate/<name>``, kept out of git) beside the test
directories it needs and a pyproject.toml carrying the workspace's pytest settings.
"""

from __future__ import annotations

import argparse
import ast
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".mutate"
RESULTS = ROOT / "bench" / "results"
SURVIVORS = ROOT / "bench" / "mutation-survivors.toml"
TARGET_SCORE = 0.9
LOG_CALL = r"\blog\.(debug|info|warning|error|exception)\("
NOT_RUN = "not checked"
DETECTED = frozenset({"killed", "timeout", "caught by type check", "segfault"})


@dataclass(frozen=True)
class Target:
    """One module and the tests that should catch a bug in it."""

    name: str
    package: str  # the package directory, from the repository root
    module: str  # the module's file, within the package
    tests: tuple[str, ...]  # test files or test ids, from the repository root
    guarantee: str
    # Functions a module calls while it is imported (a table's definition): mutmut swaps a
    # function per test in an already-imported process, so a mutant of one never takes effect.
    # Each carries ``# pragma: no mutate block``, so mutmut makes none; the report names them,
    # and each service's ``alembic check`` test holds the definitions to its migrations.
    import_time: tuple[str, ...] = ()
    # When the module holds more than the guarantee, the functions that hold it
    # (``function`` or ``Class.method``); empty: every function.
    functions: tuple[str, ...] = ()

    @property
    def package_name(self) -> str:
        return Path(self.package).name


COMMON = "libs/common/src/pipedesk_common"
CONSUMER_TESTS = ("libs/common/tests/test_consumer.py",)
TARGETS: tuple[Target, ...] = (
    Target(
        "outbox",
        COMMON,
        "outbox.py",
        (
            "libs/common/tests/test_outbox.py",
            "services/crm/tests/test_outbox.py",
        ),
        "an event is published if and only if its change commits, and marked sent only once "
        "the broker confirmed it",
        import_time=("outbox_table",),
    ),
    Target(
        "inbox",
        COMMON,
        "inbox.py",
        CONSUMER_TESTS,
        "a consumer applies each event once, and never an older version after a newer one",
        import_time=("inbox_tables",),
    ),
    Target(
        "consumer",
        COMMON,
        "consumer.py",
        CONSUMER_TESTS,
        "an event's effect and its inbox row commit together, so a failed handler leaves "
        "nothing behind; handlers are registered once, before the queue is consumed",
    ),
    Target(
        "rbac",
        COMMON,
        "rbac.py",
        ("libs/common/tests/test_rbac.py",),
        "who may do what to a record; list filters agree with it",
    ),
    Target(
        "auth",
        COMMON,
        "auth.py",
        (
            "services/crm/tests/test_auth.py",
            "libs/common/tests/test_user_tokens.py",
            "libs/common/tests/test_service_tokens.py",
        ),
        "only well-formed tokens signed by a known key, for this audience and issuer, in time, "
        "are accepted",
    ),
    Target(
        "gateway-auth",
        "gateway/src/pipedesk_gateway",
        "app.py",
        tuple(
            f"gateway/tests/test_gateway.py::test_{name}"
            for name in (
                "valid_tokens_pass_forged_ones_do_not_and_orgs_stay_apart",
                "a_stopped_service_is_502_and_a_stalled_one_504",
                "sensitive_routes_have_their_own_stricter_bucket",
                "a_path_merely_ending_in_stream_needs_a_token_and_its_limits",
                "the_gateway_itself_refuses_forged_and_missing_tokens",
                "each_user_and_each_org_has_a_bucket_of_their_own",
                "routes_without_a_token_are_limited_per_client_address",
                "streams_uploads_and_unknown_paths_pass_the_app_and_are_limited_all_the_same",
                "a_wait_shorter_than_a_second_is_still_a_429",
                "a_streamed_response_passes_through_unbuffered",
                "streams_beyond_the_pool_are_refused_with_503_not_queued",
                "body_limit_cors_and_health",
                "an_upload_goes_through_the_request_client_under_its_read_timeout",
                "an_upload_is_routed_by_its_path_as_sent_like_every_other_request",
            )
        ),
        "the gateway verifies tokens itself and rate-limits per user and per org",
        functions=(
            "Gateway.rate_limit",
            "Gateway.refusal",
            "Gateway.buckets",
            "ProxyFront.__call__",
            "_dispatch",
        ),
    ),
    Target(
        "rate-limiter",
        "gateway/src/pipedesk_gateway",
        "ratelimit.py",
        ("gateway/tests/test_ratelimit.py",),
        "a bucket refuses when empty, refills at its rate, and all of a request's buckets are "
        "charged or none",
    ),
    Target(
        "timeline-visibility",
        "services/timeline/src/timeline_service",
        "service.py",
        (
            "services/timeline/tests/test_visibility.py",
            "services/timeline/tests/test_streams.py::"
            "test_a_ticket_is_single_use_for_one_record_and_expires_after_60_seconds",
            "services/timeline/tests/test_caching.py::"
            "test_304_until_a_new_item_or_the_viewers_access_changes",
        ),
        "a private event is Busy for whoever is not its owner or an attendee; stream tickets "
        "are single-use, for one record, for 60 seconds",
        # A recurring series' next occurrence is display, held by test_series.py.
        functions=(
            "as_of_minute",
            "present",
            "visibility_class",
            "entity_tag",
            "_hash",
            "principal_document",
            "issue_ticket",
            "redeem_ticket",
        ),
    ),
    Target(
        "timeline-search",
        "services/timeline/src/timeline_service",
        "repository.py",
        (
            "services/timeline/tests/test_visibility.py",
            "services/timeline/tests/test_holders.py",
            "services/timeline/tests/test_api.py",
            "services/timeline/tests/test_streams.py::"
            "test_a_streams_changes_come_oldest_change_first_between_two_versions",
        ),
        "a timeline read or search never reaches what the viewer may not see, whichever holder's "
        "copy it is shown; pages follow the keyset",
    ),
    Target(
        "cursor",
        COMMON,
        "pagination.py",
        ("libs/common/tests/test_pagination.py",),
        "a cursor works only for the query it was issued for and cannot be forged",
    ),
)


@dataclass
class Mutant:
    name: str
    status: str
    function: str = ""
    removed: str = ""
    added: str = ""

    @property
    def key(self) -> str:
        """How the survivors file names a mutant: stable across unrelated edits of the module."""
        return f"{self.function} | {self.removed} -> {self.added}"


@dataclass
class Outcome:
    target: Target
    mutants: list[Mutant] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None

    @property
    def counts(self) -> Counter[str]:
        return Counter(mutant.status for mutant in self.mutants)

    @property
    def detected(self) -> int:
        return sum(1 for mutant in self.mutants if mutant.status in DETECTED)

    @property
    def score(self) -> float:
        return self.detected / len(self.mutants) if self.mutants else 0.0

    def undetected(self) -> list[Mutant]:
        """What ran and no test detected (mutants an interrupted run never ran are counted, not
        listed)."""
        return [
            mutant
            for mutant in self.mutants
            if mutant.status not in DETECTED and mutant.status != NOT_RUN
        ]


def _toml(value: Any) -> str:
    """A TOML value for the simple data of the generated pyproject (JSON's strings are TOML's)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def _test_files(target: Target) -> list[str]:
    return sorted({test.split("::", 1)[0] for test in target.tests})


def prepare(target: Target, resume: bool = False) -> Path:
    """The target's work directory: its package, the test directories, and the configuration.
    With ``resume``, an earlier run's results stay (``run_target`` chooses what to run again)."""
    workdir = WORK / target.name
    if workdir.exists() and not resume:
        shutil.rmtree(workdir)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(
        ROOT / target.package,
        workdir / "src" / target.package_name,
        ignore=ignore,
        dirs_exist_ok=True,
    )
    test_dirs = sorted({str(Path(test).parent) for test in _test_files(target)})
    for test_dir in test_dirs:
        shutil.copytree(ROOT / test_dir, workdir / test_dir, ignore=ignore, dirs_exist_ok=True)
    pytest_options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"][
        "ini_options"
    ]
    lines = [
        "[tool.mutmut]",
        f"source_paths = {_toml(['src/'])}",
        f"only_mutate = {_toml([f'src/{target.package_name}/{target.module}'])}",
        f"also_copy = {_toml([f'{test_dir}/' for test_dir in test_dirs])}",
        f"pytest_add_cli_args_test_selection = {_toml(list(target.tests))}",
        # What a log line says is not behaviour a test should pin down.
        f"do_not_mutate_patterns = {_toml([LOG_CALL])}",
        # A mutant's tests stop at their first failure (mutmut's -x); pytest's cache is neither
        # read nor written, so a mutant's run leaves nothing behind for the next one.
        f"pytest_add_cli_args = {_toml(['-p', 'no:cacheprovider'])}",
        # A mutant that hangs is ended by its wall-clock limit, three times the sum of its
        # tests' clean time and 15 s (their fixtures, which mutmut does not time): a hang is
        # detected in a minute or so rather than after every test's own deadline (eventually's
        # 30 s) in turn, while a mutant merely slowed by a busy machine has three times its
        # clean time to finish.
        "timeout_multiplier = 3.0",
        "timeout_constant = 15.0",
        "",
        "[tool.pytest.ini_options]",
    ]
    for key, value in {**pytest_options, "testpaths": test_dirs}.items():
        lines.append(f"{key} = {_toml(value)}")
    (workdir / "pyproject.toml").write_text("\n".join(lines) + "\n")
    return workdir


def _mutmut(workdir: Path, *args: str, check: bool = True) -> str:
    completed = subprocess.run(
        [sys.executable, "-m", "mutmut", *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        check=False,
    )
    if check and completed.returncode != 0:
        raise RuntimeError(
            f"mutmut {' '.join(args)} exited {completed.returncode}:\n"
            + (completed.stdout + completed.stderr)[-4000:]
        )
    return completed.stdout


_FUNCTION = re.compile(r"^\S+\.x[_ǁ](?:(?P<cls>[^ǁ]+)ǁ)?(?P<name>.+?)__mutmut_\d+$")


def _describe(workdir: Path, mutant: Mutant) -> None:
    match = _FUNCTION.match(mutant.name)
    if match:
        cls, name = match.group("cls"), match.group("name")
        mutant.function = f"{cls}.{name}" if cls else name
    diff = _mutmut(workdir, "show", mutant.name, check=False)
    removed = [line[1:].strip() for line in diff.splitlines() if line.startswith("-")]
    added = [line[1:].strip() for line in diff.splitlines() if line.startswith("+")]
    mutant.removed = " / ".join(line for line in removed if not line.startswith("--"))
    mutant.added = " / ".join(line for line in added if not line.startswith("++"))


NO_MUTATE_BLOCK = "# pragma: no mutate block"


def mutant_patterns(target: Target) -> list[str]:
    """mutmut's names for the mutants of every function of the module but the import-time ones
    (``<module>.x_<function>__mutmut_<n>``, ``<module>.xǁ<class>ǁ<method>__mutmut_<n>``)."""
    module = f"{target.package_name}.{target.module.removesuffix('.py').replace('/', '.')}"
    source = (ROOT / target.package / target.module).read_text()
    lines = source.splitlines()
    tree = ast.parse(source)
    functions = (ast.FunctionDef, ast.AsyncFunctionDef)
    chosen = set(target.functions)
    patterns = []
    for node in tree.body:
        if isinstance(node, functions) and node.name in target.import_time:
            header = lines[node.lineno - 1 : node.body[0].lineno - 1]
            if not any(line.endswith(NO_MUTATE_BLOCK) for line in header):
                raise RuntimeError(f"{node.name} runs at import: its def needs {NO_MUTATE_BLOCK}")
        elif isinstance(node, functions):
            if not chosen or node.name in chosen:
                patterns.append(f"{module}.x_{node.name}__mutmut_*")
        elif isinstance(node, ast.ClassDef):
            patterns += [
                f"{module}.xǁ{node.name}ǁ{method.name}__mutmut_*"
                for method in node.body
                if isinstance(method, functions)
                and (not chosen or f"{node.name}.{method.name}" in chosen)
            ]
    return patterns


def _statuses(workdir: Path, patterns: Sequence[str]) -> dict[str, str]:
    """The status of each mutant of the target mutmut knows of in ``workdir``."""
    statuses = {}
    for line in _mutmut(workdir, "results", "--all", "true").splitlines():
        name, _, status = line.strip().rpartition(": ")
        if name and any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns):
            statuses[name] = status
    return statuses


def run_target(
    target: Target,
    jobs: int,
    resume: bool = False,
    collect: bool = False,
    undetected: bool = False,
) -> Outcome:
    """Run mutmut on the target (``collect``: only read what an interrupted run left;
    ``resume``: run only the mutants not run yet; ``undetected``: run again those no test
    detected, once tests are added)."""
    outcome = Outcome(target)
    started = time.monotonic()
    workdir = WORK / target.name if collect else prepare(target, resume or undetected)
    print(f"== {target.name}: {target.package}/{target.module}", flush=True)
    try:
        patterns = mutant_patterns(target)
        if not collect:
            # mutmut runs every mutant it is named, run before or not: name only those wanted.
            earlier = _statuses(workdir, patterns) if resume or undetected else {}
            names = [
                name
                for name, status in earlier.items()
                if status == NOT_RUN or (undetected and status not in DETECTED)
            ]
            if names or not earlier:
                _mutmut(workdir, "run", "--max-children", str(jobs), *(names or patterns))
        outcome.mutants = [
            Mutant(name=name, status=status)
            for name, status in _statuses(workdir, patterns).items()
        ]
        for mutant in outcome.undetected():
            _describe(workdir, mutant)
    except RuntimeError as exc:
        outcome.error = str(exc)
    outcome.seconds = time.monotonic() - started
    print(
        f"   {outcome.detected}/{len(outcome.mutants)} detected ({outcome.score:.0%}) "
        f"in {outcome.seconds:.0f} s",
        flush=True,
    )
    return outcome


def explained_survivors() -> dict[str, dict[str, str]]:
    document = tomllib.loads(SURVIVORS.read_text())
    return {name: dict(entries) for name, entries in document.items()}


def record(outcome: Outcome, reasons: dict[str, str]) -> None:
    """This module's result, in ``bench/results/mutation/<name>.json``."""
    target, counts = outcome.target, outcome.counts
    unexplained = [m for m in outcome.undetected() if m.key not in reasons]
    result = {
        "name": target.name,
        "module": f"{target.package}/{target.module}",
        "guarantee": target.guarantee,
        "tests": list(target.tests),
        "functions": list(target.functions),
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "mutants": len(outcome.mutants),
        "detected": outcome.detected,
        "statuses": dict(sorted(counts.items())),
        "import_time": list(target.import_time),
        "score": round(outcome.score, 4),
        "seconds": round(outcome.seconds),
        "error": outcome.error,
        "passed": outcome.error is None
        and outcome.score >= TARGET_SCORE
        and not unexplained
        and not counts[NOT_RUN],
        "undetected": [
            {
                "name": mutant.name,
                "status": mutant.status,
                "function": mutant.function,
                "from": mutant.removed,
                "to": mutant.added,
                "reason": reasons.get(mutant.key),
            }
            for mutant in outcome.undetected()
        ],
    }
    (RESULTS / "mutation").mkdir(parents=True, exist_ok=True)
    (RESULTS / "mutation" / f"{target.name}.json").write_text(
        json.dumps(result, indent=2, ensure_ascii=False) + "\n"
    )


def _of_run(result: dict[str, Any]) -> str:
    """For a run cut short: the share detected of the mutants it ran."""
    ran = result["mutants"] - result["statuses"].get(NOT_RUN, 0)
    if ran == result["mutants"] or ran == 0:
        return ""
    return f" (of the {ran} run: {result['detected'] / ran:.0%})"


def summarise() -> bool:
    """``bench/results/mutation.md`` from every module's latest result, in ``TARGETS`` order;
    whether each module met the target with every survivor explained."""
    results = []
    for target in TARGETS:
        path = RESULTS / "mutation" / f"{target.name}.json"
        if path.exists():
            results.append(json.loads(path.read_text()))
    lines = [
        "# Mutation testing",
        "",
        "`make mutate`: each module against the tests that should catch a bug in it. A mutant is "
        "detected when a test fails on it (or it hangs until a test's deadline); the target is "
        f"{TARGET_SCORE:.0%} detected per module, and every survivor is explained in "
        "`bench/mutation-survivors.toml`.",
        "",
        "| module | guarantee | tests | mutants | detected | survived | no tests | not run "
        "| score | run |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    details: list[str] = []
    for result in results:
        statuses = result["statuses"]
        tests = ", ".join(f"`{test}`" for test in result["tests"])
        mark = "" if result["passed"] else " ✗"
        module = result["module"]
        if result.get("functions"):
            module += " (" + ", ".join(result["functions"]) + ")"
        lines.append(
            f"| `{module}` | {result['guarantee']} | {tests} | {result['mutants']} "
            f"| {result['detected']} | {statuses.get('survived', 0)} "
            f"| {statuses.get('no tests', 0)} | {statuses.get(NOT_RUN, 0)} "
            f"| {result['score']:.1%}{mark}{_of_run(result)} "
            f"| {result['when']}, {result['seconds']} s |"
        )
        if result["import_time"]:
            names = ", ".join(f"`{name}`" for name in result["import_time"])
            details += [
                f"### {result['name']}: not mutated",
                "",
                f"{names}, which the module calls while it is imported (a table's definition), "
                f"carries `{NO_MUTATE_BLOCK}`: mutmut swaps a function per test in a process that "
                "has already imported the module, so a mutant of it could never take effect. The "
                "alembic drift tests (each service's `alembic check`) hold the definition to its "
                "migrations.",
                "",
            ]
        if result["error"]:
            details += [f"### {result['name']}: the run failed", "", "```", result["error"]]
            details += ["```", ""]
        if result["undetected"]:
            details += [f"### {result['name']}", ""]
            for mutant in result["undetected"]:
                reason = mutant["reason"] or "**unexplained: a test is missing**"
                details.append(
                    f"- {mutant['status']}, `{mutant['function']}`: `{mutant['from']}` → "
                    f"`{mutant['to']}`. {reason}"
                )
            details.append("")
    if details:
        lines += ["", "## What no test detected, and why", "", *details]
    (RESULTS / "mutation.md").write_text("\n".join(lines).rstrip() + "\n")
    return len(results) == len(TARGETS) and all(result["passed"] for result in results)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mutate", description=__doc__)
    parser.add_argument(
        "--only",
        help="comma-separated module names: " + ", ".join(target.name for target in TARGETS),
    )
    parser.add_argument("--jobs", type=int, default=int(os.environ.get("MUTATE_JOBS", "1")))
    parser.add_argument(
        "--resume", action="store_true", help="keep the results of an interrupted run"
    )
    parser.add_argument(
        "--undetected",
        action="store_true",
        help="keep the last run's results and run again only what no test detected",
    )
    parser.add_argument(
        "--collect",
        action="store_true",
        help="run nothing: report what the last runs left (unrun mutants as 'not checked')",
    )
    options = parser.parse_args(argv)
    chosen = TARGETS
    if options.only:
        names = set(options.only.split(","))
        unknown = names - {target.name for target in TARGETS}
        if unknown:
            parser.error(f"unknown modules: {', '.join(sorted(unknown))}")
        chosen = tuple(target for target in TARGETS if target.name in names)
    explained = explained_survivors()
    for target in chosen:
        outcome = run_target(
            target, options.jobs, options.resume, options.collect, options.undetected
        )
        record(outcome, explained.get(target.name, {}))
    passed = summarise()
    print(f"report: {RESULTS / 'mutation.md'}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
