"""Every request's access line: written straight to the JSON handler when it is all a record of
``pipedesk.access`` would reach, and then the very line logging itself writes."""

import io
import json
import logging
from typing import Any, ClassVar

import pytest
from fastapi import APIRouter

from pipedesk_common.app import create_app
from pipedesk_common.observability import JsonLogFormatter
from pipedesk_common.settings import BaseServiceSettings
from pipedesk_testkit.clients import app_client

pytestmark = pytest.mark.asyncio


class ProbeSettings(BaseServiceSettings):
    service_name: ClassVar[str] = "probe"


def _access_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    return [line for line in lines if line["logger"] == "pipedesk.access"]


async def test_the_access_line_written_straight_is_the_line_logging_writes(
    service_env: dict[str, Any],
) -> None:
    router = APIRouter()

    @router.get("/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    # Building the app installs the JSON handler as the root logger's only handler.
    settings = ProbeSettings(**{**service_env, "LOG_LEVEL": "INFO"})
    app = create_app(settings, title="probe", routers=[router])
    root = logging.getLogger()
    (handler,) = root.handlers
    assert isinstance(handler, logging.StreamHandler)
    straight = io.StringIO()
    previous_stream = handler.setStream(straight)
    made_by = logging.getLogRecordFactory()
    records: list[str] = []

    def counted(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = made_by(*args, **kwargs)
        records.append(record.name)
        return record

    logging.setLogRecordFactory(counted)
    through = io.StringIO()
    second = logging.StreamHandler(through)
    second.setFormatter(JsonLogFormatter("probe"))
    try:
        async with app_client(app) as client:
            first = await client.get("/things/a", headers={"X-Request-ID": "req-access"})
            assert first.status_code == 200
            assert "pipedesk.access" not in records  # written without a record
            # With a second handler, the record goes through logging, to both handlers.
            root.addHandler(second)
            again = await client.get("/things/a", headers={"X-Request-ID": "req-access"})
            assert again.status_code == 200
            assert "pipedesk.access" in records
    finally:
        root.removeHandler(second)
        logging.setLogRecordFactory(made_by)
        if previous_stream is not None:
            handler.setStream(previous_stream)
    written, logged = _access_lines(straight), _access_lines(through)
    assert len(written) == 2
    assert len(logged) == 1
    assert written[1] == logged[0]
    fast, slow = written[0], logged[0]
    assert list(fast) == list(slow)  # the same keys in the same order
    varying = {"time", "duration_ms", "trace_id"}
    assert {k: v for k, v in fast.items() if k not in varying} == {
        k: v for k, v in slow.items() if k not in varying
    }
    assert fast["request_id"] == "req-access"
    assert fast["route"] == "/things/{thing_id}"
    assert fast["status"] == 200
    assert fast["level"] == "info"
    assert fast["message"] == "request"
    assert len(fast["trace_id"]) == 32
