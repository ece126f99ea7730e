"""``python -m google_emulator``: serve the emulator on ``EMULATOR_HOST`` (default 127.0.0.1)."""

from __future__ import annotations

import os

import uvicorn

from google_emulator.app import create_emulator_app


def port_from_environment() -> int:
    """``EMULATOR_PORT`` if set, else ``PORT_BASE`` (default 8000) + 90."""
    explicit = os.environ.get("EMULATOR_PORT")
    if explicit:
        return int(explicit)
    return int(os.environ.get("PORT_BASE") or 8000) + 90


def host_from_environment() -> str:
    """``EMULATOR_HOST``: in a container, all interfaces, so a browser on the host reaches it."""
    return os.environ.get("EMULATOR_HOST") or "127.0.0.1"


def main() -> None:
    """Run the emulator until interrupted."""
    uvicorn.run(create_emulator_app(), host=host_from_environment(), port=port_from_environment())


if __name__ == "__main__":
    main()
