"""Google: OAuth refresh, Site Verification and Search Console (../shared/contracts/PROVIDERS.md, section 3).

One client per Google account (`gsc_accounts`: about five serve every site). It trades the account's refresh token for an
access token when it has none or the one it has is about to expire, and once more when a call answers 401; a second 401,
a revoked refresh token (`invalid_grant`) or a bad client (`invalid_client`) is an `AuthenticationError`, never retried.
Rate-limit answers (429, `rateLimitExceeded`) are retried after their `retry-after`, or without one after a quarter, a
half, then a whole minute (the quota is per minute); 5xx with a short back-off; `quotaExceeded` (a 403 that needs about
15 minutes) is not retried in-call: it raises `QuotaExceededError`, and the caller's schedule tries again later. Site
Verification's "token not found" (the TXT record has not propagated yet) is `VerificationPendingError`, the one answer
worth verifying again later.

Quirks handled here: site URLs are fully percent-encoded in paths (`sc-domain%3Aexample.com`); a Search Analytics answer
with no data has no `rows` key; `sites.list` has no `siteEntry` key when there are none; `sites.add` answers an empty body.
Fresh data: with `dataState: all` Google answers days that are not final yet, and when grouping by date the answer's
`metadata.firstIncompleteDate` says from which day on the numbers may still change (`daily_search` reads it).
The same client talks to Google and to the local simulator (`spark_resources.simulators.google`): only URLs and
credentials differ.
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, Callable, Iterator
from urllib.parse import quote

import httpx
from dagster import ConfigurableResource
from pydantic import Field

from spark_resources.providers.http import (
    DEFAULT_MAX_RETRY_AFTER,
    AuthenticationError,
    Limiter,
    ProviderError,
    TransientProviderError,
    budget_key,
    limiter_for,
    remember_credentials,
    with_retries,
)
from spark_resources.secrets import Secret

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

PROVIDER = "google"
TOKEN_URL = "https://oauth2.googleapis.com/token"
SEARCH_CONSOLE_URL = "https://www.googleapis.com/webmasters/v3"
SITE_VERIFICATION_URL = "https://www.googleapis.com/siteVerification/v1"
SCOPES = ("https://www.googleapis.com/auth/webmasters", "https://www.googleapis.com/auth/siteverification")
#: Search Analytics' largest page
MAX_ROW_LIMIT = 25_000
#: refresh this long before Google says the access token expires
_EXPIRY_MARGIN = 60.0
_RATE_REASONS = {"rateLimitExceeded", "userRateLimitExceeded"}
#: Search Console's quotas are per minute: throttling without a `retry-after` backs off for up to this long
QUOTA_WINDOW_SECONDS = 60.0
#: what Site Verification says when it cannot find the TXT record (yet)
_TOKEN_NOT_FOUND = "verification token could not be found"
_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


class QuotaExceededError(ProviderError):
    """Google's `quotaExceeded`: the quota comes back in about 15 minutes; try again then (not retried in-call)."""


class VerificationPendingError(ProviderError):
    """Site Verification cannot find the TXT record: it has not propagated yet, or it is missing. Worth verifying
    again minutes later, unlike every other refusal (a revoked token, a bad request)."""


@dataclass(frozen=True)
class SiteEntry:
    site_url: str
    permission_level: str


@dataclass(frozen=True)
class SearchAnalyticsRow:
    keys: tuple[str, ...]
    clicks: float
    impressions: float
    ctr: float
    position: float


@dataclass(frozen=True)
class DailySearch:
    """A site's Search Analytics by day, fresh data included (`dataState: all`)."""

    #: days Google has data for (a day absent had none)
    days: dict[date, SearchAnalyticsRow]
    #: from Google's metadata: days from it on are provisional, their numbers may still change; None: all final
    first_incomplete_date: date | None


def endpoints_on(base: str | None) -> dict[str, str]:
    """The three endpoints when one server answers them all (the simulator's layout), as SearchConsoleResource
    settings; {} (Google's own) when `base` is None or empty."""
    if not base:
        return {}
    return {"token_url": f"{base}/token", "search_console_url": f"{base}/webmasters/v3",
            "site_verification_url": f"{base}/siteVerification/v1"}


def domain_property(domain: str) -> str:
    """The Search Console domain property of `domain`: 'sc-domain:example.com'."""
    return f"sc-domain:{domain}"


def encode_site_url(site_url: str) -> str:
    """A site URL as a path segment, fully percent-encoded: 'sc-domain%3Aexample.com'."""
    return quote(site_url, safe="")


