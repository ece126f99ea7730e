"""Google's OAuth 2.0 endpoints: authorization (auto-consent), token, revoke, userinfo.

As at Google, a refresh token comes only with ``access_type=offline``, and once a user holds one
for a client, again only when consent is asked for (``prompt=consent``); a user may grant fewer
scopes than asked (granular consent: ``PUT /_emulator/users/{email}/consent``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

from google_emulator.core import Emulator, emulator_of

DEV_CLIENT_ID = "pipedesk-dev-client"
DEV_CLIENT_SECRET = "pipedesk-dev-secret"  # noqa: S105 - a public dev-only client
GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ACCESS_TOKEN_LIFETIME = 3600
CODE_LIFETIME = timedelta(minutes=10)
USERINFO_SCOPES = (
    "openid",
    "email",
    "profile",
    "https://www.googleapis.com/auth/userinfo.email",
    "https://www.googleapis.com/auth/userinfo.profile",
)

router = APIRouter()


@dataclass
class Client:
    client_id: str
    client_secret: str
    redirect_uris: list[str] = field(default_factory=list)

    def allows(self, redirect_uri: str) -> bool:
        """An empty ``redirect_uris`` list accepts any redirect (the dev client)."""
        return not self.redirect_uris or redirect_uri in self.redirect_uris


@dataclass
class User:
    email: str
    name: str
    id: str


@dataclass
class AuthorizationCode:
    client_id: str
    redirect_uri: str
    email: str
    scopes: frozenset[str]
    code_challenge: str
    expires_at: datetime
    offline: bool = False
    consent_prompted: bool = False
    used: bool = False


@dataclass
class RefreshGrant:
    client_id: str
    email: str
    scopes: frozenset[str]
    access_tokens: list[str] = field(default_factory=list)
    revoked: bool = False


@dataclass
class ServiceAccount:
    email: str
    key: RSAKey
    client_id: str  # the numeric "unique ID" a Workspace admin authorises for delegation


@dataclass
class OAuthState:
    clients: dict[str, Client] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)
    codes: dict[str, AuthorizationCode] = field(default_factory=dict)
    refresh_tokens: dict[str, RefreshGrant] = field(default_factory=dict)
    granted: dict[tuple[str, str], frozenset[str]] = field(default_factory=dict)
    # (user, client) pairs holding a live offline grant: no new refresh token without consent.
    offline: set[tuple[str, str]] = field(default_factory=set)
    # Per user, the scopes they untick on every consent screen (granular consent).
    declined: dict[str, frozenset[str]] = field(default_factory=dict)
    service_accounts: dict[str, ServiceAccount] = field(default_factory=dict)
    # Each Workspace domain's admin console: the client ids allowed domain-wide delegation, and
    # for which scopes.
    delegations: dict[str, dict[str, frozenset[str]]] = field(default_factory=dict)


def oauth_state(emulator: Emulator) -> OAuthState:
    """The OAuth state of an emulator, created with the dev client on first use."""
    state = emulator.apis.get("oauth")
    if state is None:
        state = OAuthState()
        state.clients[DEV_CLIENT_ID] = Client(DEV_CLIENT_ID, DEV_CLIENT_SECRET)
        emulator.apis["oauth"] = state
    assert isinstance(state, OAuthState)
    return state


def ensure_user(emulator: Emulator, email: str, name: str | None = None) -> User:
    """The user with this email, created on first sight (name defaults to the local part)."""
    users = oauth_state(emulator).users
    key = email.lower()
    user = users.get(key)
    if user is None:
        user = User(email=key, name=name or key.split("@")[0], id=str(10**20 + len(users) + 1))
        users[key] = user
    elif name:
        user.name = name
    return user


class OAuthError(Exception):
    """An error of the token endpoint, in OAuth's JSON shape."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status

    def response(self) -> JSONResponse:
        body = {"error": self.error, "error_description": self.description}
        return JSONResponse(body, status_code=self.status, headers={"Cache-Control": "no-store"})


def _redirect(uri: str, params: dict[str, str]) -> RedirectResponse:
    separator = "&" if "?" in uri else "?"
    return RedirectResponse(uri + separator + urlencode(params), status_code=302)


