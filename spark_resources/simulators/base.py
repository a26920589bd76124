"""What the provider simulators share: a threaded HTTP server on loopback, and a queue of faults to inject."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: str
    headers: Any
    body: bytes


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


class SimulatedClock:
    """Time for tests that wait out provider limits: pass `time` as a simulator's and a client's or limiter's `clock`
    and `sleep` as their `sleep`, and a 5-minute lockout passes at once. `slept` lists every wait asked for."""

    def __init__(self, start: float = 1_800_000_000.0):  # an epoch time (2027-01-15), so HTTP dates make sense
        self._now = start
        self.slept: list[float] = []
        self._lock = threading.Lock()

    def time(self) -> float:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)
            self._now += max(seconds, 0.0)


class NoAnswer(Exception):
    """Raised by a handler to send nothing at all (the client's read timeout fires)."""


class LoopbackServer:
    """Serves `handle(Request) -> Response | None` on 127.0.0.1 at a free port (None: send nothing, the client's
    timeout fires)."""

    def __init__(self, handle: Callable[[Request], Response | None]):
        handler_fn = handle

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _serve(self) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                try:
                    response = handler_fn(Request(self.command, url.path, url.query, self.headers, body))
                except NoAnswer:
                    return
                if response is None:
                    return
                try:
                    self.send_response(response.status)
                    self.send_header("content-type", response.content_type)
                    self.send_header("content-length", str(len(response.body)))
                    for key, value in response.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(response.body)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (its timeout)
                    pass

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class Faults:
    """Faults to answer the next calls with: `inject("429", times=2)`; `next()` pops one per call."""

    def __init__(self, kinds: tuple[str, ...]):
        self.kinds = kinds
        self._queue: deque[list] = deque()
        self._lock = threading.Lock()

    def inject(self, kind: str, times: int = 1) -> None:
        if kind not in self.kinds:
            raise ValueError(f"unknown fault {kind!r}: one of {', '.join(self.kinds)}")
        with self._lock:
            self._queue.append([kind, times])

    def next(self) -> str | None:
        with self._lock:
            if not self._queue:
                return None
            entry = self._queue[0]
            entry[1] -= 1
            if entry[1] <= 0:
                self._queue.popleft()
            return entry[0]


class Simulator:
    """Start/stop and the base URL for a simulator dataclass that has `_server`, `faults`, `_handle(Request)` and a
    class attribute `path` (where the API lives on the server, e.g. "/client/v4")."""

    path = ""
    _server: LoopbackServer | None
    faults: Faults
    timeout_seconds: float
    #: a "malformed" fault: an HTML page from a proxy in front of the API instead of the API's own format
    MALFORMED = Response(200, b"<html><body>502 Bad Gateway</body></html>", "text/html")

    def _common_fault(self, server_error: Response) -> tuple[str | None, Response | None]:
        """Take the next injected fault: (its kind, the answer when it is one every provider shows alike). 'timeout'
        sends nothing after `timeout_seconds`; 'malformed' answers MALFORMED; '500' the provider's `server_error`.
        Other kinds (or none) answer None: the simulator handles them."""
        fault = self.faults.next()
        if fault == "timeout":
            time.sleep(self.timeout_seconds)
            raise NoAnswer
        return fault, {"malformed": self.MALFORMED, "500": server_error}.get(fault or "")

    def start(self):
        self._server = LoopbackServer(self._handle)  # type: ignore[attr-defined]
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start the simulator first"
        return f"{self._server.address}{self.path}"

    def inject(self, kind: str, times: int = 1) -> None:
        """Make the next `times` calls fail with `kind` (one of `faults.kinds`)."""
        self.faults.inject(kind, times)
