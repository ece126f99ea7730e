"""The trusted-proxy decision per peer: remembered, bounded, and the same as parsing anew."""

from starlette.types import Receive, Scope, Send

from pipedesk_gateway.forwarded import (
    PEERS_REMEMBERED,
    TrustedProxyMiddleware,
    _trusted,
    networks,
)


async def _inner(scope: Scope, receive: Receive, send: Send) -> None:
    return None


def test_each_peer_is_judged_as_a_fresh_parse_would_and_memory_stays_bounded() -> None:
    trusted = networks(["10.0.0.0/8", "::1"])
    middleware = TrustedProxyMiddleware(_inner, trusted=trusted)
    peers = [f"10.0.{n // 256}.{n % 256}" for n in range(PEERS_REMEMBERED)]
    peers += [f"192.0.2.{n}" for n in range(1, 50)] + ["::1", "2001:db8::1", "not-an-address"]
    for _ in range(2):  # the second pass answers from memory
        for peer in peers:
            assert middleware._trusted_peer(peer) == _trusted(peer, trusted), peer
            assert len(middleware._peers) <= PEERS_REMEMBERED
    assert middleware._trusted_peer("10.9.9.9") is True
    assert middleware._trusted_peer("192.0.2.200") is False
