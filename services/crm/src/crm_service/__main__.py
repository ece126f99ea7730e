import uvicorn

from crm_service.app import build_app
from crm_service.settings import CrmSettings

if __name__ == "__main__":
    settings = CrmSettings()
    uvicorn.run(build_app(settings), host=settings.host, port=settings.listen_port, log_config=None)
