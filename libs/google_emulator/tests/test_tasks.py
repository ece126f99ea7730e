"""Tasks v1 through the real google-api-python-client, plus faults and the request log."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from googleapiclient.errors import HttpError


def test_tasklists_round_trip(emu: Any) -> None:
    service = emu.tasks_for()
    default = service.tasklists().get(tasklist="@default").execute()
    assert default["kind"] == "tasks#taskList"
    assert default["title"] == "My Tasks"

    created = service.tasklists().insert(body={"title": "Deals"}).execute()
    patched = service.tasklists().patch(tasklist=created["id"], body={"title": "Deals 2"}).execute()
    assert patched["title"] == "Deals 2"
    assert patched["etag"] != created["etag"]
    updated = service.tasklists().update(tasklist=created["id"], body={"title": "D3"}).execute()
    assert updated["title"] == "D3"
    titles = [item["title"] for item in service.tasklists().list().execute()["items"]]
    assert titles == ["D3", "My Tasks"]  # by title

    service.tasklists().delete(tasklist=created["id"]).execute()
    with pytest.raises(HttpError) as caught:
        service.tasklists().get(tasklist=created["id"]).execute()
    assert caught.value.resp.status == 404
    with pytest.raises(HttpError) as refused:
        service.tasklists().delete(tasklist="@default").execute()
    assert refused.value.resp.status == 400

    page = service.tasklists().list(maxResults=1).execute()
    assert len(page["items"]) == 1
    assert "nextPageToken" not in page


def test_lists_come_by_title_not_default_first(emu: Any) -> None:
    service = emu.tasks_for()
    service.tasklists().insert(body={"title": "Acme deals"}).execute()
    titles = [t["title"] for t in service.tasklists().list().execute()["items"]]
    assert titles == ["Acme deals", "My Tasks"]
    assert service.tasklists().get(tasklist="@default").execute()["title"] == "My Tasks"


def test_lists_are_per_user(emu: Any) -> None:
    emu.tasks_for("ann@example.com").tasklists().insert(body={"title": "Ann's"}).execute()
    other = emu.tasks_for("bob@example.com").tasklists().list().execute()
    assert [item["title"] for item in other["items"]] == ["My Tasks"]


def test_task_lifecycle(emu: Any) -> None:
    tasks = emu.tasks_for().tasks()
    task = tasks.insert(
        tasklist="@default",
        body={"title": "Call Acme", "notes": "about renewal", "due": "2026-12-01T15:30:00Z"},
    ).execute()
    assert task["kind"] == "tasks#task"
    assert task["status"] == "needsAction"
    assert task["due"] == "2026-12-01T00:00:00.000Z"
    assert task["updated"].endswith("Z")
    assert "completed" not in task

    fetched = tasks.get(tasklist="@default", task=task["id"]).execute()
    assert fetched == task

    patched = tasks.patch(tasklist="@default", task=task["id"], body={"notes": None}).execute()
    assert "notes" not in patched
    assert patched["title"] == "Call Acme"

    done = tasks.patch(tasklist="@default", task=task["id"], body={"status": "completed"}).execute()
    assert done["status"] == "completed"
    assert done["completed"].endswith("Z")
    reopened = tasks.update(
        tasklist="@default", task=task["id"], body={"title": "Call Acme again"}
    ).execute()
    assert reopened["status"] == "needsAction"
    assert "completed" not in reopened
    assert "due" not in reopened

    with pytest.raises(HttpError) as caught:
        tasks.patch(tasklist="@default", task=task["id"], body={"status": "maybe"}).execute()
    assert caught.value.resp.status == 400


def test_subtasks_move_and_positions(emu: Any) -> None:
    tasks = emu.tasks_for().tasks()
    first = tasks.insert(tasklist="@default", body={"title": "first"}).execute()
    second = tasks.insert(
        tasklist="@default", body={"title": "second"}, previous=first["id"]
    ).execute()
    child = tasks.insert(tasklist="@default", body={"title": "child"}, parent=first["id"]).execute()
    assert child["parent"] == first["id"]
    listed = tasks.list(tasklist="@default").execute()["items"]
    assert [item["title"] for item in listed] == ["first", "child", "second"]
    assert first["position"] < second["position"]

    moved = tasks.move(tasklist="@default", task=second["id"], parent=first["id"]).execute()
    assert moved["parent"] == first["id"]
    listed = tasks.list(tasklist="@default").execute()["items"]
    assert [item["title"] for item in listed] == ["first", "second", "child"]

    top = tasks.move(tasklist="@default", task=second["id"], previous=first["id"]).execute()
    assert "parent" not in top
    with pytest.raises(HttpError) as caught:
        tasks.move(tasklist="@default", task=first["id"], parent=child["id"]).execute()
    assert caught.value.resp.status == 400

    other = emu.tasks_for().tasklists().insert(body={"title": "Other"}).execute()
    tasks.move(tasklist="@default", task=first["id"], destinationTasklist=other["id"]).execute()
    moved_titles = [i["title"] for i in tasks.list(tasklist=other["id"]).execute()["items"]]
    assert moved_titles == ["first", "child"]


def test_delete_and_clear(emu: Any) -> None:
    tasks = emu.tasks_for().tasks()
    gone = tasks.insert(tasklist="@default", body={"title": "gone"}).execute()
    done = tasks.insert(
        tasklist="@default", body={"title": "done", "status": "completed"}
    ).execute()
    tasks.insert(tasklist="@default", body={"title": "open"}).execute()
    tasks.delete(tasklist="@default", task=gone["id"]).execute()

    def titles(**params: Any) -> list[str]:
        body = tasks.list(tasklist="@default", **params).execute()
        return sorted(item["title"] for item in body.get("items", []))

    assert titles() == ["done", "open"]
    assert titles(showDeleted=True) == ["done", "gone", "open"]
    assert titles(showCompleted=False) == ["open"]

    tasks.clear(tasklist="@default").execute()
    assert titles() == ["open"]
    assert titles(showHidden=True) == ["done", "open"]
    hidden = tasks.get(tasklist="@default", task=done["id"]).execute()
    assert hidden["hidden"] is True


def test_paging_and_updated_min(emu: Any) -> None:
    tasks = emu.tasks_for().tasks()
    for number in range(5):
        tasks.insert(tasklist="@default", body={"title": f"t{number}"}).execute()
    seen: list[str] = []
    request = tasks.list(tasklist="@default", maxResults=2)
    pages = 0
    while request is not None:
        response = request.execute()
        seen += [item["title"] for item in response["items"]]
        pages += 1
        request = tasks.list_next(request, response)
    assert pages == 3
    assert sorted(seen) == [f"t{n}" for n in range(5)]

    emu.admin("POST", "/clock", json={"advance_seconds": 60})
    mark = emu.admin("GET", "/clock").json()["now"]
    later = tasks.insert(tasklist="@default", body={"title": "later"}).execute()
    recent = tasks.list(tasklist="@default", updatedMin=mark).execute()
    assert [item["id"] for item in recent["items"]] == [later["id"]]

    log = emu.admin("GET", "/requests", params={"api": "tasks.tasks.list"}).json()
    assert log[-1]["method"] == "GET"
    assert log[-1]["query"]["updatedMin"] == mark
    assert log[-1]["user"] == "ann@example.com"
    assert log[-1]["status"] == 200
    assert log[-1]["path"] == "/tasks/v1/lists/@default/tasks"


def test_a_listing_pages_over_its_snapshot_with_its_own_parameters(emu: Any) -> None:
    tasks = emu.tasks_for().tasks()
    ids = [
        tasks.insert(tasklist="@default", body={"title": f"t{n}"}).execute()["id"] for n in range(3)
    ]
    first = tasks.list(tasklist="@default", maxResults=1, showHidden=True).execute()
    # A task placed first between pages shifts nothing: the listing is the first page's.
    tasks.insert(tasklist="@default", body={"title": "newest"}).execute()
    listed = [item["id"] for item in first["items"]]
    token = first["nextPageToken"]
    while token:
        page = tasks.list(
            tasklist="@default", maxResults=1, showHidden=True, pageToken=token
        ).execute()
        listed += [item["id"] for item in page["items"]]
        token = page.get("nextPageToken")
    assert sorted(listed) == sorted(ids)
    with pytest.raises(HttpError) as refused:
        tasks.list(tasklist="@default", maxResults=1, pageToken=first["nextPageToken"]).execute()
    assert refused.value.resp.status == 400


def test_seeded_completion_is_seen_by_list(emu: Any) -> None:
    tasks = emu.tasks_for().tasks()
    task = tasks.insert(tasklist="@default", body={"title": "Send quote"}).execute()
    emu.admin("POST", "/clock", json={"advance_seconds": 30})
    since = emu.admin("GET", "/clock").json()["now"]
    seeded = emu.admin(
        "POST",
        "/tasks/ann@example.com/lists/@default/tasks",
        json={"id": task["id"], "status": "completed"},
    ).json()
    assert (seeded["status"], seeded["hidden"]) == ("completed", True)
    # Completed in Google's own app: hidden, so listed only with showHidden, as at Google.
    assert "items" not in tasks.list(tasklist="@default", updatedMin=since).execute()
    changed = tasks.list(tasklist="@default", updatedMin=since, showHidden=True).execute()["items"]
    assert [(item["id"], item["status"]) for item in changed] == [(task["id"], "completed")]
    assert changed[0]["updated"] > task["updated"]
    window = tasks.list(tasklist="@default", completedMin=since, showHidden=True).execute()
    assert [item["id"] for item in window["items"]] == [task["id"]]
    reopened = emu.admin(
        "POST",
        "/tasks/ann@example.com/lists/@default/tasks",
        json={"id": task["id"], "status": "needsAction"},
    ).json()
    assert "hidden" not in reopened
    by_api = tasks.insert(tasklist="@default", body={"title": "Done", "status": "completed"})
    assert "hidden" not in by_api.execute()  # completed through the API: not hidden

    new = emu.admin(
        "POST", "/tasks/ann@example.com/lists/@default/tasks", json={"title": "From phone"}
    ).json()
    assert tasks.get(tasklist="@default", task=new["id"]).execute()["title"] == "From phone"


def test_injected_429_then_success(emu: Any) -> None:
    service = emu.tasks_for()
    fault = {"api_method": "tasks.tasks.list", "status": 429, "retry_after": 1, "count": 1}
    emu.admin("POST", "/faults", json=fault)
    with pytest.raises(HttpError) as caught:
        service.tasks().list(tasklist="@default").execute(num_retries=0)
    assert caught.value.resp.status == 429
    assert caught.value.resp["retry-after"] == "1"
    assert caught.value.error_details[0]["reason"] == "rateLimitExceeded"
    assert "kind" in service.tasks().list(tasklist="@default").execute(num_retries=0)

    emu.admin("POST", "/faults", json={**fault, "api_method": "tasks.*"})
    assert "kind" in service.tasks().list(tasklist="@default").execute(num_retries=1)
    statuses = [entry["status"] for entry in emu.admin("GET", "/requests").json()]
    assert statuses[-4:] == [429, 200, 429, 200]

    emu.admin("POST", "/faults", json={**fault, "status": 503})
    emu.admin("DELETE", "/faults")
    assert "kind" in service.tasks().list(tasklist="@default").execute(num_retries=0)
    emu.admin("DELETE", "/requests")
    assert emu.admin("GET", "/requests").json() == []


def test_a_fault_for_one_user_leaves_everyone_else_alone(emu: Any) -> None:
    ann, bob = emu.tasks_for("ann@example.com"), emu.tasks_for("bob@example.com")
    fault = {"api_method": "tasks.tasks.list", "status": 500, "count": 1}
    emu.admin("POST", "/faults", json={**fault, "user": "Bob@example.com"})
    assert "kind" in ann.tasks().list(tasklist="@default").execute(num_retries=0)
    with pytest.raises(HttpError) as caught:
        bob.tasks().list(tasklist="@default").execute(num_retries=0)
    assert caught.value.resp.status == 500
    assert "kind" in bob.tasks().list(tasklist="@default").execute(num_retries=0)


def test_bad_parameters_are_google_shaped_400(emu: Any) -> None:
    token = emu.mint_token("ann@example.com", ["https://www.googleapis.com/auth/tasks"])
    headers = {"Authorization": f"Bearer {token}"}
    bad = httpx.get(
        f"{emu.url}/tasks/v1/lists/@default/tasks", params={"maxResults": "x"}, headers=headers
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["errors"][0]["reason"] == "invalid"
    bad_date = httpx.get(
        f"{emu.url}/tasks/v1/lists/@default/tasks", params={"dueMin": "soon"}, headers=headers
    )
    assert bad_date.status_code == 400
    nothing = httpx.get(f"{emu.url}/tasks/v1/nowhere", headers=headers)
    assert nothing.status_code == 404
    assert nothing.json()["error"]["code"] == 404
    unparsable = httpx.post(f"{emu.url}/tasks/v1/users/@me/lists", content=b"{", headers=headers)
    assert unparsable.status_code == 400


@pytest.mark.parametrize("reason", ["userRateLimitExceeded", "quotaExceeded", "dailyLimitExceeded"])
def test_usage_limit_faults_answer_in_googles_usage_limits_domain(emu: Any, reason: str) -> None:
    service = emu.tasks_for()
    fault = {"api_method": "tasks.tasks.list", "status": 403, "reason": reason}
    emu.admin("POST", "/faults", json=fault)
    with pytest.raises(HttpError) as caught:
        service.tasks().list(tasklist="@default").execute(num_retries=0)
    assert caught.value.resp.status == 403
    assert caught.value.error_details[0]["reason"] == reason
    assert caught.value.error_details[0]["domain"] == "usageLimits"
    emu.admin("POST", "/faults", json={**fault, "status": 429, "reason": ""})
    with pytest.raises(HttpError) as limited:
        service.tasks().list(tasklist="@default").execute(num_retries=0)
    assert limited.value.error_details[0] == {
        "domain": "usageLimits",
        "reason": "rateLimitExceeded",
        "message": "Injected fault: rateLimitExceeded",
    }


def titles(service: Any) -> list[str]:
    listed = service.tasks().list(tasklist="@default").execute(num_retries=0)
    return [task["title"] for task in listed.get("items", [])]


def test_a_fault_after_the_store_keeps_the_write_and_fails_the_answer(emu: Any) -> None:
    service = emu.tasks_for()
    fault = {"api_method": "tasks.tasks.insert", "status": 503, "after_store": True}
    emu.admin("POST", "/faults", json={**fault, "user": "ann@example.com"})
    # Read calls are not what the fault names; the insert is carried out, its answer is a 503.
    assert titles(service) == []
    with pytest.raises(HttpError) as caught:
        service.tasks().insert(tasklist="@default", body={"title": "Once"}).execute(num_retries=0)
    assert caught.value.resp.status == 503
    assert titles(service) == ["Once"]
    # Taken once: the next insert answers normally.
    service.tasks().insert(tasklist="@default", body={"title": "Twice"}).execute(num_retries=0)
    assert sorted(titles(service)) == ["Once", "Twice"]


def test_a_fault_after_the_store_can_cut_the_answer_off(emu: Any) -> None:
    token = emu.mint_token("ann@example.com", ["https://www.googleapis.com/auth/tasks"])
    headers = {"Authorization": f"Bearer {token}"}
    fault = {"api_method": "tasks.tasklists.insert", "status": 0, "after_store": True, "drop": True}
    emu.admin("POST", "/faults", json=fault)
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.post(f"{emu.url}/tasks/v1/users/@me/lists", json={"title": "Q3"}, headers=headers)
    listed = httpx.get(f"{emu.url}/tasks/v1/users/@me/lists", headers=headers).json()
    assert [item["title"] for item in listed["items"]] == ["My Tasks", "Q3"]


def test_a_fault_after_the_store_can_hold_the_answer_past_the_callers_patience(emu: Any) -> None:
    token = emu.mint_token("ann@example.com", ["https://www.googleapis.com/auth/tasks"])
    headers = {"Authorization": f"Bearer {token}"}
    fault = {"api_method": "tasks.tasklists.insert", "status": 0, "after_store": True}
    emu.admin("POST", "/faults", json={**fault, "latency_ms": 60_000})
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{emu.url}/tasks/v1/users/@me/lists", json={"title": "Q4"}, headers=headers, timeout=1
        )
    emu.admin("DELETE", "/faults")  # releases the held answer
    listed = httpx.get(f"{emu.url}/tasks/v1/users/@me/lists", headers=headers).json()
    assert [item["title"] for item in listed["items"]] == ["My Tasks", "Q4"]


def test_a_fault_after_the_store_needs_a_way_to_fail(emu: Any) -> None:
    refused = httpx.post(
        f"{emu.url}/_emulator/faults",
        json={"api_method": "tasks.tasks.insert", "status": 0, "after_store": True},
    )
    assert refused.status_code == 400
    dropped = httpx.post(
        f"{emu.url}/_emulator/faults",
        json={"api_method": "tasks.tasks.insert", "status": 0, "drop": True},
    )
    assert dropped.status_code == 400
