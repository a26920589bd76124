"""A local Cloudflare API v4 for tests and the offline demo (the sandbox mode): a real HTTP server on loopback that
answers as ../shared/contracts/PROVIDERS.md section 1 says, envelopes, error codes, pagination and rate limit included.

    with CloudflareSimulator(token="sandbox-token") as cloudflare:
        client = CloudflareClient(cloudflare.base_url, "sandbox-token", limiter=...)
        cloudflare.inject("429", times=2)   # the next two calls answer 429 with retry-after

State (zones, records) lives for the simulator's lifetime. Zones stay `pending` until `activate_zone` (the Namecheap
simulator calls it when a domain's name servers point at the zone); they turn `active` `activation_delay_seconds` later
(zero in the demo; a real zone can take hours).

Records follow the API's rules (PROVIDERS.md, "Record rules"): names case-insensitive and stored fully qualified (a name
outside the zone is taken as relative to it); a CNAME cannot share its name with an A, AAAA or CNAME (81053), nor below
the apex with anything (81054), while at the apex a TXT or MX may sit beside the flattened CNAME; TXT records cannot be
proxied. `import_records` stands for what Cloudflare imports when a zone is added (the old host's A records, say).
Time is `clock` (epoch seconds; tests pass a simulated one), and `retry_after_format` = "http-date" sends `retry-after`
as a date, as the API may.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import formatdate
from typing import Any, Callable
from urllib.parse import parse_qs

from spark_resources.simulators.base import Faults, LoopbackServer, Request, Response, Simulator

#: "echo": a 400 that echoes the request's Authorization header in its message, as a misconfigured proxy might
FAULTS = ("429", "500", "timeout", "malformed", "auth", "echo")
ADDRESS_TYPES = {"A", "AAAA", "CNAME"}
PROXIABLE_TYPES = {"A", "AAAA", "CNAME"}
_RECORD_FIELDS = ("type", "name", "content", "ttl", "proxied", "comment")


@dataclass
class CloudflareSimulator(Simulator):
    token: str = "sandbox-token"
    #: what the API's clock says (epoch seconds): windows, lockouts, activations and timestamps follow it
    clock: Callable[[], float] = time.time
    #: "seconds" or "http-date": how `retry-after` is written
    retry_after_format: str = "seconds"
    requests_per_window: int = 1200
    window_seconds: float = 300.0
    lockout_seconds: float = 300.0
    timeout_seconds: float = 2.0
    activation_delay_seconds: float = 0.0
    zones: dict[str, dict] = field(default_factory=dict)
    records: dict[str, list[dict]] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    faults: Faults = field(default_factory=lambda: Faults(FAULTS))
    _window: deque = field(default_factory=deque)
    _activations: dict[str, float] = field(default_factory=dict)  # zone id -> when it turns active
    _locked_until: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: LoopbackServer | None = None

    path = "/client/v4"

    def _now(self) -> str:
        return datetime.fromtimestamp(self.clock(), timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    # --- test controls --------------------------------------------------------------------------------------------

    def activate_zone(self, name: str) -> None:
        """The registrar points at the zone: it turns active after `activation_delay_seconds`."""
        with self._lock:
            for zone in self.zones.values():
                if zone["name"] == name and zone["status"] == "pending":
                    self._activations.setdefault(zone["id"], self.clock() + self.activation_delay_seconds)
            self._settle()

    def fast_forward(self, seconds: float) -> None:
        """Let `seconds` pass for the zones waiting to turn active (tests do not sleep through the delay)."""
        with self._lock:
            self._activations = {zone: when - seconds for zone, when in self._activations.items()}

    def txt_records(self, name: str) -> list[str]:
        """The TXT values published for `name` in any zone (what a DNS lookup would answer; Google's verification
        reads them)."""
        with self._lock:
            return [r["content"] for records in self.records.values() for r in records
                    if r["type"] == "TXT" and r["name"] == name.lower().rstrip(".")]

    def import_records(self, zone_name: str, records: list[tuple[str, str, str]]) -> None:
        """Put (type, name, content) records in the zone as Cloudflare does when a zone is added (it scans the
        domain's current DNS): no rules checked, as the old DNS host did not have Cloudflare's."""
        with self._lock:
            zone = next(z for z in self.zones.values() if z["name"] == zone_name)
            for type_, name, content in records:
                self.records[zone["id"]].append(self._new_record(zone, {"type": type_, "name": name,
                                                                       "content": content, "ttl": 1}))

    def _settle(self) -> None:
        """Activate the zones whose time has come (called with the lock held)."""
        now = self.clock()
        for zone_id, when in list(self._activations.items()):
            if now >= when:
                zone = self.zones[zone_id]
                zone["status"] = "active"
                zone["activated_on"] = self._now()
                del self._activations[zone_id]

    # --- the API --------------------------------------------------------------------------------------------------

    def _handle(self, request: Request) -> Response | None:
        method = request.method
        query = {k: v[0] for k, v in parse_qs(request.query).items()}
        with self._lock:
            self.calls.append((method, request.path))
        fault, answer = self._common_fault(server_error=_json(500, _error(10001, "simulated internal error")))
        if answer is not None:
            return answer
        if fault == "echo":
            return _json(400, _error(6111, "Invalid format for Authorization header: "
                                           f"{request.headers.get('authorization')}"))
        if fault == "auth" or request.headers.get("authorization") != f"Bearer {self.token}":
            return _json(403, _error(10000, "Authentication error"))
        if fault == "429" or not self._within_budget():
            # an injected 429 asks for no wait (tests stay fast); the real lockout tells how long it has left
            wait = 0 if fault == "429" else max(1, round(self._locked_until - self.clock()))
            retry_after = str(wait) if self.retry_after_format == "seconds" else formatdate(self.clock() + wait,
                                                                                            usegmt=True)
            return _json(429, _error(971, "Please wait and consider throttling your request speed"),
                         {"retry-after": retry_after})
        try:
            body = json.loads(request.body) if request.body else {}
        except ValueError:
            return _json(400, _error(6007, "Malformed JSON in request body"))
        with self._lock:
            self._settle()
            status, payload = self._route(method, request.path, query, body)
        return _json(status, payload)

    def _within_budget(self) -> bool:
        """Cloudflare's limit: past the budget, every call answers 429 for the lockout period."""
        with self._lock:
            now = self.clock()
            if now < self._locked_until:
                return False
            while self._window and now - self._window[0] >= self.window_seconds:
                self._window.popleft()
            if len(self._window) >= self.requests_per_window:
                self._locked_until = now + self.lockout_seconds
                return False
            self._window.append(now)
            return True

    def _route(self, method: str, path: str, query: dict, body: dict) -> tuple[int, dict]:
        parts = [p for p in path.removeprefix("/client/v4").split("/") if p]
        if parts == ["zones"] and method == "GET":
            zones = [z for z in self.zones.values()
                     if z["name"] == query.get("name", z["name"]).lower().rstrip(".")
                     and z["status"] == query.get("status", z["status"])
                     and z["account"]["id"] == query.get("account.id", z["account"]["id"])]
            return _page(sorted(zones, key=lambda z: z["name"]), query, default=20, maximum=50)
        if parts == ["zones"] and method == "POST":
            name = str(body.get("name") or "").lower().rstrip(".")
            if not name or not (body.get("account") or {}).get("id"):
                return 400, _error(1001, "Invalid or missing zone name or account")
            if any(z["name"] == name for z in self.zones.values()):
                return 400, _error(ZONE_EXISTS, f"{name} already exists")
            zone_id = secrets.token_hex(16)
            self.zones[zone_id] = {
                "id": zone_id, "name": name, "status": "pending", "paused": False, "type": body.get("type", "full"),
                "development_mode": 0, "name_servers": ["ada.ns.cloudflare.com", "bob.ns.cloudflare.com"],
                "original_name_servers": [], "original_registrar": None, "original_dnshost": None,
                "vanity_name_servers": [], "permissions": ["#dns_records:edit", "#zone:edit"],
                "created_on": self._now(), "modified_on": self._now(), "activated_on": None,
                "account": {"id": body["account"]["id"], "name": "sandbox"},
                "owner": {"id": None, "name": None, "type": "user"},
                "plan": {"id": "0feeeeeeeeeeeeeeeeeeeeeeeeeeeeee", "name": "Free Website", "price": 0,
                         "currency": "USD", "frequency": "", "is_subscribed": False, "can_subscribe": False,
                         "legacy_id": "free", "legacy_discount": False, "externally_managed": False},
                "meta": {"step": 2, "custom_certificate_quota": 0, "page_rule_quota": 3, "phishing_detected": False},
            }
            self.records[zone_id] = []
            return 200, _ok(self.zones[zone_id])
        if len(parts) >= 2 and parts[0] == "zones":
            zone = self.zones.get(parts[1])
            if zone is None:
                return 400, _error(7003, f"Could not route to /{'/'.join(parts)}, perhaps your object identifier is invalid?")
            if len(parts) == 2 and method == "GET":
                return 200, _ok(zone)
            if parts[2:] == ["dns_records"] and method == "GET":
                return _page(self._matching(zone, query), query, default=100, maximum=5000)
            if parts[2:] == ["dns_records"] and method == "POST":
                return self._create_record(zone, body)
            if len(parts) == 4 and parts[2] == "dns_records":
                record = next((r for r in self.records[zone["id"]] if r["id"] == parts[3]), None)
                if record is None:
                    return 404, _error(81044, "Record does not exist.")
                if method == "GET":
                    return 200, _ok(record)
                if method == "DELETE":
                    self.records[zone["id"]].remove(record)
                    return 200, _ok({"id": record["id"]})
                if method in ("PATCH", "PUT"):  # PATCH changes what it names; PUT replaces the whole record
                    base = ({k: record[k] for k in _RECORD_FIELDS} if method == "PATCH"
                            else {"ttl": 1, "proxied": False, "comment": None})
                    changed = {**base, **{k: v for k, v in body.items() if k in _RECORD_FIELDS}}
                    changed["type"] = str(changed.get("type") or "").upper()
                    refused = self._refuse(zone, changed, ignore=record)
                    if refused:
                        return refused
                    changed["name"] = _fqdn(zone["name"], changed["name"])
                    record.update(changed, proxiable=changed["type"] in PROXIABLE_TYPES, modified_on=self._now())
                    record["proxied"] = bool(record.get("proxied"))
                    return 200, _ok(record)
        return 400, _error(7000, "No route for that URI")

    def _matching(self, zone: dict, query: dict) -> list[dict]:
        """The zone's records that pass the list filters: `type`, `name` and `content` (exact; `name.exact`,
        `content.exact` likewise), names compared case-insensitively and as the API stores them, fully qualified."""
        name = query.get("name.exact", query.get("name"))
        content = query.get("content.exact", query.get("content"))
        return [
            r for r in self.records[zone["id"]]
            if ("type" not in query or r["type"] == query["type"].upper())
            and (name is None or r["name"] == _fqdn(zone["name"], name))
            and (content is None or r["content"] == content)
        ]

    def _refuse(self, zone: dict, record: dict, ignore: dict | None = None) -> tuple[int, dict] | None:
        """The API's answer to a record it will not hold, or None: missing fields, a bad TTL, a proxied TXT, an
        identical record, or a name the record cannot share (81053, 81054)."""
        missing = [k for k in ("type", "name", "content") if not record.get(k)]
        if missing:
            return 400, _error(9000, f"DNS record is missing {', '.join(missing)}")
        ttl = record.get("ttl", 1)
        if not isinstance(ttl, int) or (ttl != 1 and not 60 <= ttl <= 86400):
            return 400, _error(9021, "Invalid TTL. Must be between 60 and 86400 seconds, or 1 for Automatic.")
        type_, name = str(record["type"]).upper(), _fqdn(zone["name"], record["name"])
        if record.get("proxied") and type_ not in PROXIABLE_TYPES:
            return 400, _error(9004, "This record type cannot be proxied.")
        apex = name == zone["name"]
        for other in self.records[zone["id"]]:
            if other is ignore or other["name"] != name:
                continue
            if (other["type"], other["content"]) == (type_, record["content"]):
                return 400, _error(81058, "An identical record already exists.")
            if "CNAME" in (type_, other["type"]):
                if type_ in ADDRESS_TYPES and other["type"] in ADDRESS_TYPES:
                    return 400, _error(81053, "An A, AAAA, or CNAME record with that host already exists.")
                if not apex:  # at the apex the CNAME is flattened: TXT and MX may sit beside it
                    return 400, _error(81054, "A CNAME record with that host already exists.")
        return None

    def _create_record(self, zone: dict, body: dict) -> tuple[int, dict]:
        refused = self._refuse(zone, body)
        if refused:
            return refused
        record = self._new_record(zone, body)
        self.records[zone["id"]].append(record)
        return 200, _ok(record)

    def _new_record(self, zone: dict, body: dict) -> dict:
        type_ = str(body["type"]).upper()
        return {
            "id": secrets.token_hex(16), "type": type_, "name": _fqdn(zone["name"], body["name"]),
            "content": body["content"], "ttl": body.get("ttl", 1), "proxied": bool(body.get("proxied", False)),
            "proxiable": type_ in PROXIABLE_TYPES, "comment": body.get("comment"), "tags": [], "settings": {},
            "meta": {}, "created_on": self._now(), "modified_on": self._now(),
        }

ZONE_EXISTS = 1061


def _fqdn(zone: str, name: str) -> str:
    """A record name as the API stores it: lower case, no trailing dot, fully qualified (a name that does not end in
    the zone's is taken as relative to it: `www` and `www.other.test` become `www.<zone>`, `www.other.test.<zone>`;
    `@` is the apex)."""
    name = str(name).strip().lower().rstrip(".")
    if name in ("", "@") or name == zone:
        return zone
    return name if name.endswith("." + zone) else f"{name}.{zone}"


def _json(status: int, payload: dict, headers: dict | None = None) -> Response:
    return Response(status, json.dumps(payload).encode(), headers=headers or {})


def _ok(result: Any) -> dict:
    return {"success": True, "errors": [], "messages": [], "result": result}


def _error(code: int, message: str) -> dict:
    return {"success": False, "errors": [{"code": code, "message": message}], "messages": [], "result": None}


def _page(items: list[dict], query: dict, *, default: int, maximum: int) -> tuple[int, dict]:
    page = max(1, int(query.get("page", 1)))
    per_page = min(maximum, max(1, int(query.get("per_page", default))))
    total_pages = max(1, -(-len(items) // per_page))
    chunk = items[(page - 1) * per_page : page * per_page]
    return 200, {
        **_ok(chunk),
        "result_info": {"page": page, "per_page": per_page, "count": len(chunk), "total_count": len(items),
                        "total_pages": total_pages},
    }
