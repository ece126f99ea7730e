"""The whole system on real sockets behind one gateway, with the Google emulator: what the browser
tests drive and what the contract suite checks the published OpenAPI document against."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from pipedesk_testkit.identities import Identity
from pipedesk_testkit.namespace import own_namespace
from pipedesk_testkit.servers import port_of, reserve_port, serve_in_thread

SERVICES = ("crm", "timeline", "accounts", "calendar", "tasks", "drive", "gmail", "automation")


@dataclass(frozen=True)
class Stack:
    """The system's URLs: the gateway in front, every service and the Google emulator behind."""

    gateway_url: str
    emulator_url: str
    identity: Identity
    frontend_origin: str
    service_urls: Mapping[str, str]
    # The port of ``frontend_origin``, held for a page a test serves there (once: the server
    # that listens on it closes it when it stops).
    frontend_socket: socket.socket


def _builders(
    urls: dict[str, str], common: dict[str, Any], gateway: dict[str, Any]
) -> dict[str, Callable[[], Any]]:
    from accounts_service.app import build_app as build_accounts
    from accounts_service.settings import CALLBACK_PATH, AccountsSettings
    from automation_service.app import build_app as build_automation
    from automation_service.settings import AutomationSettings
    from calendar_service.app import build_app as build_calendar
    from calendar_service.settings import CalendarSettings
    from crm_service.app import build_app as build_crm
    from crm_service.settings import CrmSettings
    from drive_service.app import build_app as build_drive
    from drive_service.settings import DriveSettings
    from gmail_service.app import build_app as build_gmail
    from gmail_service.settings import GmailSettings
    from pipedesk_gateway.app import build_app as build_gateway
    from pipedesk_gateway.settings import GatewaySettings
    from tasks_service.app import build_app as build_tasks
    from tasks_service.settings import TasksSettings
    from timeline_service.app import build_app as build_timeline
    from timeline_service.settings import TimelineSettings

    gateway_url = urls["gateway"]
    emulator_url = common["GOOGLE_ROOT_URL"].rstrip("/")
    linked: dict[str, Any] = {**common, "crm_url": urls["crm"]}
    return {
        "crm": lambda: build_crm(CrmSettings(**common)),
        "timeline": lambda: build_timeline(TimelineSettings(**linked)),
        "accounts": lambda: build_accounts(
            AccountsSettings(
                **common,
                google_redirect_uri=gateway_url + CALLBACK_PATH,
                frontend_url=gateway_url + "/app/",
            )
        ),
        "calendar": lambda: build_calendar(
            CalendarSettings(**linked, webhook_url=gateway_url + "/webhooks/google/calendar")
        ),
        "tasks": lambda: build_tasks(TasksSettings(**linked)),
        "drive": lambda: build_drive(
            DriveSettings(**linked, webhook_url=gateway_url + "/webhooks/google/drive")
        ),
        # No Pub/Sub topic, as make run: the periodic catch-up keeps mailboxes in step, and a
        # push is checked against the emulator's keys, never Google's.
        "gmail": lambda: build_gmail(
            GmailSettings(
                **linked,
                webhook_url=gateway_url + GmailSettings.webhook_path,
                push_certs_url=emulator_url + "/oauth2/v1/certs",
            )
        ),
        "automation": lambda: build_automation(AutomationSettings(**common)),
        "gateway": lambda: build_gateway(
            GatewaySettings(**gateway, FRONTEND_ORIGINS=urls["frontend"])
        ),
    }


@contextmanager
def serve_stack(
    service_env: Mapping[str, str],
    identity: Identity,
    *,
    gateway_settings: Mapping[str, Any] | None = None,
    services: Sequence[str] = SERVICES,
) -> Iterator[Stack]:
    """Gateway, CRM, timeline, accounts, calendar, tasks, drive, gmail and automation, each a
    uvicorn server, wired as ``make run`` wires them: the gateway's console signs in through the
    run's identity provider, Google's consent returns through the gateway's callback, and the
    callback to the console. ``gateway_settings`` adds to the gateway's settings (its rate
    limits, say); ``services`` chooses among ``SERVICES`` (the CRM always runs). Its consumers
    have a broker namespace of their own (``pipedesk_testkit.namespace``), deleted when the stack
    stops: they meet no backlog of earlier tests' events and take none of another suite's."""
    from google_emulator.app import create_emulator_app

    services = ("crm", *(name for name in services if name != "crm"))
    with ExitStack() as servers:
        # Each server's port is held from now on: the others are told where it is before it
        # starts, and meanwhile nothing else on the machine may take it.
        ports = {
            name: servers.enter_context(reserve_port())
            for name in (*services, "gateway", "frontend")
        }
        urls = {name: f"http://127.0.0.1:{port_of(sock)}" for name, sock in ports.items()}
        service_env = servers.enter_context(own_namespace(service_env))
        emulator = servers.enter_context(serve_in_thread(create_emulator_app()))
        common: dict[str, Any] = {**service_env, "GOOGLE_ROOT_URL": emulator + "/"}
        gateway = {**service_env, **(gateway_settings or {})}
        # Where the others are is read from the environment (as each process of make run reads
        # it), while the apps are built and start, and by some routes as they answer (the gmail
        # service asks the timeline where mail is): it holds for as long as the stack runs, and
        # is undone when it stops.
        with pytest.MonkeyPatch.context() as env:
            for name in services:
                env.setenv(f"{name.upper()}_URL", urls[name])
            env.setenv("IDENTITY_URL", identity.url)
            for name, build in _builders(urls, common, gateway).items():
                if name not in (*services, "gateway"):
                    continue
                servers.enter_context(serve_in_thread(build(), sock=ports[name]))
                # FastAPI builds an app's routes on its first request. Here the apps share one
                # process, so each builds them now, one after another, as separate processes
                # would: when the calendar and tasks apps built theirs concurrently in threads,
                # pydantic now and then warned about a body field's alias (an error here, so a
                # 500 in the middle of a test).
                httpx.get(f"{urls[name]}/no-such-route", timeout=10)
            running = {name: urls[name] for name in services}
            yield Stack(
                urls["gateway"], emulator, identity, urls["frontend"], running, ports["frontend"]
            )