@router.get("/o/oauth2/v2/auth", response_model=None)
async def authorize(request: Request) -> RedirectResponse | JSONResponse:
    """Consent at once for the ``login_hint`` user and redirect back with a code."""
    emulator = emulator_of(request)
    state = oauth_state(emulator)
    query = request.query_params
    client = state.clients.get(query.get("client_id", ""))
    redirect_uri = query.get("redirect_uri", "")
    if client is None:
        return OAuthError("invalid_client", "The OAuth client was not found.", 401).response()
    if not redirect_uri or not client.allows(redirect_uri):
        return OAuthError("redirect_uri_mismatch", "The redirect_uri is not registered.").response()
    back = {"state": query["state"]} if "state" in query else {}
    problem = None
    if query.get("response_type") != "code":
        problem = "unsupported_response_type", "response_type must be code"
    elif not query.get("scope"):
        problem = "invalid_request", "Missing required parameter: scope"
    elif "state" not in query:
        problem = "invalid_request", "Missing required parameter: state"
    elif not query.get("code_challenge") or query.get("code_challenge_method") != "S256":
        problem = "invalid_request", "PKCE with code_challenge_method=S256 is required"
    elif not query.get("login_hint"):
        problem = "invalid_request", "The emulator needs login_hint to pick the user"
    elif query.get("access_type", "online") not in ("online", "offline"):
        problem = "invalid_request", "Invalid access_type: must be online or offline"
    elif not set(query.get("prompt", "").split()) <= {"none", "consent", "select_account"}:
        problem = "invalid_request", "Invalid prompt: none, consent or select_account"
    if problem is not None:
        return _redirect(
            redirect_uri, {"error": problem[0], "error_description": problem[1], **back}
        )
    user = ensure_user(emulator, query["login_hint"])
    # Sign-in scopes cannot be unticked on Google's consent screen; the others can.
    granted_now = frozenset(
        scope
        for scope in query["scope"].split()
        if scope in USERINFO_SCOPES or scope not in state.declined.get(user.email, frozenset())
    )
    if not granted_now:
        return _redirect(
            redirect_uri,
            {"error": "access_denied", "error_description": "The user denied access", **back},
        )
    grant_key = (user.email, client.client_id)
    scopes = granted_now
    if query.get("include_granted_scopes") == "true":
        scopes |= state.granted.get(grant_key, frozenset())
    state.granted[grant_key] = state.granted.get(grant_key, frozenset()) | granted_now
    code = "4/emu-" + secrets.token_urlsafe(24)
    state.codes[code] = AuthorizationCode(
        client_id=client.client_id,
        redirect_uri=redirect_uri,
        email=user.email,
        scopes=scopes,
        code_challenge=query["code_challenge"],
        expires_at=emulator.clock.now() + CODE_LIFETIME,
        offline=query.get("access_type") == "offline",
        consent_prompted="consent" in query.get("prompt", "").split(),
    )
    return _redirect(redirect_uri, {"code": code, "scope": " ".join(sorted(scopes)), **back})


def _authenticate_client(request: Request, form: dict[str, str], state: OAuthState) -> Client:
    client_id, client_secret = form.get("client_id", ""), form.get("client_secret")
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            client_id, _, client_secret = base64.b64decode(value).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise OAuthError("invalid_client", "Malformed client credentials.", 401) from exc
    client = state.clients.get(client_id)
    if client is None or client_secret != client.client_secret:
        raise OAuthError("invalid_client", "The OAuth client was not found.", 401)
    return client


def _token_body(access: str, scopes: frozenset[str], refresh: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "access_token": access,
        "expires_in": ACCESS_TOKEN_LIFETIME,
        "scope": " ".join(sorted(scopes)),
        "token_type": "Bearer",
    }
    if refresh is not None:
        body["refresh_token"] = refresh
    return body


