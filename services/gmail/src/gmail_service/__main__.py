from fastapi import FastAPI

from gmail_service.app import build_app
from gmail_service.settings import GmailSettings
from pipedesk_common.serve import serve


def app() -> FastAPI:
    """The app of one worker process, from the environment."""
    return build_app(GmailSettings())


if __name__ == "__main__":
    serve("gmail_service.__main__:app", GmailSettings())
