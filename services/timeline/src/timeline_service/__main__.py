from fastapi import FastAPI

from pipedesk_common.serve import serve
from timeline_service.app import build_app
from timeline_service.settings import TimelineSettings


def app() -> FastAPI:
    """The app of one worker process, from the environment."""
    return build_app(TimelineSettings())


if __name__ == "__main__":
    serve(
        "timeline_service.__main__:app",
        TimelineSettings(),
        # open event streams must not hold a shutdown for ever
        timeout_graceful_shutdown=10,
    )
