"""The automation API takes a body exactly when its OpenAPI document says it is valid: a body the
document allows is accepted, one it refuses is a ``422`` naming the field. The cross-field rules
are in the document (a flag's scope and team, a rule's record type and stages), a time zone is
one of the document's ``enum``, a rule's two sizes bound a range from either end, a calendar's
window may run over midnight, and a whole number is a JSON number (``234.0`` too), never a
boolean or a string."""

from typing import Any

import jsonschema_rs
import pytest

from automation_service.app import build_app
from automation_service.flags import SLA_WORKER
from automation_service.settings import AutomationSettings
from pipedesk_common.auth import Role
from pipedesk_common.moments import TIME_ZONES
from pipedesk_testkit.identities import Users
from pipedesk_testkit.plugin import OpenService

pytestmark = pytest.mark.asyncio

FLAG = f"/api/automation/flags/{SLA_WORKER}"
WEEK = {"mon": {"start": "09:00", "end": "17:00"}}


def document_allows(document: dict[str, Any], schema: str, body: dict[str, Any]) -> bool:
    wanted = {"$ref": f"#/components/schemas/{schema}", "components": document["components"]}
    return bool(jsonschema_rs.validator_for(wanted).is_valid(body))


def field_of(answer: Any) -> str:
    field: str = answer.json()["errors"][0]["field"]
    return field


async def test_a_flag_names_a_team_exactly_for_the_team_scope(
    open_service: OpenService, users: Users
) -> None:
    admin = users.make(Role.ADMIN, teams=["t1"])
    bodies: list[tuple[dict[str, Any], str | None]] = [
        ({"scope": "org", "enabled": True}, None),
        ({"scope": "org", "team_id": None, "enabled": False}, None),
        ({"scope": "team", "team_id": "t1", "enabled": True}, None),
        ({"scope": "team", "enabled": True}, "body.team_id"),
        ({"scope": "team", "team_id": None, "enabled": True}, "body.team_id"),
        ({"scope": "org", "team_id": "t1", "enabled": True}, "body.team_id"),
    ]
    async with open_service(build_app, AutomationSettings, jobs_enabled=False) as automation:
        document = (await automation.get("/openapi.json")).json()
        for body, refused in bodies:
            assert document_allows(document, "FlagWrite", body) is (refused is None), body
            answer = await automation.put(FLAG, json=body, headers=admin.headers)
            if refused is None:
                assert answer.status_code == 200, (body, answer.text)
            else:
                assert (answer.status_code, field_of(answer)) == (422, refused), answer.text


async def test_a_rule_on_leads_takes_no_stages_and_its_sizes_bound_a_range_either_way(
    open_service: OpenService, users: Users
) -> None:
    admin = users.make(Role.ADMIN)
    bodies: list[tuple[dict[str, Any], str | None]] = [
        ({"name": "Leads", "record_type": "lead"}, None),
        ({"name": "Leads", "record_type": "lead", "stages": None}, None),
        ({"name": "Won", "record_type": "deal", "stages": ["won"]}, None),
        ({"name": "Sized", "record_type": "deal", "min_size": 10, "max_size": 5}, None),
        ({"name": "Whole", "record_type": "deal", "min_size": 234.0}, None),
        ({"name": "Leads", "record_type": "lead", "stages": ["won"]}, "body.stages"),
        ({"name": "Flag", "record_type": "deal", "max_size": False}, "body.max_size"),
        ({"name": "Negative", "record_type": "deal", "max_size": -1}, "body.max_size"),
        ({"name": "Text", "record_type": "deal", "max_size": "5"}, "body.max_size"),
        ({"name": " \t", "record_type": "deal"}, "body.name"),
    ]
    async with open_service(build_app, AutomationSettings, jobs_enabled=False) as automation:
        document = (await automation.get("/openapi.json")).json()
        made = []
        for body, refused in bodies:
            assert document_allows(document, "RuleCreate", body) is (refused is None), body
            answer = await automation.post(
                "/api/automation/rules", json=body, headers=admin.headers
            )
            if refused is None:
                assert answer.status_code == 201, (body, answer.text)
                made.append(answer.json())
            else:
                assert (answer.status_code, field_of(answer)) == (422, refused), answer.text
        sized = next(rule for rule in made if rule["name"] == "Sized")
        assert (sized["min_size"], sized["max_size"]) == (5, 10)

        won = next(rule for rule in made if rule["name"] == "Won")
        path = f"/api/automation/rules/{won['id']}"
        to_leads_with_stages = {"record_type": "lead", "stages": ["won"]}
        assert not document_allows(document, "RuleUpdate", to_leads_with_stages)
        kept = await automation.patch(path, json=to_leads_with_stages, headers=admin.headers)
        assert (kept.status_code, field_of(kept)) == (422, "body.stages"), kept.text
        for name in ("file_types", "sender_domains"):
            assert not document_allows(document, "RuleUpdate", {name: None})
            kept = await automation.patch(path, json={name: None}, headers=admin.headers)
            assert (kept.status_code, field_of(kept)) == (422, f"body.{name}"), kept.text
        assert document_allows(document, "RuleUpdate", {"record_type": "lead"})
        moved = await automation.patch(path, json={"record_type": "lead"}, headers=admin.headers)
        assert (moved.status_code, moved.json()["stages"]) == (200, None), moved.text
        resized = await automation.patch(path, json={"max_size": 0}, headers=admin.headers)
        assert (resized.json()["min_size"], resized.json()["max_size"]) == (None, 0)


