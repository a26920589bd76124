"""Cloudflare API v4: zones and DNS records (../shared/contracts/PROVIDERS.md, section 1).

The same client talks to api.cloudflare.com and to the local simulator (`spark_resources.simulators.cloudflare`): only the
base URL and the token differ. Every call goes through the rate limiter (Cloudflare allows 1,200 requests per 5 minutes
per token, for all clients together) and the retry policy in `providers.http`: past the budget Cloudflare answers 429
for 5 minutes with a `retry-after` (seconds or an HTTP date), which is waited out in full up to `max_retry_after`.

Records: a zone added to Cloudflare comes with the domain's existing records imported, so our apex and `www` CNAMEs
often meet an A or AAAA record at the same name (81053, or 81054 for anything beside a CNAME below the apex);
`ensure_dns_record` deletes those conflicting records and says which it replaced.

Workers: `upload_worker_script` sends a module Worker as the contract's multipart upload (a `metadata` JSON part, the
module in a part named after `main_module`, typed `application/javascript+module`); `ensure_worker_route` lists the
zone's routes before it creates one (a second route with the same pattern is refused); `ensure_proxied_hostnames` makes
the apex and `www` proxied, as a route only runs on proxied hostnames.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, NamedTuple

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

PROVIDER = "cloudflare"
DEFAULT_BASE_URL = "https://api.cloudflare.com/client/v4"
#: error codes that mean "already there": get-or-create treats them as success
ZONE_EXISTS = 1061
RECORD_EXISTS = (81057, 81058)
#: a record of another type holds the name: 81053 an A, AAAA or CNAME beside a CNAME (or a CNAME beside those), 81054
#: any record beside a CNAME below the apex. Cloudflare imports a domain's existing records when its zone is added, so
#: a new zone often holds the old host's A records at the apex and `www`
RECORD_CONFLICT_ADDRESS, RECORD_CONFLICT_CNAME = 81053, 81054
_ADDRESS_TYPES = {"A", "AAAA", "CNAME"}
_AUTH_CODES = {10000, 9109, 6003, 6111}
#: a Worker route with that pattern exists already **(unverified code**: the contract gives none; the API's message is
#: `workers.api.error.duplicate_route`)
ROUTE_EXISTS = 10020
#: the module part's type for an ES module Worker (PROVIDERS.md, "Workers")
MODULE_CONTENT_TYPE = "application/javascript+module"
#: the address a Worker-only hostname's record holds: `100::` is the IPv6 discard prefix (RFC 6666), the documented
#: placeholder for a proxied record whose requests a Worker answers and that never reach an origin. A route runs only
#: on a proxied hostname, so the apex and `www` need a record, even when nothing is behind it
WORKER_PLACEHOLDER = ("AAAA", "100::")


@dataclass(frozen=True)
class Zone:
    id: str
    name: str
    status: str
    name_servers: tuple[str, ...]


@dataclass(frozen=True)
class DnsRecord:
    id: str
    type: str
    name: str
    content: str
    ttl: int
    proxied: bool

    def describe(self) -> str:
        """'A www.example.com 192.0.2.1': what an operator needs to restore a record by hand."""
        return f"{self.type} {self.name} {self.content}"


class EnsuredRecord(NamedTuple):
    """What `ensure_dns_record` did: the record now in place, 'created' | 'updated' | 'unchanged' | 'replaced', and
    the conflicting records it deleted to make room (only when 'replaced')."""

    record: DnsRecord
    outcome: str
    replaced: tuple[DnsRecord, ...] = ()


@dataclass(frozen=True)
class WorkerScript:
    id: str
    etag: str
    created_on: str
    modified_on: str


@dataclass(frozen=True)
class WorkerRoute:
    id: str
    pattern: str
    script: str | None


class CloudflareClient:
    def __init__(
        self,
        base_url: str,
        api_token: "str | Secret",
        *,
        limiter: Limiter,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        attempts: int = 4,
        max_wait: float = 60.0,
        max_retry_after: float = DEFAULT_MAX_RETRY_AFTER,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ):
        token = api_token.reveal() if isinstance(api_token, Secret) else api_token
        remember_credentials(token)  # masked in every ProviderError, should Cloudflare or a proxy echo it
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            transport=transport,
        )
        self._limiter = limiter
        self._attempts = attempts
        self._max_wait = max_wait
        self._max_retry_after = max_retry_after
        self._sleep = sleep
        self._clock = clock

    def close(self) -> None:
        self._http.close()

    # --- zones ----------------------------------------------------------------------------------------------------

    def find_zone(self, name: str) -> Zone | None:
        zones = [_zone(z) for z in self._pages("/zones", {"name": name}, per_page=50)]
        return zones[0] if zones else None

    def get_zone(self, zone_id: str) -> Zone:
        return _zone(self._request("GET", f"/zones/{zone_id}")["result"])

    def create_zone(self, name: str, account_id: str) -> Zone:
        body = {"name": name, "account": {"id": account_id}, "type": "full"}
        return _zone(self._request("POST", "/zones", json=body)["result"])

    def ensure_zone(self, name: str, account_id: str) -> tuple[Zone, bool]:
        """The zone for `name`, created if missing; (zone, created). A zone that already exists is not an error."""
        zone = self.find_zone(name)
        if zone is not None:
            return zone, False
        try:
            return self.create_zone(name, account_id), True
        except ProviderError as exc:
            if exc.code != ZONE_EXISTS:
                raise
            zone = self.find_zone(name)  # created by someone else in between
            if zone is None:
                raise
            return zone, False

    # --- DNS records ----------------------------------------------------------------------------------------------

    def list_dns_records(self, zone_id: str, *, type: str | None = None, name: str | None = None) -> list[DnsRecord]:
        params = {k: v for k, v in {"type": type, "name": name}.items() if v}
        return [_record(r) for r in self._pages(f"/zones/{zone_id}/dns_records", params, per_page=100)]

    def create_dns_record(
        self, zone_id: str, *, type: str, name: str, content: str, ttl: int = 1, proxied: bool = False
    ) -> DnsRecord:
        body = {"type": type, "name": name, "content": content, "ttl": ttl, "proxied": proxied}
        return _record(self._request("POST", f"/zones/{zone_id}/dns_records", json=body)["result"])

    def get_dns_record(self, zone_id: str, record_id: str) -> DnsRecord:
        return _record(self._request("GET", f"/zones/{zone_id}/dns_records/{record_id}")["result"])

    def update_dns_record(self, zone_id: str, record_id: str, **changes: Any) -> DnsRecord:
        return _record(self._request("PATCH", f"/zones/{zone_id}/dns_records/{record_id}", json=changes)["result"])

    def delete_dns_record(self, zone_id: str, record_id: str) -> None:
        self._request("DELETE", f"/zones/{zone_id}/dns_records/{record_id}")

    def ensure_dns_record(
        self, zone_id: str, *, type: str, name: str, content: str, ttl: int = 1, proxied: bool = False
    ) -> EnsuredRecord:
        """Make one record of (type, name) hold `content`. A record of another type that the API says cannot live
        beside it (81053/81054: typically the old host's A record, imported when the zone was added) is deleted to
        make room, and returned in `replaced` so the caller can tell the operator what went."""
        existing = self.list_dns_records(zone_id, type=type, name=name)
        for record in existing:
            if record.content == content and record.proxied == proxied and record.ttl == ttl:
                return EnsuredRecord(record, "unchanged")
        if existing:
            record = existing[0]
            return EnsuredRecord(self.update_dns_record(zone_id, record.id, content=content, ttl=ttl, proxied=proxied),
                                 "updated")
        replaced: list[DnsRecord] = []
        for _ in range(3):  # 81053 for the address records, then 81054 for the rest, at most
            try:
                record = self.create_dns_record(zone_id, type=type, name=name, content=content, ttl=ttl,
                                                proxied=proxied)
                return EnsuredRecord(record, "replaced" if replaced else "created", tuple(replaced))
            except ProviderError as exc:
                if exc.code in RECORD_EXISTS:
                    for record in self.list_dns_records(zone_id, type=type, name=name):
                        if record.content == content:
                            return EnsuredRecord(record, "unchanged")
                    raise
                if exc.code not in (RECORD_CONFLICT_ADDRESS, RECORD_CONFLICT_CNAME):
                    raise
                conflicting = [
                    r for r in self.list_dns_records(zone_id, name=name)
                    if r.type != type and (exc.code == RECORD_CONFLICT_CNAME or r.type in _ADDRESS_TYPES)
                ]
                if not conflicting:
                    raise
                for record in conflicting:
                    self.delete_dns_record(zone_id, record.id)
                    replaced.append(record)
        raise ProviderError(PROVIDER, f"{type} {name}: conflicting records kept coming back", code="conflict")

    def ensure_record_present(self, zone_id: str, *, type: str, name: str, content: str, ttl: int = 1) -> tuple[DnsRecord, bool]:
        """Add a (type, name, content) record unless it is there, leaving other records of that name alone (a TXT
        verification token beside SPF, say); (record, created)."""
        for record in self.list_dns_records(zone_id, type=type, name=name):
            if record.content == content:
                return record, False
        try:
            return self.create_dns_record(zone_id, type=type, name=name, content=content, ttl=ttl), True
        except ProviderError as exc:
            if exc.code not in RECORD_EXISTS:
                raise
            return next(r for r in self.list_dns_records(zone_id, type=type, name=name) if r.content == content), False

    # --- Workers --------------------------------------------------------------------------------------------------

    def upload_worker_script(
        self,
        account_id: str,
        script_name: str,
        source: str | bytes,
        *,
        compatibility_date: str,
        main_module: str = "worker.js",
        r2_buckets: Mapping[str, str] | None = None,
        plain_text: Mapping[str, str] | None = None,
    ) -> WorkerScript:
        """Upload (or replace) the module Worker `script_name`: `source` is its one module, `r2_buckets` maps a
        binding name to a bucket (`{"SITES": "spark-sites"}`), `plain_text` a binding name to its text. The metadata
        goes as a `metadata` part; the module as a part named (and with a filename) as `main_module`."""
        bindings: list[dict[str, str]] = [
            {"type": "r2_bucket", "name": name, "bucket_name": bucket} for name, bucket in (r2_buckets or {}).items()
        ] + [{"type": "plain_text", "name": name, "text": text} for name, text in (plain_text or {}).items()]
        metadata = {"main_module": main_module, "compatibility_date": compatibility_date, "bindings": bindings}
        content = source.encode() if isinstance(source, str) else source
        files = [  # bytes, not file objects: a retried attempt sends the same parts again
            ("metadata", (None, json.dumps(metadata).encode(), "application/json")),
            (main_module, (main_module, content, MODULE_CONTENT_TYPE)),
        ]
        result = self._request("PUT", f"/accounts/{account_id}/workers/scripts/{script_name}", files=files)["result"]
        return WorkerScript(result.get("id") or script_name, result.get("etag") or "", result.get("created_on") or "",
                            result.get("modified_on") or "")

    def list_worker_routes(self, zone_id: str) -> list[WorkerRoute]:
        """The zone's Worker routes (one page: the API does not paginate them)."""
        return [_route(r) for r in self._request("GET", f"/zones/{zone_id}/workers/routes")["result"] or []]

    def create_worker_route(self, zone_id: str, pattern: str, script: str) -> WorkerRoute:
        body = {"pattern": pattern, "script": script}
        return _route(self._request("POST", f"/zones/{zone_id}/workers/routes", json=body)["result"])

    def update_worker_route(self, zone_id: str, route_id: str, pattern: str, script: str) -> WorkerRoute:
        body = {"pattern": pattern, "script": script}
        return _route(self._request("PUT", f"/zones/{zone_id}/workers/routes/{route_id}", json=body)["result"])

    def ensure_worker_route(self, zone_id: str, pattern: str, script: str) -> tuple[WorkerRoute, str]:
        """Make `pattern` run `script`: (the route, 'created' | 'updated' | 'unchanged'). The routes are listed first,
        as the API refuses a second route with a pattern already routed; a route created by someone else in between
        (that refusal) is found and brought to `script`."""
        for attempt in range(2):
            route = next((r for r in self.list_worker_routes(zone_id) if r.pattern == pattern), None)
            if route is not None and route.script == script:
                return route, "unchanged"
            if route is not None:
                return self.update_worker_route(zone_id, route.id, pattern, script), "updated"
            try:
                return self.create_worker_route(zone_id, pattern, script), "created"
            except ProviderError as exc:
                if exc.code != ROUTE_EXISTS or attempt:
                    raise
        raise AssertionError("unreachable")

    def ensure_proxied_hostnames(self, zone_id: str, zone_name: str) -> list[EnsuredRecord]:
        """Make the apex and `www` of `zone_name` proxied, as a Worker route runs only there: an address record (A,
        AAAA, CNAME) that is not proxied is updated to be (never duplicated); a name without one gets the
        `WORKER_PLACEHOLDER` record, proxied. One EnsuredRecord per address record, 'created' | 'updated' |
        'unchanged'. TXT, MX and the like at those names are left alone (they cannot be proxied)."""
        ensured: list[EnsuredRecord] = []
        for name in (zone_name, f"www.{zone_name}"):
            records = [r for r in self.list_dns_records(zone_id, name=name) if r.type in _ADDRESS_TYPES]
            if not records:
                type_, content = WORKER_PLACEHOLDER
                try:
                    record = self.create_dns_record(zone_id, type=type_, name=name, content=content, proxied=True)
                    ensured.append(EnsuredRecord(record, "created"))
                    continue
                except ProviderError as exc:
                    if exc.code not in RECORD_EXISTS + (RECORD_CONFLICT_ADDRESS, RECORD_CONFLICT_CNAME):
                        raise
                    # created by someone else in between: make what is there proxied
                    records = [r for r in self.list_dns_records(zone_id, name=name) if r.type in _ADDRESS_TYPES]
                    if not records:
                        raise
            for record in records:
                if record.proxied:
                    ensured.append(EnsuredRecord(record, "unchanged"))
                else:
                    ensured.append(EnsuredRecord(self.update_dns_record(zone_id, record.id, proxied=True), "updated"))
        return ensured

    # --- transport ------------------------------------------------------------------------------------------------

    def _pages(self, path: str, params: dict[str, Any], per_page: int) -> Iterator[dict]:
        page = 1
        while True:
            body = self._request("GET", path, params={**params, "page": page, "per_page": per_page})
            yield from body.get("result") or []
            info = body.get("result_info") or {}
            if page >= int(info.get("total_pages") or 1):
                return
            page += 1

    def _request(self, method: str, path: str, **kwargs: Any) -> dict:
        def attempt() -> dict:
            self._limiter.acquire()
            response = self._http.request(method, path, **kwargs)
            return _envelope(response)

        return with_retries(PROVIDER, attempt, attempts=self._attempts, max_wait=self._max_wait,
                            max_retry_after=self._max_retry_after, sleep=self._sleep, clock=self._clock)


def _envelope(response: httpx.Response) -> dict:
    """The decoded envelope of a successful call, or the typed error for this response."""
    try:
        body = response.json()
        if not isinstance(body, dict):
            raise ValueError("not an object")
    except ValueError:
        raise TransientProviderError(
            PROVIDER, "malformed response body (not the JSON envelope)", code="malformed", status=response.status_code
        ) from None
    errors = body.get("errors") or []
    first = errors[0] if errors and isinstance(errors[0], dict) else {}
    code, message = first.get("code"), first.get("message") or response.reason_phrase
    if response.status_code == 429:
        # seconds or an HTTP date: with_retries reads it, waits it out or fails saying when to retry
        raise TransientProviderError(PROVIDER, message, code=code, status=429,
                                     retry_after=response.headers.get("retry-after"), throttled=True)
    if response.status_code >= 500:
        raise TransientProviderError(PROVIDER, message, code=code, status=response.status_code)
    if response.status_code in (401, 403) or code in _AUTH_CODES:
        raise AuthenticationError(PROVIDER, message, code=code, status=response.status_code)
    if not body.get("success", False):
        raise ProviderError(PROVIDER, message, code=code, status=response.status_code)
    return body


def _zone(data: dict) -> Zone:
    return Zone(data["id"], data["name"], data.get("status", ""), tuple(data.get("name_servers") or ()))


def _route(data: dict) -> WorkerRoute:
    return WorkerRoute(data["id"], data["pattern"], data.get("script"))


def _record(data: dict) -> DnsRecord:
    return DnsRecord(data["id"], data["type"], data["name"], data["content"], int(data.get("ttl", 1)),
                     bool(data.get("proxied", False)))


class CloudflareResource(ConfigurableResource):
    """Cloudflare API v4. Tokens normally come per account from `cloudflare_accounts` (encrypted); `api_token` (an
    EnvVar) is the fallback for a single-account setup. Point `base_url` at the simulator for the sandbox."""

    api_token: str | None = Field(None, description="scoped API token (Zone:Edit, DNS:Edit); from the environment")
    base_url: str = DEFAULT_BASE_URL
    hosting_target: str = Field(
        "sites.spark-factory.example", description="the host every site's apex and www point at (CNAME, flattened)"
    )
    requests_per_window: int = Field(1200, description="client-side limit, Cloudflare's per-token budget")
    window_seconds: float = 300.0
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    attempts: int = 4
    max_wait_seconds: float = Field(60.0, description="longest back-off after a server error or a timeout")
    max_retry_after_seconds: float = Field(
        DEFAULT_MAX_RETRY_AFTER,
        description="a `retry-after` up to this long is waited out in full (Cloudflare's lockout is 300 s); a longer "
        "one fails the call at once, saying when to retry",
    )

    def get_client(self, api_token: Secret | None = None, *, engine: "Engine | None" = None,
                   max_retry_after: float | None = None) -> CloudflareClient:
        """A client with `api_token` (an account's), else the configured one. With `engine`, the rate limit is counted
        in the database per token, shared by every process (what Cloudflare counts); without, per budget in this process.
        `max_retry_after` overrides `max_retry_after_seconds` for a caller that must not wait (a sensor's tick)."""
        token = api_token or (Secret(self.api_token) if self.api_token else None)
        if token is None:
            raise ProviderError(PROVIDER, "no API token: add an account (`spark account add-cloudflare`) or set api_token")
        limiter = limiter_for(budget_key(PROVIDER, token.reveal()), [(self.requests_per_window, self.window_seconds)],
                              engine)
        return CloudflareClient(
            self.base_url,
            token,
            limiter=limiter,
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            attempts=self.attempts,
            max_wait=self.max_wait_seconds,
            max_retry_after=self.max_retry_after_seconds if max_retry_after is None else max_retry_after,
        )
