from fastapi import FastAPI

from crm_service.app import build_app
from crm_service.settings import CrmSettings
from pipedesk_common.serve import serve


def app() -> FastAPI:
    """The app of one worker process, from the environment."""
    return build_app(CrmSettings())


if __name__ == "__main__":
    serve("crm_service.__main__:app", CrmSettings())
