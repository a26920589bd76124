"""Namecheap XML API: the domains of the account and their name servers (PROVIDERS.md, section 2).

Quirks handled here: errors arrive with HTTP 200 inside `<ApiResponse Status="ERROR">`; every element is in the
`http://api.namecheap.com/xml.response` namespace; throttling shows as HTTP 405 or as error 500000, with no
`retry-after`: both are retried after a quarter, a half, then a whole minute (`throttle_window`), since the per-minute
budget cannot recover any faster. The published limits, 20 calls a minute, 700 an hour and 8,000 a day per key, are
all three enforced client-side by the rate limiter.
"""

from __future__ import annotations

import os
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

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

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

PROVIDER = "namecheap"
DEFAULT_BASE_URL = "https://api.namecheap.com/xml.response"
SANDBOX_BASE_URL = "https://api.sandbox.namecheap.com/xml.response"
_NS = {"nc": "http://api.namecheap.com/xml.response"}
_AUTH_ERRORS = {"1011150", "1017150", "1017105", "1011102", "1010101", "1010104", "1010105", "1011105"}
_TRANSIENT_ERRORS = {"500000", "3031510", "3050900"}
THROTTLED = "500000"
#: Namecheap's published budgets per API key: (calls, seconds)
PER_MINUTE, PER_HOUR, PER_DAY = (20, 60.0), (700, 3600.0), (8000, 86400.0)


@dataclass(frozen=True)
class Domain:
    name: str
    is_our_dns: bool
    expires: str


def split_domain(domain: str) -> tuple[str, str]:
    """(SLD, TLD) of a registrable domain: 'demo-roofing.example' -> ('demo-roofing', 'example')."""
    sld, _, tld = domain.partition(".")
    if not sld or not tld:
        raise ValueError(f"'{domain}' is not a registrable domain")
    return sld, tld


class NamecheapClient:
    def __init__(
        self,
        base_url: str,
        *,
        api_user: str,
        api_key: str,
        username: str,
        client_ip: str,
        limiter: Limiter,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        attempts: int = 4,
        max_wait: float = 60.0,
        max_retry_after: float = DEFAULT_MAX_RETRY_AFTER,
        throttle_window: float = PER_MINUTE[1],
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ):
        remember_credentials(api_key)  # masked in every ProviderError, should Namecheap or a proxy echo it
        self._http = httpx.Client(timeout=httpx.Timeout(read_timeout, connect=connect_timeout))
        self._url = base_url
        self._auth = {"ApiUser": api_user, "ApiKey": api_key, "UserName": username, "ClientIp": client_ip}
        self._limiter = limiter
        self._attempts = attempts
        self._max_wait = max_wait
        self._max_retry_after = max_retry_after
        self._throttle_window = throttle_window
        self._sleep = sleep
        self._clock = clock

    def close(self) -> None:
        self._http.close()

    def list_domains(self) -> list[Domain]:
        domains: list[Domain] = []
        page = 1
        while True:
            response = self._call("namecheap.domains.getList", Page=page, PageSize=100)
            for node in response.iterfind(".//nc:DomainGetListResult/nc:Domain", _NS):
                domains.append(Domain(node.get("Name", ""), node.get("IsOurDNS") == "true", node.get("Expires", "")))
            paging = response.find(".//nc:Paging", _NS)
            total = int(paging.findtext("nc:TotalItems", "0", _NS)) if paging is not None else 0
            size = int(paging.findtext("nc:PageSize", "100", _NS)) if paging is not None else 100
            if page * size >= total:
                return domains
            page += 1

    def get_nameservers(self, domain: str) -> tuple[bool, list[str]]:
        """(whether Namecheap's own DNS is used, the name servers set) for `domain`."""
        sld, tld = split_domain(domain)
        result = self._call("namecheap.domains.dns.getList", SLD=sld, TLD=tld).find(".//nc:DomainDNSGetListResult", _NS)
        if result is None:
            raise ProviderError(PROVIDER, "response has no DomainDNSGetListResult", code="malformed")
        names = [n.text.strip().lower() for n in result.iterfind("nc:Nameserver", _NS) if n.text]
        return result.get("IsUsingOurDNS") == "true", names

    def set_custom_nameservers(self, domain: str, nameservers: list[str]) -> bool:
        """Point `domain` at `nameservers` (e.g. its Cloudflare zone's); True when Namecheap says it updated."""
        sld, tld = split_domain(domain)
        result = self._call(
            "namecheap.domains.dns.setCustom", SLD=sld, TLD=tld, Nameservers=",".join(nameservers)
        ).find(".//nc:DomainDNSSetCustomResult", _NS)
        return result is not None and result.get("Updated") == "true"

    def _call(self, command: str, **params: Any) -> ET.Element:
        def attempt() -> ET.Element:
            self._limiter.acquire()
            response = self._http.post(self._url, data={**self._auth, "Command": command, **params})
            return _parse(response)

        return with_retries(PROVIDER, attempt, attempts=self._attempts, max_wait=self._max_wait,
                            max_retry_after=self._max_retry_after, throttle_window=self._throttle_window,
                            sleep=self._sleep, clock=self._clock)


