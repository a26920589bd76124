"""Independent checks of a built static site: what a search engine, a feed reader and a link checker would complain about.

A build is a directory `root` for one site at `https://<domain>` (see issue 11): `index.html`, `<slug>/index.html`,
`<hub>/page/<n>/index.html`, `404.html`, `robots.txt`, `sitemap.xml` (a sitemap index over `sitemaps/sitemap-<n>.xml`),
`feed.xml` (Atom) and `assets/`. Pure Python, no dagster and no database, so Dagster asset checks, tests and the CLI can
all call it. Nothing here touches the network: the sitemaps.org XSDs and the schema.org JSON-LD context are vendored in
`vendor/`, and the JSON-LD document loader refuses every other URL.

`scan(root, domain)` reads and parses every HTML page once (lxml) and keeps what the checks need; each check takes that
`BuildIndex` (or a root directory, which it scans) and returns `Problems`: a list of at most `limit` short messages
naming the file and what is wrong, with `.total` counting all of them. `verify(root, domain)` runs them all.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

from lxml import etree

from spark_assets.content.markup import has_visible_escaped_markup

VENDOR = Path(__file__).parent / "vendor"
SITEMAP_XSD = VENDOR / "sitemap.xsd"
SITEINDEX_XSD = VENDOR / "siteindex.xsd"
SCHEMAORG_CONTEXT = VENDOR / "schemaorg-context-12.0.jsonld"

SITEMAP_NS = "http://www.sitemaps.org/schemas/sitemap/0.9"
MAX_SITEMAP_URLS = 50_000  # the protocol's limits for one sitemap file (and one index)
MAX_SITEMAP_BYTES = 50 * 1024 * 1024
DEFAULT_LIMIT = 50  # messages kept per check; `Problems.total` counts them all

# the URLs under which schema.org's context is known; all served from the vendored file
SCHEMAORG_CONTEXT_URLS = frozenset(
    f"{scheme}://schema.org{path}"
    for scheme in ("http", "https")
    for path in ("", "/", "/docs/jsonldcontext.jsonld", "/docs/jsonldcontext.json")
)
ARTICLE_TYPES = frozenset({"Article", "NewsArticle", "BlogPosting", "Report", "TechArticle", "ScholarlyArticle"})

_PAGINATED_RE = re.compile(r"(?:^|/)page/([0-9]+)/index\.html$")
_LEFTOVER_RE = re.compile(r"\{\{|\{%|%\}|\}\}")
_SKIP_SCHEMES = frozenset({"mailto", "tel", "javascript", "data", "sms"})


class Problems(list):
    """At most `limit` messages (examples), and `total`: how many problems there were in all."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        super().__init__()
        self.limit = limit
        self.total = 0

    def add(self, message: str) -> None:
        self.total += 1
        if len(self) < self.limit:
            self.append(message)

    def summary(self) -> str:
        """One line: 'ok', or the count and the first examples."""
        if not self.total:
            return "ok"
        more = f" (and {self.total - len(self)} more)" if self.total > len(self) else ""
        return f"{self.total} problem(s): " + "; ".join(self[:5]) + more


@dataclass(slots=True)
class Page:
    """What the checks need from one HTML file (the parsed tree itself is not kept)."""

    path: str  # relative to the build root, '/'-separated: "texas/index.html"
    url: str  # its URL path: "/texas/", "/", "/404.html"
    kind: str  # "home", "page", "paginated" (n > 1 of a list) or "404"
    size: int
    title: str | None = None  # None: no <title>
    h1s: list[str] = field(default_factory=list)
    canonical: str | None = None
    refs: tuple[str, ...] = ()  # raw href/src values of a, link, script, img (external ones included)
    jsonld: tuple[str, ...] = ()  # raw text of each application/ld+json block
    breadcrumbs: tuple[str, ...] = ()  # BreadcrumbList `item` URLs found in the JSON-LD blocks that parse
    trail: tuple[tuple[str, str | None], ...] = ()  # the breadcrumb trail it shows: (name, href; None = this page)
    times: tuple[str, ...] = ()  # the `datetime` of every <time> it shows
    leftovers: tuple[str, ...] = ()  # template markup ("{{", "{%", ...) found in visible text
    escaped: bool = False  # the body shows escaped markup ("&lt;strong&gt;") to a reader
    has_text: bool = False  # the body has visible text
    parse_error: str | None = None


@dataclass(slots=True)
class BuildIndex:
    """Every file of a build (relative paths) and every HTML page parsed once."""

    root: Path
    domain: str
    files: frozenset[str]
    pages: dict[str, Page]  # by relative path
    by_url: dict[str, Page]  # by URL path

    @property
    def origin(self) -> str:
        return f"https://{self.domain}"


