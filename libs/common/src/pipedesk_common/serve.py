"""``python -m <service>``: the service's app under uvicorn, in ``WORKERS`` processes.

Each process builds the app from the environment (its relay, consumers and database pool
included) and serves it on uvloop with httptools' parser; its pool is the service's connection
budget divided among the processes (see ``BaseServiceSettings.process_pool_size``), so more
processes never mean more connections.
"""

from __future__ import annotations

from typing import Any

import uvicorn

from pipedesk_common.settings import BaseServiceSettings


def serve(factory: str, settings: BaseServiceSettings, **options: Any) -> None:
    """Run ``factory`` (``"module:function"``, a function building the app from the
    environment) on the service's host and port, in ``settings.workers`` processes."""
    uvicorn.run(
        factory,
        factory=True,
        host=settings.host,
        port=settings.listen_port,
        workers=settings.workers,
        log_config=None,
        # Named, not "auto": a missing uvloop or httptools fails the start instead of serving
        # on the slower pure-Python loop and parser.
        loop="uvloop",
        http="httptools",
        # The request-context middleware writes each request's access line (with its route
        # template); uvicorn's own would still format its arguments for every request.
        access_log=False,
        **options,
    )
