import uvicorn

from accounts_service.app import build_app
from accounts_service.settings import AccountsSettings

if __name__ == "__main__":
    settings = AccountsSettings()
    uvicorn.run(build_app(settings), host=settings.host, port=settings.listen_port, log_config=None)
