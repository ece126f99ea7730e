"""A service process whose Python allocations are traced: ``python traced_serve.py
module:factory PORT REPORT``. ``SIGUSR1`` starts a measurement (the peak is reset, then
``REPORT.reset`` written); ``SIGUSR2`` writes to ``REPORT`` how far the traced memory rose above
what it was then (the peak since, less what the process held before). Tests
measure one process of a chain this way, apart from the others (the emulator's among them)."""

import importlib
import signal
import sys
import tracemalloc
from pathlib import Path
from types import FrameType

import uvicorn


def main() -> None:
    target, port, report = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    tracemalloc.start()
    module, _, factory = target.partition(":")
    app = getattr(importlib.import_module(module), factory)()

    held = [0]

    def reset(_signal: int, _frame: FrameType | None) -> None:
        tracemalloc.reset_peak()
        held[0], _peak = tracemalloc.get_traced_memory()
        report.with_suffix(".reset").write_text("reset")

    def write_peak(_signal: int, _frame: FrameType | None) -> None:
        _current, peak = tracemalloc.get_traced_memory()
        report.write_text(str(peak - held[0]))

    signal.signal(signal.SIGUSR1, reset)
    signal.signal(signal.SIGUSR2, write_peak)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
