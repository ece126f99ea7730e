"""Who the client is: ``X-Forwarded-For`` and ``X-Forwarded-Proto`` count only from the proxies
``GATEWAY_TRUSTED_PROXIES`` names.

A request from a trusted proxy is from the rightmost address of its ``X-Forwarded-For`` that is
not itself a trusted proxy (each proxy appends the address it was reached from, so everything to
the left of that is what the client claimed), over the scheme of its last
``X-Forwarded-Proto``. From any other peer, both headers are dropped: the client is the peer, and
a value it made up reaches neither the rate limits nor the services. The gateway's server reads
no forwarded header itself (``proxy_headers=False``).
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
from typing import Final

from starlette.types import ASGIApp, Receive, Scope, Send

# Where the address the gateway was reached from is kept once the client is known.
PEER_KEY: Final = "pipedesk.peer"
_FORWARDED: Final = frozenset({b"x-forwarded-for", b"x-forwarded-proto"})
PEERS_REMEMBERED: Final = 4096

Network = IPv4Network | IPv6Network


def networks(entries: Sequence[str]) -> tuple[Network, ...]:
    """Addresses and CIDR networks (``10.0.0.0/8``, ``::1``) as networks."""
    return tuple(ip_network(entry.strip(), strict=False) for entry in entries if entry.strip())


def _trusted(address: str, trusted: Sequence[Network]) -> bool:
    try:
        parsed = ip_address(address)
    except ValueError:
        return False
    return any(parsed.version == network.version and parsed in network for network in trusted)


def client_of(peer: str, forwarded_for: str | None, trusted: Sequence[Network]) -> str:
    """The client address of a request from ``peer`` carrying ``forwarded_for``."""
    if not _trusted(peer, trusted) or not forwarded_for:
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, trusted):
            try:
                return str(ip_address(hop))
            except ValueError:
                return peer  # not an address: the chain cannot be read further
    return hops[0] if hops else peer


class TrustedProxyMiddleware:
    """Sets the request's client (and scheme) from forwarded headers of trusted proxies only."""

    def __init__(self, app: ASGIApp, *, trusted: Sequence[Network]) -> None:
        self.app = app
        self.trusted = tuple(trusted)
        # Whether each peer seen lately is a trusted proxy: a few addresses send nearly every
        # request, and parsing one is most of this middleware's cost.
        self._peers: dict[str, bool] = {}

    def _trusted_peer(self, peer: str) -> bool:
        known = self._peers.get(peer)
        if known is None:
            if len(self._peers) >= PEERS_REMEMBERED:
                self._peers.clear()
            known = self._peers[peer] = _trusted(peer, self.trusted)
        return known

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in {"http", "websocket"} or scope.get("client") is None:
            await self.app(scope, receive, send)
            return
        peer, port = scope["client"]
        headers = scope["headers"]
        scope = dict(scope)
        scope[PEER_KEY] = peer
        if self._trusted_peer(peer):
            found = {name: value.decode("latin-1") for name, value in headers if name in _FORWARDED}
            scope["client"] = (client_of(peer, found.get(b"x-forwarded-for"), self.trusted), port)
            proto = found.get(b"x-forwarded-proto", "").rsplit(",", 1)[-1].strip().lower()
            if proto in {"http", "https"}:
                scope["scheme"] = proto
        else:
            scope["headers"] = [(name, value) for name, value in headers if name not in _FORWARDED]
        await self.app(scope, receive, send)
