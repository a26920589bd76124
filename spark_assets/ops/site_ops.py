"""`spark site build DOMAIN`, `spark site serve DOMAIN`, `spark site releases` and `spark site rollback`: a site's build
as a Dagster run in the local instance (the one `spark ui` shows); its live release (or, with `--build`, its last
good build) served on loopback exactly as the Cloudflare Worker serves it in production (`release.lookup`: `/x/` is
`x/index.html`, `/x` redirects to `/x/` when that page exists, anything else is the site's `404.html` with status 404,
each file with its content type and cache policy); its releases listed; the live pointer moved back.

Only the files the manifest lists can be reached: nothing else of the tree, the bucket, other sites or the manifests.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

from dagster import AssetKey, DagsterInstance

from spark_assets.definitions import defs
from spark_assets.ops.local_instance import dagster_home, prepare_dagster_home
from spark_assets.ops.materializing import Steps, add_missing_partitions, materialize_in_order
from spark_assets.partitions import site_partitions
from spark_assets.records import releases as releases_records
from spark_assets.records import site_inputs
from spark_assets.records.registry import RegistryError, get_site, normalize_domain
from spark_assets.release import layout, lookup, publish
from spark_assets.site.build import FileEntry, read_manifest
from spark_resources.database import get_engine
from spark_resources.storage import storage_from_environment


def build_site_now(domain: str, echo: Callable[[str], None] = print) -> dict:
    """Materialize `site_build` for the site; returns its metadata."""
    domain = normalize_domain(domain)
    with get_engine().connect() as conn:
        get_site(conn, domain)  # RegistryError with a hint when it is not registered
    prepare_dagster_home(dagster_home())
    instance = DagsterInstance.get()
    step = Steps(echo)
    add_missing_partitions(instance, [(site_partitions.name, domain)])
    metadata = materialize_in_order([AssetKey("site_build")], {site_partitions.name: domain}, instance,
                                    dict(defs.resources), step)[AssetKey("site_build")]
    values = {name: value.value for name, value in metadata.items()}
    echo(f"{domain}: {values['articles']} articles, {values['hubs']} hub pages, {values['files']} files "
         f"({values['files_written']} written, {values['files_skipped']} unchanged, {values['files_removed']} removed) "
         f"in {values['seconds']} s")
    errors = [name for _, name, severity in step.failed_checks if severity == "ERROR"]
    if errors:
        raise SiteChecksFailed(f"{domain}: the build is recorded but failed its check(s) {', '.join(errors)}: "
                               "see the check metadata in the UI (`spark ui`), fix, and build again")
    echo(f"open it: `spark site serve {domain}`")
    return values


class SiteChecksFailed(RuntimeError):
    """A build finished but an ERROR check of it did not pass."""


def last_good_build(domain: str, engine=None) -> tuple[Path, dict[str, FileEntry]]:
    """The site's last good build: its tree and its manifest's files."""
    domain = normalize_domain(domain)
    with (engine or get_engine()).connect() as conn:
        site = get_site(conn, domain)
        build = site_inputs.last_good_build(conn, site.id)
    if build is None:
        raise RegistryError(f"{domain} has no build yet: run `spark site build {domain}` first")
    tree, manifest = build
    return tree, read_manifest(manifest)


class BuildSource:
    """A build's tree as the server's files: its manifest's entries (with the release's cache policies)."""

    def __init__(self, root: Path, files: dict[str, FileEntry]):
        self.root, self.files = root, files
        self.label = f"build ({len(files)} files)"

    def entry(self, path: str) -> dict[str, str] | None:
        found = self.files.get(path)
        if found is None:
            return None
        return {"sha256": found.sha256, "content_type": found.content_type,
                "cache_control": layout.cache_policy(found.path, found.content_type)}

    def read(self, path: str, entry: dict[str, str]) -> bytes:
        return (self.root / path).read_bytes()


class ReleaseSource:
    """The live release in the bucket, read as the Cloudflare Worker reads it: the pointer (again after a few
    seconds, so a rollback shows), its manifest, the object by content hash."""

    POINTER_SECONDS = 2.0

    def __init__(self, store, domain: str):
        self.store, self.domain = store, domain
        self._view: lookup.ManifestView | None = None
        self._read_at = 0.0
        self._release = ""
        self._lock = threading.Lock()
        self._refresh()

    def _refresh(self) -> None:
        pointer = publish.live_pointer(self.store, self.domain)
        if pointer is None:
            raise RegistryError(f"{self.domain} has no release yet: materialize site_release (or `spark demo`), or "
                                f"serve the last build with `spark site serve {self.domain} --build`")
        document = pointer[0]
        if document["release_id"] != self._release:
            manifest = json.loads(self.store.get_bytes(document["manifest"]))
            self._view = lookup.ManifestView(manifest, lambda key: json.loads(self.store.get_bytes(key)))
            self._release = document["release_id"]
        self._read_at = time.monotonic()

    @property
    def label(self) -> str:
        return f"release {self._release}"

    def entry(self, path: str) -> dict[str, str] | None:
        with self._lock:
            if time.monotonic() - self._read_at > self.POINTER_SECONDS:
                self._refresh()
            view = self._view
        return view.entry(path)

    def read(self, path: str, entry: dict[str, str]) -> bytes:
        return self.store.get_bytes(layout.object_key(self.domain, entry["sha256"]))


class _SiteHandler(http.server.BaseHTTPRequestHandler):
    source: "BuildSource | ReleaseSource"
    server_version = "spark-site"

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        pass

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
        self._answer(body=False)

    def do_GET(self) -> None:  # noqa: N802
        self._answer(body=True)

    def _answer(self, body: bool) -> None:
        # the Worker's rules (release.lookup): clean URLs, a redirect to the slash, the site's 404 page
        parts = urlsplit(self.path)
        found = lookup.resolve(parts.path, lambda path: self.source.entry(path) is not None, parts.query or None)
        entry = self.source.entry(found.path) if found.path else None
        headers = lookup.response_headers(entry, found.status, found.location)
        data = self.source.read(found.path, entry) if entry is not None and found.status != 301 else b""
        if found.status == 404 and entry is None:
            data = b"Not Found\n"
        self.send_response(found.status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body and data:
            self.wfile.write(data)


def site_server(source: "BuildSource | ReleaseSource | Path", files: dict[str, FileEntry] | None = None,
                port: int = 8000, host: str = "127.0.0.1") -> http.server.ThreadingHTTPServer:
    """A server (not started) for a build (`site_server(tree, files)`) or a release (`site_server(ReleaseSource(...))`):
    loopback only unless told otherwise."""
    if isinstance(source, Path):
        source = BuildSource(source, files or {})
    handler = type("SiteHandler", (_SiteHandler,), {"source": source})
    return http.server.ThreadingHTTPServer((host, port), handler)


def serve_in_background(source: "BuildSource | ReleaseSource | Path", files: dict[str, FileEntry] | None = None,
                        port: int = 0) -> tuple[http.server.ThreadingHTTPServer, threading.Thread]:
    server = site_server(source, files, port)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


def storage_client():
    """The bucket client the environment configures now (R2, or what SPARK_STORAGE_URL names), as the Definitions'
    `storage` resource is made."""
    return storage_from_environment().get_client()


def release_source(domain: str) -> ReleaseSource:
    return ReleaseSource(storage_client(), normalize_domain(domain))


def list_releases(domain: str, engine=None) -> tuple[str | None, list[releases_records.Deployment]]:
    """The live release id (None before the first) and the site's releases and rollbacks, newest first."""
    domain = normalize_domain(domain)
    with (engine or get_engine()).connect() as conn:
        site = get_site(conn, domain)
        history = releases_records.history(conn, site.id)
    pointer = publish.live_pointer(storage_client(), domain)
    return (pointer[0]["release_id"] if pointer else None), history