class GoogleClient:
    """Site Verification and Search Console for one Google account (its refresh token)."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: Secret,
        refresh_token: Secret,
        limiter: Limiter,
        token_url: str = TOKEN_URL,
        search_console_url: str = SEARCH_CONSOLE_URL,
        site_verification_url: str = SITE_VERIFICATION_URL,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        attempts: int = 4,
        max_wait: float = 60.0,
        max_retry_after: float = DEFAULT_MAX_RETRY_AFTER,
        throttle_window: float = QUOTA_WINDOW_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ):
        remember_credentials(client_secret, refresh_token)  # masked in every ProviderError, should one be echoed
        self._http = httpx.Client(timeout=httpx.Timeout(read_timeout, connect=connect_timeout))
        self._client_id = client_id
        self._client_secret = client_secret
        self._refresh_token = refresh_token
        self._limiter = limiter
        self._token_url = token_url
        self._search_console_url = search_console_url.rstrip("/")
        self._site_verification_url = site_verification_url.rstrip("/")
        self._attempts = attempts
        self._max_wait = max_wait
        self._max_retry_after = max_retry_after
        self._throttle_window = throttle_window
        self._sleep = sleep
        self._clock = clock
        self._access_token: Secret | None = None
        self._expires_at = 0.0
        self._token_lock = threading.Lock()

    def close(self) -> None:
        self._http.close()

    # --- Site Verification ----------------------------------------------------------------------------------------

    def verification_token(self, domain: str) -> str:
        """The DNS TXT value that proves this account owns `domain` ('google-site-verification=…')."""
        body = {"site": {"type": "INET_DOMAIN", "identifier": domain}, "verificationMethod": "DNS_TXT"}
        answer = self._request("POST", f"{self._site_verification_url}/token", json=body)
        token = answer.get("token")
        if not token:
            raise ProviderError(PROVIDER, "Site Verification answered without a token", code="malformed")
        return token

    def verify_domain(self, domain: str) -> list[str]:
        """Ask Google to check the TXT record; the owners of the verified domain. A record Google cannot see is a
        VerificationPendingError (DNS may not have propagated yet); any other refusal is final."""
        try:
            answer = self._request(
                "POST",
                f"{self._site_verification_url}/webResource",
                params={"verificationMethod": "DNS_TXT"},
                json={"site": {"type": "INET_DOMAIN", "identifier": domain}},
            )
        except ProviderError as exc:
            if type(exc) is ProviderError and exc.status == 400 and _TOKEN_NOT_FOUND in exc.provider_message.lower():
                raise VerificationPendingError(PROVIDER, exc.provider_message, code=exc.code, status=400) from None
            raise
        return list(answer.get("owners") or [])

    # --- Search Console -------------------------------------------------------------------------------------------

    def list_sites(self) -> list[SiteEntry]:
        answer = self._request("GET", f"{self._search_console_url}/sites")
        return [SiteEntry(e["siteUrl"], e.get("permissionLevel", "")) for e in answer.get("siteEntry") or []]

    def add_site(self, site_url: str) -> None:
        self._request("PUT", f"{self._search_console_url}/sites/{encode_site_url(site_url)}")

    def ensure_site(self, site_url: str) -> bool:
        """Add the property unless this account already has it; True when it was added."""
        if any(entry.site_url == site_url for entry in self.list_sites()):
            return False
        self.add_site(site_url)
        return True

    def search_analytics(
        self,
        site_url: str,
        start: date,
        end: date,
        *,
        dimensions: tuple[str, ...] = ("date",),
        data_state: str = "final",
        row_limit: int = MAX_ROW_LIMIT,
    ) -> Iterator[SearchAnalyticsRow]:
        """Every row for `site_url` from `start` to `end` (inclusive, Pacific time), page by page. Days without data
        are simply absent, as Google answers."""
        for answer in self._search_pages(site_url, start, end, dimensions, data_state, row_limit):
            yield from (_row(row) for row in answer.get("rows") or [])

    def daily_search(self, site_url: str, start: date, end: date) -> DailySearch:
        """Clicks, impressions and position per day from `start` to `end`, the days not final yet included
        (dimensions ["date"], dataState "all", paged like search_analytics). `first_incomplete_date`, from the answers'
        metadata, says from which day on the numbers are provisional; None when the whole range is final."""
        if end < start:
            raise ValueError(f"end {end} is before start {start}")
        days: dict[date, SearchAnalyticsRow] = {}
        first_incomplete: date | None = None
        for answer in self._search_pages(site_url, start, end, ("date",), "all", MAX_ROW_LIMIT):
            metadata = answer.get("metadata")
            if metadata is not None and not isinstance(metadata, dict):
                raise ProviderError(PROVIDER, "unexpected Search Analytics metadata (not an object)", code="malformed")
            marked = (metadata or {}).get("firstIncompleteDate")
            if marked is not None:
                marked = _iso_date(marked, "metadata.firstIncompleteDate")
                first_incomplete = marked if first_incomplete is None else min(first_incomplete, marked)
            for row in map(_row, answer.get("rows") or []):
                if len(row.keys) != 1:
                    raise ProviderError(PROVIDER, f"Search Analytics row keyed {list(row.keys)}, not by date",
                                        code="malformed")
                days[_iso_date(row.keys[0], "a row's date")] = row
        return DailySearch(dict(sorted(days.items())), first_incomplete)

    def _search_pages(
        self, site_url: str, start: date, end: date, dimensions: tuple[str, ...], data_state: str, row_limit: int
    ) -> Iterator[dict]:
        """Search Analytics' answers, one per page: `startRow` rises by `row_limit` until a short or empty page."""
        url = f"{self._search_console_url}/sites/{encode_site_url(site_url)}/searchAnalytics/query"
        start_row = 0
        while True:
            body = {
                "startDate": start.isoformat(), "endDate": end.isoformat(), "dimensions": list(dimensions),
                "rowLimit": row_limit, "startRow": start_row, "dataState": data_state,
            }
            answer = self._request("POST", url, json=body)
            yield answer
            if len(answer.get("rows") or []) < row_limit:
                return
            start_row += row_limit

    # --- transport ------------------------------------------------------------------------------------------------

    def _token(self, *, force: bool = False) -> Secret:
        with self._token_lock:
            if force or self._access_token is None or time.monotonic() >= self._expires_at:
                answer = self._refresh()  # called within a call's attempt: that attempt's retries cover it
                self._access_token = Secret(answer["access_token"])
                self._expires_at = time.monotonic() + float(answer.get("expires_in", 3600)) - _EXPIRY_MARGIN
            return self._access_token

    def _refresh(self) -> dict:
        self._limiter.acquire()
        response = self._http.post(
            self._token_url,
            data={
                "client_id": self._client_id,
                "client_secret": self._client_secret.reveal(),
                "refresh_token": self._refresh_token.reveal(),
                "grant_type": "refresh_token",
            },
        )
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientProviderError(PROVIDER, f"token endpoint answered {response.reason_phrase}",
                                         status=response.status_code, retry_after=response.headers.get("retry-after"),
                                         throttled=response.status_code == 429)
        try:
            body = response.json()
        except ValueError:
            raise TransientProviderError(PROVIDER, "malformed token response (not JSON)", code="malformed",
                                         status=response.status_code) from None
        if response.status_code != 200 or "access_token" not in body:
            error = body.get("error") if isinstance(body, dict) else None
            description = body.get("error_description") if isinstance(body, dict) else None
            raise AuthenticationError(
                PROVIDER, f"OAuth refresh refused: {description or error or response.reason_phrase}",
                code=error if isinstance(error, str) else None, status=response.status_code,
            )
        return body

    def _request(self, method: str, url: str, **kwargs: Any) -> dict:
        refreshed = False

        def attempt() -> dict:
            nonlocal refreshed
            self._limiter.acquire()
            token = self._token()
            response = self._http.request(method, url, headers={"Authorization": f"Bearer {token.reveal()}"}, **kwargs)
            if response.status_code == 401 and not refreshed:
                # the access token was revoked or expired early: refresh once, then a second 401 is final
                refreshed = True
                self._token(force=True)
                self._limiter.acquire()
                response = self._http.request(
                    method, url, headers={"Authorization": f"Bearer {self._token().reveal()}"}, **kwargs
                )
            return _answer(response)

        return with_retries(PROVIDER, attempt, attempts=self._attempts, max_wait=self._max_wait,
                            max_retry_after=self._max_retry_after, throttle_window=self._throttle_window,
                            sleep=self._sleep, clock=self._clock)


