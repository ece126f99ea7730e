import uvicorn

from timeline_service.app import build_app
from timeline_service.settings import TimelineSettings

if __name__ == "__main__":
    settings = TimelineSettings()
    uvicorn.run(
        build_app(settings),
        host=settings.host,
        port=settings.listen_port,
        log_config=None,
        timeout_graceful_shutdown=10,  # open event streams must not hold a shutdown for ever
    )
