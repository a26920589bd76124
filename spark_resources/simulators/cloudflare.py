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

Workers (PROVIDERS.md, "Workers"): `PUT /accounts/{account}/workers/scripts/{name}` takes `multipart/form-data` with a
`metadata` JSON part and the module named by `main_module` (matched by part name, as the contract shows it, or by the
part's filename, which is what the official SDK sends: every file goes in a part named `files`), typed
`application/javascript+module`; scripts are kept per account, and a re-upload replaces the script (same `created_on`,
new `modified_on`, an `etag` that follows the content). Routes live per zone, one per pattern: a second route with a
pattern already routed is refused (`ROUTE_EXISTS`), a route id the zone does not hold answers 404. A route to a script
that does not exist is accepted unless `refuse_routes_to_missing_scripts` (the contract is silent; the live API is
reported to answer 10019). `token_permissions`, when set, limits the token: Workers calls need "workers_scripts:edit"
or "workers_routes:edit" and answer 10000 without it, as the API does for a token lacking a permission.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email import policy as email_policy
from email.parser import BytesParser
from email.utils import formatdate
from typing import Any, Callable
from urllib.parse import parse_qs

from spark_resources.simulators.base import Faults, LoopbackServer, Request, Response, Simulator

#: "echo": a 400 that echoes the request's Authorization header in its message, as a misconfigured proxy might
FAULTS = ("429", "500", "timeout", "malformed", "auth", "echo")
ADDRESS_TYPES = {"A", "AAAA", "CNAME"}
PROXIABLE_TYPES = {"A", "AAAA", "CNAME"}
_RECORD_FIELDS = ("type", "name", "content", "ttl", "proxied", "comment")
#: the error codes the Workers endpoints answer (the contract gives none). 10021 is what the API's users report for an
#: upload it cannot use ("could not read content for part metadata", "No such module"), 10019 for a route to a missing
#: script, and `workers.api.error.duplicate_route` as the duplicate pattern's message. **(unverified)**: the codes of a
#: duplicate route (10020, HTTP 409), an unknown route id (10005, HTTP 404), a bad pattern (10022) and a bad script name
#: (10016) are this simulator's guesses in the Workers range; the client only depends on ROUTE_EXISTS
SCRIPT_INVALID = 10021
SCRIPT_NAME_INVALID = 10016
ROUTE_EXISTS = 10020
ROUTE_NOT_FOUND = 10005
ROUTE_INVALID = 10022
ROUTE_SCRIPT_MISSING = 10019
#: what a module part may be typed as: an ES module. The API takes more (wasm, text, source maps) for other parts
MODULE_TYPES = {"application/javascript+module", "text/javascript+module"}
OTHER_PART_TYPES = {"application/javascript", "text/javascript", "application/wasm", "text/plain",
                    "application/octet-stream", "application/source-map", "text/x-python",
                    "text/x-python-requirement"}
#: the binding types this simulator checks field by field; any other type is refused (we never send one)
BINDING_FIELDS = {"r2_bucket": ("bucket_name",), "plain_text": ("text",), "secret_text": ("text",),
                  "kv_namespace": ("namespace_id",), "json": ("json",)}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


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
    #: account id -> script name -> the script (its result fields, plus `modules` and `metadata` as uploaded)
    scripts: dict[str, dict[str, dict]] = field(default_factory=dict)
    #: zone id -> its Worker routes ({"id", "pattern", "script"})
    worker_routes: dict[str, list[dict]] = field(default_factory=dict)
    #: None: the token may do everything; else what it may do ("workers_scripts:edit", "workers_routes:edit")
    token_permissions: frozenset[str] | None = None
    refuse_routes_to_missing_scripts: bool = False
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
        parts = [p for p in request.path.removeprefix(self.path).split("/") if p]
        if len(parts) == 5 and parts[0] == "accounts" and parts[2:4] == ["workers", "scripts"] and method == "PUT":
            with self._lock:
                status, payload = self._upload_script(parts[1], parts[4], request)
            return _json(status, payload)
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
            if parts[2:4] == ["workers", "routes"] and len(parts) <= 5:
                return self._routes(zone, method, parts[4] if len(parts) == 5 else None, body)
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

    # --- Workers ----------------------------------------------------------------------------------------------------

    def _may(self, permission: str) -> bool:
        return self.token_permissions is None or permission in self.token_permissions

    def _upload_script(self, account_id: str, name: str, request: Request) -> tuple[int, dict]:
        """PUT /accounts/{account_id}/workers/scripts/{name}: the script as a multipart upload, checked as the API
        does (called with the lock held)."""
        if not self._may("workers_scripts:edit"):
            return 403, _error(10000, "Authentication error")
        if not re.fullmatch(r"[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?", name):
            return 400, _error(SCRIPT_NAME_INVALID, "Invalid Worker name: lower-case letters, digits, '-' and '_' only")
        parts, problem = _multipart(request)
        if problem:
            return 400, _error(SCRIPT_INVALID, problem)
        metadata_part = next((p for p in parts if p["name"] == "metadata"), None)
        if metadata_part is None:
            return 400, _error(SCRIPT_INVALID, "could not read content for part metadata")
        try:
            metadata = json.loads(metadata_part["content"])
            if not isinstance(metadata, dict):
                raise ValueError
        except ValueError:
            return 400, _error(SCRIPT_INVALID, "metadata: not a JSON object")
        main_module = metadata.get("main_module")
        if not isinstance(main_module, str) or not main_module:
            return 400, _error(SCRIPT_INVALID, "metadata: main_module is required (module syntax Workers only)")
        date = metadata.get("compatibility_date")
        if date is not None and not (isinstance(date, str) and _DATE.match(date)):
            return 400, _error(SCRIPT_INVALID, f"metadata: compatibility_date {date!r} is not YYYY-MM-DD")
        refused = _check_bindings(metadata.get("bindings", []))
        if refused:
            return 400, _error(SCRIPT_INVALID, refused)
        modules = {}
        for part in parts:
            if part is metadata_part:
                continue
            module_name = part["filename"] or part["name"]
            allowed = MODULE_TYPES if module_name == main_module else MODULE_TYPES | OTHER_PART_TYPES
            if part["content_type"] not in allowed:
                return 400, _error(SCRIPT_INVALID, f"module {module_name} has unsupported Content-Type "
                                                   f"{part['content_type'] or '(none)'}; the main module must be "
                                                   "application/javascript+module")
            modules[module_name] = part
        if main_module not in modules:
            return 400, _error(SCRIPT_INVALID, f'Uncaught Error: No such module "{main_module}". '
                                               "(main_module names no part of the upload)")
        digest = hashlib.sha256(json.dumps(metadata, sort_keys=True).encode())
        for module_name in sorted(modules):
            digest.update(module_name.encode() + b"\0" + modules[module_name]["content"])
        previous = self.scripts.setdefault(account_id, {}).get(name)
        now = self._now()
        script = {
            "id": name, "tag": secrets.token_hex(16), "etag": digest.hexdigest(),
            "created_on": previous["created_on"] if previous else now, "modified_on": now,
            "compatibility_date": date, "compatibility_flags": list(metadata.get("compatibility_flags") or []),
            "handlers": ["fetch"], "has_assets": False, "has_modules": True, "logpush": False,
            "startup_time_ms": 0, "usage_model": "standard", "entry_point": main_module,
            "placement_mode": None, "tail_consumers": None,
        }
        self.scripts[account_id][name] = {
            **script, "metadata": metadata,
            "modules": {n: {"content_type": p["content_type"], "content": p["content"]} for n, p in modules.items()},
        }
        return 200, _ok(script)

    def _routes(self, zone: dict, method: str, route_id: str | None, body: dict) -> tuple[int, dict]:
        """/zones/{zone_id}/workers/routes[/{route_id}] (called with the lock held)."""
        if not self._may("workers_routes:edit"):
            return 403, _error(10000, "Authentication error")
        routes = self.worker_routes.setdefault(zone["id"], [])
        if route_id is None and method == "GET":
            return 200, _ok([dict(r) for r in routes])
        route = None
        if route_id is not None:
            route = next((r for r in routes if r["id"] == route_id), None)
            if route is None:
                return 404, _error(ROUTE_NOT_FOUND, "workers.api.error.route_not_found")
            if method == "GET":
                return 200, _ok(dict(route))
            if method == "DELETE":
                routes.remove(route)
                return 200, _ok({"id": route["id"]})
        if (route_id is None and method == "POST") or (route is not None and method == "PUT"):
            pattern, script = body.get("pattern"), body.get("script")
            if not isinstance(pattern, str) or not pattern.strip():
                return 400, _error(ROUTE_INVALID, "workers.api.error.invalid_route: pattern is required")
            host = re.sub(r"^[a-z]+://", "", pattern.strip().lower()).split("/", 1)[0].lstrip("*").lstrip(".")
            if "/" not in pattern or not (host == zone["name"] or host.endswith("." + zone["name"])):
                return 400, _error(ROUTE_INVALID, f"workers.api.error.invalid_route: {pattern} is not a pattern in "
                                                  f"zone {zone['name']} (host/path, e.g. {zone['name']}/*)")
            if script is not None and not isinstance(script, str):
                return 400, _error(ROUTE_INVALID, "workers.api.error.invalid_route: script must be a name")
            if script and self.refuse_routes_to_missing_scripts and not any(
                    script in scripts for scripts in self.scripts.values()):
                return 400, _error(ROUTE_SCRIPT_MISSING, "Cannot configure a route for a Worker which does not "
                                                         "exist. Please ensure this Worker exists and try again.")
            if any(r["pattern"] == pattern and r is not route for r in routes):
                return 409, _error(ROUTE_EXISTS, "workers.api.error.duplicate_route")
            if route is None:
                route = {"id": secrets.token_hex(16), "pattern": pattern, "script": script or None}
                routes.append(route)
            else:
                route.update(pattern=pattern, script=script or None)
            return 200, _ok(dict(route))
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


def _multipart(request: Request) -> tuple[list[dict], str | None]:
    """The parts of a multipart/form-data body ({"name", "filename", "content_type", "content"}), or why not."""
    content_type = request.headers.get("content-type") or ""
    if not content_type.lower().startswith("multipart/form-data"):
        return [], f"expected multipart/form-data, got {content_type.split(';')[0] or '(no Content-Type)'}"
    message = BytesParser(policy=email_policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + request.body)
    if not message.is_multipart():
        return [], "could not parse the multipart form (no boundary)"
    parts = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name is None:
            return [], "a part of the form has no name"
        parts.append({"name": str(name), "filename": part.get_filename(),
                      "content_type": part.get_content_type() if part.get("content-type") else None,
                      "content": part.get_payload(decode=True) or b""})
    return parts, None


def _check_bindings(bindings: Any) -> str | None:
    """Why a metadata `bindings` list is refused, or None."""
    if not isinstance(bindings, list):
        return "metadata: bindings must be a list"
    seen = set()
    for index, binding in enumerate(bindings):
        if not isinstance(binding, dict):
            return f"metadata: bindings[{index}] is not an object"
        type_, name = binding.get("type"), binding.get("name")
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_$][A-Za-z0-9_$]*", name):
            return f"metadata: bindings[{index}] needs a name that is a JavaScript identifier, got {name!r}"
        if name in seen:
            return f"metadata: binding name {name} is used twice"
        seen.add(name)
        if type_ not in BINDING_FIELDS:
            return f"metadata: binding {name} has an unknown type {type_!r}"
        for needed in BINDING_FIELDS[type_]:
            value = binding.get(needed)
            if needed != "json" and not isinstance(value, str) or needed == "json" and needed not in binding:
                return f"metadata: {type_} binding {name} needs {needed}"
            if type_ == "r2_bucket" and not re.fullmatch(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]", value):
                return f"metadata: r2_bucket binding {name}: {value!r} is not a bucket name"
    return None


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