def _authorization_code_grant(
    request: Request, form: dict[str, str], emulator: Emulator
) -> dict[str, Any]:
    state = oauth_state(emulator)
    client = _authenticate_client(request, form, state)
    code = state.codes.get(form.get("code", ""))
    if code is None or code.expires_at <= emulator.clock.now():
        raise OAuthError("invalid_grant", "Malformed auth code.")
    if code.used:
        raise OAuthError("invalid_grant", "Bad Request: the code was already redeemed.")
    code.used = True
    if code.client_id != client.client_id:
        raise OAuthError("invalid_grant", "The code was issued to another client.")
    if form.get("redirect_uri") != code.redirect_uri:
        raise OAuthError("redirect_uri_mismatch", "Bad Request: redirect_uri differs.")
    verifier = form.get("code_verifier", "")
    digest = hashlib.sha256(verifier.encode()).digest()
    if (
        not verifier
        or base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != code.code_challenge
    ):
        raise OAuthError("invalid_grant", "Invalid code verifier.")
    request.state.emulator_user = code.email  # the request log names whose tokens these are
    access = emulator.issue_access_token(code.email, code.scopes, ACCESS_TOKEN_LIFETIME)
    grant_key = (code.email, client.client_id)
    # Google: a refresh token only for offline access, and once the user holds one for this
    # client, a new one only when the consent screen was shown again (prompt=consent).
    if not code.offline or (grant_key in state.offline and not code.consent_prompted):
        return _token_body(access.token, code.scopes, None)
    refresh = "1//emu-" + secrets.token_urlsafe(32)
    grant = RefreshGrant(client_id=client.client_id, email=code.email, scopes=code.scopes)
    grant.access_tokens.append(access.token)
    state.refresh_tokens[refresh] = grant
    state.offline.add(grant_key)
    return _token_body(access.token, code.scopes, refresh)


def _refresh_grant(request: Request, form: dict[str, str], emulator: Emulator) -> dict[str, Any]:
    state = oauth_state(emulator)
    client = _authenticate_client(request, form, state)
    grant = state.refresh_tokens.get(form.get("refresh_token", ""))
    if grant is None or grant.revoked or grant.client_id != client.client_id:
        raise OAuthError("invalid_grant", "Token has been expired or revoked.")
    scopes = grant.scopes
    if form.get("scope"):
        asked = frozenset(form["scope"].split())
        if not asked <= grant.scopes:
            raise OAuthError("invalid_scope", "The scope exceeds the original grant.")
        scopes = asked
    request.state.emulator_user = grant.email
    access = emulator.issue_access_token(grant.email, scopes, ACCESS_TOKEN_LIFETIME)
    grant.access_tokens.append(access.token)
    return _token_body(access.token, scopes, None)


def _unverified_claims(assertion: str) -> dict[str, Any]:
    try:
        payload = assertion.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, binascii.Error) as exc:
        raise OAuthError("invalid_grant", "Invalid JWT: malformed assertion.") from exc
    if not isinstance(claims, dict):
        raise OAuthError("invalid_grant", "Invalid JWT: claims are not an object.")
    return claims


def _jwt_bearer_grant(request: Request, form: dict[str, str], emulator: Emulator) -> dict[str, Any]:
    state = oauth_state(emulator)
    assertion = form.get("assertion", "")
    account = state.service_accounts.get(str(_unverified_claims(assertion).get("iss", "")).lower())
    if account is None:
        raise OAuthError("invalid_grant", "Invalid JWT: unknown service account.")
    try:
        claims = jwt.decode(assertion, account.key, algorithms=["RS256"]).claims
    except (JoseError, ValueError) as exc:
        raise OAuthError("invalid_grant", "Invalid JWT Signature.") from exc
    audiences = {str(request.url.replace(query="")), GOOGLE_TOKEN_URL}
    if claims.get("aud") not in audiences:
        raise OAuthError("invalid_grant", "Invalid JWT: the audience is not the token endpoint.")
    now = emulator.clock.now().timestamp()
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, int | float) or not isinstance(iat, int | float):
        raise OAuthError("invalid_grant", "Invalid JWT: iat and exp are required.")
    if exp <= now or exp - iat > 3600 or iat > now + 300:
        raise OAuthError(
            "invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes)."
        )
    scopes = frozenset(str(claims.get("scope", "")).split())
    if not scopes:
        raise OAuthError("invalid_scope", "Invalid OAuth scope or ID token audience provided.")
    subject = str(claims.get("sub") or account.email).lower()
    if subject != account.email:
        # Impersonation: the subject's domain admin must have authorised this client id for
        # every scope asked (Google's admin console, Security > API controls).
        domain = subject.rpartition("@")[2]
        authorised = state.delegations.get(domain, {}).get(account.client_id, frozenset())
        if not scopes <= authorised:
            raise OAuthError(
                "unauthorized_client",
                "Client is unauthorized to retrieve access tokens using this method, or client "
                "not authorized for any of the scopes requested.",
                401,
            )
    ensure_user(emulator, subject)
    request.state.emulator_user = subject
    access = emulator.issue_access_token(subject, scopes, ACCESS_TOKEN_LIFETIME)
    return _token_body(access.token, scopes, None)