def _row(row: Any) -> SearchAnalyticsRow:
    if not isinstance(row, dict):
        raise ProviderError(PROVIDER, "unexpected Search Analytics row (not an object)", code="malformed")
    try:
        return SearchAnalyticsRow(
            tuple(str(key) for key in row.get("keys") or ()), float(row.get("clicks", 0)),
            float(row.get("impressions", 0)), float(row.get("ctr", 0)), float(row.get("position", 0)),
        )
    except (TypeError, ValueError):
        raise ProviderError(PROVIDER, "unexpected Search Analytics row (a number is not one)", code="malformed") from None


def _iso_date(value: Any, what: str) -> date:
    """A 'YYYY-MM-DD' date from Google, or a malformed-answer error naming `what` it was."""
    try:
        if not isinstance(value, str) or not _ISO_DAY.fullmatch(value):
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise ProviderError(PROVIDER, f"unexpected Search Analytics answer: {what} is {value!r}, not YYYY-MM-DD",
                            code="malformed") from None


def _answer(response: httpx.Response) -> dict:
    """The decoded body of a successful call (an empty one is `{}`), or the typed error for this response."""
    if 200 <= response.status_code < 300 and not response.content.strip():
        return {}
    try:
        body = response.json()
        if not isinstance(body, dict):
            raise ValueError("not an object")
    except ValueError:
        raise TransientProviderError(PROVIDER, "malformed response body (not JSON)", code="malformed",
                                     status=response.status_code) from None
    if 200 <= response.status_code < 300 and "error" not in body:
        return body
    error = body.get("error") if isinstance(body.get("error"), dict) else {}
    reasons = [e.get("reason") for e in error.get("errors") or [] if isinstance(e, dict)]
    reason = next((r for r in reasons if r), None) or error.get("status")
    message = error.get("message") or response.reason_phrase
    status = response.status_code
    if status == 429 or reason in _RATE_REASONS:
        raise TransientProviderError(PROVIDER, message, code=reason, status=status,
                                     retry_after=response.headers.get("retry-after"), throttled=True)
    if reason == "quotaExceeded":
        raise QuotaExceededError(PROVIDER, f"{message}; the quota returns in about 15 minutes", code=reason,
                                 status=status)
    if status >= 500:
        raise TransientProviderError(PROVIDER, message, code=reason, status=status)
    if status in (401, 403):
        raise AuthenticationError(PROVIDER, message, code=reason, status=status)
    raise ProviderError(PROVIDER, message, code=reason, status=status)


