"""A local Matomo Reporting API for tests and the offline demo (the sandbox mode): a real HTTP server on loopback that
answers as PROVIDERS.md section 4 says, quirks included: errors as `{"result":"error"}` under HTTP 200 (`version=4`)
or HTTP 401 for a bad token (`version=5`), `idsite` as a string, `[]` for days without data, `"68%"` bounce rates.

    with MatomoSimulator(token="sandbox-matomo-token") as matomo:
        client = MatomoClient(matomo.base_url, "sandbox-matomo-token")
        site_id, created = client.ensure_site("Demo Roofing", "https://demo-roofing.example")
        client.daily_visits(site_id, date(2026, 11, 1), date(2026, 11, 7))
        matomo.inject("500", times=2)   # the next two calls answer HTTP 500

For the offline demo, point MatomoResource's `base_url` at `matomo.base_url` and give it the simulator's token.
Sites live for the simulator's lifetime, with ids from 1. Visits are made up but deterministic: each day's numbers come
from a SHA-256 of (idSite, date), so two simulators, or two runs, give the same report; about one day in five has no
data. `set_day` replaces one day's report (a test's own numbers). Like Matomo 5 with secure-only tokens, a `token_auth`
in the query string is refused with 401, whatever the version: the client must send it in the POST body.

Late data, as a real instance shows it: `today` (a field, `date.today` unless a test pins it; the `today`/`yesterday`
date keywords use it too) has visits still arriving and yesterday's archive is not final yet, so their counts are a
fixed share of the settled ones (PARTIAL_DAY_FRACTIONS, rounded down; a partial day left without visits is `[]`), and a
day after `today` has no data. `full_report` gives the settled numbers, `day_report` what is answered now. One "today"
serves every site: the timezone given to addSite is stored but does not shift it (Matomo would use each site's own).

Several sites in one call: `idSite` takes a comma-separated list (spaces around ids and empty entries are ignored, as
Matomo does) or `all` (every site: the sandbox has no per-token access), and the answer is keyed by site id as a
string whenever it names more than one site or is `all`; one id alone is answered unkeyed, as Matomo does. A list naming
a site that does not exist fails with the "requires 'view' access for the website id = N" error for the first such id
in sorted order. An id that is not a number fails with the same error naming it as sent (Matomo silently drops such
ids; the sandbox refuses them so a client bug shows).
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from datetime import date, timedelta
from fractions import Fraction
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from spark_resources.simulators.base import Faults, LoopbackServer, Request, Response, Simulator

FAULTS = ("429", "500", "timeout", "malformed", "auth")
BAD_TOKEN = "Unable to authenticate with the provided token. It is either invalid or expired."
TOKEN_IN_URL = ("Unable to authenticate with the provided token. It is either invalid, expired or is required to be "
                "sent as a POST parameter.")
EMPTY_DAY = {"nb_uniq_visitors": 0, "nb_users": 0, "nb_visits": 0, "nb_actions": 0, "nb_visits_converted": 0,
             "bounce_count": 0, "sum_visit_length": 0, "max_actions": 0, "bounce_rate": "0%",
             "nb_actions_per_visit": 0, "avg_time_on_site": 0}
#: the share of the settled counts a recent day shows, by days before `today` (0: today, visits still arriving; 1:
#: yesterday, archiving not finished); older days are settled
PARTIAL_DAY_FRACTIONS = {0: Fraction(2, 5), 1: Fraction(17, 20)}


@dataclass
class MatomoSimulator(Simulator):
    token: str = "sandbox-matomo-token"
    version: int = 4
    timeout_seconds: float = 2.0
    #: what "today" is for late data and the `today`/`yesterday` keywords (tests pin it); one date for every site
    today: Callable[[], date] = date.today
    sites: dict[int, dict] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)  # as received, to check where the token travelled
    faults: Faults = field(default_factory=lambda: Faults(FAULTS))
    _days: dict[tuple[int, str], dict | list] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: LoopbackServer | None = None

    path = "/index.php"

    # --- test controls --------------------------------------------------------------------------------------------

    def set_day(self, site_id: int, day: date | str, report: dict | list) -> None:
        """Answer `report` (a VisitsSummary object, or `[]` for no data) for this site and day."""
        with self._lock:
            self._days[(site_id, str(day))] = report

    def full_report(self, site_id: int, day: date | str) -> dict | list:
        """The settled VisitsSummary for this site and day, once archiving is done: an object, or `[]` (no data). A
        `set_day` report wins; otherwise made-up numbers from a SHA-256 of site and day."""
        day = str(day)
        if (site_id, day) in self._days:
            return self._days[(site_id, day)]
        digest = hashlib.sha256(f"matomo:{site_id}:{day}".encode()).digest()
        if digest[0] % 5 == 0:
            return []
        visits = 1 + digest[1] % 150
        unique = visits - digest[2] % (visits // 4 + 1)
        actions = visits + digest[3] % (2 * visits + 1)
        bounces = digest[4] % (visits + 1)
        length = visits * (5 + digest[5] % 240)
        return _report(visits, unique, actions, bounces, length, 1 + digest[6] % 20)

    def day_report(self, site_id: int, day: date | str) -> dict | list:
        """What VisitsSummary.get reports now (given `today`) for this site and day within a range: an object, or `[]`
        (no data). A day after today is `[]`; today and yesterday are partial (PARTIAL_DAY_FRACTIONS of every count,
        rounded down, `[]` when no visit is left); older days are `full_report`. A `set_day` report is answered as
        set, whatever the day."""
        key = str(day)
        if (site_id, key) in self._days:
            return self._days[(site_id, key)]
        age = (self.today() - date.fromisoformat(key)).days
        if age < 0:
            return []
        full = self.full_report(site_id, key)
        fraction = PARTIAL_DAY_FRACTIONS.get(age)
        if fraction is None or not full:
            return full
        visits = int(full["nb_visits"] * fraction)
        if visits == 0:
            return []
        actions = int(full["nb_actions"] * fraction)
        # at least one visitor made the visits left: rounding down alone could leave none
        unique = max(1, int(full["nb_uniq_visitors"] * fraction))
        return _report(visits, unique, actions, int(full["bounce_count"] * fraction),
                       int(full["sum_visit_length"] * fraction), min(full["max_actions"], actions))

    # --- the API --------------------------------------------------------------------------------------------------

    def _handle(self, request: Request) -> Response | None:
        query = parse_qs(request.query)
        form = parse_qs(request.body.decode()) if request.method == "POST" else {}
        params = query | form
        method = (params.get("method") or [""])[0]
        with self._lock:
            self.calls.append(method)
            self.requests.append(request)
        fault, answer = self._common_fault(
            server_error=Response(500, b"<html><body>Internal Server Error</body></html>", "text/html")
        )
        if answer is not None:
            return answer
        if fault == "429":  # no limit in Matomo itself: a reverse proxy in front of it
            return Response(429, b"Too Many Requests", "text/plain", {"retry-after": "0"})
        if request.path != self.path:
            return Response(404, b"Not Found", "text/plain")
        if "token_auth" in query:
            return _error(TOKEN_IN_URL, 401)
        if (params.get("module") or [""])[0] != "API":
            return _error("The sandbox serves module=API only", 400)
        if (params.get("format") or [""])[0].lower() != "json":
            return _error("The sandbox answers format=JSON only", 400)
        if fault == "auth" or (params.get("token_auth") or [""])[0] != self.token:
            return _error(BAD_TOKEN, 401 if self.version >= 5 else 200)
        with self._lock:
            return self._method(method, params)

    def _method(self, method: str, params: dict[str, list[str]]) -> Response:
        def one(name: str) -> str:
            return (params.get(name) or [""])[0].strip()

        if method == "SitesManager.addSite":
            urls = [u for u in params.get("urls[]", []) + params.get("urls", []) if u.strip()]
            if not one("siteName"):
                return _error("Please specify a value for 'siteName'.")
            if not urls:
                return _error("You must specify at least one URL for the site.")
            site_id = max(self.sites, default=0) + 1
            self.sites[site_id] = {"name": one("siteName"), "urls": urls, "timezone": one("timezone") or "UTC",
                                   "currency": one("currency") or "USD"}
            return _json({"value": site_id})
        if method == "SitesManager.getSitesIdFromSiteUrl":
            if not one("url"):
                return _error("Please specify a value for 'url'.")
            wanted = _normalize(one("url"))
            found = [i for i, site in self.sites.items() if wanted in {_normalize(u) for u in site["urls"]}]
            return _json([{"idsite": str(i)} for i in sorted(found)])
        if method == "VisitsSummary.get":
            return self._visits(one("idSite"), one("period"), one("date"))
        module = method.partition(".")[0] or "API"
        return _error(f"The method '{method.partition('.')[2]}' does not exist or is not available in the module "
                      f"'{module}'.")

    def _visits(self, id_site: str, period: str, dates: str) -> Response:
        if id_site == "all":
            site_ids, by_site = sorted(self.sites), True
        else:
            named = [part.strip() for part in id_site.split(",") if part.strip()]
            refused = [part for part in named if not part.isdigit()]  # Matomo drops these; the sandbox refuses them
            refused += sorted({int(part) for part in named if part.isdigit()} - set(self.sites))
            if refused or not named:
                return _error(f"You can't access this resource as it requires 'view' access for the website id = "
                              f"{refused[0] if refused else 0}.")
            site_ids = sorted({int(part) for part in named})
            by_site = len(site_ids) > 1
        if period != "day":
            return _error("The sandbox serves period=day only")
        try:
            first, _, last = dates.partition(",")
            start = self._day(first)
            end = self._day(last) if last else None
        except ValueError:
            return _error(f"Date format must be: YYYY-MM-DD, or 'today' or 'yesterday' or any keyword supported by "
                          f"the strtotime function (see http://php.net/strtotime for more information): {dates}")

        def one_site(site_id: int) -> dict | list:
            if end is None:  # one period: no label, zeros when there is no data
                return self.day_report(site_id, start) or EMPTY_DAY
            days = (start + timedelta(days=i) for i in range((end - start).days + 1))
            return {d.isoformat(): self.day_report(site_id, d) for d in days}

        if not by_site:
            return _json(one_site(site_ids[0]))
        return _json({str(site_id): one_site(site_id) for site_id in site_ids} or [])  # PHP's empty array is []

    def _day(self, text: str) -> date:
        if text == "today":
            return self.today()
        if text == "yesterday":
            return self.today() - timedelta(days=1)
        return date.fromisoformat(text)


def _normalize(url: str) -> str:
    """How Matomo compares site URLs, roughly: no scheme, no www., no trailing slash, lower case."""
    parts = urlsplit(url if "//" in url else f"//{url}")
    host = parts.netloc.lower().removeprefix("www.")
    return f"{host}{parts.path.rstrip('/')}"


def _json(payload: Any, status: int = 200) -> Response:
    return Response(status, json.dumps(payload).encode())


def _error(message: str, status: int = 200) -> Response:
    """Matomo's error answer: HTTP 200 in Matomo 4 (and for most errors in 5)."""
    return _json({"result": "error", "message": message}, status)


def _report(visits: int, unique: int, actions: int, bounces: int, length: int, max_actions: int) -> dict:
    """A VisitsSummary object from its counts, the rates computed from them as Matomo does (`visits` > 0)."""
    return {"nb_uniq_visitors": unique, "nb_users": 0, "nb_visits": visits, "nb_actions": actions,
            "nb_visits_converted": 0, "bounce_count": bounces, "sum_visit_length": length, "max_actions": max_actions,
            "bounce_rate": f"{round(100 * bounces / visits)}%",
            "nb_actions_per_visit": _number(round(actions / visits, 1)), "avg_time_on_site": round(length / visits)}


def _number(value: float) -> int | float:
    """A value as Matomo's JSON writes it: a whole number without the `.0` (2, not 2.0)."""
    return int(value) if float(value).is_integer() else value
