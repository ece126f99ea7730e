"""Google API calls through google-api-python-client, offline-capable and well-behaved.

- Clients come from the discovery documents the library bundles (no network for discovery);
  ``GOOGLE_ROOT_URL`` points them at another root (the emulator) by configuration alone. Setting
  ``rootUrl`` in the document (not the ``api_endpoint`` option) keeps each API's base path.
- Every call runs in a worker thread, never on the event loop, on a fresh transport of its own
  (httplib2 is not thread-safe); calls per user are bounded. The client that builds the request
  is the thread's, built once: googleapiclient builds a client's every method from the discovery
  document, milliseconds of CPU a call if done each time.
- One retry policy, aware of what may run twice (``pipedesk_common.google.idempotency``). A call
  whose repeat changes nothing (reads, patches, deletes, inserts under our own id) is retried on
  429, 403 ``rateLimitExceeded``/``userRateLimitExceeded``, 5xx and connection errors. A call that
  would act twice (``tasks.insert``, ``messages.send``) is retried only where Google certainly did
  not act (429 and 403 rate limits, refused before processing; a request that never left); after
  an ambiguous failure (5xx, timeout, a lost answer) its caller's ``reconcile`` looks the result
  up first, and it is tried again only if nothing was found (without a ``reconcile``, never).
  Waits back off exponentially with full jitter, honouring ``Retry-After``, up to a cap of
  attempts and time; a 401 gets one credential refresh and one retry; anything else fails at once.
- httplib2 repeats a request on its own after some connection errors, a POST whose answer was
  lost included: the transport here tries each request once and leaves repeating to the policy.
- Google's long-lived refusals are told apart: ``quotaExceeded``/``dailyLimitExceeded`` are not
  retried and answer 503 with a ``Retry-After`` (to Google's daily reset for a daily limit);
  ``insufficientPermissions`` means the grant lacks this product's scope: reconnect.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import random
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Final, TypeVar, cast
from zoneinfo import ZoneInfo

import httplib2
from google.auth.credentials import Credentials
from google_auth_httplib2 import AuthorizedHttp
from googleapiclient.discovery import Resource, build_from_document
from googleapiclient.discovery_cache import get_static_doc
from googleapiclient.errors import HttpError
from googleapiclient.http import HttpRequest
from prometheus_client import Counter, Histogram
from pydantic import ValidationError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
)

from pipedesk_common.clock import Clock, SystemClock
from pipedesk_common.errors import AppError, FieldError, Forbidden, NotFound, ServiceUnavailable
from pipedesk_common.google.credentials import (
    CredentialsProvider,
    GoogleReconnectRequired,
    GoogleUser,
)
from pipedesk_common.google.idempotency import repeatable
from pipedesk_common.google.media import StreamedMedia
from pipedesk_common.google.resources import Page, R, SkippedItem
from pipedesk_common.input_policy import cleaned

log = logging.getLogger(__name__)

T = TypeVar("T")
RATE_LIMIT_REASONS: Final = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
# Quotas that stay spent for hours: retrying soon only spends more of them.
QUOTA_REASONS: Final = frozenset({"quotaExceeded", "dailyLimitExceeded"})
# Without a Retry-After: how long a spent quota (other than a daily one) is left alone.
QUOTA_PAUSE: Final = timedelta(hours=1)
# Google's daily quotas start again at midnight Pacific Time.
QUOTA_DAY: Final = ZoneInfo("America/Los_Angeles")
PRODUCT_NAMES: Final = {
    "calendar": "Google Calendar",
    "tasks": "Google Tasks",
    "drive": "Google Drive",
    "gmail": "Gmail",
}

# Looks up what an ambiguous failure may have done: Google's answer to the call, or None.
Reconcile = Callable[[], Awaitable[Any]]

GOOGLE_CALLS = Counter(
    "pipedesk_google_calls_total",
    "Google API attempts by API, method and status (each retry counts)",
    ["api", "method", "status"],
)
GOOGLE_RETRIES = Counter("pipedesk_google_retries_total", "Google API retries", ["api", "method"])
GOOGLE_RECONCILED = Counter(
    "pipedesk_google_reconciled_total",
    "Calls that may not run twice, looked up after an ambiguous failure, by what was found",
    ["api", "method", "outcome"],
)
GOOGLE_SECONDS = Histogram(
    "pipedesk_google_call_duration_seconds",
    "Google API attempt latency",
    ["api", "method"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


class GoogleCallError(AppError):
    """Google refused a call in a way the caller should see (a problem naming Google's reason)."""

    status, slug, title = 502, "google-error", "Google refused the request"

    # Google's own status and reason, for callers that expect some refusals (409, 410).
    google_status: int | None = None
    google_reason: str = ""


class GoogleQuotaExhausted(ServiceUnavailable):
    slug, title = "google-unavailable", "Google is rate limiting or unavailable; retry later"

    # Google's last status (None: Google could not be reached) and reason.
    google_status: int | None = None
    google_reason: str = ""

    @property
    def rate_limited(self) -> bool:
        """Google asked us to slow down or spent a quota (rather than failing or being away)."""
        return self.google_status == 429 or self.google_reason in RATE_LIMIT_REASONS | QUOTA_REASONS


class NotSent(ConnectionError):
    """The request never reached Google (no connection could be made): it did nothing."""


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 32.0
    max_total_seconds: float = 60.0

    def backoff(self, attempt: int) -> float:
        """Full jitter: a random wait up to the exponential bound for this attempt."""
        bound = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return random.uniform(0, bound)  # noqa: S311 - jitter, not cryptography


def _reason(error: HttpError) -> str:
    try:
        payload = json.loads(error.content.decode("utf-8"))
        errors = payload.get("error", {}).get("errors") or []
        if errors and isinstance(errors[0], dict):
            return str(errors[0].get("reason", ""))
        detail = payload.get("error", {})
        return str(detail.get("status", "")) if isinstance(detail, dict) else ""
    except (ValueError, AttributeError, UnicodeDecodeError):
        return ""


def _retry_after(error: HttpError) -> float | None:
    value = error.resp.get("retry-after") if error.resp is not None else None
    if not value:
        return None
    if str(value).isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(str(value)).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


# What a request that failed on the way there or back raises (a lost or cut-off answer too).
TRANSPORT_ERRORS: Final = (OSError, httplib2.HttpLib2Error, http.client.HTTPException)


def not_acted(error: BaseException) -> bool:
    """Google certainly did nothing: it refused to process the call, or never received it."""
    if isinstance(error, HttpError):
        status = error.resp.status
        return status == 429 or (status == 403 and _reason(error) in RATE_LIMIT_REASONS)
    return isinstance(error, NotSent)


def outcome_unknown(error: BaseException) -> bool:
    """Google may have acted: it failed (5xx) or its answer never arrived."""
    if isinstance(error, HttpError):
        status: int = error.resp.status
        return status >= 500
    return isinstance(error, TRANSPORT_ERRORS) and not isinstance(error, NotSent)


def is_retryable(error: BaseException) -> bool:
    """Worth another attempt of a call whose repeat changes nothing."""
    return not_acted(error) or outcome_unknown(error)


def until_quota_day_ends(now: datetime) -> timedelta:
    """How long from ``now`` until Google's quota day (midnight Pacific time) starts again."""
    local = now.astimezone(QUOTA_DAY)
    reset = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), QUOTA_DAY)
    # In UTC: between two times of one zone Python counts wall-clock hours, which a
    # daylight-saving change makes one too many or too few.
    return reset.astimezone(UTC) - now.astimezone(UTC)


