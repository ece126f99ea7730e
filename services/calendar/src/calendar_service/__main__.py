from fastapi import FastAPI

from calendar_service.app import build_app
from calendar_service.settings import CalendarSettings
from pipedesk_common.serve import serve


def app() -> FastAPI:
    """The app of one worker process, from the environment."""
    return build_app(CalendarSettings())


if __name__ == "__main__":
    serve("calendar_service.__main__:app", CalendarSettings())