async def _form(request: Request) -> dict[str, str]:
    return dict(parse_qsl((await request.body()).decode(errors="replace")))


@router.post("/token")
async def token(request: Request) -> JSONResponse:
    """The token endpoint: authorization_code, refresh_token and JWT-bearer grants."""
    emulator = emulator_of(request)
    request.state.api_method = "oauth2.token"
    form = await _form(request)
    grants = {
        "authorization_code": _authorization_code_grant,
        "refresh_token": _refresh_grant,
        JWT_BEARER: _jwt_bearer_grant,
    }
    handler = grants.get(form.get("grant_type", ""))
    try:
        if handler is None:
            raise OAuthError("unsupported_grant_type", "Invalid grant_type.")
        body = handler(request, form, emulator)
    except OAuthError as exc:
        return exc.response()
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


def revoke_grant(emulator: Emulator, grant: RefreshGrant) -> None:
    """Revoke a refresh token and every access token minted from it."""
    grant.revoked = True
    for minted in grant.access_tokens:
        access_token = emulator.access_tokens.get(minted)
        if access_token is not None:
            access_token.revoked = True
    state = oauth_state(emulator)
    if not any(
        (other.email, other.client_id) == (grant.email, grant.client_id) and not other.revoked
        for other in state.refresh_tokens.values()
    ):
        state.offline.discard((grant.email, grant.client_id))


def revoke_user(emulator: Emulator, email: str) -> int:
    """Every grant of a user revoked, as when they remove an app from their Google account;
    how many were live."""
    live = [
        grant
        for grant in oauth_state(emulator).refresh_tokens.values()
        if grant.email == email.lower() and not grant.revoked
    ]
    for grant in live:
        revoke_grant(emulator, grant)
    # The app no longer holds any scope of the user: a later include_granted_scopes adds none.
    granted = oauth_state(emulator).granted
    for key in [key for key in granted if key[0] == email.lower()]:
        del granted[key]
    return len(live)


@router.post("/revoke")
async def revoke(request: Request) -> JSONResponse:
    """Revoke an access token, or a refresh token with every access token minted from it."""
    emulator = emulator_of(request)
    request.state.api_method = "oauth2.revoke"
    value = (await _form(request)).get("token") or request.query_params.get("token", "")
    state = oauth_state(emulator)
    grant = state.refresh_tokens.get(value)
    if grant is not None:
        revoke_grant(emulator, grant)
        return JSONResponse({})
    access = emulator.access_tokens.get(value)
    if access is None or access.revoked:
        return OAuthError("invalid_token", "Token expired or revoked").response()
    access.revoked = True
    return JSONResponse({})


@router.get("/oauth2/v2/userinfo")
async def userinfo_v2(request: Request) -> dict[str, Any]:
    """The v2 userinfo resource of the token's user."""
    emulator = emulator_of(request)
    request.state.api_method = "oauth2.userinfo.get"
    user = ensure_user(emulator, emulator.authorize(request, USERINFO_SCOPES))
    return {"id": user.id, "email": user.email, "verified_email": True, "name": user.name}


@router.get("/oauth2/v3/userinfo")
async def userinfo_v3(request: Request) -> dict[str, Any]:
    """The OpenID Connect userinfo of the token's user."""
    emulator = emulator_of(request)
    request.state.api_method = "oauth2.userinfo.v3"
    user = ensure_user(emulator, emulator.authorize(request, USERINFO_SCOPES))
    return {"sub": user.id, "email": user.email, "email_verified": True, "name": user.name}
