"""``python -m pipedesk_testkit.service_group <package>...``: several services, each run as
``python -m <package>`` runs it, in a process of its own. The processes are forked from this one
once it has imported every package's ``__main__``, so the imports they share (FastAPI,
SQLAlchemy, OpenTelemetry…) are paid once, not once a process: a test that starts five services
waits for them seconds less.

SIGTERM or SIGINT is passed on to every service; when one exits, the others are stopped too. A
service still running 8 seconds after it was stopped is killed (``run_process`` kills this
process after 10). Exits once all have: 0 if every service exited with 0, else 1.
"""

from __future__ import annotations

import importlib
import os
import runpy
import signal
import sys
import time
import traceback
from types import FrameType

STOP_SECONDS = 8.0
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def start(package: str) -> int:
    """Fork a process running ``package`` as ``python -m`` would; its pid."""
    pid = os.fork()
    if pid:
        return pid
    for signum in STOP_SIGNALS:  # uvicorn installs its own when it starts
        signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    # As under ``python -m``, the package's __main__ runs as __main__ and is not yet imported
    # under its own name (uvicorn imports it again for the app factory it names).
    del sys.modules[f"{package}.__main__"]
    code = 1
    try:
        runpy.run_module(package, run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exit_:
        code = 0 if exit_.code is None else exit_.code if isinstance(exit_.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # never the parent's exit handlers, in a fork


def main(packages: list[str]) -> int:
    for package in packages:
        importlib.import_module(f"{package}.__main__")
    running: dict[int, str] = {}
    stopped_at: float | None = None

    def stop(signum: int = signal.SIGTERM, frame: FrameType | None = None) -> None:
        nonlocal stopped_at
        if stopped_at is None:
            stopped_at = time.monotonic()
            for pid in running:
                os.kill(pid, signal.SIGTERM)

    for signum in STOP_SIGNALS:
        signal.signal(signum, stop)
    for package in packages:
        # Held back across the fork: this process stops a service it has noted, and the service
        # meets the signal only once it no longer has this process's handler.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        running[start(package)] = package
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    failed = False
    while running:
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            if stopped_at is not None and time.monotonic() - stopped_at > STOP_SECONDS:
                for late in running:
                    os.kill(late, signal.SIGKILL)
            time.sleep(0.05)
            continue
        package = running.pop(pid)
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            failed = True
            print(f"{package} exited with {code}", file=sys.stderr, flush=True)
        stop()
    return 1 if failed else 0


if __name__ == "__main__":
    status = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)  # the services are gone: no need to tear down all they imported