# --- scanning ------------------------------------------------------------------------------------------------------


def scan(root: str | os.PathLike[str], domain: str) -> BuildIndex:
    """Walk `root` once and parse every `.html` file once: the shared input of all the checks."""
    root = Path(root)
    files: set[str] = set()
    for dirpath, _dirs, names in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        prefix = "" if rel == "." else rel.replace(os.sep, "/") + "/"
        files.update(prefix + name for name in names)
    pages: dict[str, Page] = {}
    for rel in sorted(files):
        if rel.endswith(".html"):
            pages[rel] = _read_page(root, rel)
    return BuildIndex(root, domain, frozenset(files), pages, {p.url: p for p in pages.values()})


def page_url(rel: str) -> str:
    """The URL path a file is served at: "index.html" -> "/", "texas/index.html" -> "/texas/"."""
    if rel == "index.html":
        return "/"
    if rel.endswith("/index.html"):
        return "/" + rel[: -len("index.html")]
    return "/" + rel


def _kind(rel: str) -> str:
    if rel == "index.html":
        return "home"
    if rel == "404.html":
        return "404"
    m = _PAGINATED_RE.search(rel)
    return "paginated" if m and int(m.group(1)) > 1 else "page"


_REF_ATTR = {"a": "href", "link": "href", "script": "src", "img": "src"}
_IMAGE_META = frozenset({"og:image", "og:image:url", "og:image:secure_url", "twitter:image"})
_HTML_PARSER = etree.HTMLParser(encoding="utf-8", no_network=True, remove_comments=True)  # builds are UTF-8


def _read_page(root: Path, rel: str) -> Page:
    data = (root / rel).read_bytes()
    page = Page(rel, page_url(rel), _kind(rel), len(data))
    if not data.strip():
        return page
    try:
        # the plain etree of lxml's HTML parser: lxml.html's element classes cost a third of the scan, unused here
        doc = etree.fromstring(data, _HTML_PARSER)
    except Exception as exc:
        page.parse_error = _one_line(exc) or type(exc).__name__
        return page
    if doc is None:
        page.parse_error = "no HTML element"
        return page
    refs: list[str] = []
    blocks: list[str] = []
    h1s: list[str] = []
    times: list[str] = []
    for el in doc.iter("a", "link", "script", "img", "h1", "title", "time", "meta", "source"):  # one walk
        tag = el.tag
        if tag == "meta":  # the image a share shows: og:image, twitter:image
            if (el.get("property") or el.get("name") or "").lower() in _IMAGE_META and el.get("content"):
                refs.append(el.get("content").strip())
            continue
        if tag in ("img", "source") and el.get("srcset"):  # every candidate of a responsive image
            refs.extend(candidate.split()[0] for candidate in el.get("srcset").split(",") if candidate.split())
            if tag == "source":
                continue
        if tag == "source":
            continue
        if tag == "time":
            if el.get("datetime"):
                times.append(el.get("datetime").strip())
            continue
        if tag == "h1":
            h1s.append(_squash("".join(el.itertext())))
            continue
        if tag == "title":
            if page.title is None:
                page.title = _squash("".join(el.itertext()))
            continue
        if tag == "script" and (el.get("type") or "").strip().lower() == "application/ld+json":
            blocks.append(el.text or "")
        value = el.get(_REF_ATTR[tag])
        if value is None:
            continue
        value = value.strip()
        if tag == "link" and page.canonical is None and "canonical" in (el.get("rel") or "").lower().split():
            page.canonical = value
        refs.append(value)
    page.h1s = h1s
    page.times = tuple(times)
    page.trail = tuple(
        (_squash("".join(li.itertext())), (li.find("a").get("href") if li.find("a") is not None else None))
        for li in doc.xpath('//nav[contains(concat(" ", normalize-space(@class), " "), " crumbs ")]//li')
    )
    page.refs = tuple(refs)
    page.jsonld = tuple(blocks)
    crumbs: list[str] = []
    for block in blocks:
        if "BreadcrumbList" not in block:
            continue
        try:
            crumbs.extend(_breadcrumb_items(json.loads(block)))
        except ValueError:
            pass  # reported by jsonld_problems
    page.breadcrumbs = tuple(crumbs)
    body = doc.find("body")
    if body is not None:
        texts = body.xpath(".//text()[not(ancestor::script) and not(ancestor::style) and not(ancestor::template)]")
        text = "".join(texts)
        page.has_text = bool(text.strip())
        visible = (page.title or "") + "\n" + text
        page.leftovers = tuple(sorted(set(_LEFTOVER_RE.findall(visible))))
        page.escaped = has_visible_escaped_markup(_body_source(data))
    return page