def _quota_retry_after(reason: str, retry_after: float | None) -> float:
    if retry_after:
        return retry_after
    if reason == "dailyLimitExceeded":
        return until_quota_day_ends(datetime.now(UTC)).total_seconds()
    return QUOTA_PAUSE.total_seconds()


def to_problem(error: HttpError, *, retry_after: float | None = None, api: str = "") -> AppError:
    status, reason = error.resp.status, _reason(error)
    detail = f"Google answered {status} ({reason or 'no reason'})"
    if status == 404:
        return NotFound(detail)
    if status == 403 and reason == "insufficientPermissions":
        product = PRODUCT_NAMES.get(api, "this product")
        return GoogleReconnectRequired(
            f"Reconnect Google for {product}: the access granted does not cover it",
            errors=[
                FieldError(
                    field="google",
                    message=f"reconnect Google for {product}",
                    code="insufficientPermissions",
                )
            ],
        )
    if status == 403 and reason in QUOTA_REASONS:
        seconds = _quota_retry_after(reason, retry_after)
        spent = GoogleQuotaExhausted(detail, headers={"Retry-After": str(max(1, round(seconds)))})
        spent.google_status, spent.google_reason = status, reason
        return spent
    if status == 403 and reason not in RATE_LIMIT_REASONS:
        return Forbidden(
            detail, errors=[FieldError(field="google", message=detail, code=reason or "forbidden")]
        )
    if status == 429 or status >= 500 or reason in RATE_LIMIT_REASONS:
        headers = {"Retry-After": str(max(1, round(retry_after or 30)))}
        away = GoogleQuotaExhausted(detail, headers=headers)
        away.google_status, away.google_reason = status, reason
        return away
    problem = GoogleCallError(
        detail, errors=[FieldError(field="google", message=detail, code=reason or str(status))]
    )
    problem.google_status, problem.google_reason = status, reason
    return problem


