"""Matomo Reporting API: one Matomo site per Spark site, and its daily visits (PROVIDERS.md, section 4).

Every call is a form-encoded POST to the instance's `index.php` with `module=API`, `method=<Plugin.method>`,
`format=JSON` and `token_auth` in the body, never in the URL (Matomo 5 refuses secure tokens sent as GET parameters, and
URLs end up in access logs). The same client talks to a real instance and to the local simulator
(`spark_resources.simulators.matomo`): only the URL and the token differ.

Quirks handled here: errors arrive as `{"result": "error", "message": ...}` under HTTP 200 (Matomo 4) or HTTP 401
(Matomo 5, bad token), so every answer is checked; `idsite` may be a string; a day without data is `[]` inside a
multi-day report; `bounce_rate` is a string such as `"68%"`. Matomo cannot tell "no such site" from "no access to it":
both are the "requires 'view' access" error, surfaced as an AuthenticationError. Self-hosted Matomo has no API rate
limit, so there is no RateLimiter here; retries follow `providers.http` (429 from a reverse proxy, 5xx, timeouts,
malformed bodies).

Several sites in one call: `idSite` takes a comma-separated list or `all`, and the answer is then keyed by site id (a
string), each value what that one site alone would have answered; one id alone is answered unkeyed, as for a single
site. `daily_visits_by_site` reads both, in chunks of MAX_SITES_PER_CALL ids (long lists make long POST bodies and
long archiving queries). A named site the token cannot view fails the whole call with the "requires 'view' access for
the website id = N" error; `site_id_in_error` reads N back, so a caller can drop that site and ask again.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Sequence

import httpx
from dagster import ConfigurableResource
from pydantic import Field

from spark_resources.providers.http import (
    DEFAULT_MAX_RETRY_AFTER,
    AuthenticationError,
    ProviderError,
    TransientProviderError,
    remember_credentials,
    with_retries,
)
from spark_resources.secrets import Secret

PROVIDER = "matomo"
#: a placeholder: there is no public Matomo, operators set SPARK_MATOMO_URL to their instance's index.php
DEFAULT_BASE_URL = "https://matomo.example/index.php"
#: ids per VisitsSummary.get call when asking for a list of sites: longer lists go in several calls
MAX_SITES_PER_CALL = 200
TOKEN_VARIABLE = "MATOMO_TOKEN_AUTH"
#: `result: error` messages that mean a bad token or missing access (lower case): never retried
_AUTH_MESSAGES = (
    "token_auth", "authenticate", "you can't access", "you cannot access", "requires 'view' access",
    "requires 'admin' access", "requires 'write' access", "superuser access", "super user access", "not logged in",
)
#: the site a "requires 'view' access for the website id = N" error names
_SITE_IN_ERROR = re.compile(r"website id\s*=\s*(\d+)", re.IGNORECASE)
_DAY_LABEL = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class DailyVisits:
    """One day of `VisitsSummary.get`. A day without data is all zeros (see `MatomoClient.daily_visits`)."""

    date: date
    visits: int
    unique_visitors: int
    actions: int
    bounce_rate: float  # a fraction: "68%" -> 0.68
    avg_time_on_site: int  # seconds


class MatomoClient:
    def __init__(
        self,
        base_url: str,
        token_auth: "str | Secret",
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        attempts: int = 4,
        max_wait: float = 60.0,
        max_retry_after: float = DEFAULT_MAX_RETRY_AFTER,
        transport: httpx.BaseTransport | None = None,
    ):
        self._http = httpx.Client(timeout=httpx.Timeout(read_timeout, connect=connect_timeout), transport=transport)
        self._url = base_url
        self._token = token_auth if isinstance(token_auth, Secret) else Secret(token_auth)
        remember_credentials(self._token)  # masked in every ProviderError, should Matomo or a plugin echo it
        self._attempts = attempts
        self._max_wait = max_wait
        self._max_retry_after = max_retry_after

    def close(self) -> None:
        self._http.close()

    # --- sites ----------------------------------------------------------------------------------------------------

    def find_site_id(self, url: str) -> int | None:
        """The id of the site Matomo tracks at `url` (it matches http/https and www variants), or None."""
        sites = self._call("SitesManager.getSitesIdFromSiteUrl", url=url)
        if not isinstance(sites, list):
            raise ProviderError(PROVIDER, "unexpected getSitesIdFromSiteUrl answer (not a list)", code="malformed")
        ids = sorted(int(site["idsite"]) for site in sites if isinstance(site, dict) and "idsite" in site)
        return ids[0] if ids else None

    def add_site(self, name: str, urls: list[str], timezone: str = "UTC", currency: str = "USD") -> int:
        """Create a site (super-user token only); its new id."""
        body = self._call("SitesManager.addSite", siteName=name, **{"urls[]": urls}, timezone=timezone,
                          currency=currency)
        try:
            return int(body["value"])
        except (KeyError, TypeError, ValueError):
            raise ProviderError(PROVIDER, "unexpected addSite answer (no value)", code="malformed") from None

    def ensure_site(self, name: str, url: str, timezone: str = "UTC") -> tuple[int, bool]:
        """The id of the site at `url`, created as `name` in `timezone` (its days' boundaries) if missing; (id,
        created). Safe to re-run (an existing site keeps its settings)."""
        site_id = self.find_site_id(url)
        if site_id is not None:
            return site_id, False
        return self.add_site(name, [url], timezone=timezone), True

    # --- reports --------------------------------------------------------------------------------------------------

    def daily_visits(self, site_id: int, start: date, end: date) -> list[DailyVisits]:
        """One row per day from `start` to `end` inclusive, in order. Days Matomo has no data for (`[]`) come back as
        rows of zeros, so callers can store explicit zeros rather than guess what a gap means."""
        return self.daily_visits_by_site([site_id], start, end)[site_id]

    def daily_visits_by_site(
        self, site_ids: Sequence[int] | None, start: date, end: date
    ) -> dict[int, list[DailyVisits]]:
        """Every day from `start` to `end` for several sites, one `VisitsSummary.get` per MAX_SITES_PER_CALL ids:
        {site id: one row per day, in order, zeros for days without data}. `site_ids` None asks for `all`: every site
        the token can view, the others simply absent. A named site the token cannot view fails the call with an
        AuthenticationError whose message keeps its id (`site_id_in_error`); a named site missing from the answer is
        a malformed answer. An empty list asks nothing."""
        if end < start:
            raise ValueError(f"end {end} is before start {start}")
        if site_ids is None:
            report = self._call("VisitsSummary.get", idSite="all", period="day", date=f"{start},{end}")
            return {site_id: _site_days(days, start, end) for site_id, days in _by_site(report, None).items()}
        ids = sorted({int(site_id) for site_id in site_ids})
        result: dict[int, list[DailyVisits]] = {}
        for first in range(0, len(ids), MAX_SITES_PER_CALL):
            chunk = ids[first : first + MAX_SITES_PER_CALL]
            report = self._call("VisitsSummary.get", idSite=",".join(map(str, chunk)), period="day",
                                date=f"{start},{end}")
            for site_id, days in _by_site(report, chunk).items():
                result[site_id] = _site_days(days, start, end)
        return result

    # --- transport ------------------------------------------------------------------------------------------------

    def _call(self, method: str, **params: Any) -> Any:
        def attempt() -> Any:
            token = self._token.reveal()
            data = {"module": "API", "method": method, "format": "JSON", **params, "token_auth": token}
            return _parse(self._http.post(self._url, data=data))

        return with_retries(PROVIDER, attempt, attempts=self._attempts, max_wait=self._max_wait,
                            max_retry_after=self._max_retry_after)


def _parse(response: httpx.Response) -> Any:
    """The decoded body of a successful call, or the typed error for this response. Messages come from the response
    body only; ProviderError redacts the token should a proxy or a plugin echo it."""
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    message = body.get("message") if isinstance(body, dict) else None
    message = str(message or response.reason_phrase or "no message")
    status = response.status_code
    if status == 429:
        raise TransientProviderError(PROVIDER, message, status=429, retry_after=response.headers.get("retry-after"),
                                     throttled=True)
    if status >= 500:
        raise TransientProviderError(PROVIDER, message, status=status)
    if status in (401, 403):
        raise AuthenticationError(PROVIDER, message, status=status)
    if body is None:
        if status >= 400:
            raise ProviderError(PROVIDER, message, status=status)
        raise TransientProviderError(PROVIDER, "malformed response body (not JSON)", code="malformed", status=status)
    if isinstance(body, dict) and body.get("result") == "error":
        if any(marker in message.lower() for marker in _AUTH_MESSAGES):
            raise AuthenticationError(PROVIDER, message, status=status)
        raise ProviderError(PROVIDER, message, status=status)
    if status >= 400:
        raise ProviderError(PROVIDER, message, status=status)
    return body


def site_id_in_error(exc: ProviderError) -> int | None:
    """The site a Matomo "requires 'view' access for the website id = N" error names (N), or None when the error names
    none (a bad token, another refusal)."""
    found = _SITE_IN_ERROR.search(exc.provider_message)
    return int(found.group(1)) if found else None


def _by_site(report: Any, asked: list[int] | None) -> dict[int, Any]:
    """A VisitsSummary.get answer for `asked` (None: `all`) as {site id: that site's own answer}. Matomo keys the answer
    by site only for `all` or for more than one id; one id alone is answered as for a single site."""
    if asked is not None and len(asked) == 1:
        only = str(asked[0])
        if isinstance(report, dict) and set(report) == {only}:  # keyed anyway: take the one site's value
            report = report[only]
        return {asked[0]: report}
    if report == []:  # PHP's empty array: `all` on a token that can view no site
        report = {}
    if not isinstance(report, dict) or not all(str(key).isdigit() for key in report):
        raise ProviderError(PROVIDER, "unexpected VisitsSummary.get answer (not keyed by site)", code="malformed")
    by_site = {int(key): value for key, value in report.items()}
    missing = sorted(set(asked or ()) - set(by_site))
    if missing:
        raise ProviderError(PROVIDER, f"VisitsSummary.get answered without site(s) {missing}", code="malformed")
    return by_site if asked is None else {site_id: by_site[site_id] for site_id in asked}


def _site_days(report: Any, start: date, end: date) -> list[DailyVisits]:
    """One site's answer as one row per day, start to end: a dict keyed by date (`[]` for a day without data), or,
    when start == end, possibly the single period itself (an object without a date label, or `[]`)."""
    if start == end and (report == [] or (isinstance(report, dict) and start.isoformat() not in report
                                           and any(not _is_date(key) for key in report))):
        report = {start.isoformat(): report}  # a single period, answered without its label
    if report == []:
        report = {}
    if not isinstance(report, dict) or not all(_is_date(key) for key in report):
        raise ProviderError(PROVIDER, "unexpected VisitsSummary.get answer (not keyed by date)", code="malformed")
    if any(not (isinstance(value, dict) or value == []) for value in report.values()):
        raise ProviderError(PROVIDER, "unexpected VisitsSummary.get answer (a day is neither a report nor [])",
                            code="malformed")
    days = (start + timedelta(days=i) for i in range((end - start).days + 1))
    return [_daily(day, report.get(day.isoformat())) for day in days]


def _is_date(text: Any) -> bool:
    """A Matomo period label for a day: 'YYYY-MM-DD' exactly."""
    if not _DAY_LABEL.fullmatch(str(text)):
        return False
    try:
        date.fromisoformat(str(text))
    except ValueError:
        return False
    return True


def parse_bounce_rate(value: Any) -> float:
    """Matomo's bounce rate as a fraction: "68%" -> 0.68 (a bare number is taken as a fraction already)."""
    if value is None or value == "":
        return 0.0
    if isinstance(value, str):
        text = value.strip().replace(",", ".")
        if text.endswith("%"):
            return round(float(text[:-1]) / 100, 4)
        return float(text)
    return float(value)


def _int(value: Any) -> int:
    return int(float(value)) if value not in (None, "") else 0


def _daily(day: date, row: Any) -> DailyVisits:
    if not isinstance(row, dict):  # `[]`, or a day missing from the answer
        row = {}
    return DailyVisits(
        date=day,
        visits=_int(row.get("nb_visits")),
        unique_visitors=_int(row.get("nb_uniq_visitors")),
        actions=_int(row.get("nb_actions")),
        bounce_rate=parse_bounce_rate(row.get("bounce_rate")),
        avg_time_on_site=_int(row.get("avg_time_on_site")),
    )


class MatomoResource(ConfigurableResource):
    """Matomo Reporting API. There is no public default: operators set SPARK_MATOMO_URL (the instance's `index.php`)
    into `base_url`; the sandbox is `base_url` = the simulator's. The token needs super-user access to add sites.
    No rate limiter: self-hosted Matomo has no API rate limit."""

    base_url: str = Field(DEFAULT_BASE_URL, description="the Matomo index.php URL, from SPARK_MATOMO_URL")
    tracker_url: str | None = Field(
        None, description="where visitors' browsers load matomo.js from and report to (default: base_url's "
        "directory); the sandbox names a fixed address, so its loopback port never reaches the pages"
    )
    token_auth: str | None = Field(
        None, description=f"API token (super user, to add sites); when unset, read from {TOKEN_VARIABLE}"
    )
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    attempts: int = 4
    max_wait_seconds: float = Field(60.0, description="longest back-off after a server error or a timeout")
    max_retry_after_seconds: float = Field(
        DEFAULT_MAX_RETRY_AFTER, description="a `retry-after` up to this long is waited out; a longer one fails at once"
    )

    def get_client(self) -> MatomoClient:
        token = self.token_auth or os.environ.get(TOKEN_VARIABLE)
        if not token:
            raise ProviderError(PROVIDER, f"{TOKEN_VARIABLE} is not set: give the resource a token_auth or set it",
                                code="not_configured")
        return MatomoClient(
            self.base_url, Secret(token), connect_timeout=self.connect_timeout, read_timeout=self.read_timeout,
            attempts=self.attempts, max_wait=self.max_wait_seconds, max_retry_after=self.max_retry_after_seconds,
        )
