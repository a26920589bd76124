"""A local Cloudflare API v4 for tests and the offline demo (the sandbox mode): a real HTTP server on loopback that
answers as ../shared/contracts/PROVIDERS.md section 1 says, envelopes, error codes, pagination and rate limit included.

    with CloudflareSimulator(token="sandbox-token") as cloudflare:
        client = CloudflareClient(cloudflare.base_url, "sandbox-token", limiter=...)
        cloudflare.inject("429", times=2)   # the next two calls answer 429 with retry-after

State (zones, records) lives for the simulator's lifetime. Zones stay `pending` until `activate_zone` (the Namecheap
simulator calls it when a domain's name servers point at the zone); they turn `active` `activation_delay_seconds` later
(zero in the demo; a real zone can take hours).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qs

from spark_resources.simulators.base import Faults, LoopbackServer, Request, Response, Simulator

FAULTS = ("429", "500", "timeout", "malformed", "auth")


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class CloudflareSimulator(Simulator):
    token: str = "sandbox-token"
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

    # --- test controls --------------------------------------------------------------------------------------------

    def activate_zone(self, name: str) -> None:
        """The registrar points at the zone: it turns active after `activation_delay_seconds`."""
        with self._lock:
            for zone in self.zones.values():
                if zone["name"] == name and zone["status"] == "pending":
                    self._activations.setdefault(zone["id"], time.monotonic() + self.activation_delay_seconds)
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
                    if r["type"] == "TXT" and r["name"] == name]

    def _settle(self) -> None:
        """Activate the zones whose time has come (called with the lock held)."""
        now = time.monotonic()
        for zone_id, when in list(self._activations.items()):
            if now >= when:
                zone = self.zones[zone_id]
                zone["status"] = "active"
                zone["activated_on"] = _now()
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
        if fault == "auth" or request.headers.get("authorization") != f"Bearer {self.token}":
            return _json(403, _error(10000, "Authentication error"))
        if fault == "429" or not self._within_budget():
            # an injected 429 asks for no wait (tests stay fast); the real lockout tells how long it has left
            wait = 0 if fault == "429" else max(1, round(self._locked_until - time.monotonic()))
            return _json(429, _error(971, "Please wait and consider throttling your request speed"),
                         {"retry-after": str(wait)})
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
            now = time.monotonic()
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
            zones = [z for z in self.zones.values() if "name" not in query or z["name"] == query["name"]]
            return _page(sorted(zones, key=lambda z: z["name"]), query, default=20, maximum=50)
        if parts == ["zones"] and method == "POST":
            name = body.get("name")
            if not name or not (body.get("account") or {}).get("id"):
                return 400, _error(1001, "Invalid or missing zone name or account")
            if any(z["name"] == name for z in self.zones.values()):
                return 400, _error(ZONE_EXISTS, f"{name} already exists")
            zone_id = secrets.token_hex(16)
            self.zones[zone_id] = {
                "id": zone_id, "name": name, "status": "pending", "paused": False, "type": body.get("type", "full"),
                "name_servers": ["ada.ns.cloudflare.com", "bob.ns.cloudflare.com"], "original_name_servers": [],
                "created_on": _now(), "modified_on": _now(), "activated_on": None,
                "account": {"id": body["account"]["id"], "name": "sandbox"},
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
                records = [
                    r for r in self.records[zone["id"]]
                    if all(r[k] == query[k] for k in ("type", "name", "content") if k in query)
                ]
                return _page(records, query, default=100, maximum=5000)
            if parts[2:] == ["dns_records"] and method == "POST":
                return self._create_record(zone, body)
            if len(parts) == 4 and parts[2] == "dns_records" and method == "PATCH":
                for record in self.records[zone["id"]]:
                    if record["id"] == parts[3]:
                        record.update({k: v for k, v in body.items() if k in ("type", "name", "content", "ttl", "proxied", "comment")})
                        record["modified_on"] = _now()
                        return 200, _ok(record)
                return 404, _error(81044, "Record does not exist.")
        return 400, _error(7000, "No route for that URI")

    def _create_record(self, zone: dict, body: dict) -> tuple[int, dict]:
        missing = [k for k in ("type", "name", "content") if not body.get(k)]
        if missing:
            return 400, _error(9000, f"DNS record is missing {', '.join(missing)}")
        ttl = body.get("ttl", 1)
        if ttl != 1 and not 60 <= ttl <= 86400:
            return 400, _error(9021, "Invalid TTL. Must be between 60 and 86400 seconds, or 1 for Automatic.")
        for record in self.records[zone["id"]]:
            if (record["type"], record["name"], record["content"]) == (body["type"], body["name"], body["content"]):
                return 400, _error(81058, "An identical record already exists.")
        record = {
            "id": secrets.token_hex(16), "type": body["type"], "name": body["name"], "content": body["content"],
            "ttl": ttl, "proxied": bool(body.get("proxied", False)), "proxiable": True, "comment": body.get("comment"),
            "tags": [], "settings": {}, "meta": {}, "created_on": _now(), "modified_on": _now(),
        }
        self.records[zone["id"]].append(record)
        return 200, _ok(record)

ZONE_EXISTS = 1061


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
