"""Before a grant is revoked, each Google product stops what runs on the user's account.

Google lets a push channel or a watch be stopped only with the grant that made it, so the
products are asked first, while the grant still works (``google-disconnected`` of
``pipedesk_common.lifecycle``). A product that cannot be reached, or answers an error, does not
hold the disconnect back: the user's choice to withdraw access wins, the grant is revoked
anyway, and what that product left running lapses at Google (a calendar channel at its expiry,
Gmail's watch within 7 days), its notifications ignored once the product learns of the
disconnect (``accounts.google.disconnected``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

import httpx

from accounts_service.settings import AccountsSettings
from pipedesk_common.auth import ServiceTokenIssuer
from pipedesk_common.lifecycle import (
    GOOGLE_DISCONNECTED_PATH,
    LIFECYCLE_PREFIX,
    GoogleDisconnection,
    LifecyclePartPublic,
)

log = logging.getLogger(__name__)


class ProductStops:
    """Asks every product of a disconnect, at once, to stop what runs on the user's account."""

    def __init__(
        self,
        settings: AccountsSettings,
        http: Callable[[], httpx.AsyncClient],
        issuer: Callable[[], ServiceTokenIssuer],
    ) -> None:
        self.settings = settings
        self.http = http
        self.issuer = issuer

    async def stop(
        self, org_id: str, user_id: str, actor_id: str, products: Sequence[str]
    ) -> dict[str, dict[str, int] | None]:
        """Each product's answer (what it stopped, by kind), None for one that did not stop."""
        wanted = sorted(set(products))
        if not wanted:
            return {}
        body = GoogleDisconnection(org_id=org_id, actor_id=actor_id, products=wanted)
        answers = await asyncio.gather(
            *(self._stop_one(product, user_id, body) for product in wanted)
        )
        return dict(zip(wanted, answers, strict=True))

    async def _stop_one(
        self, product: str, user_id: str, body: GoogleDisconnection
    ) -> dict[str, int] | None:
        path = GOOGLE_DISCONNECTED_PATH.format(user_id=user_id)
        url = f"{self.settings.url_of(product)}{LIFECYCLE_PREFIX}{path}"
        try:
            response = await self.http().post(
                url,
                json=body.model_dump(),
                headers={"Authorization": f"Bearer {self.issuer().token_for(product)}"},
                timeout=self.settings.disconnect_call_timeout_seconds,
            )
        except httpx.HTTPError as exc:
            log.warning(
                "the %s service could not be reached to stop a disconnected user's channels; "
                "they lapse at Google",
                product,
                extra={"error": type(exc).__name__},
            )
            return None
        if response.status_code != 200:
            log.warning(
                "the %s service answered %s when asked to stop a disconnected user's channels; "
                "they lapse at Google",
                product,
                response.status_code,
            )
            return None
        try:
            return LifecyclePartPublic.model_validate(response.json()).ended
        except ValueError:
            log.warning("the %s service answered an unreadable part", product)
            return None
