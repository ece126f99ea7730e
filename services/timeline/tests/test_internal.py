"""The records items are on, told to the gmail and automation services (and no other caller):
by identity, and a record's items held by one service (gmail only), newest first, a keyset page
at a time."""

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from joserfc.jwk import ECKey

from pipedesk_common.auth import Role, ServiceTokenIssuer
from pipedesk_common.clock import SystemClock
from pipedesk_common.keys import dev_service_key_path
from pipedesk_testkit.identities import Identity, Users
from pipedesk_testkit.plugin import OpenService

pytestmark = pytest.mark.asyncio
BASE_TIME = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)  # the feed's items' default time


def service_headers(identity: Identity, caller: str) -> dict[str, str]:
    key = ECKey.import_key(dev_service_key_path(identity.key_dir, caller).read_bytes())
    token = ServiceTokenIssuer(caller, key, clock=SystemClock()).token_for("timeline")
    return {"Authorization": f"Bearer {token}"}


async def test_the_gmail_service_learns_which_records_its_mail_is_on(
    timeline_app: OpenService, users: Users, feed, identity: Identity
) -> None:
    rep = users.make(Role.REP, teams=["t1"])
    lead = str(uuid4())
    mail = {"kind": "email", "service": "gmail", "owner_id": rep.sub, "sharing": "full"}
    async with timeline_app() as timeline:
        await feed.send(feed.access("lead", lead, rep))
        await feed.send(
            feed.item("a", identity="<a@x>", links=[("lead", lead)], **mail),
            feed.item(
                "b",
                identity="<b@x>",
                links=[("lead", lead)],
                occurred_at=BASE_TIME + timedelta(hours=1),
                **mail,
            ),
            feed.item("kickoff", identity="kickoff-ical", links=[("lead", lead)]),
        )
        gmail = service_headers(identity, "gmail")
        org = feed.org_id
        records = await timeline.get(
            f"/internal/orgs/{org}/items/records",
            params={"identity": ["<a@x>", "<unknown@x>"]},
            headers=gmail,
        )
        assert records.status_code == 200, records.text
        [item] = records.json()["items"]
        assert (item["identity"], item["records"]) == ("<a@x>", [{"type": "lead", "id": lead}])
        elsewhere = await timeline.get(
            "/internal/orgs/another-org/items/records",
            params={"identity": "<a@x>"},
            headers=gmail,
        )
        assert elsewhere.json()["items"] == []

        path = f"/internal/orgs/{org}/records/lead/{lead}/items"
        first = await timeline.get(path, params={"service": "gmail", "limit": 1}, headers=gmail)
        [newest] = first.json()["items"]
        assert newest["identity"] == "<b@x>"
        rest = await timeline.get(
            path,
            params={
                "service": "gmail",
                "after_at": newest["occurred_at"],
                "after_id": newest["item_id"],
            },
            headers=gmail,
        )
        assert [i["identity"] for i in rest.json()["items"]] == ["<a@x>"]  # no meeting

        for refused, status in (
            (service_headers(identity, "drive"), 403),
            (service_headers(identity, "automation"), 403),
            (rep.headers, 401),
        ):
            answer = await timeline.get(path, params={"service": "gmail"}, headers=refused)
            assert answer.status_code == status, answer.text
        # The automation service reads the records a message is on (its rules run on them).
        records_path = f"/internal/orgs/{org}/items/records"
        for caller, status in (("automation", 200), ("drive", 403), ("calendar", 403)):
            answer = await timeline.get(
                records_path,
                params={"identity": "<a@x>"},
                headers=service_headers(identity, caller),
            )
            assert answer.status_code == status, answer.text
        bad = await timeline.get(
            f"/internal/orgs/{org}/items/records", params={"identity": []}, headers=gmail
        )
        assert bad.status_code == 422
