"""Gmail's settings refuse an incomplete or unsafe push configuration."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from gmail_service.settings import GOOGLE_CERTS_URL, GmailSettings
from pipedesk_common.settings import Environment

TOPIC = "projects/p/topics/gmail"
ACCOUNT = "push@p.iam.gserviceaccount.com"


def settings(**values: Any) -> GmailSettings:
    return GmailSettings(_env_file=None, **values)  # type: ignore[call-arg]


def test_a_topic_needs_the_push_service_account() -> None:
    with pytest.raises(ValidationError, match="GMAIL_PUSH_SERVICE_ACCOUNT"):
        settings(pubsub_topic=TOPIC)
    assert settings(pubsub_topic=TOPIC, push_service_account=ACCOUNT).audience.endswith(
        "/webhooks/google/gmail"
    )


def test_production_push_needs_googles_keys_and_an_https_endpoint() -> None:
    production = {
        "environment": Environment.PRODUCTION,
        "pubsub_topic": TOPIC,
        "push_service_account": ACCOUNT,
        "push_certs_url": GOOGLE_CERTS_URL,
        "webhook_url": "https://api.example.com/webhooks/google/gmail",
    }
    accepted = GmailSettings.model_construct(**production)
    assert GmailSettings._push_is_complete(accepted) is accepted
    for refused, message in (
        ({"push_certs_url": "http://emulator/oauth2/v1/certs"}, "PUSH_CERTS_URL"),
        ({"webhook_url": "http://api.example.com/webhooks/google/gmail"}, "WEBHOOK_URL"),
    ):
        with pytest.raises(ValueError, match=message):
            GmailSettings._push_is_complete(  # the check alone, without the production secrets
                GmailSettings.model_construct(**{**production, **refused})
            )