def _squash(text: str) -> str:
    return " ".join(text.split())


def _body_source(data: bytes) -> str:
    """The page's `<body>` as written in the file (the whole file if it has no body tag)."""
    source = data.decode("utf-8", errors="replace")
    lower = source.lower()
    start = lower.find("<body")
    end = lower.rfind("</body>")
    if start < 0:
        return source
    return source[start : end if end > start else len(source)]


def _breadcrumb_items(doc: Any) -> Iterator[str]:
    """The `item` URLs of the BreadcrumbLists at the top of a JSON-LD document, in its `@graph`, or a node's
    `breadcrumb` (where schema.org puts them), without walking every nested value."""
    top = doc if isinstance(doc, list) else [doc]
    nodes = [n for n in top if isinstance(n, dict)]
    for n in list(nodes):
        graph = n.get("@graph")
        nodes.extend(g for g in (graph if isinstance(graph, list) else [graph]) if isinstance(g, dict))
    nodes.extend([n["breadcrumb"] for n in nodes if isinstance(n.get("breadcrumb"), dict)])
    for node in nodes:
        if "BreadcrumbList" not in _types(node):
            continue
        elements = node.get("itemListElement") or []
        for element in elements if isinstance(elements, list) else [elements]:
            if not isinstance(element, dict):
                continue
            item = element.get("item")
            if isinstance(item, dict):
                item = item.get("@id") or item.get("url")
            if isinstance(item, str):
                yield item


