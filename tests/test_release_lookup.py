"""How a URL finds its file in a release (spark_assets/release/lookup.py) and the Cloudflare Worker that does the same on
R2 (spark_assets/release/worker/worker.js): one table of URLs, answered by the Python rules, by the Worker's own
exported rules, and by the Worker's `fetch` over a fake bucket (node; skipped when node is not installed)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from urllib.parse import unquote

import pytest

from spark_assets.release import layout, lookup
from spark_assets.release.lookup import ManifestView, Resolution, resolve, response_headers

WORKER = Path(lookup.__file__).parent / "worker" / "worker.js"
DRIVER = Path(__file__).parent / "js" / "worker_driver.mjs"

CSS = "assets/site.0123abcd4567.css"
HTML = "text/html; charset=utf-8"
TYPES = {".html": HTML, ".xml": "application/xml", ".css": "text/css; charset=utf-8",
         ".txt": "text/plain; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
BUILD = ["index.html", "roof-repair-austin/index.html", "texas/index.html", "texas/page/2/index.html", "404.html",
         "sitemap.xml", "sitemaps/sitemap-1.xml", "feed.xml", "robots.txt", CSS, "assets/tracking.js"]

# (URL path, query, the answer for BUILD)
TABLE = [
    ("/", None, Resolution(200, "index.html")),
    ("/index.html", None, Resolution(200, "index.html")),
    ("/roof-repair-austin/", None, Resolution(200, "roof-repair-austin/index.html")),
    ("/roof-repair-austin", None, Resolution(301, location="/roof-repair-austin/")),
    ("/roof-repair-austin", "utm_source=x&b=1", Resolution(301, location="/roof-repair-austin/?utm_source=x&b=1")),
    ("/roof-repair-austin/index.html", None, Resolution(200, "roof-repair-austin/index.html")),
    ("/texas/", None, Resolution(200, "texas/index.html")),
    ("/texas", None, Resolution(301, location="/texas/")),
    ("/texas/page/2/", None, Resolution(200, "texas/page/2/index.html")),
    ("/texas/page/2", "", Resolution(301, location="/texas/page/2/")),
    ("/texas/page/3/", None, Resolution(404, "404.html")),
    ("/texas/page/", None, Resolution(404, "404.html")),
    ("/texas/page", None, Resolution(404, "404.html")),
    ("/Texas/", None, Resolution(404, "404.html")),
    ("/%74exas/", None, Resolution(200, "texas/index.html")),
    ("/texas%2Fpage%2F2/", None, Resolution(200, "texas/page/2/index.html")),
    ("/%2574exas/", None, Resolution(404, "404.html")),  # decoded once only
    ("/sitemap.xml", None, Resolution(200, "sitemap.xml")),
    ("/sitemap.xml/", None, Resolution(404, "404.html")),
    ("/sitemaps/sitemap-1.xml", None, Resolution(200, "sitemaps/sitemap-1.xml")),
    ("/sitemaps/", None, Resolution(404, "404.html")),
    ("/feed.xml", None, Resolution(200, "feed.xml")),
    ("/robots.txt", None, Resolution(200, "robots.txt")),
    ("/" + CSS, None, Resolution(200, CSS)),
    ("/assets/tracking.js", None, Resolution(200, "assets/tracking.js")),
    ("/assets/", None, Resolution(404, "404.html")),
    ("/404.html", None, Resolution(200, "404.html")),
    ("/nope", None, Resolution(404, "404.html")),
    ("/caf%C3%A9/", None, Resolution(404, "404.html")),
    ("/%C3/", None, Resolution(404, "404.html")),
]
HOSTILE = ["/../etc/passwd", "/%2e%2e/x", "/%2E%2E/texas/", "/a//b/", "/a\\b", "/a%5Cb", "/./index.html",
           "/texas/./", "/texas/..", "/texas/%2e", "/%00", "/index.html%00", "//", "//index.html", "/texas//",
           "", "index.html", "texas/"]


def has_in(files):
    files = set(files)
    asked = []

    def has(path: str) -> bool:
        asked.append(path)
        return path in files

    return has, asked


@pytest.mark.parametrize("url_path, query, expected", TABLE)
def test_a_url_finds_its_file(url_path, query, expected):
    has, _ = has_in(BUILD)
    assert resolve(url_path, has, query) == expected


@pytest.mark.parametrize("url_path", HOSTILE)
def test_hostile_paths_are_404_without_looking_anything_up(url_path):
    has, asked = has_in(BUILD + ["etc/passwd", "x", "a/b/index.html", "a\\b", "texas/page/index.html"])
    assert resolve(url_path, has) == Resolution(404, "404.html")
    assert asked == ["404.html"]


def test_a_site_without_a_404_page_answers_a_bare_404():
    has, _ = has_in([p for p in BUILD if p != "404.html"])
    assert resolve("/nope/", has) == Resolution(404, None, None)
    assert resolve("/../x", has) == Resolution(404, None, None)
    assert resolve("/texas", has) == Resolution(301, location="/texas/")


def entry(path: str) -> dict[str, str]:
    content_type = TYPES[Path(path).suffix]
    return {"sha256": hashlib.sha256(body(path).encode()).hexdigest(), "content_type": content_type,
            "cache_control": layout.cache_policy(path, content_type)}


def body(path: str) -> str:
    return f"<body of {path}>"


def sharded(domain: str, release_id: str, files: list[str], per_shard: int):
    """A manifest listing `files` in shards of `per_shard`, and the shards by key."""
    ordered = sorted(files)
    shards, documents = [], {}
    for number, start in enumerate(range(0, len(ordered), per_shard)):
        chunk = ordered[start:start + per_shard]
        key = layout.shard_key(domain, release_id, number)
        shards.append({"key": key, "first": chunk[0], "last": chunk[-1]})
        documents[key] = {"files": {p: entry(p) for p in chunk}}
    manifest = layout.manifest_document(domain, release_id, "b1", "2026-01-01T00:00:00Z", {}, shards)
    return manifest, documents


def test_a_sharded_manifest_loads_only_the_shard_a_path_is_in():
    manifest, documents = sharded("example.com", "r1", BUILD, per_shard=3)
    assert len(documents) == 4
    loads = []

    def load_shard(key):
        loads.append(key)
        return documents[key]

    view = ManifestView(manifest, load_shard)
    assert view.entry("texas/index.html") == entry("texas/index.html")
    assert loads == [layout.shard_for("texas/index.html", manifest["shards"])["key"]]
    assert view.entry("texas/page/2/index.html") == entry("texas/page/2/index.html")  # same shard: no new load
    assert view.entry("texas/missing.html") is None
    assert len(loads) == 1
    assert view.entry("404.html") == entry("404.html")
    assert view.entry("0-before-everything") is None and view.entry("zzz-after-everything") is None
    assert len(loads) == 2 and len(set(loads)) == 2
    assert resolve("/texas", view.has) == Resolution(301, location="/texas/")

    plain = ManifestView(layout.manifest_document("example.com", "r2", "b2", "t", {p: entry(p) for p in BUILD}),
                         lambda key: pytest.fail(f"an unsharded manifest loaded {key}"))
    assert plain.entry(CSS) == entry(CSS) and plain.entry("nope") is None


def test_response_headers():
    page = entry("texas/index.html")
    assert response_headers(page, 200) == {"Content-Type": HTML, "Cache-Control": layout.HTML}
    assert response_headers(entry(CSS), 200)["Cache-Control"] == layout.IMMUTABLE
    assert response_headers(entry("404.html"), 404) == {"Content-Type": HTML, "Cache-Control": "no-cache"}
    assert response_headers(None, 404) == {"Content-Type": lookup.PLAIN_TEXT, "Cache-Control": "no-cache"}
    assert response_headers(None, 301, "/texas/") == {"Location": "/texas/", "Cache-Control": layout.SHORT}


HOST_CASES = [
    ("www.example.com", "example.com"), ("Example.COM:8787", "example.com"), ("www.Example.com.", "example.com"),
    ("example.com", "example.com"), ("xn--caf-dma.example", "xn--caf-dma.example"), ("wwwx.example.com", "wwwx.example.com"),
    ("", None), ("example.com:", None), ("example.com:80a", None), ("ex/ample.com", None), ("..", None),
    ("[::1]:8787", None), ("café.example", None), ("a..b", None),
]


@pytest.mark.parametrize("host, domain", HOST_CASES)
def test_the_domain_a_host_names(host, domain):
    assert lookup.domain_from_host(host) == domain


def test_the_worker_script_ships_with_the_package():
    source = lookup.worker_source()
    assert source == WORKER.read_text(encoding="utf-8")
    assert "export default" in source and "export async function resolve" in source


# --- the Worker, in node ---------------------------------------------------------------------------------------------

SITES = {  # domain -> (files, shard size or None)
    "example.com": (BUILD, 3),
    "example.org": (BUILD, None),
    "no404.example": ([p for p in BUILD if p != "404.html"], None),
}
HOSTS = {"example.com": ["www.example.com", "example.com:8787"], "example.org": ["www.example.org", "example.org:8787"],
         "no404.example": ["no404.example"]}


def bucket() -> dict[str, str]:
    objects = {}
    for domain, (files, per_shard) in SITES.items():
        release_id = f"rel-{domain}"
        if per_shard:
            manifest, documents = sharded(domain, release_id, files, per_shard)
            objects.update({key: json.dumps(document) for key, document in documents.items()})
        else:
            manifest = layout.manifest_document(domain, release_id, "b1", "t", {p: entry(p) for p in files})
        key = layout.manifest_key(domain, release_id)
        objects[key] = json.dumps(manifest)
        objects[layout.pointer_key(domain)] = json.dumps(layout.pointer_document(release_id, key, "t"))
        for path in files:
            objects[layout.object_key(domain, entry(path)["sha256"])] = body(path)
    return objects


def run_worker(tmp_path: Path, fixture: dict) -> dict:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not on PATH: the Worker's tests need Node.js 18+")
    path = tmp_path / "fixture.json"
    path.write_text(json.dumps(fixture))
    done = subprocess.run([node, str(DRIVER), str(WORKER), str(path)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def expected_response(domain: str, method: str, pathname: str, query: str | None) -> dict:
    files, per_shard = SITES[domain]
    found = resolve(pathname, set(files).__contains__, query)
    page = entry(found.path) if found.path else None
    headers = response_headers(page, found.status, found.location)
    text = body(found.path) if page else ("not found\n" if found.status == 404 else "")
    return {"status": found.status, "headers": {k.lower(): v for k, v in headers.items()},
            "body": "" if method == "HEAD" else text}


URLS = [(path, query) for path, query, _ in TABLE] + [(path, None) for path in HOSTILE if path.startswith("/")]


def test_the_worker_answers_as_lookup_does(tmp_path):
    requests, expect = [], []
    for domain, hosts in HOSTS.items():
        for host in hosts:
            for method in ("GET", "HEAD"):
                for path, query in URLS:
                    url = f"http://{host}{path}" + (f"?{query}" if query is not None else "")
                    requests.append({"method": method, "url": url, "host": host})
                    expect.append((domain, method, query))
    requests += [{"method": "POST", "url": "http://example.com/", "host": "example.com"},
                 {"method": "GET", "url": "http://unknown.example/", "host": "unknown.example"},
                 {"method": "HEAD", "url": "http://unknown.example/x", "host": "www.unknown.example:80"}]
    out = run_worker(tmp_path, {"objects": bucket(), "requests": requests})
    responses = out["responses"]
    assert len(responses) == len(requests)
    for request, (domain, method, query), got in zip(requests, expect, responses):
        want = expected_response(domain, method, got["pathname"], query)
        assert (got["status"], got["body"]) == (want["status"], want["body"]), request
        assert want["headers"].items() <= got["headers"].items(), request
        names = {"content-type", "cache-control"} if want["status"] != 301 else {"location", "cache-control"}
        assert names <= set(got["headers"]), request
        # the URL parser (Request's, and Cloudflare's edge) already removes dot segments, `%2e%2e` included, and reads
        # `\\` as `/`: `/%2E%2E/texas/` arrives as `/texas/`, answered like it; what reaches `resolve` never climbs
        assert not lookup.refused(unquote(got["pathname"])) or got["status"] == 404, request
        assert ".." not in got["pathname"].split("/"), request
    post, unknown, unknown_head = responses[-3:]
    assert post["status"] == 405 and post["headers"]["allow"] == "GET, HEAD"
    assert unknown["status"] == 404 and unknown["body"] == "site not released\n"
    assert unknown["headers"]["cache-control"] == "no-cache"
    assert unknown_head["status"] == 404 and unknown_head["body"] == ""

    # each immutable document and each pointer is read once in the run (well within the pointer's 30 s)
    gets = [key for verb, key in out["reads"] if verb == "get" and "/objects/" not in key]
    assert len(gets) == len(set(gets)), gets
    assert layout.pointer_key("unknown.example") in gets
    shard_gets = [key for key in gets if key.startswith("sites/example.com/releases/rel-example.com/")]
    assert len(shard_gets) == 4  # every shard of example.com's release is needed by some URL in the table


def test_the_worker_loads_only_the_shard_it_needs(tmp_path):
    out = run_worker(tmp_path, {"objects": bucket(), "requests": [
        {"method": "GET", "url": "http://127.0.0.1:8787/texas/", "host": "example.com"},
        {"method": "GET", "url": "http://127.0.0.1:8787/texas/page/2/", "host": "www.example.com"},
    ]})
    assert [r["body"] for r in out["responses"]] == [body("texas/index.html"), body("texas/page/2/index.html")]
    manifest, _ = sharded("example.com", "rel-example.com", BUILD, per_shard=3)
    shard = layout.shard_for("texas/index.html", manifest["shards"])["key"]
    assert shard == layout.shard_for("texas/page/2/index.html", manifest["shards"])["key"]
    assert [key for verb, key in out["reads"] if "/objects/" not in key] == [
        layout.pointer_key("example.com"), layout.manifest_key("example.com", "rel-example.com"), shard]


def test_the_worker_rereads_the_pointer_after_30_seconds(tmp_path):
    objects = bucket()
    del objects[layout.object_key("example.org", entry("robots.txt")["sha256"])]
    at = [0, 29_999, 30_000, 30_001]
    out = run_worker(tmp_path, {"objects": objects, "requests": [
        {"method": "GET", "url": "http://example.org/", "host": "example.org", "at": t} for t in at] + [
        {"method": "GET", "url": "http://example.org/robots.txt", "host": "example.org", "at": 30_002}]})
    assert [r["status"] for r in out["responses"]] == [200, 200, 200, 200, 500]  # a release missing an object: 500
    pointer_reads = [key for _, key in out["reads"] if key == layout.pointer_key("example.org")]
    manifest_reads = [key for _, key in out["reads"] if key == layout.manifest_key("example.org", "rel-example.org")]
    assert (len(pointer_reads), len(manifest_reads)) == (2, 1)


DECODES = ["/plain", "/%74exas/", "/%2e%2E/", "/%zz/%4", "/%", "/caf%C3%A9", "/%C3", "/%C3%28", "/%ED%A0%80",
           "/%F0%9F%98%80", "/%F0%9F%98", "/%E2%82", "/%EF%BB%BFx", "/%C3é", "/%FF%FE", "/é%A9", "/%00", "/%5c"]
SHARD_PATHS = ["a", "b/index.html", "\uffff", "\U0001F600/index.html", "\ue000", "z", "~", "é/index.html"]


def test_the_workers_pure_rules_are_lookups(tmp_path):
    raw = [(path, query, BUILD) for path, query, _ in TABLE] + [(path, None, BUILD) for path in HOSTILE]
    raw += [("/nope/", None, BUILD[:4]), ("/texas", "a=1", BUILD[:4]), ("/../x", None, BUILD[:4])]
    ordered = sorted(SHARD_PATHS)
    shards = [{"key": f"k{n}", "first": ordered[n], "last": ordered[n]} for n in range(len(ordered))]
    pairs = [(a, b) for a in SHARD_PATHS for b in SHARD_PATHS]
    out = run_worker(tmp_path, {
        "objects": {}, "resolves": [{"path": p, "query": q, "files": f} for p, q, f in raw],
        "decodes": DECODES, "hosts": [host for host, _ in HOST_CASES],
        "compares": pairs,
        "shard_lookups": [{"path": p, "shards": shards} for p in SHARD_PATHS + ["0", "\U0001F601", "zz"]],
    })
    for (path, query, files), got in zip(raw, out["resolves"], strict=True):
        has, asked = has_in(files)
        assert Resolution(got["status"], got["path"], got["location"]) == resolve(path, has, query), path
        assert got["asked"] == asked, path
    assert out["decodes"] == [unquote(text) for text in DECODES]
    assert out["hosts"] == [domain for _, domain in HOST_CASES]
    assert out["compares"] == [(a > b) - (a < b) for a, b in pairs]
    assert out["shard_lookups"] == [layout.shard_for(p, shards) for p in SHARD_PATHS + ["0", "\U0001F601", "zz"]]
