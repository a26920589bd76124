"""`spark site build DOMAIN` and `spark site serve DOMAIN`: a site's build as a Dagster run in the local instance (the
one `spark ui` shows), and its last good build served on loopback the way production serves it.

The server answers only the files the build's manifest lists, with the manifest's content types: `/x/` is
`x/index.html`, `/x` redirects to `/x/` when that page exists, anything else is the site's `404.html` with status 404.
Nothing outside the manifest (its directory, other sites, the manifests) can be reached.
"""

from __future__ import annotations

import http.server
import threading
from pathlib import Path
from typing import Callable
from urllib.parse import unquote, urlsplit

from dagster import AssetKey, DagsterInstance

from spark_assets.definitions import defs
from spark_assets.ops.local_instance import dagster_home, prepare_dagster_home
from spark_assets.ops.materializing import Steps, add_missing_partitions, materialize_in_order
from spark_assets.partitions import site_partitions
from spark_assets.records import site_inputs
from spark_assets.records.registry import RegistryError, get_site, normalize_domain
from spark_assets.site.build import TRACKING_SCRIPT, FileEntry, read_manifest
from spark_resources.database import get_engine


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


class _SiteHandler(http.server.BaseHTTPRequestHandler):
    root: Path
    files: dict[str, FileEntry]
    server_version = "spark-site"

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        pass

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
        self._answer(body=False)

    def do_GET(self) -> None:  # noqa: N802
        self._answer(body=True)

    def _answer(self, body: bool) -> None:
        path = unquote(urlsplit(self.path).path)
        relative = path.lstrip("/")
        if path.endswith("/"):
            relative += "index.html"
        entry = self.files.get(relative)
        if entry is None and not path.endswith("/") and f"{relative}/index.html" in self.files:
            self.send_response(301)
            self.send_header("Location", path + "/")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        status = 200
        if entry is None:
            status, entry = 404, self.files.get("404.html")
        if entry is None:
            self.send_error(404)
            return
        data = (self.root / entry.path).read_bytes()
        self.send_response(status)
        self.send_header("Content-Type", entry.content_type)
        self.send_header("Content-Length", str(len(data)))
        hashed = entry.path.startswith("assets/") and entry.path != TRACKING_SCRIPT
        cache = "public, max-age=31536000, immutable" if hashed else "public, max-age=300"
        self.send_header("Cache-Control", cache)
        self.end_headers()
        if body:
            self.wfile.write(data)


def site_server(root: Path, files: dict[str, FileEntry], port: int = 8000, host: str = "127.0.0.1"
                ) -> http.server.ThreadingHTTPServer:
    """A server for one build (not started): loopback only unless told otherwise."""
    handler = type("SiteHandler", (_SiteHandler,), {"root": root, "files": files})
    return http.server.ThreadingHTTPServer((host, port), handler)


def serve_in_background(root: Path, files: dict[str, FileEntry], port: int = 0
                        ) -> tuple[http.server.ThreadingHTTPServer, threading.Thread]:
    server = site_server(root, files, port)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread
