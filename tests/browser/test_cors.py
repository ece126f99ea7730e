"""CORS as a browser enforces it: a page of another origin calls the API through the gateway with
the headers a frontend sends (Authorization, If-None-Match, Idempotency-Key, Last-Event-ID…) and
reads the headers it needs (ETag, Timeline-Version, Location, X-Request-ID); a page of an origin
the gateway does not list reads nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import httpx
import pytest
from playwright.async_api import Browser, Page, expect
from starlette.applications import Starlette
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from pipedesk_common.auth import Role
from pipedesk_testkit.identities import ActingUser, Users
from pipedesk_testkit.servers import serve_in_thread

if TYPE_CHECKING:
    from conftest import Shots, Stack

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Another origin</title>
<script src="/frontend.js" defer></script></head>
<body><h1>A frontend on another origin</h1><pre id="result"></pre></body></html>"""

# What a frontend does: read a timeline, revalidate it, create a record, resume a stream.
SCRIPT = """
const params = new URLSearchParams(location.search);
const gateway = params.get("gateway");
const auth = { Authorization: `Bearer ${params.get("token")}` };
const timeline = `${gateway}/api/timeline/lead/${params.get("lead")}`;

async function run() {
  const out = {};
  const first = await fetch(timeline, { headers: auth, cache: "no-store" });
  out.first = {
    status: first.status,
    etag: first.headers.get("ETag"),
    version: first.headers.get("Timeline-Version"),
    requestId: first.headers.get("X-Request-ID"),
  };
  const again = await fetch(timeline, {
    headers: { ...auth, "If-None-Match": out.first.etag }, cache: "no-store",
  });
  out.again = {
    status: again.status, etag: again.headers.get("ETag"),
    version: again.headers.get("Timeline-Version"),
  };
  const created = await fetch(`${gateway}/api/leads`, {
    method: "POST",
    headers: {
      ...auth, "Content-Type": "application/json", "Idempotency-Key": "frontend-1",
      "X-Request-ID": "frontend-request-0001",
    },
    body: JSON.stringify({ title: "Created from another origin" }),
  });
  out.created = {
    status: created.status, location: created.headers.get("Location"),
    etag: created.headers.get("ETag"), requestId: created.headers.get("X-Request-ID"),
  };
  const ticket = await (await fetch(`${timeline}/stream-ticket`, {
    method: "POST", headers: auth,
  })).json();
  const controller = new AbortController();
  const stream = await fetch(new URL(ticket.stream_url, gateway), {
    headers: { "Last-Event-ID": out.first.version }, signal: controller.signal,
  });
  const reader = stream.body.getReader();
  let text = "";
  while (!text.includes("event: ready")) {
    const { value, done } = await reader.read();
    if (done) break;
    text += new TextDecoder().decode(value);
  }
  controller.abort();
  out.stream = { status: stream.status, type: stream.headers.get("Content-Type"), text };
  return out;
}

run()
  .then((out) => (document.getElementById("result").textContent = JSON.stringify(out, null, 1)))
  .catch((error) => (document.getElementById("result").textContent =
    JSON.stringify({ error: String(error) })));
"""


def frontend() -> Starlette:
    async def page(request: Any) -> HTMLResponse:
        return HTMLResponse(PAGE)

    async def script(request: Any) -> Response:
        return Response(SCRIPT, media_type="text/javascript")

    return Starlette(routes=[Route("/", page), Route("/frontend.js", script)])


@pytest.fixture
def frontends(stack: Stack) -> Iterator[dict[str, str]]:
    """The page on the origin the gateway lists, and on one it does not."""
    with (
        serve_in_thread(frontend(), sock=stack.frontend_socket) as listed,
        serve_in_thread(frontend()) as unlisted,
    ):
        yield {"listed": listed, "unlisted": unlisted}


async def run_page(page: Page, origin: str, stack: Stack, user: ActingUser, lead: str) -> Any:
    query = urlencode({"gateway": stack.gateway_url, "token": user.token, "lead": lead})
    await page.goto(f"{origin}/?{query}")
    result = page.locator("#result")
    await expect(result).not_to_be_empty(timeout=20_000)
    return json.loads(await result.text_content() or "{}")


async def create_lead(stack: Stack, user: ActingUser) -> str:
    async with httpx.AsyncClient(timeout=10) as http:
        answer = await http.post(
            f"{stack.gateway_url}/api/leads", json={"title": "CORS lead"}, headers=user.headers
        )
    assert answer.status_code == 201, answer.text
    lead_id: str = answer.json()["id"]
    return lead_id


async def test_a_page_of_another_origin_revalidates_and_reads_the_exposed_headers(
    stack: Stack,
    browser: Browser,
    shots: Shots,
    frontends: dict[str, str],
    users: Users,
) -> None:
    rep = users.make(Role.REP)
    lead = await create_lead(stack, rep)
    context = await browser.new_context()
    page = await context.new_page()

    out = await run_page(page, frontends["listed"], stack, rep, lead)
    await shots.take(page, "listed-origin")
    assert "error" not in out, out
    assert out["first"]["status"] == 200
    assert out["first"]["etag"].startswith('W/"')
    assert out["first"]["version"].isdigit()
    assert out["first"]["requestId"]
    assert out["again"] == {
        "status": 304,
        "etag": out["first"]["etag"],
        "version": out["first"]["version"],
    }
    assert out["created"]["status"] == 201
    assert out["created"]["location"].startswith("/api/leads/")
    assert out["created"]["etag"] == '"1"'
    assert out["created"]["requestId"] == "frontend-request-0001"
    assert out["stream"]["status"] == 200
    assert out["stream"]["type"].startswith("text/event-stream")
    assert f"id: {out['first']['version']}" in out["stream"]["text"]

    refused = await run_page(page, frontends["unlisted"], stack, rep, lead)
    await shots.take(page, "unlisted-origin")
    assert refused == {"error": "TypeError: Failed to fetch"}
    await context.close()
