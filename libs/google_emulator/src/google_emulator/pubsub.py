"""Cloud Pub/Sub push, as far as Gmail's watches need it.

A topic (``projects/<project>/topics/<name>``) is registered through the admin API with its push
subscription: the endpoint, the OIDC audience and the service account the push is
authenticated as, and whether Gmail may publish to it (Gmail's own service account granted
``roles/pubsub.publisher``). A message published to the topic is posted to the endpoint as
Pub/Sub does: a JSON envelope (``message.data`` base64, ``messageId``, ``publishTime``,
``subscription``) with ``Authorization: Bearer <OIDC token>`` — an RS256 ID token issued by
``https://accounts.google.com`` for the audience, naming the service account in ``email``,
signed with a key the emulator publishes like Google's certificates
(``/oauth2/v1/certs``: key id → X.509 certificate, PEM).
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from google_emulator.core import Emulator, emulator_of, rfc3339

ISSUER = "https://accounts.google.com"
TOKEN_LIFETIME = timedelta(hours=1)

router = APIRouter()
admin_router = APIRouter(prefix="/_emulator/pubsub")


@dataclass
class Topic:
    name: str
    push_endpoint: str
    audience: str
    service_account: str
    gmail_may_publish: bool = True


@dataclass
class PubSubState:
    topics: dict[str, Topic] = field(default_factory=dict)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


def pubsub_state(emulator: Emulator) -> PubSubState:
    state = emulator.apis.setdefault("pubsub", PubSubState())
    assert isinstance(state, PubSubState)
    return state


@dataclass(frozen=True)
class SigningKey:
    key_id: str
    private: rsa.RSAPrivateKey
    certificate: str


@cache
def signing_key() -> SigningKey:
    """The emulator's signing key, for the life of the process, with its certificate."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "emulator.googleapis.com")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=3650))
        .sign(private, hashes.SHA256())
    )
    pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    return SigningKey(secrets.token_hex(20), private, pem)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def sign_id_token(claims: dict[str, Any], key: SigningKey | None = None) -> str:
    """An RS256 JWT of ``claims`` signed with the emulator's key (or ``key``)."""
    key = key or signing_key()
    header = {"alg": "RS256", "kid": key.key_id, "typ": "JWT"}
    signing_input = (
        _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())
    ).encode()
    signature = key.private.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return signing_input.decode() + "." + _b64(signature)


def push_claims(topic: Topic, now: datetime) -> dict[str, Any]:
    return {
        "iss": ISSUER,
        "aud": topic.audience,
        "azp": "1" + str(abs(hash(topic.service_account)))[:20],
        "sub": "1" + str(abs(hash(topic.service_account)))[:20],
        "email": topic.service_account,
        "email_verified": True,
        "iat": int(now.timestamp()),
        "exp": int((now + TOKEN_LIFETIME).timestamp()),
    }


def topic_exists(emulator: Emulator, name: str) -> bool:
    return name in pubsub_state(emulator).topics


def may_publish(emulator: Emulator, name: str) -> bool:
    return pubsub_state(emulator).topics[name].gmail_may_publish


def publish(emulator: Emulator, topic_name: str, data: dict[str, Any]) -> None:
    """Queue ``data`` for the topic's push endpoint (delivered in order, in the background)."""
    state = pubsub_state(emulator)
    topic = state.topics.get(topic_name)
    if topic is None:
        return
    now = emulator.clock.now()
    message_id = str(10**15 + emulator.next_number())
    envelope = {
        "message": {
            "data": base64.b64encode(json.dumps(data).encode()).decode(),
            "messageId": message_id,
            "message_id": message_id,
            "publishTime": rfc3339(now),
            "publish_time": rfc3339(now),
        },
        "subscription": topic_name.replace("/topics/", "/subscriptions/") + "-push",
    }
    token = sign_id_token(push_claims(topic, now))
    task = asyncio.create_task(_deliver(state, topic, envelope, token))
    state.tasks.add(task)
    task.add_done_callback(state.tasks.discard)


async def _deliver(state: PubSubState, topic: Topic, envelope: dict[str, Any], token: str) -> None:
    record: dict[str, Any] = {"topic": topic.name, "envelope": envelope, "status_code": None}
    try:
        async with httpx.AsyncClient(timeout=10.0) as client:
            answer = await client.post(
                topic.push_endpoint, json=envelope, headers={"Authorization": f"Bearer {token}"}
            )
        record["status_code"] = answer.status_code
    except httpx.HTTPError as exc:  # Pub/Sub retries; the emulator records the failure
        record["error"] = type(exc).__name__
    state.deliveries.append(record)


@router.get("/oauth2/v1/certs")
async def certs() -> dict[str, str]:
    """The keys push tokens are signed with, as Google's certificate endpoint lists them."""
    key = signing_key()
    return {key.key_id: key.certificate}


class TopicSpec(BaseModel):
    push_endpoint: str
    audience: str | None = Field(None, description="Default: the push endpoint")
    service_account: str
    gmail_may_publish: bool = True


@admin_router.put("/{project}/topics/{name}", status_code=204)
async def put_topic(request: Request, project: str, name: str, spec: TopicSpec) -> Response:
    full = f"projects/{project}/topics/{name}"
    pubsub_state(emulator_of(request)).topics[full] = Topic(
        name=full,
        push_endpoint=spec.push_endpoint,
        audience=spec.audience or spec.push_endpoint,
        service_account=spec.service_account,
        gmail_may_publish=spec.gmail_may_publish,
    )
    return Response(status_code=204)


@admin_router.get("/deliveries")
async def deliveries(request: Request) -> list[dict[str, Any]]:
    """Every push delivered so far (its envelope and the endpoint's status)."""
    return list(pubsub_state(emulator_of(request)).deliveries)


class TokenClaims(BaseModel):
    claims: dict[str, Any]


@admin_router.post("/sign")
async def sign(request: Request, spec: TokenClaims) -> dict[str, str]:
    """An ID token of any claims signed with the push key (to test what verification refuses)."""
    return {"token": sign_id_token(spec.claims)}
