"""A 20 MB attachment downloads through the gateway byte for byte, the gateway holding a few
pieces of it at a time and the gmail service less than three times the file: Gmail's answer
(the file base64url-encoded in JSON) is decoded a piece at a time as it is streamed on. Each
process is measured on its own (the emulator, in the test's process, is not counted)."""

import asyncio
import base64
import hashlib
import os
import signal
import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest

from crm_service.app import build_app as build_crm
from crm_service.settings import CrmSettings
from pipedesk_common.auth import Role
from pipedesk_testkit.google import GoogleStack
from pipedesk_testkit.identities import Users
from pipedesk_testkit.servers import free_port, run_process, serve_in_thread
from pipedesk_testkit.waiting import eventually
from timeline_service.app import build_app as build_timeline
from timeline_service.settings import TimelineSettings

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("quiet_broker")]
MiB = 1024 * 1024
SIZE = 20 * MiB
BUYER = "buyer@customer.example"
TRACED = str(Path(__file__).with_name("traced_serve.py"))


def content() -> bytes:
    return b"".join(hashlib.sha256(n.to_bytes(8, "big")).digest() for n in range(SIZE // 32))


def with_attachment(to: str, data: bytes) -> bytes:
    message = EmailMessage()
    message["From"] = BUYER
    message["To"] = to
    message["Subject"] = "The data room"
    message["Message-ID"] = "<data-room@customer.example>"
    message.set_content("Everything is attached.")
    message.add_attachment(data, maintype="application", subtype="zip", filename="room.zip")
    return message.as_bytes()


async def measured(process: subprocess.Popen[bytes], report: Path, sent: signal.Signals) -> str:
    """Signal the traced process and wait for its answer in ``report``."""
    await asyncio.to_thread(report.unlink, missing_ok=True)
    process.send_signal(sent)
    found: str = await eventually(lambda: asyncio.to_thread(_read, report), until=bool)
    return found


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


async def test_a_20_mb_attachment_streams_through_the_gateway_in_bounded_memory(
    google: GoogleStack, users: Users, service_env: dict[str, str], tmp_path: Path
) -> None:
    rep = users.make(Role.REP, teams=["t1"])
    data = content()
    expected = hashlib.sha256(data).hexdigest()
    raw = base64.urlsafe_b64encode(with_attachment(rep.principal.email, data)).decode()
    del data
    gmail_port, gateway_port = free_port(), free_port()
    gmail_url = f"http://127.0.0.1:{gmail_port}"
    gateway_url = f"http://127.0.0.1:{gateway_port}"
    with serve_in_thread(build_crm(CrmSettings(**service_env))) as crm_url:
        timeline = build_timeline(TimelineSettings(**service_env, crm_url=crm_url))
        with serve_in_thread(timeline) as timeline_url:
            env = {
                **service_env,
                "LOG_LEVEL": "WARNING",
                "CRM_URL": crm_url,
                "TIMELINE_URL": timeline_url,
                "GMAIL_URL": gmail_url,
                "GMAIL_JOBS_ENABLED": "false",
                "ACCOUNTS_URL": os.environ["ACCOUNTS_URL"],
                "GOOGLE_ROOT_URL": os.environ["GOOGLE_ROOT_URL"],
            }
            gmail_report, gateway_report = tmp_path / "gmail.peak", tmp_path / "gateway.peak"
            gmail_args = [TRACED, "gmail_service.__main__:app", str(gmail_port), str(gmail_report)]
            gateway_args = [
                TRACED,
                "pipedesk_gateway.__main__:app",
                str(gateway_port),
                str(gateway_report),
            ]
            with (
                run_process(
                    gmail_args, env=env, ready_url=f"{gmail_url}/readyz", timeout=180
                ) as gmail,
                run_process(
                    gateway_args, env=env, ready_url=f"{gateway_url}/healthz", timeout=180
                ) as gateway,
            ):
                async with (
                    httpx.AsyncClient(base_url=crm_url, timeout=30) as crm,
                    httpx.AsyncClient(base_url=gateway_url, timeout=120) as through_gateway,
                ):
                    (await crm.get("/api/users", headers=rep.headers)).raise_for_status()
                    contact = await crm.post(
                        "/api/contacts",
                        json={"name": "Buyer", "emails": [BUYER]},
                        headers=rep.headers,
                    )
                    lead = await crm.post(
                        "/api/leads",
                        json={"title": "Acme", "contact_ids": [contact.json()["id"]]},
                        headers=rep.headers,
                    )
                    seeded = await google.admin(
                        "POST",
                        f"/gmail/{rep.principal.email}/messages",
                        json={"raw": raw, "label_ids": ["INBOX"]},
                    )
                    assert seeded.status_code == 200, seeded.text
                    del raw
                    await google.connect(rep, ["gmail"])
                    connected = await through_gateway.post(
                        "/api/gmail/mailbox", headers=rep.headers
                    )
                    assert connected.status_code in (200, 201), connected.text
                    listed = await eventually(
                        lambda: through_gateway.get(
                            f"/api/gmail/records/lead/{lead.json()['id']}/messages",
                            headers=rep.headers,
                        ),
                        until=lambda answer: (
                            answer.status_code == 200 and len(answer.json()["items"]) == 1
                        ),
                        within=120,
                    )
                    message = listed.json()["items"][0]
                    (attachment,) = message["attachments"]
                    assert attachment["size"] == SIZE
                    path = f"/api/gmail/messages/{message['id']}/attachments/{attachment['id']}"
                    for process, report in ((gmail, gmail_report), (gateway, gateway_report)):
                        await measured(process, report.with_suffix(".reset"), signal.SIGUSR1)
                    received = hashlib.sha256()
                    size = 0
                    async with through_gateway.stream("GET", path, headers=rep.headers) as download:
                        assert download.status_code == 200
                        assert download.headers["content-disposition"].startswith("attachment;")
                        assert download.headers["x-content-type-options"] == "nosniff"
                        async for piece in download.aiter_bytes():
                            received.update(piece)
                            size += len(piece)
                    gmail_peak = int(await measured(gmail, gmail_report, signal.SIGUSR2))
                    gateway_peak = int(await measured(gateway, gateway_report, signal.SIGUSR2))
    assert size == SIZE
    assert received.hexdigest() == expected
    print(
        f"gateway peak {gateway_peak / MiB:.1f} MiB, gmail peak {gmail_peak / MiB:.1f} MiB",
        file=sys.stderr,
    )
    assert gateway_peak < 8 * MiB, f"gateway peak {gateway_peak / MiB:.1f} MiB"
    assert gmail_peak < 3 * SIZE, f"gmail service peak {gmail_peak / MiB:.1f} MiB"
