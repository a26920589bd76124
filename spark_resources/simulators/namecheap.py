"""A local Namecheap XML API (sandbox mode): PROVIDERS.md section 2, errors with HTTP 200, namespaced XML, throttling as
HTTP 405 past 20 calls a minute, 700 an hour or 8,000 a day, and the domains of one account. Answers carry
`<Warnings />` and the command in lower case in `<RequestedCommand>`, as the real API's recorded answers do. Time is
`clock` (epoch seconds): tests pass a simulated one, so a minute's window passes in no time.

`on_nameservers` is called with (domain, name servers) after a successful setCustom: the Cloudflare simulator's
`activate_zone` hooks in there, so a zone turns active once the registrar points at it, as in production.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import parse_qs
from xml.sax.saxutils import escape, quoteattr

from spark_resources.simulators.base import Faults, LoopbackServer, Request, Response, Simulator

FAULTS = ("405", "500000", "500", "timeout", "malformed", "auth")
_NS = "http://api.namecheap.com/xml.response"


@dataclass
class NamecheapSimulator(Simulator):
    api_user: str = "sandbox"
    api_key: str = "sandbox-key"
    whitelisted_ips: tuple[str, ...] = ("127.0.0.1",)
    requests_per_minute: int = 20
    requests_per_hour: int = 700
    requests_per_day: int = 8000
    #: what the API's clock says (epoch seconds): the throttling windows follow it
    clock: Callable[[], float] = time.time
    #: the sandbox: every domain asked about is one the account owns (registered on first sight)
    auto_register: bool = False
    timeout_seconds: float = 2.0
    domains: dict[str, dict] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    faults: Faults = field(default_factory=lambda: Faults(FAULTS))
    on_nameservers: Callable[[str, list[str]], None] | None = None
    _window: deque = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: LoopbackServer | None = None

    path = "/xml.response"

    def register(self, domain: str) -> None:
        """Put `domain` in the account (as if bought), on Namecheap's own DNS."""
        with self._lock:
            self.domains[domain] = self._new_domain()

    @staticmethod
    def _new_domain() -> dict:
        return {"nameservers": ["dns1.registrar-servers.com", "dns2.registrar-servers.com"], "our_dns": True,
                "expires": "11/22/2027"}

    # --- the API --------------------------------------------------------------------------------------------------

    def _handle(self, request: Request) -> Response | None:
        raw = parse_qs(request.query) | parse_qs(request.body.decode())
        params = {k.lower(): v[0] for k, v in raw.items()}  # names are case-insensitive
        command = params.get("command", "")
        with self._lock:
            self.calls.append(command)
        fault, answer = self._common_fault(server_error=Response(500, b"Internal Server Error", "text/plain"))
        if answer is not None:
            return answer
        if fault == "405" or not self._within_budget():
            return Response(405, b"Method Not Allowed", "text/plain")
        if fault == "500000":
            return _error(500000, "Too many requests")
        for name, number in (("apiuser", 1010101), ("command", 1010104), ("clientip", 1010105)):
            if not params.get(name):
                return _error(number, f"Parameter {name} is missing")
        if fault == "auth" or params.get("apikey") != self.api_key or params.get("apiuser") != self.api_user:
            return _error(1011102, "API Key is invalid or API access has not been enabled")
        if params["clientip"] not in self.whitelisted_ips:
            return _error(1011150, f"Invalid request IP: {params['clientip']}")
        with self._lock:
            return self._command(command, params)

    def _within_budget(self) -> bool:
        """Every one of the key's budgets has room: a call past any of them is throttled (and not counted)."""
        budgets = ((self.requests_per_minute, 60.0), (self.requests_per_hour, 3600.0), (self.requests_per_day, 86400.0))
        with self._lock:
            now = self.clock()
            while self._window and now - self._window[0] >= 86400.0:
                self._window.popleft()
            if any(sum(1 for sent in self._window if now - sent < seconds) >= calls for calls, seconds in budgets):
                return False
            self._window.append(now)
            return True

    def _command(self, command: str, params: dict[str, str]) -> Response:
        if command == "namecheap.domains.getList":
            page, size = int(params.get("page", 1)), min(100, max(10, int(params.get("pagesize", 20))))
            names = sorted(self.domains)
            chunk = names[(page - 1) * size : page * size]
            rows = "".join(
                f'<Domain ID="{i}" Name={quoteattr(n)} User="{self.api_user}" Created="11/22/2026" '
                f'Expires="{self.domains[n]["expires"]}" IsExpired="false" IsLocked="false" AutoRenew="false" '
                f'WhoisGuard="ENABLED" IsPremium="false" IsOurDNS="{str(self.domains[n]["our_dns"]).lower()}"/>'
                for i, n in enumerate(chunk, start=(page - 1) * size + 1)
            )
            paging = (f"<Paging><TotalItems>{len(names)}</TotalItems><CurrentPage>{page}</CurrentPage>"
                      f"<PageSize>{size}</PageSize></Paging>")
            return _ok(command, f"<DomainGetListResult>{rows}</DomainGetListResult>{paging}")
        domain = f"{params.get('sld', '')}.{params.get('tld', '')}"
        if command in ("namecheap.domains.dns.setCustom", "namecheap.domains.dns.getList"):
            if domain not in self.domains and self.auto_register and params.get("sld") and params.get("tld"):
                self.domains[domain] = self._new_domain()
            if domain not in self.domains:
                return _error(2019166, "Domain not found")
            if command == "namecheap.domains.dns.getList":
                record = self.domains[domain]
                servers = "".join(f"<Nameserver>{escape(n)}</Nameserver>" for n in record["nameservers"])
                return _ok(command, f'<DomainDNSGetListResult Domain={quoteattr(domain)} '
                                    f'IsUsingOurDNS="{str(record["our_dns"]).lower()}">{servers}</DomainDNSGetListResult>')
            servers = [n.strip().lower() for n in params.get("nameservers", "").split(",") if n.strip()]
            if len(servers) < 2:
                return _error(2011280, "Nameservers are invalid: at least two are required")
            self.domains[domain].update(nameservers=servers, our_dns=False)
            if self.on_nameservers is not None:
                self.on_nameservers(domain, servers)
            return _ok(command, f'<DomainDNSSetCustomResult Domain={quoteattr(domain)} Updated="true"/>')
        return _error(1010104, f"Command {command} is not supported")


def _envelope(status: str, body: str) -> Response:
    xml = (f'<?xml version="1.0" encoding="UTF-8"?><ApiResponse xmlns="{_NS}" Status="{status}">{body}'
           "<Server>SANDBOX</Server><GMTTimeDifference>+0:00</GMTTimeDifference><ExecutionTime>0.01</ExecutionTime>"
           "</ApiResponse>")
    return Response(200, xml.encode(), "text/xml")


def _ok(command: str, result: str) -> Response:
    return _envelope("OK", f"<Errors /><Warnings /><RequestedCommand>{escape(command.lower())}</RequestedCommand>"
                           f'<CommandResponse Type={quoteattr(command)}>{result}</CommandResponse>')


def _error(number: int, message: str) -> Response:
    return _envelope("ERROR", f'<Errors><Error Number="{number}">{escape(message)}</Error></Errors><Warnings />'
                              "<RequestedCommand />")
