from fastapi import FastAPI

from pipedesk_common.serve import serve
from tasks_service.app import build_app
from tasks_service.settings import TasksSettings


def app() -> FastAPI:
    """The app of one worker process, from the environment."""
    return build_app(TasksSettings())


if __name__ == "__main__":
    serve("tasks_service.__main__:app", TasksSettings())
