"""``Idempotency-Key`` on a route that creates: ``dependencies=[IDEMPOTENT]``.

The service passes its ``idempotency_keys`` table to ``create_app(idempotency=…)``. A request
carrying the header holds its key, scoped to (org, caller, route), for 24 hours: sent again with
the same payload it gets the first answer again (with ``Idempotent-Replayed: true``) and nothing
runs; with another payload ``422 idempotency-key-reused``; while the first is still running
``409 idempotency-key-in-progress``. See ``idempotency.IdempotentRequests``.
"""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import Depends, Header, Request

from pipedesk_common.app import ContextDep, PrincipalDep
from pipedesk_common.db import REQUEST_CONNECTION
from pipedesk_common.idempotency import (
    KEY_PATTERN,
    STATE_KEY,
    IdempotencyKeyInProgress,
    IdempotencyKeyReused,
    IdempotentRequests,
    RememberedAnswer,
    ReplayedAnswer,
    body_fingerprint,
    parse_key,
    request_scope,
)


async def idempotent(
    request: Request,
    principal: PrincipalDep,
    context: ContextDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="1 to 255 visible ASCII characters: a retry with the same key and payload "
            "within 24 hours gets the first answer, and nothing is done twice",
            pattern=KEY_PATTERN,
        ),
    ] = None,
) -> None:
    key = parse_key(idempotency_key)
    if key is None:
        return
    requests = context.part(IdempotentRequests)
    scope = request_scope(principal.org_id, principal.sub, request.method, request.url.path)
    claim = await requests.claim(
        scope,
        key,
        body_fingerprint(await request.body()),
        org_id=principal.org_id,
        user_id=principal.sub,
    )
    if isinstance(claim, RememberedAnswer):
        raise ReplayedAnswer(claim)
    setattr(request.state, STATE_KEY, claim)
    # The route's unit of work joins the claim's transaction: its change and its remembered
    # answer commit together, so no retry can find the one without the other.
    setattr(request.state, REQUEST_CONNECTION, claim.owner)


IDEMPOTENT: Final = Depends(idempotent)


# The problems a route with ``IDEMPOTENT`` may answer because of the key: name them among its
# ``problem_responses(…, *IDEMPOTENCY_PROBLEMS)``.
IDEMPOTENCY_PROBLEMS: Final = (IdempotencyKeyInProgress, IdempotencyKeyReused)
