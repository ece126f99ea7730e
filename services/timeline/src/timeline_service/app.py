"""The timeline service process: its API, and the consumer that fills it."""

from fastapi import FastAPI

from pipedesk_common.access import AccessReplica
from pipedesk_common.app import ServiceContext, create_app
from pipedesk_common.clock import Clock, SystemClock
from pipedesk_common.consumer import Consumer
from timeline_service.api import router
from timeline_service.models import access_replica, inbox
from timeline_service.projection import subscribe_projection
from timeline_service.settings import TimelineSettings

ITEMS_QUEUE = "timeline.items"


def build_app(settings: TimelineSettings | None = None, clock: Clock | None = None) -> FastAPI:
    settings = settings or TimelineSettings()
    clock = clock or SystemClock()
    consumer = Consumer(ITEMS_QUEUE, inbox)

    def context() -> ServiceContext:
        current: ServiceContext = app.state.context
        return current

    replica = AccessReplica(
        access_replica,
        crm_url=settings.crm_base_url,
        http=lambda: context().http,
        issuer=lambda: context().issuer(),
    )
    replica.subscribe(consumer)
    subscribe_projection(consumer, clock)
    app = create_app(
        settings,
        title="PipeDesk timeline",
        description="One merged, access-controlled feed per CRM record.",
        routers=[router],
        clock=clock,
        consumers=[consumer],
    )
    app.state.access_replica = replica
    return app
