import uvicorn

from drive_service.app import build_app
from drive_service.settings import DriveSettings

if __name__ == "__main__":
    settings = DriveSettings()
    uvicorn.run(build_app(settings), host=settings.host, port=settings.listen_port, log_config=None)
