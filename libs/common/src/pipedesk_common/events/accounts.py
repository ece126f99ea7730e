"""Events the accounts service publishes (routing keys ``accounts.*``)."""

from __future__ import annotations

from pydantic import Field

from pipedesk_common.events.envelope import EventData, contract


class GoogleConnectionData(EventData):
    connection_id: str
    user_id: str
    google_email: str | None = Field(None, description="The Google account that was connected")
    products: list[str] = Field(description="The PipeDesk products whose scopes are granted")
    scopes: list[str] = Field(description="Every Google scope granted")


@contract("accounts", "google", "connected")
class GoogleConnected(GoogleConnectionData):
    """A user connected Google, or granted more products (incremental consent)."""


@contract("accounts", "google", "disconnected")
class GoogleDisconnected(GoogleConnectionData):
    """A connection was revoked at Google and forgotten, or only some products of it ended.

    By its user or an org admin. With ``connection_ended`` false, only ``products`` were
    disconnected (``scopes``: those the connection lost); the grant stays for the others."""

    connection_ended: bool = Field(
        True,
        description="False: only `products` were disconnected; the connection stays for the "
        "other products it grants",
    )


@contract("accounts", "google", "revoked")
class GoogleRevoked(GoogleConnectionData):
    """Google refused the stored refresh token (``invalid_grant``): the user must reconnect."""

    reason: str = Field(description="Google's error and description")