def _parse(response: httpx.Response) -> ET.Element:
    if response.status_code == 405:
        raise TransientProviderError(PROVIDER, "too many requests (HTTP 405)", code=405, status=405, throttled=True)
    if response.status_code >= 500:
        raise TransientProviderError(PROVIDER, f"server error {response.reason_phrase}", status=response.status_code)
    try:
        root = ET.fromstring(response.content)
    except ET.ParseError:
        raise TransientProviderError(PROVIDER, "malformed response body (not XML)", code="malformed",
                                     status=response.status_code) from None
    if root.tag != f"{{{_NS['nc']}}}ApiResponse":
        raise TransientProviderError(PROVIDER, "malformed response body (no ApiResponse)", code="malformed")
    if root.get("Status") == "OK":
        return root
    error = root.find("nc:Errors/nc:Error", _NS)
    number = error.get("Number") if error is not None else None
    message = (error.text or "").strip() if error is not None else "unknown error"
    if number in _TRANSIENT_ERRORS:
        raise TransientProviderError(PROVIDER, message, code=number, status=response.status_code,
                                     throttled=number == THROTTLED)
    if number in _AUTH_ERRORS:
        raise AuthenticationError(PROVIDER, message, code=number, status=response.status_code)
    raise ProviderError(PROVIDER, message, code=number, status=response.status_code)


class NamecheapResource(ConfigurableResource):
    """Namecheap API. Credentials default to the environment (NAMECHEAP_API_USER, NAMECHEAP_API_KEY, NAMECHEAP_USERNAME,
    NAMECHEAP_CLIENT_IP), read when a client is made, so a missing one fails the step that needs it, with the variable
    named, and not the whole code location. The sandbox is `base_url` = the simulator (or Namecheap's sandbox)."""

    api_user: str | None = Field(None, description="default: $NAMECHEAP_API_USER")
    api_key: str | None = Field(None, description="API key; default: $NAMECHEAP_API_KEY (never inline)")
    username: str | None = Field(None, description="default: $NAMECHEAP_USERNAME, else the API user")
    client_ip: str | None = Field(None, description="the whitelisted IPv4 the calls come from; default: $NAMECHEAP_CLIENT_IP")
    base_url: str = DEFAULT_BASE_URL
    requests_per_minute: int = Field(PER_MINUTE[0], description="Namecheap's published per-key limits: a minute,")
    requests_per_hour: int = Field(PER_HOUR[0], description="an hour")
    requests_per_day: int = Field(PER_DAY[0], description="and a day")
    throttle_window_seconds: float = Field(
        PER_MINUTE[1], description="after throttling (HTTP 405, error 500000), back off for up to this long"
    )
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    attempts: int = 4
    max_wait_seconds: float = Field(60.0, description="longest back-off after a server error or a timeout")
    max_retry_after_seconds: float = Field(
        DEFAULT_MAX_RETRY_AFTER, description="a `retry-after` up to this long is waited out; a longer one fails at once"
    )

    def get_client(self, *, engine: "Engine | None" = None) -> NamecheapClient:
        """With `engine`, the rate limit is counted in the database per API key, shared by every process (what
        Namecheap counts); without, per budget in this process."""
        settings = {
            "api_user": self.api_user or os.environ.get("NAMECHEAP_API_USER"),
            "api_key": self.api_key or os.environ.get("NAMECHEAP_API_KEY"),
            "client_ip": self.client_ip or os.environ.get("NAMECHEAP_CLIENT_IP"),
        }
        missing = [f"NAMECHEAP_{name.upper()}" for name, value in settings.items() if not value]
        if missing:
            raise ProviderError(PROVIDER, f"{', '.join(missing)} not set: Namecheap credentials come from the environment")
        username = self.username or os.environ.get("NAMECHEAP_USERNAME") or settings["api_user"]
        windows = [(self.requests_per_minute, PER_MINUTE[1]), (self.requests_per_hour, PER_HOUR[1]),
                   (self.requests_per_day, PER_DAY[1])]
        limiter = limiter_for(budget_key(PROVIDER, settings["api_key"]), windows, engine)
        return NamecheapClient(
            self.base_url, username=username, limiter=limiter, connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout, attempts=self.attempts, max_wait=self.max_wait_seconds,
            max_retry_after=self.max_retry_after_seconds, throttle_window=self.throttle_window_seconds, **settings,
        )
