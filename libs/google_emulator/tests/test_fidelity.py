"""The discovery-schema validator, directly and as the app's middleware."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import Request

from google_emulator.app import create_emulator_app
from google_emulator.core import Emulator
from google_emulator.fidelity import check_response, find_method
from pipedesk_testkit.servers import serve_in_thread

GOOD_TASK = {
    "kind": "tasks#task",
    "id": "abc",
    "etag": '"x"',
    "title": "t",
    "updated": "2026-01-01T00:00:00.000Z",
    "status": "needsAction",
    "links": [{"type": "email", "link": "https://x", "description": ""}],
}


def test_valid_payload_passes() -> None:
    assert check_response("tasks.tasks.get", GOOD_TASK) == []
    assert check_response("tasks.tasks.list", {"kind": "tasks#tasks", "items": [GOOD_TASK]}) == []


def test_wrong_payloads_are_caught() -> None:
    problems = check_response(
        "tasks.tasks.list",
        {"kind": "tasks#tasks", "items": [{**GOOD_TASK, "title": 3, "color": "red"}], "n": 1},
    )
    assert any("$.items[0].title: expected a string" in p for p in problems)
    assert any("'color' is not in the schema" in p for p in problems)
    assert any("'n' is not in the schema" in p for p in problems)
    assert check_response("tasks.tasks.get", {**GOOD_TASK, "deleted": "yes"})
    assert check_response("tasks.tasks.get", {**GOOD_TASK, "links": {}})
    assert check_response("tasks.tasks.get", {}) != []


def test_int64_and_date_time_formats() -> None:
    assert find_method("calendar.events.list") is not None
    event = {"id": "e1", "sequence": 1, "updated": "2026-01-01T00:00:00.000Z"}
    assert check_response("calendar.events.get", event) == []
    assert check_response("calendar.events.get", {**event, "updated": "yesterday"})
    assert check_response("calendar.events.get", {**event, "sequence": "1"})
    channel = {"kind": "api#channel", "id": "c", "expiration": 1767225600000}
    assert any("int64" in p for p in check_response("calendar.events.watch", channel))
    assert check_response("calendar.events.watch", {**channel, "expiration": "1767225600000"}) == []


def test_unknown_methods_and_bodyless_methods_are_not_checked() -> None:
    assert check_response("tasks.tasks.fly", {"anything": 1}) == []
    assert check_response("tasks.tasks.clear", {"anything": 1}) == []


def test_middleware_records_violations_and_log_skips_admin() -> None:
    emulator = Emulator()
    app = create_emulator_app(emulator)

    @app.get("/broken")
    async def broken(request: Request) -> dict[str, Any]:
        request.state.api_method = "tasks.tasklists.get"
        return {"kind": "tasks#taskList", "id": 7}

    with serve_in_thread(app) as url:
        assert httpx.get(f"{url}/broken").status_code == 200
        violations = httpx.get(f"{url}/_emulator/fidelity").json()
        required = httpx.post(f"{url}/_emulator/faults", json={})
    assert violations == [
        {
            "api_method": "tasks.tasklists.get",
            "path": "/broken",
            "message": "$.id: expected a string, got int",
        }
    ]
    assert [(r.path, r.api, r.status) for r in emulator.requests] == [
        ("/broken", "tasks.tasklists.get", 200)
    ]
    assert required.status_code == 400
    assert required.json()["error"]["errors"][0]["reason"] == "required"
