"""``make run``'s process manager: supervisord runs the ``Procfile``'s processes and restarts one
that exits, so a crashed service comes back on its own while the others keep running.

``python -m dev_identity.supervise [Procfile]`` writes a supervisord configuration from the
Procfile (one ``[program]`` per line; the Procfile stays the one list of processes, which the
benchmarks read too) and replaces itself with ``supervisord -n``. Every process's output goes to
supervisord's standard output, as do supervisord's own lines (``exited: crm (terminated by
SIGKILL; not expected)``, ``spawned: 'crm'``), so a restart shows where the logs are read.
Ctrl-C (SIGINT) or SIGTERM stops every process, each with its process group (a service's worker
processes too), before supervisord exits: their ports are free again when it has.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

# A process that exits on its own is started again; one that keeps failing within its first
# second is tried this many times, then left stopped (FATAL), so a broken build does not spin.
START_RETRIES = 10
# What may end without being started again, when it ends well (exit status 0): the demo seeds the
# org, prints and waits. One that fails (the gateway did not answer in time) is started again.
RUN_ONCE = frozenset({"demo"})
STOP_WAIT_SECONDS = 15


def procfile_processes(path: Path) -> dict[str, str]:
    """``name: command`` lines of a Procfile, in order."""
    processes = {}
    for line in path.read_text().splitlines():
        if ":" in line and not line.lstrip().startswith("#"):
            name, command = line.split(":", 1)
            processes[name.strip()] = command.strip()
    return processes


def program_section(name: str, command: str, directory: Path) -> str:
    restart = "unexpected" if name in RUN_ONCE else "true"
    return "\n".join(
        [
            f"[program:{name}]",
            # supervisord expands %(…)s in commands: a literal % must be doubled.
            f"command={' '.join(shlex.quote(part) for part in shlex.split(command))}".replace(
                "%", "%%"
            ),
            f"directory={directory}",
            f"autorestart={restart}",
            "exitcodes=0",
            f"startsecs={0 if name in RUN_ONCE else 1}",
            f"startretries={START_RETRIES}",
            "stopsignal=TERM",
            f"stopwaitsecs={STOP_WAIT_SECONDS}",
            "stopasgroup=true",
            "killasgroup=true",
            "redirect_stderr=true",
            "stdout_logfile=/dev/stdout",
            "stdout_logfile_maxbytes=0",
            "",
        ]
    )


def configuration(processes: dict[str, str], directory: Path, state: Path) -> str:
    header = "\n".join(
        [
            "[supervisord]",
            "nodaemon=true",
            # In the foreground supervisord writes its lines to its standard output too.
            f"logfile={state / 'supervisord.log'}",
            "loglevel=info",
            f"pidfile={state / 'supervisord.pid'}",
            f"childlogdir={state}",
            # As root (a container, CI) it stays root, knowingly: it says so instead of warning.
            *(["user=root"] if os.geteuid() == 0 else []),
            "",
        ]
    )
    programs = [program_section(name, command, directory) for name, command in processes.items()]
    return "\n".join([header, *programs])


def main(argv: list[str]) -> None:
    procfile = Path(argv[0] if argv else "Procfile").resolve()
    directory = procfile.parent
    # One state directory per PORT_BASE: two systems on one machine keep apart.
    state = directory / ".dev" / f"run-{os.environ.get('PORT_BASE', '8000')}"
    state.mkdir(parents=True, exist_ok=True)
    config = state / "supervisord.conf"
    processes = procfile_processes(procfile)
    config.write_text(configuration(processes, directory, state))
    supervisord = shutil.which("supervisord", path=str(Path(sys.executable).parent))
    if supervisord is None:
        raise SystemExit("supervisord is missing: make install")
    restarted = ", ".join(f"{name} if it fails" if name in RUN_ONCE else name for name in processes)
    print(
        f"supervisord runs the Procfile's processes ({config}): one that exits is started again"
        f" ({restarted}); Ctrl-C stops them all.",
        flush=True,
    )
    os.execv(supervisord, [supervisord, "-n", "-c", str(config)])  # noqa: S606 - ours


if __name__ == "__main__":
    main(sys.argv[1:])