@dataclass
class _CallState:
    credentials: Credentials
    refreshed: bool = False
    # The last attempt failed in a way that may have acted: look before trying again.
    unknown: bool = False


class OneAttemptHttp(httplib2.Http):  # type: ignore[misc]
    """httplib2's transport, trying each request once.

    httplib2 sends a request again by itself when the connection fails or the answer is lost
    (a stale keep-alive connection, it assumes), a POST included: Google may then act twice.
    Here a request is sent once; a connection that cannot be made raises ``NotSent`` (nothing
    reached Google), anything later propagates as it is, and the retry policy decides."""

    def _conn_request(
        self,
        conn: Any,
        request_uri: str,
        method: str,
        body: Any,
        headers: Any,
    ) -> tuple[httplib2.Response, bytes]:
        try:
            if conn.sock is None:
                conn.connect()
        except (OSError, http.client.HTTPException) as error:
            conn.close()
            raise NotSent(f"could not connect to {conn.host}: {error}") from error
        try:
            conn.request(method, request_uri, body, headers)
            answer = conn.getresponse()
            content: bytes = b"" if method == "HEAD" else answer.read()
        except BaseException:
            conn.close()
            raise
        if method == "HEAD":
            conn.close()
        response = httplib2.Response(answer)
        if method != "HEAD":
            content = httplib2._decompressContent(response, content, self.limit_kwargs)
        return response, content


def _unreadable(method: str, why: str) -> GoogleCallError:
    detail = f"Google's answer to {method} is unreadable: {why}"
    return GoogleCallError(
        detail, errors=[FieldError(field="google", message=detail, code="unreadable")]
    )


def _read(model: type[R], answer: Any, method: str) -> R:
    """Google's answer as a typed resource, checked at the edge; its text without the control
    characters no text of ours holds (``input_policy.cleaned``)."""
    try:
        return model.model_validate(cleaned(answer))
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the answer"
        raise _unreadable(method, f"{where}: {first['msg']}") from error


def _wait(policy: RetryPolicy, retry_state: RetryCallState) -> float:
    """Full-jitter exponential backoff, but never sooner than Google's ``Retry-After``."""
    error = retry_state.outcome.exception() if retry_state.outcome else None
    retry_after = _retry_after(error) if isinstance(error, HttpError) else None
    return max(policy.backoff(retry_state.attempt_number), retry_after or 0.0)


