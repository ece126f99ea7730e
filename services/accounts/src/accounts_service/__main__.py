from fastapi import FastAPI

from accounts_service.app import build_app
from accounts_service.settings import AccountsSettings
from pipedesk_common.serve import serve


def app() -> FastAPI:
    """The app of one worker process, from the environment."""
    return build_app(AccountsSettings())


if __name__ == "__main__":
    serve("accounts_service.__main__:app", AccountsSettings())
