from fastapi import FastAPI

from drive_service.app import build_app
from drive_service.settings import DriveSettings
from pipedesk_common.serve import serve


def app() -> FastAPI:
    """The app of one worker process, from the environment."""
    return build_app(DriveSettings())


if __name__ == "__main__":
    serve("drive_service.__main__:app", DriveSettings())