class GoogleApi:
    """Calls to one Google API (e.g. ``calendar`` ``v3``) for many users."""

    def __init__(
        self,
        name: str,
        version: str,
        *,
        credentials: CredentialsProvider,
        scopes: Sequence[str],
        root_url: str | None = None,
        policy: RetryPolicy | None = None,
        per_user_concurrency: int = 4,
        timeout_seconds: float = 30.0,
        sleep: Callable[[float], Any] = asyncio.sleep,
        clock: Clock | None = None,
    ) -> None:
        document = json.loads(get_static_doc(name, version))
        # What a call's absolute times are reckoned on (a push channel's expiration).
        self.clock: Clock = clock or SystemClock()
        if root_url:
            document["rootUrl"] = root_url.rstrip("/") + "/"
        self.name = name
        # Kept as text: each call parses its own copy (a Resource is built per call, per thread).
        self._document = json.dumps(document)
        self._credentials = credentials
        self._scopes = tuple(scopes)
        self._policy = policy or RetryPolicy()
        self._per_user = per_user_concurrency
        self._limits: OrderedDict[GoogleUser, asyncio.Semaphore] = OrderedDict()
        self._repeatable: dict[str, bool] = {}
        self._timeout = timeout_seconds
        self._sleep = sleep
        self._threads = threading.local()

    def _thread_client(self) -> Resource:
        """This worker thread's client; its requests run on the transport ``execute`` is given."""
        found: Resource | None = getattr(self._threads, "client", None)
        if found is None:
            built = build_from_document(self._document, http=_UnboundHttp())
            found = self._threads.client = cast(Resource, _KeptResources(built))
        return found

    def _transport(self, credentials: Credentials) -> AuthorizedHttp:
        # The provider refreshes (it owns the refresh token and learns of revocations): the
        # transport must not try on its own.
        return AuthorizedHttp(
            credentials, http=OneAttemptHttp(timeout=self._timeout), refresh_status_codes=()
        )

    def _client(self, credentials: Credentials) -> Resource:
        return build_from_document(self._document, http=self._transport(credentials))

    def _semaphore(self, user: GoogleUser) -> asyncio.Semaphore:
        semaphore = self._limits.get(user)
        if semaphore is None:
            semaphore = self._limits[user] = asyncio.Semaphore(self._per_user)
            while len(self._limits) > 10_000:
                self._limits.popitem(last=False)
        self._limits.move_to_end(user)
        return semaphore

    def repeatable(self, method: str) -> bool:
        """Whether ``method`` may run twice (see ``pipedesk_common.google.idempotency``)."""
        known = self._repeatable.get(method)
        if known is None:
            known = self._repeatable[method] = repeatable(
                self.name, json.loads(self._document), method
            )
        return known

    async def call(
        self,
        user: GoogleUser,
        method: str,
        request: Callable[[Resource], HttpRequest],
        *,
        reconcile: Reconcile | None = None,
    ) -> Any:
        """Run ``request(client).execute()`` for ``user`` under the retry policy.

        ``method`` names the call as the discovery document does (``events.list``), for metrics
        and to know whether it may run twice. For a call that may not, ``reconcile`` looks up
        what an ambiguous failure may have done (by a marker the call wrote: an id, a property,
        the content) and answers Google's resource, or None if there is none: only then is the
        call tried again; without ``reconcile`` an ambiguous failure is the caller's.
        """
        once_only = not self.repeatable(method)
        state = _CallState(await self._credentials.credentials(user, self._scopes))

        def worth_retrying(error: BaseException) -> bool:
            if not once_only:
                return is_retryable(error)
            return not_acted(error) or (reconcile is not None and outcome_unknown(error))

        retrying = self._retrying(method, worth_retrying)
        try:
            async for attempt in retrying:
                with attempt:
                    if state.unknown and reconcile is not None:
                        found = await self._reconciled(method, reconcile, state)
                        if found is not None:
                            return found
                    try:
                        async with self._semaphore(user):
                            return await self._attempt(user, method, request, state)
                    except BaseException as error:
                        state.unknown = once_only and outcome_unknown(error)
                        raise
        except HttpError as error:
            if state.unknown and reconcile is not None:
                found = await self._reconciled(method, reconcile, state)
                if found is not None:
                    return found
            raise to_problem(error, retry_after=_retry_after(error), api=self.name) from error
        except TRANSPORT_ERRORS as error:
            if state.unknown and reconcile is not None:
                found = await self._reconciled(method, reconcile, state)
                if found is not None:
                    return found
            raise GoogleQuotaExhausted(
                "Google could not be reached", headers={"Retry-After": "30"}
            ) from error
        raise AssertionError("unreachable: the retry loop returns or raises")

    async def _reconciled(self, method: str, reconcile: Reconcile, state: _CallState) -> Any:
        """What an earlier attempt did, if ``reconcile`` finds it (counted either way)."""
        found = await reconcile()
        state.unknown = False
        GOOGLE_RECONCILED.labels(
            self.name, method, "found" if found is not None else "absent"
        ).inc()
        return found

    async def _attempt(
        self,
        user: GoogleUser,
        method: str,
        request: Callable[[Resource], HttpRequest],
        state: _CallState,
    ) -> Any:
        """One attempt; a 401 gets one credential refresh and one immediate retry per call."""
        began = time.monotonic()
        try:
            result = await asyncio.to_thread(self._execute, state.credentials, request)
        except HttpError as error:
            self._observe(method, str(error.resp.status), began)
            if error.resp.status == 401 and not state.refreshed:
                state.refreshed = True
                state.credentials = await self._credentials.refreshed(user, self._scopes)
                GOOGLE_RETRIES.labels(self.name, method).inc()
                return await self._attempt(user, method, request, state)
            if not is_retryable(error):
                raise to_problem(error, retry_after=_retry_after(error), api=self.name) from error
            raise
        except TRANSPORT_ERRORS:
            self._observe(method, "connection_error", began)
            raise
        self._observe(method, "200", began)
        return result

    async def ensure_connected(self, user: GoogleUser) -> None:
        """``GoogleNotConnected`` (or ``GoogleReconnectRequired``) unless ``user``'s connection
        holds this API's scopes; nothing is asked of Google."""
        await self._credentials.credentials(user, self._scopes)

    async def parsed(
        self,
        user: GoogleUser,
        method: str,
        request: Callable[[Resource], HttpRequest],
        model: type[R],
        *,
        reconcile: Reconcile | None = None,
    ) -> R:
        """``call``, its answer read as ``model`` (an unreadable answer is Google's error);
        ``reconcile`` may answer Google's resource as it or as ``model``."""
        answer = await self.call(user, method, request, reconcile=reconcile)
        return _read(model, answer, method)

    async def page(
        self,
        user: GoogleUser,
        method: str,
        request: Callable[[Resource], HttpRequest],
        model: type[R],
        *,
        items: str = "items",
        skip_unreadable: bool = False,
    ) -> Page[R]:
        """One page of a listing: its items read as ``model``, and where the listing goes on.
        With ``skip_unreadable`` (a sync, which one item must not stop) an item that does not
        fit ``model`` is left out and named in ``Page.skipped``; otherwise the page is
        refused."""
        answer = await self.call(user, method, request)
        if not isinstance(answer, dict) or not isinstance(answer.get(items, []), list):
            raise _unreadable(method, "not a listing")
        read: list[R] = []
        skipped: list[SkippedItem] = []
        for item in answer.get(items, []):
            try:
                read.append(_read(model, item, method))
            except GoogleCallError as error:
                if not skip_unreadable:
                    raise
                found = item.get("id") if isinstance(item, dict) else None
                skipped.append(SkippedItem(id=str(found), reason=error.detail or error.title))
                log.warning(
                    "an unreadable item of %s is skipped",
                    method,
                    extra={"google_id": str(found), "reason": error.detail},
                )
        return Page(
            items=read,
            next_page_token=answer.get("nextPageToken"),
            next_sync_token=answer.get("nextSyncToken"),
            skipped=tuple(skipped),
        )

    async def list_all(
        self,
        user: GoogleUser,
        method: str,
        request: Callable[[Resource, str | None], HttpRequest],
        model: type[R],
        *,
        items: str = "items",
    ) -> list[R]:
        """Every item of a listing, page after page (``request(client, page_token)``)."""
        found: list[R] = []
        token: str | None = None
        while True:

            def one_page(client: Resource, token: str | None = token) -> HttpRequest:
                return request(client, token)

            page = await self.page(user, method, one_page, model, items=items)
            found.extend(page.items)
            if not page.next_page_token:
                return found
            token = page.next_page_token

    async def ensure_gone(
        self, user: GoogleUser, method: str, request: Callable[[Resource], HttpRequest]
    ) -> None:
        """A delete (or a stop): what Google no longer has (``404``, ``410``) counts as done."""
        try:
            await self.call(user, method, request)
        except NotFound:
            return
        except GoogleCallError as error:
            if error.google_status != 410:
                raise

    async def stop_channel(self, user: GoogleUser, channel_id: str, resource_id: str) -> None:
        """``channels.stop``: one Google no longer knows (expired, stopped) counts as stopped."""
        await self.ensure_gone(
            user,
            "channels.stop",
            lambda client: client.channels().stop(
                body={"id": channel_id, "resourceId": resource_id}
            ),
        )

    async def upload(
        self, user: GoogleUser, method: str, start: Callable[[Resource], HttpRequest]
    ) -> Any:
        """A resumable upload, one chunk per attempt: ``start(client)`` builds the request
        carrying resumable media (``pipedesk_common.google.media.StreamedMedia``). A failed
        chunk is retried under the policy; the client first asks Google how much it holds and
        goes on from that offset, so nothing is sent twice and nothing is created twice."""
        transfer = await self._transfer(user)
        try:
            request = start(transfer.client)
            media = request.resumable
            while True:
                if isinstance(media, StreamedMedia):  # the client's bytes, before the slot
                    await media.prefetch(request.resumable_progress)
                async with self._semaphore(user):
                    _progress, done = await self._retried(
                        method,
                        lambda: transfer.run(
                            lambda http: request.next_chunk(http=http, num_retries=0)
                        ),
                    )
                if done is not None:
                    return done
        finally:
            transfer.close()

    async def download(
        self,
        user: GoogleUser,
        method: str,
        request: Callable[[Resource], HttpRequest],
        first: int,
        last: int,
        chunk_bytes: int,
    ) -> AsyncIterator[bytes]:
        """Bytes ``first`` to ``last`` of a media download, a ranged request per ``chunk_bytes``
        (each retried under the policy): never more than one piece in memory."""
        transfer = await self._transfer(user)
        try:
            position = first
            while position <= last:
                end = min(last, position + chunk_bytes - 1)

                def ranged(http: AuthorizedHttp, start: int = position, stop: int = end) -> Any:
                    piece = request(transfer.client)
                    piece.headers["Range"] = f"bytes={start}-{stop}"
                    return piece.execute(http=http, num_retries=0)

                async with self._semaphore(user):
                    data = await self._retried(method, lambda: transfer.run(ranged))
                if not data:
                    return
                position += len(data)
                yield data
        finally:
            transfer.close()

    def _retrying(
        self, method: str, worth_retrying: Callable[[BaseException], bool]
    ) -> AsyncRetrying:
        """The retry policy's attempts of one call of ``method``, retrying what ``worth_retrying``
        accepts, each retry counted."""
        policy = self._policy
        return AsyncRetrying(
            stop=stop_after_attempt(policy.max_attempts)
            | stop_after_delay(policy.max_total_seconds),
            wait=lambda retry_state: _wait(policy, retry_state),
            retry=retry_if_exception(worth_retrying),
            before_sleep=lambda _state: GOOGLE_RETRIES.labels(self.name, method).inc(),
            sleep=self._sleep,
            reraise=True,
        )

    async def _transfer(self, user: GoogleUser) -> _Transfer:
        credentials = await self._credentials.credentials(user, self._scopes)
        return _Transfer(self, user, credentials)

    async def _retried(self, method: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """``attempt()``, one piece of a transfer whose repeat changes nothing (a ranged read,
        a chunk sent from Google's offset), under the retry policy; failures as problems."""
        retrying = self._retrying(method, is_retryable)
        try:
            async for try_once in retrying:
                with try_once:
                    began = time.monotonic()
                    try:
                        result = await attempt()
                    except HttpError as error:
                        self._observe(method, str(error.resp.status), began)
                        if not is_retryable(error):
                            raise to_problem(
                                error, retry_after=_retry_after(error), api=self.name
                            ) from error
                        raise
                    except TRANSPORT_ERRORS:
                        self._observe(method, "connection_error", began)
                        raise
                    self._observe(method, "200", began)
                    return result
        except HttpError as error:
            raise to_problem(error, retry_after=_retry_after(error), api=self.name) from error
        except TRANSPORT_ERRORS as error:
            raise GoogleQuotaExhausted(
                "Google could not be reached", headers={"Retry-After": "30"}
            ) from error
        raise AssertionError("unreachable: the retry loop returns or raises")

    def _execute(self, credentials: Credentials, request: Callable[[Resource], HttpRequest]) -> Any:
        http = self._transport(credentials)
        try:
            return request(self._thread_client()).execute(http=http, num_retries=0)
        finally:
            http.close()  # its connections belong to this call alone

    def _observe(self, method: str, status: str, began: float) -> None:
        GOOGLE_CALLS.labels(self.name, method, status).inc()
        GOOGLE_SECONDS.labels(self.name, method).observe(time.monotonic() - began)


class _UnboundHttp(httplib2.Http):  # type: ignore[misc]
    """The transport of a kept client: none, each call brings its own."""

    def request(self, *_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("a kept client's request runs on the transport of its call")


class _KeptResources:
    """A client whose nested resources (``users()``, ``messages()``) are built once and kept:
    googleapiclient builds all of a resource's methods each time it is asked for one. Used by
    one thread only."""

    def __init__(self, resource: Resource) -> None:
        self._resource = resource
        self._nested: dict[str, _KeptResources] = {}
        self._names = frozenset(resource._resourceDesc.get("resources", {}))

    def __getattr__(self, name: str) -> Any:
        if name not in self._names:
            return getattr(self._resource, name)

        def nested() -> _KeptResources:
            found = self._nested.get(name)
            if found is None:
                found = self._nested[name] = _KeptResources(getattr(self._resource, name)())
            return found

        return nested


class _Transfer:
    """One client for the pieces of one media transfer, run one at a time in worker threads;
    a ``401`` gets one credential refresh."""

    def __init__(self, api: GoogleApi, user: GoogleUser, credentials: Credentials) -> None:
        self.api = api
        self.user = user
        self.client = api._client(credentials)
        self.http = self._http(credentials)
        self.refreshed = False

    def _http(self, credentials: Credentials) -> AuthorizedHttp:
        http = OneAttemptHttp(timeout=self.api._timeout)
        # A resumable upload's "308 Resume Incomplete" is an answer, not a redirect.
        http.redirect_codes = http.redirect_codes - {308}
        return AuthorizedHttp(credentials, http=http, refresh_status_codes=())

    async def run(self, piece: Callable[[AuthorizedHttp], T]) -> T:
        try:
            return await asyncio.to_thread(piece, self.http)
        except HttpError as error:
            if error.resp.status != 401 or self.refreshed:
                raise
            self.refreshed = True
            credentials = await self.api._credentials.refreshed(self.user, self.api._scopes)
            self.http.close()
            self.http = self._http(credentials)
            return await asyncio.to_thread(piece, self.http)

    def close(self) -> None:
        self.http.close()
        self.client.close()
