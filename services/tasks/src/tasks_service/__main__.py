import uvicorn

from tasks_service.app import build_app
from tasks_service.settings import TasksSettings

if __name__ == "__main__":
    settings = TasksSettings()
    uvicorn.run(build_app(settings), host=settings.host, port=settings.listen_port, log_config=None)