def rollback(domain: str, to: str | None = None, engine=None) -> tuple[str, str | None, float]:
    """Point the site at release `to` (default: the release that was live before the current one): one conditional
    write of the pointer. (the release now live, the one it replaced, seconds); recorded as a 'rollback' row."""
    domain = normalize_domain(domain)
    engine = engine or get_engine()
    store = storage_client()
    started = time.perf_counter()
    with engine.connect() as conn:
        site = get_site(conn, domain)
    pointer = publish.live_pointer(store, domain)
    if pointer is None:
        raise RegistryError(f"{domain} has no release to roll back: it was never released")
    live = pointer[0]["release_id"]
    if to is None:
        older = [r for r, _ in publish.releases(store, domain) if r != live]
        earlier = [r for r in older if r < live] or older
        if not earlier:
            raise RegistryError(f"{domain} has only one release ({live}): nothing to roll back to")
        to = max(earlier)
    now = datetime.now(timezone.utc)
    with engine.begin() as conn:
        deployment = releases_records.start(conn, site.id, None, store.bucket, layout.site_prefix(domain),
                                            "rollback", to)
    try:
        replaced = publish.point_to(store, domain, to, now)
    except Exception as exc:  # recorded (secret-free: provider errors carry none), then raised as it is
        with engine.begin() as conn:
            releases_records.fail(conn, deployment, site.id, domain, f"rollback to {to}: {exc}",
                                  int((time.perf_counter() - started) * 1000))
        raise
    seconds = time.perf_counter() - started
    with engine.begin() as conn:
        releases_records.finish(conn, deployment, site.id, domain, previous_release=replaced,
                                duration_ms=int(seconds * 1000))
    return to, replaced, seconds
