"""How a URL finds its file in a release: the rules `spark site serve` follows and the Cloudflare Worker
(`worker/worker.js`) repeats line for line (a test runs both over the same table). Plain Python: no dagster, no
database, no boto3.

- the path is percent-decoded once (invalid UTF-8 becomes U+FFFD, which no file has);
- a path with a `.` or `..` segment, a backslash, a NUL, an empty segment before the last (`//`), or not starting
  with `/` is refused: 404;
- `/` is `index.html`, `/x/` is `x/index.html`;
- `/x` is the file `x` when the release has it, else a 301 to `/x/` (query kept) when `x/index.html` exists;
- anything else is a 404, with the site's `404.html` as its body when the release has one.
"""

from __future__ import annotations

from importlib import resources
from typing import Any, Callable, NamedTuple
from urllib.parse import unquote

from spark_assets.release import layout

NOT_FOUND_PAGE = "404.html"
#: the body and type of a 404 for a site without a 404 page, of a 405 and of a host with no release
PLAIN_TEXT = "text/plain; charset=utf-8"


class Resolution(NamedTuple):
    """What a URL answers: `status` 200 (`path` the file to serve), 301 (`location`), or 404 (`path` the 404 page
    when the release has one, else None)."""

    status: int
    path: str | None = None
    location: str | None = None


def refused(decoded: str) -> bool:
    """A decoded URL path no file may be served for."""
    if not decoded.startswith("/") or "\\" in decoded or "\x00" in decoded:
        return True
    segments = decoded[1:].split("/")
    if any(segment in (".", "..") for segment in segments):
        return True
    return any(segment == "" for segment in segments[:-1])


def resolve(url_path: str, has: Callable[[str], bool], query: str | None = None) -> Resolution:
    """The answer to a GET of `url_path` (the URL's path, still percent-encoded, as the request has it) given `has`,
    whether the release holds a build-relative file path. `query` (without the `?`) is kept on a redirect."""
    decoded = unquote(url_path)
    if not refused(decoded):
        relative = decoded[1:]
        if relative == "" or relative.endswith("/"):
            relative += "index.html"
            if has(relative):
                return Resolution(200, relative)
        elif has(relative):
            return Resolution(200, relative)
        elif has(relative + "/index.html"):
            location = url_path + "/" + (f"?{query}" if query else "")
            return Resolution(301, location=location)
    return Resolution(404, NOT_FOUND_PAGE if has(NOT_FOUND_PAGE) else None)


def domain_from_host(host: str) -> str | None:
    """The site a Host header names: lowercased, without its port, a trailing dot or a leading `www.`; None when it
    is not a plain DNS name (letters, digits, `-`, `.`; an IDN arrives as punycode)."""
    host = host.strip().lower()
    if ":" in host:
        host, _, port = host.rpartition(":")
        if not port.isdigit() or not port.isascii():
            return None
    host = host.removesuffix(".")
    host = host.removeprefix("www.")
    if not host or len(host) > 253 or host.startswith(".") or ".." in host:
        return None
    if not all(c.isascii() and (c.isalnum() or c in "-.") for c in host):
        return None
    return host


class ManifestView:
    """A release manifest (`layout.manifest_document`) as a lookup of its files: a sharded one loads only the shard
    that holds a path (`layout.shard_for`), each shard once."""

    def __init__(self, document: dict[str, Any], load_shard: Callable[[str], dict[str, Any]]):
        self.document = document
        self.load_shard = load_shard
        self.shards: dict[str, dict[str, Any]] = {}

    def entry(self, path: str) -> dict[str, str] | None:
        """The file's `{"sha256", "content_type", "cache_control"}`, or None."""
        files = self.document.get("files") or {}
        if path in files:
            return files[path]
        shard = layout.shard_for(path, self.document.get("shards") or [])
        if shard is None:
            return None
        key = shard["key"]
        if key not in self.shards:
            self.shards[key] = self.load_shard(key)
        return (self.shards[key].get("files") or {}).get(path)

    def has(self, path: str) -> bool:
        return self.entry(path) is not None


def response_headers(entry: dict[str, str] | None, status: int, location: str | None = None) -> dict[str, str]:
    """The headers of an answer: a file's own type and cache policy (200), the 404 page's type and `no-cache` (a 404;
    plain text when there is no page), a `Location` cached `layout.SHORT` (301)."""
    if status == 301:
        return {"Location": location or "/", "Cache-Control": layout.SHORT}
    content_type = entry["content_type"] if entry is not None else PLAIN_TEXT
    if status == 200 and entry is not None:
        return {"Content-Type": content_type, "Cache-Control": entry["cache_control"]}
    return {"Content-Type": content_type, "Cache-Control": layout.NO_CACHE}


def worker_source() -> str:
    """The Cloudflare Worker's script (`worker/worker.js`, shipped in the package), for provisioning to upload."""
    return resources.files("spark_assets.release").joinpath("worker").joinpath("worker.js").read_text(encoding="utf-8")
