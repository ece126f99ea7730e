"""The tasks service: Google Tasks linked to CRM records, on the Google service kit."""

from pipedesk_common.mirror.assembly import GoogleProduct, ProductLifecycle
from tasks_service import api, disconnect, jobs, models, sync
from tasks_service.google import TasksGoogle

TASKS = GoogleProduct(
    name="tasks",
    api_version="v1",
    title="PipeDesk tasks",
    description="Google Tasks lists and tasks in the users' accounts, linked to CRM records, "
    "assignable within the org, mirrored locally and kept in step by polling.",
    tables=models.TABLES,
    routers=[api.router],
    google=TasksGoogle,
    sync=sync.tasks_sync,
    resync=sync.resync_user,
    jobs=jobs.tasks_jobs,
    example_job="tasks.poll",
    access_ended=disconnect.access_ended,
    lifecycle=ProductLifecycle(),
)
build_app = TASKS.app