async def test_a_calendars_time_zone_is_one_of_the_documents_and_a_holiday_a_date(
    open_service: OpenService, users: Users
) -> None:
    admin = users.make(Role.ADMIN)
    bodies: list[tuple[dict[str, Any], str | None]] = [
        ({"time_zone": "Europe/Paris", "week": WEEK}, None),
        ({"time_zone": "UTC", "week": WEEK, "holidays": ["2026-12-25"]}, None),
        # zoneinfo reads these files too, but they are not among its available time zones
        ({"time_zone": "posix/Europe/Paris", "week": WEEK}, "body.time_zone"),
        ({"time_zone": "Mars/Olympus", "week": WEEK}, "body.time_zone"),
        ({"time_zone": "UTC", "week": WEEK, "holidays": [0]}, "body.holidays.0"),
        # a window over midnight; a calendar whose one weekday is not worked (never due)
        ({"time_zone": "UTC", "week": {"fri": {"start": "22:00", "end": "06:00"}}}, None),
        ({"time_zone": "UTC", "week": {"sun": {"start": "00:00", "end": "00:00"}}}, None),
        ({"time_zone": "UTC", "week": {}}, "body.week"),
    ]
    async with open_service(build_app, AutomationSettings, jobs_enabled=False) as automation:
        document = (await automation.get("/openapi.json")).json()
        schema = document["components"]["schemas"]["BusinessCalendarWrite"]
        assert schema["properties"]["time_zone"]["enum"] == list(TIME_ZONES)
        for body, refused in bodies:
            assert document_allows(document, "BusinessCalendarWrite", body) is (refused is None)
            answer = await automation.put(
                "/api/automation/sla/calendars/default", json=body, headers=admin.headers
            )
            if refused is None:
                assert answer.status_code == 200, (body, answer.text)
            else:
                assert (answer.status_code, field_of(answer)) == (422, refused), answer.text


async def test_a_policys_minutes_are_whole_numbers_never_booleans(
    open_service: OpenService, users: Users
) -> None:
    admin = users.make(Role.ADMIN)
    base = {"first_response_minutes": 60, "next_touch_minutes": 120}
    bodies: list[tuple[dict[str, Any], str | None]] = [
        (base, None),
        ({**base, "warning_minutes": 30.0}, None),
        ({**base, "warning_minutes": False}, "body.warning_minutes"),
        ({**base, "first_response_minutes": True}, "body.first_response_minutes"),
        ({**base, "next_touch_minutes": 1.5}, "body.next_touch_minutes"),
    ]
    async with open_service(build_app, AutomationSettings, jobs_enabled=False) as automation:
        document = (await automation.get("/openapi.json")).json()
        for body, refused in bodies:
            assert document_allows(document, "PolicyWrite", body) is (refused is None), body
            answer = await automation.put(
                "/api/automation/sla/policies/low", json=body, headers=admin.headers
            )
            if refused is None:
                assert answer.status_code == 200, (body, answer.text)
            else:
                assert (answer.status_code, field_of(answer)) == (422, refused), answer.text
