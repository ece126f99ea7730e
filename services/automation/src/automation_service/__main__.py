from fastapi import FastAPI

from automation_service.app import build_app
from automation_service.settings import AutomationSettings
from pipedesk_common.serve import serve


def app() -> FastAPI:
    """The app of one worker process, from the environment."""
    return build_app(AutomationSettings())


if __name__ == "__main__":
    serve("automation_service.__main__:app", AutomationSettings())