def _nodes(doc: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object in a JSON-LD document, depth first."""
    stack = [doc]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            yield value
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)


def _types(node: dict[str, Any]) -> list[str]:
    t = node.get("@type", [])
    return [t] if isinstance(t, str) else [x for x in t if isinstance(x, str)] if isinstance(t, list) else []


def _index(build: BuildIndex | str | os.PathLike[str], domain: str | None) -> BuildIndex:
    if isinstance(build, BuildIndex):
        if domain is not None and domain != build.domain:
            raise ValueError(f"the index was scanned for {build.domain}, not {domain}")
        return build
    if domain is None:
        raise ValueError("give the site's domain with a build directory")
    return scan(build, domain)


# --- resolving URLs to files ---------------------------------------------------------------------------------------


def _internal_path(index: BuildIndex, ref: str, base_url: str) -> str | None:
    """The URL path of `ref` if it points into this site (None for external, fragment-only, mailto: ...)."""
    try:
        parts = urlsplit(ref)
    except ValueError:
        return "\x00invalid"
    scheme = parts.scheme.lower()
    if scheme in _SKIP_SCHEMES:
        return None
    if scheme or parts.netloc:
        if scheme not in ("", "http", "https") or (parts.hostname or "").lower() != index.domain.lower():
            return None  # another host: not checked
        return parts.path or "/"
    if not parts.path:
        return None  # "#top", "?q=1": this page
    return urlsplit(urljoin(base_url, parts.path)).path


def _resolve(index: BuildIndex, url_path: str) -> str | None:
    """The build file a URL path is served from, or None: "/x/" -> "x/index.html", "/assets/a.css" -> itself."""
    if url_path.startswith("\x00"):
        return None
    path = unquote(url_path)
    if not path.startswith("/"):
        return None
    norm = posixpath.normpath(path)
    if norm.startswith("/..") or "/../" in norm + "/":
        return None
    rel = norm.lstrip("/")
    if path.endswith("/"):
        rel = (rel + "/index.html") if rel and rel != "." else "index.html"
    return rel if rel in index.files else None


def _hint(index: BuildIndex, url_path: str) -> str:
    if not url_path.endswith("/") and (url_path.lstrip("/").rstrip("/") + "/index.html") in index.files:
        return f" (did you mean {url_path}/ ?)"
    return ""


# --- 1. references ---------------------------------------------------------------------------------------------------


def broken_references(build: BuildIndex | str | os.PathLike[str], domain: str | None = None,
                      limit: int = DEFAULT_LIMIT) -> Problems:
    """Every internal href/src (a, link, script, img), srcset candidate (img, source), share image (og:image,
    twitter:image) and every BreadcrumbList `item` resolves to a build file."""
    index = _index(build, domain)
    problems = Problems(limit)
    origin = index.origin
    verdicts: dict[str, str | None] = {}  # root-relative or absolute ref -> None (fine) or the problem's tail
    for page in index.pages.values():
        base = origin + page.url
        seen: set[str] = set()
        for ref in page.refs:
            if ref in seen:
                continue
            seen.add(ref)
            cacheable = ref.startswith("/") or "://" in ref  # resolves the same on every page
            if cacheable and ref in verdicts:
                verdict = verdicts[ref]
            else:
                url_path = _internal_path(index, ref, base)
                verdict = None
                if url_path is not None and _resolve(index, url_path) is None:
                    verdict = f"broken link {ref!r}{_hint(index, url_path)}"
                if cacheable:
                    verdicts[ref] = verdict
            if verdict is not None:
                problems.add(f"{page.path}: {verdict}")
        for item in page.breadcrumbs:
            parts = urlsplit(item)
            if parts.scheme != "https" or (parts.hostname or "").lower() != index.domain.lower():
                problems.add(f"{page.path}: breadcrumb item {item!r} is not an absolute URL on {origin}")
            elif _resolve(index, parts.path or "/") is None:
                problems.add(f"{page.path}: breadcrumb item {item!r} has no page in the build")
    return problems


# --- 2. sitemaps -----------------------------------------------------------------------------------------------------


@lru_cache(maxsize=None)
def _schema(which: str):
    import xmlschema

    return xmlschema.XMLSchema(str(SITEINDEX_XSD if which == "index" else SITEMAP_XSD))


def _xsd_errors(which: str, path: Path, rel: str, problems: Problems) -> bool | None:
    """Validate `path` against the vendored XSD (no location hints, local files only): True when valid, False when
    not, None when it is not even well-formed XML."""
    import xmlschema

    try:
        resource = xmlschema.XMLResource(str(path), allow="local", defuse="always")
        errors = list(_schema(which).iter_errors(resource))
    except Exception as exc:  # not well-formed, or refused by the resource's limits
        problems.add(f"{rel}: not a well-formed XML document ({_one_line(exc)})")
        return None
    for error in errors[:5]:
        problems.add(f"{rel}: does not validate against {'siteindex' if which == 'index' else 'sitemap'}.xsd: "
                     f"{_one_line(error.reason or error.message)} at {error.path}")
    if len(errors) > 5:
        for _ in errors[5:]:
            problems.add(f"{rel}: another XSD error")
    return not errors


def _one_line(value: Any) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= 200 else text[:197] + "..."


def _locs(path: Path, tag: str) -> list[tuple[str, str | None]]:
    """(loc, lastmod) of each `<tag>` (url or sitemap) of a sitemap file, streamed."""
    out = []
    ns = "{" + SITEMAP_NS + "}"
    for _event, el in etree.iterparse(str(path), events=("end",), tag=ns + tag, resolve_entities=False,
                                      no_network=True, huge_tree=True):
        loc = el.findtext(ns + "loc")
        out.append(((loc or "").strip(), el.findtext(ns + "lastmod")))
        el.clear()
    return out


def sitemap_problems(build: BuildIndex | str | os.PathLike[str], domain: str | None = None,
                     limit: int = DEFAULT_LIMIT) -> Problems:
    """The sitemap index and its shards: valid per the sitemaps.org XSDs, within the protocol's limits, listing only
    absolute URLs of pages that exist, each once, whose canonical is themselves; and every self-canonical page listed."""
    index = _index(build, domain)
    problems = Problems(limit)
    origin = index.origin
    prefix = origin + "/"
    if "sitemap.xml" not in index.files:
        problems.add("sitemap.xml: missing")
        return problems
    index_path = index.root / "sitemap.xml"
    if _xsd_errors("index", index_path, "sitemap.xml", problems) is None:
        return problems
    try:
        shards = _locs(index_path, "sitemap")
    except Exception as exc:
        problems.add(f"sitemap.xml: cannot be read ({_one_line(exc)})")
        return problems
    if not shards:
        problems.add("sitemap.xml: lists no sitemap")
    if len(shards) > MAX_SITEMAP_URLS:
        problems.add(f"sitemap.xml: lists {len(shards)} sitemaps, more than {MAX_SITEMAP_URLS}")
    listed: dict[str, str] = {}  # page URL -> the shard that lists it
    seen_shards: set[str] = set()
    for loc, _lastmod in shards:
        if not loc.startswith(prefix):
            problems.add(f"sitemap.xml: sitemap loc {loc!r} is not an absolute URL on {origin}")
            continue
        if loc in seen_shards:
            problems.add(f"sitemap.xml: sitemap {loc} listed twice")
            continue
        seen_shards.add(loc)
        shard_rel = _resolve(index, urlsplit(loc).path)
        if shard_rel is None:
            problems.add(f"sitemap.xml: sitemap {loc} is missing from the build")
            continue
        shard_path = index.root / shard_rel
        size = shard_path.stat().st_size
        if size > MAX_SITEMAP_BYTES:
            problems.add(f"{shard_rel}: {size} bytes, more than the protocol's {MAX_SITEMAP_BYTES}")
        if _xsd_errors("urlset", shard_path, shard_rel, problems) is None:
            continue
        try:
            urls = _locs(shard_path, "url")
        except Exception as exc:
            problems.add(f"{shard_rel}: cannot be read ({_one_line(exc)})")
            continue
        if len(urls) > MAX_SITEMAP_URLS:
            problems.add(f"{shard_rel}: {len(urls)} URLs, more than the protocol's {MAX_SITEMAP_URLS}")
        for url, lastmod in urls:
            if not url.startswith(prefix):
                problems.add(f"{shard_rel}: loc {url!r} is not an absolute URL on {origin}")
                continue
            if url in listed:
                problems.add(f"{shard_rel}: {url} listed twice (also in {listed[url]})")
                continue
            listed[url] = shard_rel
            if lastmod is None or not lastmod.strip():
                problems.add(f"{shard_rel}: {url} has no lastmod")
            parts = urlsplit(url)
            if parts.query or parts.fragment:
                problems.add(f"{shard_rel}: loc {url!r} has a query or fragment")
            rel = _resolve(index, parts.path or "/")
            page = index.pages.get(rel) if rel else None
            if page is None:
                problems.add(f"{shard_rel}: {url} has no page in the build")
            elif page.kind == "404":
                problems.add(f"{shard_rel}: lists the 404 page")
            elif page.canonical != url:
                problems.add(f"{shard_rel}: {url} is listed but its canonical is {page.canonical!r}")
    for page in index.pages.values():
        if page.kind in ("404", "paginated"):
            continue
        url = origin + page.url
        if page.canonical == url and url not in listed:
            problems.add(f"{page.path}: {url} is its own canonical but no sitemap lists it")
    return problems


# --- 3. feed ---------------------------------------------------------------------------------------------------------


def feed_problems(build: BuildIndex | str | os.PathLike[str], domain: str | None = None,
                  limit: int = DEFAULT_LIMIT) -> Problems:
    """feed.xml parses with feedparser without the bozo flag, is Atom, and its entries link to pages of the build."""
    import feedparser

    index = _index(build, domain)
    problems = Problems(limit)
    if "feed.xml" not in index.files:
        problems.add("feed.xml: missing")
        return problems
    # bytes, not a path or URL: feedparser then reads nothing else (no fetching, no relative-URI base from disk)
    parsed = feedparser.parse((index.root / "feed.xml").read_bytes(), resolve_relative_uris=False,
                              sanitize_html=False)
    if parsed.get("bozo"):
        problems.add(f"feed.xml: not well-formed ({_one_line(parsed.get('bozo_exception'))})")
    if not str(parsed.get("version", "")).startswith("atom"):
        problems.add(f"feed.xml: not an Atom feed (feedparser says {parsed.get('version')!r})")
    entries = parsed.get("entries") or []
    if not entries:
        problems.add("feed.xml: has no entries")
    prefix = index.origin + "/"
    for n, entry in enumerate(entries, start=1):
        link = entry.get("link")
        if not link:
            problems.add(f"feed.xml: entry {n} has no link")
            continue
        if not link.startswith(prefix):
            problems.add(f"feed.xml: entry {n} link {link!r} is not an absolute URL on {index.origin}")
            continue
        if _resolve(index, urlsplit(link).path or "/") is None:
            problems.add(f"feed.xml: entry {n} link {link} has no page in the build")
    return problems


# --- 4. robots.txt ---------------------------------------------------------------------------------------------------


def robots_problems(build: BuildIndex | str | os.PathLike[str], domain: str | None = None,
                    limit: int = DEFAULT_LIMIT) -> Problems:
    """robots.txt (parsed by protego) names the sitemap index and lets `*` and Googlebot fetch / and every page."""
    from protego import Protego

    index = _index(build, domain)
    problems = Problems(limit)
    if "robots.txt" not in index.files:
        problems.add("robots.txt: missing")
        return problems
    robots = Protego.parse((index.root / "robots.txt").read_text(encoding="utf-8", errors="replace"))
    sitemap_url = f"{index.origin}/sitemap.xml"
    if sitemap_url not in list(robots.sitemaps):
        problems.add(f"robots.txt: does not name Sitemap: {sitemap_url}")
    urls = [f"{index.origin}/", sitemap_url]
    urls += [index.origin + p.url for p in index.pages.values() if p.kind in ("page", "paginated")]
    for agent in ("*", "Googlebot"):
        for url in urls:
            if not robots.can_fetch(url, agent):
                problems.add(f"robots.txt: disallows {url} for {agent}")
    return problems


# --- 5. pages --------------------------------------------------------------------------------------------------------


def page_problems(build: BuildIndex | str | os.PathLike[str], domain: str | None = None,
                  limit: int = DEFAULT_LIMIT) -> Problems:
    """No page is empty; each has a title and exactly one non-empty h1; no template markup or escaped HTML shows."""
    if domain is None and not isinstance(build, BuildIndex):
        domain = "localhost"  # pages are checked on their own: the domain only classifies links, unused here
    index = _index(build, domain)
    problems = Problems(limit)
    for page in index.pages.values():
        where = page.path
        if page.parse_error:
            problems.add(f"{where}: cannot be parsed as HTML ({page.parse_error})")
            continue
        if page.size == 0 or not page.has_text:
            problems.add(f"{where}: empty page (no visible text)")
            continue
        if not page.title:
            problems.add(f"{where}: no <title>" if page.title is None else f"{where}: empty <title>")
        if len(page.h1s) != 1:
            problems.add(f"{where}: {len(page.h1s)} <h1> elements, want exactly one")
        elif not page.h1s[0]:
            problems.add(f"{where}: empty <h1>")
        if page.leftovers:
            problems.add(f"{where}: leftover template markup in visible text: {' '.join(page.leftovers)}")
        if page.escaped:
            problems.add(f"{where}: escaped HTML shown as text (e.g. '&lt;strong&gt;')")
    return problems


# --- 6. JSON-LD ------------------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _schemaorg_context() -> dict[str, Any]:
    return json.loads(SCHEMAORG_CONTEXT.read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def schemaorg_terms() -> frozenset[str]:
    """The terms the vendored schema.org context defines (types and properties; keywords excluded)."""
    return frozenset(k for k in _schemaorg_context()["@context"] if not k.startswith("@"))


def document_loader(url: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """A pyld document loader that serves the vendored schema.org context and refuses every other URL (no network)."""
    from pyld import jsonld

    if url in SCHEMAORG_CONTEXT_URLS:
        return {"contextUrl": None, "documentUrl": url, "document": _schemaorg_context(),
                "contentType": "application/ld+json"}
    raise jsonld.JsonLdError(f"refused to load {url!r}: only the vendored schema.org context is served (no network)",
                             "jsonld.LoadDocumentError", {"url": url}, code="loading document failed")


@lru_cache(maxsize=1)
def _context_prefixes() -> dict[str, Any]:
    """The vendored context's keywords, aliases and prefixes (`@vocab`, `schema`, `rdf`, ...): every entry that is not
    a term definition of its own."""
    return {k: val for k, val in _schemaorg_context()["@context"].items() if isinstance(val, str)}


def _strings(doc: Any) -> set[str]:
    """Every key and string value in a JSON document."""
    out: set[str] = set()
    stack = [doc]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            out.update(value)
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, str):
            out.add(value)
    return out


def with_vendored_context(doc: Any) -> Any:
    """`doc` with each schema.org context URL replaced by the vendored context restricted to the terms `doc` uses.

    Expanding the result gives exactly what expanding `doc` with the whole context (served by `document_loader`)
    gives: a term the document never names cannot change its expansion. It is much faster: pyld processes the
    whole 2,700-term context again on every call (about 20 ms), a document names a few dozen terms.
    """
    context = _schemaorg_context()["@context"]
    reduced = dict(_context_prefixes())
    reduced.update((term, context[term]) for term in _strings(doc) if term in context and term not in reduced)

    def rewrite(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: (reduced if k == "@context" and _is_schemaorg(v) else rewrite(v)) for k, v in value.items()}
        if isinstance(value, list):
            return [rewrite(v) for v in value]
        return value

    return rewrite(doc)


def _is_schemaorg(context: Any) -> bool:
    return isinstance(context, str) and context in SCHEMAORG_CONTEXT_URLS


def _unknown_terms(doc: Any) -> list[str]:
    """Keys and @type values of `doc` that the schema.org context does not define (they would expand through @vocab
    to an IRI schema.org does not have: a typo such as "headlin")."""
    terms = schemaorg_terms()
    bad: list[str] = []

    def known(term: str) -> bool:
        if term in terms:
            return True
        for base in ("http://schema.org/", "https://schema.org/", "schema:"):
            if term.startswith(base):
                return term[len(base):] in terms
        return False

    for node in _nodes(doc):
        if "@value" in node:
            continue
        for key in node:
            if not key.startswith("@") and not known(key):
                bad.append(key)
        for t in _types(node):
            if not known(t):
                bad.append(t)
    return bad


def _jsonld_reason(exc: Exception) -> str:
    """pyld's error in one line: its code and the URL it could not load, rather than its generic CORS advice."""
    code = getattr(exc, "code", None) or getattr(exc, "type", None)
    if not code:
        return _one_line(exc)
    details = getattr(exc, "details", None)
    url = details.get("url") if isinstance(details, dict) else None
    if url and "load" in str(code):
        return f"{code}: {url} refused, only the vendored schema.org context is served"
    return _one_line(f"{code}: {exc.args[0] if exc.args else ''}")


def _is_iso_date(value: Any) -> bool:
    if not isinstance(value, str) or not value:
        return False
    try:
        if len(value) == 10:
            date.fromisoformat(value)
        else:
            datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _block_problems(where: str, block: str) -> list[str]:
    """The problems of one application/ld+json block (`where` names the page and the block)."""
    from pyld import jsonld

    try:
        doc = json.loads(block)
    except ValueError as exc:
        return [f"{where} does not parse as JSON ({_one_line(exc)})"]
    if not isinstance(doc, (dict, list)):
        return [f"{where} is not a JSON object"]
    out: list[str] = []
    if "<" in block:  # harmless only until it spells "</script>" or "<!--": the build writes every "<" as \u003c
        out.append(f"{where} has a raw '<' (write it as \\u003c)")
    try:
        expanded = jsonld.expand(with_vendored_context(doc), {"documentLoader": document_loader})
    except Exception as exc:  # JsonLdError, or anything pyld raises on a malformed document
        return [f"{where} does not expand as JSON-LD ({_jsonld_reason(exc)})"]
    if not expanded:
        out.append(f"{where} expands to nothing (no @context, or no typed node)")
    contexts = [node.get("@context") for node in _nodes(doc) if "@context" in node]
    if contexts and all(_is_schemaorg(c) for c in contexts):
        unknown = _unknown_terms(doc)
        if unknown:
            out.append(f"{where} uses terms schema.org does not define: {', '.join(sorted(set(unknown)))}")
    for node in _nodes(doc):
        types = _types(node)
        if ARTICLE_TYPES.isdisjoint(types):
            continue
        for prop in ("datePublished", "dateModified"):
            if prop not in node:
                out.append(f"{where}: {types[0]} has no {prop}")
            elif not _is_iso_date(node[prop]):
                out.append(f"{where}: {types[0]} {prop} {node[prop]!r} is not an ISO date")
    return out


#: what a page's JSON-LD could claim that no data of ours holds (self-serving review markup is also against Google's
#: structured-data policies)
CLAIMS_WITHOUT_DATA = frozenset({"aggregateRating", "review", "reviews"})
#: nodes that describe the page itself: their url / mainEntityOfPage is the page's canonical
PAGE_TYPES = ARTICLE_TYPES | {"WebPage", "CollectionPage", "AboutPage", "ContactPage", "FAQPage"}


def _url_of(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("@id") or value.get("url")
    return value if isinstance(value, str) else None


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def fact_problems(where: str, doc: Any, page: Page, origin: str) -> list[str]:
    """What a page's JSON-LD states that the page itself does not: a JSON-LD block names only facts of our data, and
    the page shows those facts (it is rendered from the same rows). Checked where the page shows the fact:
    - a node about the page (Article, WebPage, ...) has the page's canonical as its `url` / `mainEntityOfPage`;
    - an article's `datePublished` / `dateModified` are dates the page shows (`<time datetime>`);
    - an article's `headline` is the page's title, H1 or last breadcrumb (or the start of one, cut with an ellipsis);
    - a BreadcrumbList is the breadcrumb trail the page shows, name for name and link for link;
    - an `about` / `areaServed` place is one of the trail's places;
    - no ratings or reviews (CLAIMS_WITHOUT_DATA): nothing we hold backs them."""
    out: list[str] = []
    trail_names = {name for name, _ in page.trail}
    headings = [h for h in [page.title, *page.h1s, *(name for name, _ in page.trail[-1:])] if h]
    for node in _nodes(doc):
        types = set(_types(node))
        name = next(iter(sorted(types)), "node")
        for key in sorted(CLAIMS_WITHOUT_DATA.intersection(node)):
            out.append(f"{where}: {name} claims {key}, which no data of ours holds")
        if types & PAGE_TYPES and page.canonical:
            for prop in ("url", "mainEntityOfPage"):
                value = _url_of(node.get(prop))
                if value is not None and value.split("#")[0] != page.canonical:
                    out.append(f"{where}: {name} {prop} {value} is not the page's canonical {page.canonical}")
        if types & ARTICLE_TYPES:
            for prop in ("datePublished", "dateModified"):
                value = node.get(prop)
                if page.times and isinstance(value, str) and value not in page.times:
                    out.append(f"{where}: {name} {prop} {value} is not a date the page shows "
                               f"({', '.join(page.times)})")
            headline = node.get("headline")
            if isinstance(headline, str) and headings:
                stem = headline[:-1].rstrip() if headline.endswith("…") else headline
                if not any(h == headline or (stem != headline and h.startswith(stem)) for h in headings):
                    out.append(f"{where}: {name} headline {headline!r} is not the page's title, H1 or breadcrumb")
        if "BreadcrumbList" in types and page.trail:
            stated = [(element.get("name"), _url_of(element.get("item")))
                      for element in _as_list(node.get("itemListElement") or []) if isinstance(element, dict)]
            shown = [(n, urljoin(origin + "/", href) if href else page.canonical) for n, href in page.trail]
            if stated != shown:
                out.append(f"{where}: its BreadcrumbList ({' > '.join(str(n) for n, _ in stated)}) is not the trail "
                           f"the page shows ({' > '.join(n for n, _ in page.trail)})")
        if page.trail:
            for prop in ("about", "areaServed"):
                for place in _as_list(node.get(prop)):
                    place_name = place.get("name") if isinstance(place, dict) else place
                    if isinstance(place_name, str) and place_name not in trail_names:
                        out.append(f"{where}: {name} {prop} {place_name!r} is not a place of the page's breadcrumbs")
    return out


def _blocks_problems(items: list[tuple[str, str]]) -> list[str]:
    return [p for where, block in items for p in _block_problems(where, block)]


def _page_fact_problems(index: BuildIndex) -> Iterator[str]:
    for page in index.pages.values():
        for n, block in enumerate(page.jsonld, start=1):
            try:
                doc = json.loads(block)
            except ValueError:
                continue  # reported as not parsing
            yield from fact_problems(f"{page.path}: JSON-LD block {n}", doc, page, index.origin)


def jsonld_problems(build: BuildIndex | str | os.PathLike[str], domain: str | None = None,
                    limit: int = DEFAULT_LIMIT, processes: int | None = None) -> Problems:
    """Every application/ld+json block parses and expands (pyld, vendored schema.org context) to something non-empty,
    uses only terms schema.org defines, each Article has ISO `datePublished` and `dateModified`, and it states only
    what the page shows (`fact_problems`).

    Expansion costs about 2 ms a block, so 100,000 pages take minutes on one core: `processes=2` (or more) expands in
    that many worker processes (started with `spawn`, so the caller's main module must be importable without side
    effects, i.e. guarded by `if __name__ == "__main__"`; Dagster's run workers are). Default: in this process.
    """
    index = _index(build, domain)
    problems = Problems(limit)
    items = [(f"{page.path}: JSON-LD block {n}", block)
             for page in index.pages.values() for n, block in enumerate(page.jsonld, start=1)]
    if not processes or processes <= 1 or len(items) < 2:
        results: Iterator[list[str]] = iter([_blocks_problems(items)])
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        size = max(1, min(1000, len(items) // (processes * 4) or 1))
        chunks = [items[i : i + size] for i in range(0, len(items), size)]
        # spawn, not fork: the caller (a Dagster run) may have threads
        with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
            results = iter(list(pool.map(_blocks_problems, chunks)))
    for chunk in results:
        for message in chunk:
            problems.add(message)
    for message in _page_fact_problems(index):
        problems.add(message)
    return problems


# --- all -------------------------------------------------------------------------------------------------------------

CHECKS = {
    "references": broken_references,
    "sitemap": sitemap_problems,
    "feed": feed_problems,
    "robots": robots_problems,
    "pages": page_problems,
    "jsonld": jsonld_problems,
}


def verify(root: str | os.PathLike[str] | BuildIndex, domain: str, limit: int = DEFAULT_LIMIT,
           processes: int | None = None) -> dict[str, Problems]:
    """Every check on one scan of the build: {check name: problems} (an empty list is a pass). `processes` is passed
    to `jsonld_problems`, the one slow check."""
    index = _index(root, domain)
    results = {name: check(index, domain, limit=limit) for name, check in CHECKS.items() if name != "jsonld"}
    results["jsonld"] = jsonld_problems(index, domain, limit=limit, processes=processes)
    return {name: results[name] for name in CHECKS}
