"""A local Google for tests and the offline demo (the sandbox mode): the OAuth token endpoint, Site Verification and Search
Console on one loopback server, answering as ../shared/contracts/PROVIDERS.md section 3 says.

    with GoogleSimulator() as google:
        google.add_account("seo@example.com", refresh_token="1//sandbox")
        google.txt_lookup = cloudflare.txt_records      # verification reads the Cloudflare simulator's TXT records
        client = GoogleClient(token_url=google.token_url, search_console_url=google.search_console_url,
                              site_verification_url=google.site_verification_url, ...)

The state machine is Google's: a domain verifies only once a TXT record holding the account's token exists for it; only a
verified owner can add the `sc-domain:` property; only a property's owner can query it. Search Analytics answers
deterministic traffic per site and day (BLAKE2b of site and day, so every run and machine sees the same numbers), with some
days missing, data delayed by three days unless `dataState=all`, rows sorted by clicks, and no `rows` key when empty.
Enum values are read in any case, as the API reads them (`dataState=ALL`, `dimensions=["DATE"]`, `type=WEB`: the
spellings of the discovery document the official client is built from); `searchAppearance` is a dimension too, and
search types other than `web` have no data (a local business's site has next to no image, video or news traffic).
Faults for the next calls: 429 (rateLimitExceeded), 500, timeout, malformed, auth (a 401 on an API call, `invalid_grant`
on a token refresh) and quota (403 quotaExceeded).

Fresh data (`dataState: all`, or `hourly_all`, read alike for days): days up to `today` are answered, and those from
`today - DATA_DELAY_DAYS + 1` on are provisional, a share of their final numbers (PROVISIONAL_FRACTIONS, rounded down;
a day left without impressions is absent): `provisional_traffic` computes them. Grouped by date, such an answer carries
`metadata.firstIncompleteDate` whenever the range reaches that first provisional day, rows or not.

Dimension values: `site_pages` (a site URL -> its absolute page URLs, e.g. the sites' built pages) makes `page` a
deterministic subset of the site's real pages each day (up to 12) and `query` their slugs as words; without it, generic
values. A day's totals are split over the combinations of the requested dimensions' values, so the rows of one
dimension add up to the day's; rows without impressions are left out, as Google leaves them out.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from fractions import Fraction
from itertools import product
from typing import Callable
from urllib.parse import parse_qs, unquote, urlsplit

from spark_resources.simulators.base import Faults, LoopbackServer, Request, Response, Simulator

FAULTS = ("429", "500", "timeout", "malformed", "auth", "quota")
#: Search Console's final data is this many days old
DATA_DELAY_DAYS = 3
#: the share of a day's final clicks and impressions shown while it is provisional, by days before today
PROVISIONAL_FRACTIONS = {2: Fraction(9, 10), 1: Fraction(7, 10), 0: Fraction(7, 20)}
#: most pages a site shows in a day's `page` values when `site_pages` is set
MAX_PAGES_PER_DAY = 12
#: about one day in seven has no data at all
_EMPTY_DAY_ONE_IN = 7
_DEVICES = ("DESKTOP", "MOBILE", "TABLET")
#: the query's enums, by their canonical spelling; a request's value is matched case- and underscore-insensitively
DIMENSIONS = ("date", "query", "page", "country", "device", "searchAppearance")
DATA_STATES = ("final", "all", "hourly_all", "data_state_unspecified")
SEARCH_TYPES = ("web", "image", "video", "news", "discover", "googleNews")
AGGREGATION_TYPES = ("auto", "byProperty", "byPage", "byNewsShowcasePanel")


def _canonical(value: object, allowed: tuple[str, ...]) -> str | None:
    """`value` as spelled in `allowed` ('SEARCH_APPEARANCE' -> 'searchAppearance'), or None if it is none of them."""
    key = str(value).replace("_", "").lower()
    return next((a for a in allowed if a.replace("_", "").lower() == key), None)


@dataclass
class GoogleSimulator(Simulator):
    client_id: str = "sandbox-client.apps.googleusercontent.com"
    client_secret: str = "sandbox-client-secret"
    token_lifetime_seconds: int = 3599
    timeout_seconds: float = 2.0
    #: TXT values published for a name; hook the Cloudflare simulator's `txt_records` in
    txt_lookup: Callable[[str], list[str]] | None = None
    #: what "today" is for the data delay (tests pin it)
    today: Callable[[], date] = date.today
    #: a site URL ('sc-domain:example.com') -> its page URLs (absolute), for `page` and `query` values; None: generic
    site_pages: Callable[[str], list[str]] | None = None
    refresh_tokens: dict[str, str] = field(default_factory=dict)  # refresh token -> account email
    properties: dict[str, set[str]] = field(default_factory=dict)  # email -> site URLs it owns in Search Console
    verified: dict[str, set[str]] = field(default_factory=dict)  # domain -> owners' emails
    calls: list[tuple[str, str]] = field(default_factory=list)
    faults: Faults = field(default_factory=lambda: Faults(FAULTS))
    _access: dict[str, tuple[str, float]] = field(default_factory=dict)  # access token -> (email, expires at)
    _verification_tokens: dict[tuple[str, str], str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: LoopbackServer | None = None

    # --- addresses and test controls ------------------------------------------------------------------------------

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/token"

    @property
    def search_console_url(self) -> str:
        return f"{self.base_url}/webmasters/v3"

    @property
    def site_verification_url(self) -> str:
        return f"{self.base_url}/siteVerification/v1"

    def add_account(self, email: str, refresh_token: str) -> None:
        with self._lock:
            self.refresh_tokens[refresh_token] = email
            self.properties.setdefault(email, set())

    def revoke(self, refresh_token: str) -> None:
        with self._lock:
            email = self.refresh_tokens.pop(refresh_token, None)
            self._access = {t: v for t, v in self._access.items() if v[0] != email}

    # --- the API --------------------------------------------------------------------------------------------------

    def _handle(self, request: Request) -> Response | None:
        with self._lock:
            self.calls.append((request.method, request.path))
        fault, answer = self._common_fault(server_error=_error(500, "Backend Error", "backendError", "INTERNAL"))
        if answer is not None:
            return answer
        if fault == "429":
            return _json(429, {"error": {"errors": [{"domain": "usageLimits", "reason": "rateLimitExceeded",
                                                     "message": "Rate Limit Exceeded"}],
                                         "code": 429, "message": "Rate Limit Exceeded"}})
        if fault == "quota":
            return _error(403, "Quota exceeded for quota metric 'Queries'.", "quotaExceeded", "RESOURCE_EXHAUSTED")
        if request.path == "/token" and request.method == "POST":
            return self._token(request, revoked=fault == "auth")
        email = None if fault == "auth" else self._caller(request)
        if email is None:
            return _error(401, "Request had invalid authentication credentials. Expected OAuth 2 access token.",
                          "authError", "UNAUTHENTICATED")
        try:
            body = json.loads(request.body) if request.body else {}
        except ValueError:
            return _error(400, "Invalid JSON payload received.", "badRequest", "INVALID_ARGUMENT")
        query = {k: v[0] for k, v in parse_qs(request.query).items()}
        with self._lock:
            return self._route(email, request.method, request.path, query, body)

    def _token(self, request: Request, *, revoked: bool) -> Response:
        form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
        if (form.get("client_id"), form.get("client_secret")) != (self.client_id, self.client_secret):
            return _json(401, {"error": "invalid_client", "error_description": "The OAuth client was not found."})
        if form.get("grant_type") != "refresh_token":
            return _json(400, {"error": "unsupported_grant_type", "error_description": "Invalid grant_type"})
        with self._lock:
            email = self.refresh_tokens.get(form.get("refresh_token", ""))
            if email is None or revoked:
                return _json(400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."})
            access = "ya29.sandbox-" + secrets.token_urlsafe(24)
            self._access[access] = (email, time.monotonic() + self.token_lifetime_seconds)
        return _json(200, {"access_token": access, "expires_in": self.token_lifetime_seconds,
                           "scope": " ".join(("https://www.googleapis.com/auth/webmasters",
                                              "https://www.googleapis.com/auth/siteverification")),
                           "token_type": "Bearer"})

    def _caller(self, request: Request) -> str | None:
        header = request.headers.get("authorization") or ""
        with self._lock:
            email, expires = self._access.get(header.removeprefix("Bearer "), (None, 0.0))
        return email if email and time.monotonic() < expires else None

    def _route(self, email: str, method: str, path: str, query: dict, body: dict) -> Response:
        if path == "/siteVerification/v1/token" and method == "POST":
            site = body.get("site") or {}
            if site.get("type") != "INET_DOMAIN" or not site.get("identifier") or body.get("verificationMethod") != "DNS_TXT":
                return _error(400, "Invalid value for site or verificationMethod.", "badRequest", "INVALID_ARGUMENT")
            key = (email, site["identifier"])
            token = self._verification_tokens.setdefault(
                key, "google-site-verification=" + hashlib.blake2b("|".join(key).encode(), digest_size=24).hexdigest()
            )
            return _json(200, {"method": "DNS_TXT", "token": token})
        if path == "/siteVerification/v1/webResource" and method == "POST":
            domain = (body.get("site") or {}).get("identifier", "")
            token = self._verification_tokens.get((email, domain))
            published = self.txt_lookup(domain) if self.txt_lookup else []
            if query.get("verificationMethod") != "DNS_TXT" or token is None or token not in published:
                return _error(400, "The necessary verification token could not be found on your site.", "badRequest",
                              "INVALID_ARGUMENT")
            self.verified.setdefault(domain, set()).add(email)
            return _json(200, {"id": f"dns%3A%2F%2F{domain}", "site": body["site"],
                               "owners": sorted(self.verified[domain])})
        if path == "/webmasters/v3/sites" and method == "GET":
            owned = sorted(self.properties.get(email, ()))
            return _json(200, {"siteEntry": [{"siteUrl": s, "permissionLevel": "siteOwner"} for s in owned]} if owned else {})
        parts = path.split("/")
        if len(parts) >= 5 and parts[1:4] == ["webmasters", "v3", "sites"]:
            raw = parts[4]
            site_url = unquote(raw)
            if ":" in raw:  # Google wants the site URL fully percent-encoded
                return _error(404, "Requested entity was not found.", "notFound", "NOT_FOUND")
            if len(parts) == 5 and method == "GET":  # sites.get
                if site_url not in self.properties.get(email, set()):
                    return _forbidden(site_url)
                return _json(200, {"siteUrl": site_url, "permissionLevel": "siteOwner"})
            if len(parts) == 5 and method == "PUT":
                if not site_url.startswith("sc-domain:") or email not in self.verified.get(site_url[10:], set()):
                    return _forbidden(site_url)
                self.properties.setdefault(email, set()).add(site_url)
                return Response(200, b"")
            if parts[5:] == ["searchAnalytics", "query"] and method == "POST":
                if site_url not in self.properties.get(email, set()):
                    return _forbidden(site_url)
                return self._search_analytics(site_url, body)
        return _error(404, "Requested entity was not found.", "notFound", "NOT_FOUND")

    def _search_analytics(self, site_url: str, body: dict) -> Response:
        try:
            start, end = date.fromisoformat(body["startDate"]), date.fromisoformat(body["endDate"])
            row_limit = int(body.get("rowLimit", 1000))
            start_row = int(body.get("startRow", 0))
        except (KeyError, ValueError):
            return _error(400, "startDate and endDate are required (YYYY-MM-DD).", "badRequest", "INVALID_ARGUMENT")
        dimensions = [_canonical(d, DIMENSIONS) for d in body.get("dimensions") or []]
        data_state = _canonical(body.get("dataState", "final"), DATA_STATES)
        search_type = _canonical(body.get("type", body.get("searchType", "web")), SEARCH_TYPES)
        aggregation = _canonical(body.get("aggregationType", "auto"), AGGREGATION_TYPES)
        if None in dimensions or None in (data_state, search_type, aggregation):
            return _error(400, "Invalid value in dimensions, dataState, type or aggregationType.", "badRequest",
                          "INVALID_ARGUMENT")
        if not 1 <= row_limit <= 25000 or start > end:
            return _error(400, "Invalid request: check rowLimit and the dates.", "badRequest", "INVALID_ARGUMENT")
        final_only = data_state in ("final", "data_state_unspecified")
        today = self.today()
        first_incomplete = today - timedelta(days=DATA_DELAY_DAYS - 1)
        last = first_incomplete - timedelta(days=1) if final_only else today
        numbers = {d: provisional_traffic(site_url, d, today) for d in _days(start, min(end, last))}
        days = [d for d, n in numbers.items() if n is not None] if search_type == "web" else []
        pages = list(dict.fromkeys(self.site_pages(site_url))) if self.site_pages else []
        domain = site_url.removeprefix("sc-domain:")
        rows = []
        for day in days:
            clicks, impressions, position = numbers[day]  # type: ignore[misc]
            day_pages = _pages_of_day(site_url, day, pages)
            values = {
                "date": [day.isoformat()],
                "query": (list(dict.fromkeys(_query_of(page) for page in day_pages)) if day_pages
                          else [f"roofing {w}" for w in ("near me", "repair", "cost")]),
                "page": day_pages or [f"https://{domain}/", f"https://{domain}/services/"],
                "country": ["usa"],
                "device": list(_DEVICES),
                "searchAppearance": ["REVIEW_SNIPPET"],
            }
            combos = list(product(*(values[d] for d in dimensions))) or [()]
            for i, keys in enumerate(combos):
                # split the day's totals over the combinations, deterministically
                share_clicks = clicks // len(combos) + (1 if i < clicks % len(combos) else 0)
                share_impressions = impressions // len(combos) + (1 if i < impressions % len(combos) else 0)
                if share_impressions:  # Google has no row for what was never shown (and then never clicked)
                    rows.append({"keys": list(keys), "clicks": share_clicks, "impressions": share_impressions,
                                 "ctr": share_clicks / share_impressions, "position": position})
        if not dimensions and rows:  # no dimensions: one row for the whole range, without keys
            rows = [{"clicks": sum(r["clicks"] for r in rows), "impressions": sum(r["impressions"] for r in rows),
                     "ctr": 0.0, "position": round(sum(r["position"] for r in rows) / len(rows), 2)}]
            rows[0]["ctr"] = rows[0]["clicks"] / rows[0]["impressions"] if rows[0]["impressions"] else 0.0
        rows.sort(key=lambda r: (-r["clicks"], r.get("keys", [])))
        page = rows[start_row : start_row + row_limit]
        by_page = aggregation == "byPage" or (aggregation == "auto" and "page" in dimensions)
        answer: dict = {"responseAggregationType": "byPage" if by_page else "byProperty"}
        if page:
            answer["rows"] = page
        if not final_only and "date" in dimensions and end >= first_incomplete:
            answer["metadata"] = {"firstIncompleteDate": first_incomplete.isoformat()}
        return _json(200, answer)


def traffic(site_url: str, day: date) -> tuple[int, int, float] | None:
    """The simulator's Search Console numbers for a site and day: (clicks, impressions, position), or None for a day
    without data. Deterministic: tests compute what they expect from this."""
    digest = hashlib.blake2b(f"gsc|{site_url}|{day.isoformat()}".encode(), digest_size=8).digest()
    if digest[0] % _EMPTY_DAY_ONE_IN == 0:
        return None
    impressions = 50 + int.from_bytes(digest[1:3], "big") % 900
    clicks = impressions * (1 + digest[3] % 8) // 100
    position = round(3 + (digest[4] % 200) / 10, 2)
    return clicks, impressions, position


def provisional_traffic(site_url: str, day: date, today: date) -> tuple[int, int, float] | None:
    """What Search Console answers for a site and day with `dataState: all` on `today`: (clicks, impressions,
    position), or None (no data, or a day after today). Final days (before `today - DATA_DELAY_DAYS + 1`) are
    `traffic()`; later ones a share of it (PROVISIONAL_FRACTIONS, rounded down; position unchanged), None when no
    impression is left."""
    final = traffic(site_url, day)
    age = (today - day).days
    if final is None or age < 0:
        return None
    fraction = PROVISIONAL_FRACTIONS.get(age)
    if fraction is None:
        return final
    clicks, impressions, position = final
    impressions = int(impressions * fraction)
    return (int(clicks * fraction), impressions, position) if impressions else None


def _pages_of_day(site_url: str, day: date, pages: list[str]) -> list[str]:
    """The pages searchers saw that day: a deterministic subset of `pages`, 1 to MAX_PAGES_PER_DAY of them, chosen by a
    hash of site, day and page (so days differ and a call repeated answers the same); [] when there are none."""
    if not pages:
        return []

    def rank(page: str) -> bytes:
        return hashlib.blake2b(f"page|{site_url}|{day.isoformat()}|{page}".encode(), digest_size=8).digest()

    ranked = sorted(pages, key=rank)
    count = 1 + rank("")[0] % min(MAX_PAGES_PER_DAY, len(ranked))
    return sorted(ranked[:count])


def _query_of(page: str) -> str:
    """The search a page answers, from its URL: the last path segment's words ('/nc/charlotte/roof-repair-charlotte-nc/'
    -> 'roof repair charlotte nc'); the home page, the domain's first label ('demo-roofing.example' -> 'demo roofing')."""
    parts = urlsplit(page)
    segments = [unquote(segment) for segment in parts.path.split("/") if segment]
    if segments:
        slug = segments[-1].rsplit(".", 1)[0] if segments[-1].endswith((".html", ".htm")) else segments[-1]
    else:
        slug = (parts.hostname or "").removeprefix("www.").split(".")[0]
    return " ".join(word for word in slug.replace("_", "-").lower().split("-") if word) or slug.lower()


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def _json(status: int, payload: dict) -> Response:
    return Response(status, json.dumps(payload).encode())


def _error(status: int, message: str, reason: str, state: str) -> Response:
    return _json(status, {"error": {"code": status, "message": message,
                                    "errors": [{"message": message, "domain": "global", "reason": reason}],
                                    "status": state}})


def _forbidden(site_url: str) -> Response:
    return _error(403, f"User does not have sufficient permission for site '{site_url}'.", "forbidden",
                  "PERMISSION_DENIED")
