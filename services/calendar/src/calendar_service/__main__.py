import uvicorn

from calendar_service.app import build_app
from calendar_service.settings import CalendarSettings

if __name__ == "__main__":
    settings = CalendarSettings()
    uvicorn.run(build_app(settings), host=settings.host, port=settings.listen_port, log_config=None)