class SearchConsoleResource(ConfigurableResource):
    """Google Search Console and Site Verification. The OAuth client (`client_id`, `client_secret`) is the project's,
    from the environment (GOOGLE_CLIENT_ID, GOOGLE_CLIENT_SECRET); refresh tokens are per account, encrypted in
    `gsc_accounts`. For the sandbox, point the three URLs at the simulator."""

    client_id: str | None = Field(None, description="OAuth client id; default: $GOOGLE_CLIENT_ID")
    client_secret: str | None = Field(None, description="OAuth client secret; default: $GOOGLE_CLIENT_SECRET")
    token_url: str = TOKEN_URL
    search_console_url: str = SEARCH_CONSOLE_URL
    site_verification_url: str = SITE_VERIFICATION_URL
    queries_per_minute: int = Field(1200, description="client-side limit, Google's per-user and per-site quota")
    verification_retries: int = Field(
        3, description="times site_search_console verifies again when Google cannot see the TXT record yet"
    )
    verification_retry_seconds: float = Field(300.0, description="wait before each of those (DNS propagation)")
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    attempts: int = 4
    max_wait_seconds: float = Field(60.0, description="longest back-off after a server error or a timeout")
    max_retry_after_seconds: float = Field(
        DEFAULT_MAX_RETRY_AFTER, description="a `retry-after` up to this long is waited out; a longer one fails at once"
    )
    throttle_window_seconds: float = Field(
        QUOTA_WINDOW_SECONDS,
        description="after `rateLimitExceeded` without a retry-after, back off for up to this long",
    )

    def get_client(self, refresh_token: Secret, *, engine: "Engine | None" = None) -> GoogleClient:
        """A client for the account of `refresh_token`. With `engine`, the rate limit is counted in the database per
        account, shared by every process (Google counts per user); without, per budget in this process."""
        client_id = self.client_id or os.environ.get("GOOGLE_CLIENT_ID")
        client_secret = self.client_secret or os.environ.get("GOOGLE_CLIENT_SECRET")
        missing = [name for name, value in (("GOOGLE_CLIENT_ID", client_id), ("GOOGLE_CLIENT_SECRET", client_secret))
                   if not value]
        if missing:
            raise ProviderError(PROVIDER, f"{' and '.join(missing)} not set: the OAuth client comes from the environment")
        limiter = limiter_for(budget_key(PROVIDER, refresh_token.reveal()), [(self.queries_per_minute, 60.0)], engine)
        return GoogleClient(
            client_id=client_id, client_secret=Secret(client_secret), refresh_token=refresh_token,
            limiter=limiter, token_url=self.token_url, search_console_url=self.search_console_url,
            site_verification_url=self.site_verification_url, connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout, attempts=self.attempts, max_wait=self.max_wait_seconds,
            max_retry_after=self.max_retry_after_seconds, throttle_window=self.throttle_window_seconds,
        )
