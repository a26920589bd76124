"""A site's static website: its published articles, hubs, pages, sitemap, feed and robots.txt rendered into one
working tree, incrementally. Plain Python (Jinja2, nh3, orjson): no database and no dagster.

What is written (paths under the build root; every page is `<path>/index.html`, served at `/<path>/`):

- `/` the home page: the site's states, its latest articles, its pages;
- `/<article slug>/` every published article (`urls.article_path`);
- `/<state>/` and `/<place>/` the hubs the articles' breadcrumbs name (`urls.state_hub_path`, `urls.place_hub_path`):
  a state hub lists its places (or, in state mode, its articles); a place hub lists its articles, HUB_PAGE_SIZE a
  page, further pages at `/<hub>/page/<n>/`; titles, intros and SEO fields from the site's `hub_pages` rows;
- `/<slug>/` the site's `pages` and `posts` (a slug that is also an article or a hub is refused);
- `404.html`, `robots.txt`, `feed.xml` (Atom, the FEED_SIZE latest articles), `sitemap.xml` (an index) over
  `sitemaps/sitemap-<n>.xml` shards of at most SITEMAP_MAX_URLS URLs and SITEMAP_MAX_BYTES bytes, and
  `assets/site.<hash>.css`.

Incremental: every output file has an inputs digest (its rows, the theme, the data it shares with other pages); a
file whose digest equals the previous build's, and which is still on disk, is neither rendered nor written. A
rendered file whose bytes did not change is not rewritten either. Files of the previous build that this build does
not produce are removed. Deterministic: the same inputs give the same bytes (no build time anywhere; dates come from
the rows), so content hashes are stable for the release step.

Safety: templates are autoescaped; a site's own templates (an override folder) render in Jinja2's sandbox; article
bodies pass as markup only when a scan finds nothing but the assembler's own tags, and are sanitized (nh3) if not;
operators' HTML (pages, posts, hub intros) is always sanitized; JSON-LD is embedded with `<`, `>` and `&` escaped;
every path is checked to stay inside the build root before anything is written.
"""

from __future__ import annotations

import gc
import hashlib
import html
import os
import pickle
import random
import re
import shutil
import signal
import stat
import tempfile
import weakref
from array import array
from bisect import bisect_left
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any, Callable, Container, Iterable, Iterator, Mapping, NamedTuple, Sequence
from xml.sax.saxutils import escape as xml_escape

import jinja2
import nh3
import orjson
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup

from spark_assets.content import urls
from spark_assets.content.blueprint import FRAGMENT_HTML_TAGS, OFFER_HTML_ATTRIBUTES, OFFER_HTML_TAGS
from spark_assets.content.seo import description_from_intro
from spark_assets.site.model import ArticlePage, HubText, Site, StaticPage

THEME_DIRECTORY = Path(__file__).parent / "theme"
#: the templates a site may override, each by a file of the same name in its override folder
TEMPLATES = ("base.html", "header.html", "footer.html", "article.html", "hub.html", "home.html", "page.html", "404.html",
             "tracking.js")
HUB_PAGE_SIZE = 50
FEED_SIZE = 20
HOME_LATEST = 12
SITEMAP_MAX_URLS = 50_000
SITEMAP_MAX_BYTES = 50 * 1024 * 1024
#: below this many articles to render, a second process costs more than it saves
PARALLEL_MIN_PAGES = 2000
#: the share of the articles the first process renders when two do (it renders the hubs as well)
PARENT_SHARE = 0.47
#: slugs sampled to place that split on a first build
SPLIT_SAMPLE = 2000
#: bumped when what a page is made of changes in code (not in templates: those are hashed)
BUILD_FORMAT = "1"

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".xml": "application/xml",
    ".css": "text/css; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
}
#: Matomo's loader: a fixed name (not content-hashed), so a new tracker address changes this file and no page
TRACKING_SCRIPT = "assets/tracking.js"
ATOM_CONTENT_TYPE = "application/atom+xml"

#: what operators' HTML (pages, posts, hub intros) may hold
OPERATOR_HTML_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "em", "h2", "h3", "h4", "hr", "i", "img", "li", "ol", "p", "pre",
    "strong", "table", "tbody", "td", "th", "thead", "tr", "ul",
}
OPERATOR_HTML_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "width", "height"}, "td": {"colspan"},
                            "th": {"colspan", "scope"}}
#: what a generated article body may hold: the offer blocks' allow-list (content.blueprint), the fragments' inline tags
#: and the assembler's own structure; a body with anything else is sanitized to this
ARTICLE_HTML_TAGS = frozenset(OFFER_HTML_TAGS | FRAGMENT_HTML_TAGS | {"h1", "section", "nav", "div", "span", "aside"})
ARTICLE_HTML_ATTRIBUTES = {tag: set(names) for tag, names in OFFER_HTML_ATTRIBUTES.items()}
#: attributes the fast path lets through on any allowed tag (hrefs are checked for their scheme)
_PLAIN_ATTRIBUTES = "class|href|title|lang|dir|rel"


class BuildError(ValueError):
    """The inputs cannot make a site (a slug collision, a path outside the build): nothing more is written."""


class HubMember(NamedTuple):
    """An article as its hubs list it. Streamed ordered by (state_path, place_path, title, slug)."""

    state_path: str
    state_label: str
    place_path: str
    place_label: str
    slug: str
    title: str
    modified: date


class FileEntry(NamedTuple):
    path: str  # relative to the build root, "/"-separated: "texas/index.html"
    sha256: str
    size: int
    content_type: str
    inputs: str  # digest of what the file is made of


_HASH_MODULUS = 1 << 256
#: what ends a manifest's first line: its header is the line before it (`BuildResult.write_manifest`)
_FILES_OPENING = b',"files":[\n'
_PATH_RE = re.compile(rb'\{"path":"([^"\\]*)"')


def _entry_digest(entry: FileEntry) -> int:
    return int.from_bytes(hashlib.sha256(f"{entry.path}\t{entry.sha256}\t{entry.content_type}\n".encode()).digest())


def manifest_hash(files: Iterable[FileEntry]) -> str:
    """One digest of a build's files (path, content hash, content type), whatever their order: the sum of each
    entry's sha256 modulo 2^256, so two processes can record their files in any order and agree."""
    return f"{sum(map(_entry_digest, files)) % _HASH_MODULUS:064x}"


class FileList:
    """A build's file entries, spilled to a temporary file as they are recorded (one JSON line each) rather than kept
    in memory, with their count, HTML pages, bytes and manifest hash kept as they come. Iterating reads them back in
    the order they were recorded. `FileList.of(entries)` holds a list instead (a reused manifest: already read)."""

    source: Path | None = None  # a previous manifest reused whole (`copied`)

    def __init__(self) -> None:
        descriptor, self.path = tempfile.mkstemp(prefix="spark-build-files-")
        self._writer = os.fdopen(descriptor, "wb", buffering=1 << 16)
        self._items: list[FileEntry] | None = None
        weakref.finalize(self, _discard, self._writer, self.path, os.getpid())
        self.count = self.html_count = self.bytes = self._sum = 0

    @classmethod
    def of(cls, entries: Iterable[FileEntry], manifest_hash: str = "") -> "FileList":
        """A list held in memory (a manifest already read); its hash is `manifest_hash` when given."""
        self = cls.__new__(cls)
        self.path, self._writer = "", None
        self._items = list(entries)
        self.count = len(self._items)
        self.html_count = sum(1 for e in self._items if e.path.endswith(".html"))
        self.bytes = sum(e.size for e in self._items)
        self._sum = int(manifest_hash, 16) if manifest_hash else sum(map(_entry_digest, self._items))
        return self

    @classmethod
    def copied(cls, manifest: Path, count: int, html_count: int, size: int, manifest_hash: str) -> "FileList":
        """The files of a previous build's manifest, reused whole: iterating reads them from it, and
        `BuildResult.write_manifest` copies its bytes rather than writing each entry again."""
        self = cls.__new__(cls)
        self.path, self._writer, self._items, self.source = "", None, None, manifest
        self.count, self.html_count, self.bytes = count, html_count, size
        self._sum = int(manifest_hash, 16)
        return self

    def append(self, entry: FileEntry) -> None:
        if self.source is not None:
            raise RuntimeError("a reused manifest's file list is read-only")
        if self._items is not None:
            self._items.append(entry)
        else:
            self._writer.write(orjson.dumps(list(entry)) + b"\n")
        self.count += 1
        self.html_count += entry.path.endswith(".html")
        self.bytes += entry.size
        self._sum += _entry_digest(entry)

    def absorb(self, path: str) -> list[str]:
        """Append the entries another process spilled to `path` (then removed); their paths."""
        paths = []
        with open(path, "rb") as lines:
            for line in lines:
                entry = FileEntry(*orjson.loads(line))
                self.append(entry)
                paths.append(entry.path)
        os.unlink(path)
        return paths

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def detach(self) -> str:
        """Flush and hand the spill file over to whoever absorbs it (a forked child's list, at its end)."""
        self._writer.flush()
        return self.path

    @property
    def hash(self) -> str:
        return f"{self._sum % _HASH_MODULUS:064x}"

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[FileEntry]:
        if self.source is not None:
            yield from load_manifest(self.source)[0].values()
            return
        if self._items is not None:
            yield from self._items
            return
        self._writer.flush()
        with open(self.path, "rb") as lines:
            for line in lines:
                yield FileEntry(*orjson.loads(line))


def _discard(writer: Any, path: str, owner: int) -> None:
    """Remove a spill file, in the process that made it only (a forked child drops its copy of the parent's list)."""
    if os.getpid() != owner:
        return
    try:
        writer.close()
        os.unlink(path)
    except OSError:
        pass


@dataclass
class BuildResult:
    files: FileList
    written: int = 0
    rendered_unchanged: int = 0
    skipped: int = 0
    removed: int = 0
    articles: int = 0
    hubs: int = 0
    pages: int = 0
    bytes: int = 0
    manifest_hash: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    #: digest of everything the site is built from (see build_site's `fingerprint`); "" when not given
    site_inputs: str = ""
    #: peak memory of the second rendering process (0: none ran)
    second_process_peak_rss_mb: float = 0.0

    def write_manifest(self, path: Path, build_id: str, domain: str) -> None:
        """The manifest as JSON (the same document as `manifest()`), its header on the first line, then one file
        per line, streamed from the file list into a temporary file renamed into place: memory does not grow with
        the site."""
        header = self.manifest(build_id, domain, files=False)
        temporary = path.with_name(f".{path.name}.tmp")
        if getattr(self.files, "source", None) is not None:  # a reused build: its header, then the previous manifest's files as they are
            with open(self.files.source, "rb") as source, open(temporary, "wb") as handle:
                source.readline()
                handle.write(orjson.dumps(header)[:-1] + _FILES_OPENING)
                shutil.copyfileobj(source, handle, 1 << 20)
            os.replace(temporary, path)
            return
        with open(temporary, "wb", buffering=1 << 16) as handle:
            handle.write(orjson.dumps(header)[:-1] + _FILES_OPENING)
            first = True
            for f in self.files:
                if not first:
                    handle.write(b",\n")
                first = False
                handle.write(orjson.dumps({"path": f.path, "sha256": f.sha256, "size": f.size,
                                           "content_type": f.content_type, "inputs": f.inputs}))
            handle.write(b"\n]}\n")
        os.replace(temporary, path)

    def manifest(self, build_id: str, domain: str, files: bool = True) -> dict[str, Any]:
        document: dict[str, Any] = {
            "build_id": build_id,
            "domain": domain,
            "manifest_hash": self.manifest_hash,
            "site_inputs": self.site_inputs,
            "counts": {"articles": self.articles, "hubs": self.hubs, "pages": self.pages, "files": len(self.files),
                       "html_files": self.files.html_count if isinstance(self.files, FileList) else
                       sum(1 for f in self.files if f.path.endswith(".html")), "bytes": self.bytes},
        }
        if files:
            document["files"] = [
                {"path": f.path, "sha256": f.sha256, "size": f.size, "content_type": f.content_type,
                 "inputs": f.inputs}
                for f in self.files
            ]
        return document


def load_manifest(path: Path | None) -> tuple[dict[str, FileEntry], dict[str, Any]]:
    """A build's manifest, read once: its files by path and its header (`site_inputs`, `counts`); both empty when
    there is none (everything is built)."""
    if path is None or not path.is_file():
        return {}, {}
    data = orjson.loads(path.read_bytes())
    files = {
        f["path"]: FileEntry(f["path"], f["sha256"], f["size"], f["content_type"], f.get("inputs", ""))
        for f in data.get("files", [])
    }
    return files, {"site_inputs": data.get("site_inputs", ""), "counts": data.get("counts", {}),
                   "manifest_hash": data.get("manifest_hash", "")}


def read_manifest(path: Path | None) -> dict[str, FileEntry]:
    """The files of a build's manifest by path."""
    return load_manifest(path)[0]


# --- paths ----------------------------------------------------------------------------------------------------------


def check_relative_path(relative: str) -> None:
    """A build-relative file path, or BuildError: no absolute path, no `..` or `.`, no backslash, no NUL, no empty
    segment. (Symlinks are refused where the files are written: `_Output._directory`.)"""
    if (not relative or relative.startswith("/") or "\\" in relative or "\x00" in relative
            or any(part in ("", ".", "..") for part in relative.split("/"))):
        raise BuildError(f"refused to write outside the build: {relative!r}")


def page_file(path: str) -> str:
    """The file of a site path: "/" -> "index.html", "/texas/" -> "texas/index.html"."""
    if not path.startswith("/") or not path.endswith("/"):
        raise BuildError(f"a page path starts and ends with '/': {path!r}")
    return f"{path[1:]}index.html"


# --- the theme ------------------------------------------------------------------------------------------------------


class Theme:
    """The package theme, or a site's override folder over it (rendered in the sandbox). `digest` covers every
    template and the stylesheet, so a theme change rebuilds every page."""

    def __init__(self, overrides: Path | None = None) -> None:
        loaders: list[jinja2.BaseLoader] = [jinja2.FileSystemLoader(str(THEME_DIRECTORY))]
        self.overridden: list[str] = []
        if overrides is not None and overrides.is_dir():
            self.overridden = sorted(name for name in TEMPLATES if (overrides / name).is_file())
            loaders.insert(0, jinja2.FileSystemLoader(str(overrides), followlinks=False))
        options = dict(
            loader=jinja2.ChoiceLoader(loaders),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=False,
            keep_trailing_newline=True,
        )
        # an operator's template is text anyone with access to the folder can edit: it gets no Python
        self.env = SandboxedEnvironment(**options) if self.overridden else jinja2.Environment(**options)
        self.templates: dict[str, jinja2.Template] = {}  # compiled on first use (a no-change build compiles none)
        css = (THEME_DIRECTORY / "site.css").read_bytes()
        if overrides is not None and (overrides / "site.css").is_file():
            css = (overrides / "site.css").read_bytes()
        self.css = css
        self.css_path = f"/assets/site.{hashlib.sha256(css).hexdigest()[:12]}.css"
        digest = hashlib.sha256(BUILD_FORMAT.encode() + css)
        for name in TEMPLATES:
            source, _, _ = self.env.loader.get_source(self.env, name)
            digest.update(name.encode() + b"\0" + source.encode())
        self.digest = digest.hexdigest()

    def template(self, name: str) -> jinja2.Template:
        template = self.templates.get(name)
        if template is None:
            template = self.templates[name] = self.env.get_template(name)
        return template

    def compile(self) -> None:
        """Compile every template now: a site template's syntax error stops a build before it writes anything."""
        for name in TEMPLATES:
            self.template(name)

    def render(self, name: str, **context: Any) -> bytes:
        return self.template(name).render(**context).encode()

    def render_markup(self, name: str, **context: Any) -> Markup:
        """A part every page shows the same (header, footer): rendered once per build, escaped as any render."""
        return Markup(self.template(name).render(**context))


# --- JSON-LD --------------------------------------------------------------------------------------------------------


def embed_json(value: Any) -> Markup:
    """JSON for a <script type="application/ld+json"> block: `<`, `>` and `&` escaped as \\u003c, \\u003e, \\u0026,
    so no text in it can close the script or open a comment, and keys in a stable order."""
    text = orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def article_jsonld(article: ArticlePage) -> Any:
    """The article's stored JSON-LD with datePublished and dateModified added to its Article node (they are not
    stored: publishing must not change the article's content hash)."""
    data = orjson.loads(article.schema_text) if article.schema_text else {}
    nodes = data.get("@graph", [data]) if isinstance(data, dict) else []
    for node in nodes:
        if isinstance(node, dict) and node.get("@type") == "Article":
            node["datePublished"] = article.published.isoformat()
            node["dateModified"] = article.modified.isoformat()
    return data


def _breadcrumbs_jsonld(site: Site, crumbs: Sequence[tuple[str, str]]) -> dict[str, Any]:
    return {
        "@type": "BreadcrumbList",
        "itemListElement": [
            {"@type": "ListItem", "position": i, "name": name, "item": urls.absolute(site.domain, path)}
            for i, (name, path) in enumerate(crumbs, start=1)
        ],
    }


# --- the build ------------------------------------------------------------------------------------------------------


def _digest(*parts: Any) -> str:
    return hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=16).hexdigest()


def _clean(html_text: str | None, tags=OPERATOR_HTML_TAGS, attributes=OPERATOR_HTML_ATTRIBUTES,
           link_rel: str | None = "noopener") -> Markup:
    if not html_text:
        return Markup("")
    return Markup(nh3.clean(html_text, tags=set(tags), attributes=attributes,
                            url_schemes={"https", "http", "mailto", "tel"}, link_rel=link_rel))


_ALLOWED_TAG_RE = re.compile(r'<(/?)([a-z][a-z0-9]*)((?:\s+(?:' + _PLAIN_ATTRIBUTES + r')="[^"<>]*")*)\s*/?>')
_HREF_RE = re.compile(r'href="([^"]*)"')


_TAG_RE = re.compile(r"<[^>]*>?")
#: tags that passed the scan (most recur on every page: "<p>", "</section>", a hub link); bounded
_PLAIN_TAGS: set[str] = set()


def _plain_tag(tag: str) -> bool:
    match = _ALLOWED_TAG_RE.fullmatch(tag)
    verdict = match is not None and match.group(2) in ARTICLE_HTML_TAGS and all(
        (href.startswith("/") and not href.startswith("//")) or href.startswith(("https://", "http://"))
        for href in _HREF_RE.findall(match.group(3))
    )
    if verdict and len(_PLAIN_TAGS) < 100_000:
        _PLAIN_TAGS.add(tag)
    return verdict


def article_body(content: str) -> Markup:
    """A stored article body as markup. What the assembler writes (tags of ARTICLE_HTML_TAGS with at most the plain
    attributes, hrefs to site paths or http(s) URLs, everything else escaped text) is passed through as it is,
    after a scan; anything else (a row edited by hand, say with `<img onerror>` or `<script>`) is sanitized by nh3.
    The scan checks each distinct tag once (a body has ~120 tags, ~20 distinct, most seen on earlier pages)."""
    tags = _TAG_RE.findall(content)
    if len(tags) == content.count("<") and all(_plain_tag(tag) for tag in set(tags).difference(_PLAIN_TAGS)):
        return Markup(content)
    return _clean(content, ARTICLE_HTML_TAGS, ARTICLE_HTML_ATTRIBUTES, link_rel=None)


_NEARBY_RE = re.compile(r'<nav class="nearby">(<h2>.*?</h2>)<ul>(.*?)</ul></nav>', re.S)
_NEARBY_ITEM_RE = re.compile(r'<li><a href="([^"]*)">.*?</a></li>', re.S)


def published_nearby(content: str, published: Container[str]) -> tuple[str, tuple[str, ...]]:
    """The body with its "Nearby Areas" links to articles the site does not publish (yet) left out, and the paths left
    out. An article links its siblings in the nearest places whether or not they are published (drip-feeding publishes
    them over days); the page links only those that are, and is rebuilt when that changes. The block goes when none
    is left. Other links are the blueprint's and stay: a link check names any that lead nowhere."""
    match = _NEARBY_RE.search(content)
    if match is None:
        return content, ()
    kept, dropped = [], []
    for item in _NEARBY_ITEM_RE.finditer(match.group(2)):
        (kept if item.group(1) in published else dropped).append(item)
    if not dropped:
        return content, ()
    block = f'<nav class="nearby">{match.group(1)}<ul>{"".join(i.group(0) for i in kept)}</ul></nav>' if kept else ""
    return content[: match.start()] + block + content[match.end():], tuple(i.group(1) for i in dropped)


def _write_all(descriptor: int, data: bytes) -> None:
    """Write `data` to a new file's descriptor and close it."""
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(descriptor, view):]
    finally:
        os.close(descriptor)


class _Output:
    """Writes files under the root, skipping what the previous build already has for the same inputs.

    Paths are checked as strings (`check_relative_path`) and every directory on the way is checked once with lstat: a
    directory of the tree that is a symlink (someone else made it; the build never does) is refused, so nothing is
    written outside the root. A file that replaces one goes to a temporary file renamed over the old one: a reader
    sees the old file or the new one, never half of one. A file new to the tree is written in place (O_EXCL)."""

    def __init__(self, root: Path, previous: Mapping[str, FileEntry]) -> None:
        self.root = root
        self.root_text = os.fspath(root)
        self.previous = previous
        self.files = FileList()
        #: paths written or kept: every one in a rebuild (what the previous build had and this one has not is
        #: removed), only the few that are not articles in a first build (an article's uniqueness is checked as the
        #: slug-ordered stream goes, so 100,000 paths are not held)
        self.seen: set[str] = set()
        self.track_articles = bool(previous)
        self.directories: set[str] = {""}  # relative directories known to be real directories inside the root
        self.result = BuildResult(files=self.files)

    def _directory(self, relative_dir: str, create: bool) -> bool:
        """Whether the directory exists (made when `create`); BuildError if it, or one above it, is not a real one."""
        if relative_dir in self.directories:
            return True
        parent, _, _ = relative_dir.rpartition("/")
        if not self._directory(parent, create):
            return False
        full = os.path.join(self.root_text, relative_dir)
        if create:
            try:
                os.mkdir(full)  # made here: a real directory (not remembered: most hold one page, and a site of
                return True     # 100,000 articles would keep 100,000 names; a later use checks it again)
            except FileExistsError:
                pass
        try:
            mode = os.lstat(full).st_mode
        except FileNotFoundError:
            return False
        if not stat.S_ISDIR(mode):  # a symlink (to anywhere) or a file: never written through
            raise BuildError(f"refused to write outside the build: /{relative_dir}/ is not a directory of the build")
        self.directories.add(relative_dir)
        return True

    def unchanged(self, relative: str, inputs: str, content_type: str) -> bool:
        """Whether the previous build has this file for the same inputs, still on disk: then it is kept as it is."""
        before = self.previous.get(relative)
        if before is None or before.inputs != inputs or before.content_type != content_type:
            return False
        check_relative_path(relative)
        directory = relative.rpartition("/")[0]
        return self._directory(directory, create=False) and os.path.isfile(os.path.join(self.root_text, relative))

    def keep(self, relative: str, article: bool = False) -> None:
        self._claim(relative, article)
        before = self.previous[relative]
        self.files.append(before)
        self.result.skipped += 1
        self.result.bytes += before.size

    def _claim(self, relative: str, article: bool = False) -> None:
        check_relative_path(relative)
        if article and not self.track_articles:
            return
        if relative in self.seen:
            raise BuildError(f"two outputs at /{relative}")
        self.seen.add(relative)

    def add(self, relative: str, inputs: str, render: Callable[[], bytes], content_type: str | None = None) -> None:
        content_type = content_type or CONTENT_TYPES[os.path.splitext(relative)[1]]
        if self.unchanged(relative, inputs, content_type):
            self.keep(relative)
            return
        self.write(relative, inputs, render(), content_type)

    def write(self, relative: str, inputs: str, data: bytes, content_type: str, article: bool = False) -> None:
        self._claim(relative, article)
        before = self.previous.get(relative)
        sha = hashlib.sha256(data).hexdigest()
        self.files.append(FileEntry(relative, sha, len(data), content_type, inputs))
        self.result.bytes += len(data)
        directory, _, name = relative.rpartition("/")
        self._directory(directory, create=True)
        target = os.path.join(self.root_text, relative)
        if before is not None and before.sha256 == sha and os.path.isfile(target):
            self.result.rendered_unchanged += 1
            return
        if before is None:
            # a file no good build has: created exclusively (never over anything, never through a symlink) and
            # written in place, as there is no old version to keep showing (a rename costs more than the write
            # here). If the build stops midway the file is in no good manifest, so the next build replaces it.
            try:
                descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            except FileExistsError:
                pass
            else:
                _write_all(descriptor, data)
                self.result.written += 1
                return
        temporary = os.path.join(self.root_text, directory, f".{name}.tmp")
        # O_NOFOLLOW: a symlink planted at the temporary name is refused, not written through; the rename then
        # replaces whatever is at the target (a symlink too) without following it
        _write_all(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644), data)
        os.replace(temporary, target)
        self.result.written += 1

    def remove_stale(self) -> None:
        for relative in self.previous:
            if relative in self.seen:
                continue
            try:
                check_relative_path(relative)
                if not self._directory(relative.rpartition("/")[0], create=False):
                    continue
            except BuildError:
                continue
            target = self.root / relative
            if target.is_file():
                target.unlink()
                self.result.removed += 1
                parent = target.parent
                while parent != self.root and parent.is_dir() and not any(parent.iterdir()):
                    parent.rmdir()
                    self.directories.discard(os.fspath(parent.relative_to(self.root)))
                    parent = parent.parent


class SlugRange(NamedTuple):
    """The articles whose slugs are in [low, high) in code-point order (None: unbounded): what `article_bodies` is
    asked for on a first build, one range per rendering process."""

    low: str | None
    high: str | None


class _PathSet:
    """The published article paths as a sorted array of 64-bit hashes (8 bytes a path, not a set of strings):
    `path in paths` is a binary search. Python's string hash, the same in this process and its forked child; two paths
    sharing one (odds about 1 in 10^9 at 100,000 articles) would make an unpublished one count as published."""

    def __init__(self) -> None:
        self._hashes = array("q")

    def add(self, path: str) -> None:
        self._hashes.append(hash(path))

    def seal(self) -> None:
        self._hashes = array("q", sorted(self._hashes))

    def __contains__(self, path: object) -> bool:
        value = hash(path)
        i = bisect_left(self._hashes, value)
        return i < len(self._hashes) and self._hashes[i] == value

    def __len__(self) -> int:
        return len(self._hashes)


def _quantile(sample: list[str], share: float) -> str | None:
    """The slug below which about `share` of the articles sort, from a uniform sample of them."""
    if not sample:
        return None
    ordered = sorted(sample)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


class _Forked:
    """Work done in a forked child process on `output`'s behalf: the file entries it records go to a spill file of
    its own, which `join()` appends to `output`'s with the child's counts, and returns what `work()` returned.
    Leaving the block without `join()` (an error here) stops the child."""

    def __init__(self, output: _Output, work: Callable[[], Any], after_fork: Callable[[], None] | None) -> None:
        self.output, self.work, self.after_fork = output, work, after_fork
        self.pid = 0

    def __enter__(self) -> "_Forked":
        self.reader, writer = os.pipe()
        # nothing buffered at the fork: a buffer the child inherits would be written a second time when it drops it
        self.output.files.flush()
        self.pid = os.fork()
        if self.pid == 0:  # the child: do the work, send the result, exit without running the parent's cleanup
            code, mine = 0, None
            try:
                os.close(self.reader)
                if self.after_fork:
                    self.after_fork()
                output = self.output
                output.files = output.result.files = mine = FileList()  # not the parent's: a spill file of its own
                result = output.result
                before = (result.written, result.rendered_unchanged, result.skipped, result.bytes)
                returned = self.work()
                after = (result.written, result.rendered_unchanged, result.skipped, result.bytes)
                payload = pickle.dumps(("ok", output.files.detach(), [b - a for a, b in zip(before, after)],
                                        returned))
            except BaseException as exc:  # noqa: BLE001 - sent to the parent, which raises it
                code = 1
                if mine is not None:
                    _discard(mine._writer, mine.path, os.getpid())
                try:
                    payload = pickle.dumps(("error", exc))
                except Exception:  # noqa: BLE001 - an exception that does not pickle: its type and message
                    payload = pickle.dumps(("error", RuntimeError(f"{type(exc).__name__}: {exc}")))
            try:
                with os.fdopen(writer, "wb") as pipe:
                    pipe.write(payload)
            finally:
                os._exit(code)
        os.close(writer)
        return self

    def join(self) -> Any:
        with os.fdopen(self.reader, "rb") as pipe:
            data = pipe.read()
        _, status, usage = os.wait4(self.pid, 0)
        self.pid = 0
        self.output.result.second_process_peak_rss_mb = round(usage.ru_maxrss / 1024, 1)
        if not data:
            raise RuntimeError(f"the second build process stopped without a result (wait status {status})")
        message = pickle.loads(data)
        if message[0] == "error":
            raise message[1]
        _, spill, counts, returned = message
        output = self.output
        for path in output.files.absorb(spill):
            if output.track_articles:
                if path in output.seen:
                    raise BuildError(f"two outputs at /{path}")
                output.seen.add(path)
        result = output.result
        result.written += counts[0]
        result.rendered_unchanged += counts[1]
        result.skipped += counts[2]
        result.bytes += counts[3]
        return returned

    def __exit__(self, *exc_info: object) -> None:
        if self.pid:  # not joined: the parent failed; stop the child and reap it
            try:
                os.kill(self.pid, signal.SIGTERM)
                os.waitpid(self.pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
            try:
                os.close(self.reader)
            except OSError:
                pass


@dataclass(frozen=True)
class _Link:
    path: str
    label: str
    count: int = 0


@dataclass(frozen=True)
class _Item:
    path: str
    title: str


class _Sitemap:
    """Sitemap shards filled in order, cut at SITEMAP_MAX_URLS URLs or SITEMAP_MAX_BYTES bytes; each shard is written
    (through _Output, so unchanged shards are skipped) as soon as it is full."""

    HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n'
    TAIL = "</urlset>\n"

    def __init__(self, output: _Output, site: Site) -> None:
        self.output = output
        self.site = site
        self.shards: list[tuple[str, date | None]] = []
        self._lines: list[str] = []
        self._bytes = len(self.HEAD) + len(self.TAIL)
        self._lastmod: date | None = None

    def add(self, path: str, lastmod: date | None) -> None:
        loc = xml_escape(urls.absolute(self.site.domain, path))
        line = f"<url><loc>{loc}</loc>" + (f"<lastmod>{lastmod.isoformat()}</lastmod>" if lastmod else "") + "</url>\n"
        size = len(line.encode())
        if self._lines and (len(self._lines) >= SITEMAP_MAX_URLS or self._bytes + size > SITEMAP_MAX_BYTES):
            self._flush()
        self._lines.append(line)
        self._bytes += size
        if lastmod and (self._lastmod is None or lastmod > self._lastmod):
            self._lastmod = lastmod

    def _flush(self) -> None:
        number = len(self.shards) + 1
        relative = f"sitemaps/sitemap-{number}.xml"
        body = "".join(self._lines)
        self.output.add(relative, _digest(body), lambda: (self.HEAD + body + self.TAIL).encode())
        self.shards.append((relative, self._lastmod))
        self._lines, self._bytes, self._lastmod = [], len(self.HEAD) + len(self.TAIL), None

    def close(self) -> None:
        if self._lines or not self.shards:
            self._flush()
        entries = "".join(
            f"<sitemap><loc>{xml_escape(urls.absolute(self.site.domain, '/' + relative))}</loc>"
            + (f"<lastmod>{lastmod.isoformat()}</lastmod>" if lastmod else "") + "</sitemap>\n"
            for relative, lastmod in self.shards
        )
        text = ('<?xml version="1.0" encoding="UTF-8"?>\n'
                '<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n' + entries + "</sitemapindex>\n")
        self.output.add("sitemap.xml", _digest(text), lambda: text.encode())


@contextmanager
def frozen_heap() -> Iterator[None]:
    """While a build runs, the objects that exist before it (the interpreter's and Dagster's: a heap of a million
    objects that lives as long as the process) are left out of the garbage collector's passes (`gc.freeze`); each
    full pass walked them all (reading a 10,000-file manifest: 220 ms, 44 ms frozen). What the build allocates is
    collected as always. A no-op when the caller froze the heap already."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def unchanged_build(site: Site, root: Path, fingerprint: str | None, theme: Theme,
                    previous: Mapping[str, FileEntry] | None, previous_header: Mapping[str, Any] | None,
                    ) -> BuildResult | None:
    """The previous build as this one, when nothing it is made of changed: the same `fingerprint` (see build_site),
    theme and site, and every file of it still on disk. None otherwise. A caller checks this before reading the
    rest of what a build needs; build_site checks it too."""
    if not (fingerprint and previous and previous_header):
        return None
    site_inputs = _digest(BUILD_FORMAT, fingerprint, theme.digest, site)
    if previous_header.get("site_inputs") != site_inputs:
        return None
    prefix = os.fspath(root) + os.sep
    isfile = os.path.isfile
    if not all(isfile(prefix + p) for p in previous):
        return None
    counts = previous_header.get("counts", {})
    files = FileList.of(previous.values(), previous_header.get("manifest_hash", ""))
    return BuildResult(files=files, skipped=len(files), bytes=files.bytes,
                       articles=counts.get("articles", 0), hubs=counts.get("hubs", 0), pages=counts.get("pages", 0),
                       manifest_hash=files.hash, site_inputs=site_inputs)


def reused_build(site: Site, root: Path, fingerprint: str | None, theme: Theme, manifest: Path | None,
                 ) -> BuildResult | None:
    """`unchanged_build` straight from the previous manifest's file, reading as little of it as it can: its header
    line first (when `site_inputs` differ, nothing more), then only its paths (each `stat`ed); the new manifest is
    then copied from its bytes. None when anything differs, the manifest is of an older layout, or a file is gone."""
    if not fingerprint or manifest is None:
        return None
    try:
        with open(manifest, "rb") as handle:
            first = handle.readline()
    except FileNotFoundError:
        return None
    if not first.endswith(_FILES_OPENING):
        return None
    header = orjson.loads(first[: -len(_FILES_OPENING)] + b"}")
    site_inputs = _digest(BUILD_FORMAT, fingerprint, theme.digest, site)
    if header.get("site_inputs") != site_inputs or not header.get("manifest_hash"):
        return None
    counts = header.get("counts", {})
    data = manifest.read_bytes()
    if b"\\" in data or "files" not in counts:  # an escaped character in a path, or no totals: parse it all
        entries = orjson.loads(data).get("files") or []
        paths = [e["path"] for e in entries]
        totals = (len(entries), sum(1 for p in paths if p.endswith(".html")), sum(e["size"] for e in entries))
    else:  # the paths alone (the writer's own layout: `{"path":"...",`), and the totals from the header
        paths = [p.decode() for p in _PATH_RE.findall(data)]
        totals = (counts["files"], counts["html_files"], counts["bytes"])
        if len(paths) != totals[0]:
            return None
    prefix = os.fspath(root) + os.sep
    isfile = os.path.isfile
    if not paths or not all(isfile(prefix + p) for p in paths):
        return None
    files = FileList.copied(manifest, *totals, header["manifest_hash"])
    return BuildResult(files=files, skipped=files.count, bytes=files.bytes, articles=counts.get("articles", 0),
                       hubs=counts.get("hubs", 0), pages=counts.get("pages", 0), manifest_hash=files.hash,
                       site_inputs=site_inputs)


def build_site(
    site: Site,
    root: Path,
    *,
    articles: Callable[[], Iterable[ArticlePage]],
    hub_members: Callable[[], Iterable[HubMember]],
    article_bodies: Callable[[list[str] | SlugRange], Iterable[ArticlePage]] | None = None,
    latest: Sequence[ArticlePage],
    pages: Sequence[StaticPage] = (),
    hub_texts: Mapping[str, HubText] | None = None,
    previous: Mapping[str, FileEntry] | None = None,
    theme: Theme | None = None,
    progress: Callable[[str, int], None] | None = None,
    fingerprint: str | None = None,
    previous_header: Mapping[str, Any] | None = None,
    workers: int = 1,
    after_fork: Callable[[], None] | None = None,
) -> BuildResult:
    """Build the site into `root` (created if missing). `articles()` streams the published articles ordered by slug,
    `hub_members()` the same articles as hub rows ordered by (state path, place path, title, slug). With
    `article_bodies`, `articles()` may stream light rows (no body; `version` and `nearby` set) and
    `article_bodies(slugs)` streams the full rows of those slugs, ordered by slug: an unchanged article's body is never
    read; on a first build (no `previous`) `articles()` is not called: `article_bodies(SlugRange(low, high))` streams
    the full rows of a slug range (code-point order), one range per rendering process. `latest` are the FEED_SIZE newest (published date, then slug, descending). Returns what was written and the
    manifest's files.
    Raises BuildError, before writing anything, when a page or post would take an article's or a hub's path.

    `fingerprint`: a digest the caller computes over every row the site is built from (records: one aggregate query).
    With the theme and the site it makes the build's `site_inputs`; when that equals the previous build's
    (`previous_header`) and every file of the previous build is still on disk, nothing is read or rendered: the
    previous manifest is this build's. Any change, however small, goes the per-file way.

    `workers=2` renders the articles to rebuild in two processes when there are PARALLEL_MIN_PAGES or more (fork:
    the second process starts with everything read so far and calls `after_fork` first, where a caller gives it its
    own database connections, then `article_bodies` for its half); the files and bytes are the same as with one."""
    theme = theme or Theme()
    hub_texts = hub_texts or {}
    root.mkdir(parents=True, exist_ok=True)
    site_inputs = _digest(BUILD_FORMAT, fingerprint, theme.digest, site) if fingerprint else ""
    unchanged = unchanged_build(site, root, fingerprint, theme, previous, previous_header)
    if unchanged is not None:
        return unchanged
    theme.compile()
    output = _Output(root, previous or {})
    output.result.site_inputs = site_inputs
    # what every page shows: the site, its navigation, the theme; not the tracker's address, which only tracking.js
    # holds (so moving Matomo rewrites one file, not every page)
    shared = _digest(theme.digest, replace(site, matomo_url=None), bool(site.matomo_url))
    base: dict[str, Any] = {"site": site, "css": theme.css_path}

    # pages and posts first: a collision is found before anything is written
    page_paths: dict[str, StaticPage] = {}
    for page in pages:
        page_file(page.path)  # a site path, or BuildError
        if page.path in page_paths:
            raise BuildError(f"{page.kind} '{page.slug}' and {page_paths[page.path].kind} "
                             f"'{page_paths[page.path].slug}' both want {page.path}")
        page_paths[page.path] = page
    states: list[_Link] = []
    hub_paths: set[str] = set()
    article_paths = _PathSet()  # every published article's path: what "Nearby Areas" may link
    article_count = 0
    first_build = article_bodies is not None and not previous
    # a first build's two processes split the slugs at a quantile of a uniform sample of them (reservoir sampling,
    # seeded: the same split for the same site)
    sample: list[str] = []
    draw = random.Random(0).randrange
    for member in hub_members():
        hub_paths.add(member.state_path)
        hub_paths.add(member.place_path)
        path = urls.article_path(member.slug)
        article_paths.add(path)
        article_count += 1
        if path in page_paths:
            raise BuildError(f"{page_paths[path].kind} '{page_paths[path].slug}' would take the article's page at "
                             f"{path}")
        if first_build:
            if len(sample) < SPLIT_SAMPLE:
                sample.append(member.slug)
            elif (slot := draw(article_count)) < SPLIT_SAMPLE:
                sample[slot] = member.slug
    article_paths.seal()
    if not article_count:
        raise BuildError("the site has no published articles yet: publish a campaign's articles first "
                         "(spark articles publish --campaign <key>), then build")
    for path, page in page_paths.items():
        if path in hub_paths:
            raise BuildError(f"{page.kind} '{page.slug}' would take the hub page at {path}: rename the {page.kind}")
    for path in sorted(hub_paths):
        if path in article_paths:
            raise BuildError(f"article '{path.strip('/')}' would take the hub page at {path}")
    result_articles = article_count
    # every page's header (when the site has no navigation rows) and footer list the site's pages
    base["site_pages"] = [_Item(path, p.title) for path, p in sorted(page_paths.items()) if p.kind == "page"]
    shared = _digest(shared, base["site_pages"])
    base["site_header"] = theme.render_markup("header.html", **base)
    base["site_footer"] = theme.render_markup("footer.html", **base)

    output.add(theme.css_path[1:], _digest(theme.digest), lambda: theme.css, CONTENT_TYPES[".css"])
    if site.matomo_site_id and site.matomo_url:
        tracker = site.matomo_url.rstrip("/") + "/"
        output.add(TRACKING_SCRIPT, _digest(theme.digest, tracker),
                   lambda: theme.render("tracking.js", tracker_url=tracker), CONTENT_TYPES[".js"])
    sitemap = _Sitemap(output, site)
    result = output.result

    # --- hubs: one pass over the members, grouped by state then place -------------------------------------------
    def render_hub(path: str, label: str, kind: str, parent: _Link | None, children: list[_Link],
                   items: list[_Item], lastmod: date | None) -> None:
        text = hub_texts.get(path.strip("/"), HubText())
        count = sum(c.count for c in children) + len(items)
        heading = text.title or f"{label}: Local Guides"
        if text.intro:
            intro = _clean(text.intro)
        elif kind == "state" and children:
            intro = Markup("<p>{}</p>").format(
                f"{site.brand} has written {count} {'guide' if count == 1 else 'guides'} for {len(children)} "
                f"{'place' if len(children) == 1 else 'places'} in {label}. Pick yours below.")
        else:
            intro = Markup("<p>{}</p>").format(
                f"{count} {'guide' if count == 1 else 'guides'} from {site.brand} for {label}, "
                "each written for a different kind of owner and question.")
        crumbs = [("Home", urls.HOME)] + ([(parent.label, parent.path)] if parent else []) + [(label, path)]
        pages_total = max(1, -(-len(items) // HUB_PAGE_SIZE))
        for number in range(1, pages_total + 1):
            page_path = path if number == 1 else f"{path}page/{number}/"
            chunk = items[(number - 1) * HUB_PAGE_SIZE: number * HUB_PAGE_SIZE]
            previous_path = None if number == 1 else (path if number == 2 else f"{path}page/{number - 1}/")
            next_path = f"{path}page/{number + 1}/" if number < pages_total else None
            title = text.seo_title or _with_brand(heading, site.brand)
            if number > 1:
                title = f"{title} (page {number})"
            description = text.seo_description or (
                f"{count} local {'guide' if count == 1 else 'guides'} from {site.brand} for {label}"
                + (f": {len(children)} places, from " + ", ".join(c.label for c in children[:3])
                   + (" and more" if len(children) > 3 else "") if kind == "state" and children else "")
                + (f" (page {number})." if number > 1 else ".")
            )
            inputs = _digest(shared, "hub", page_path, label, kind, parent, children if number == 1 else (), chunk,
                             text, number, pages_total)

            def render(page_path=page_path, chunk=chunk, number=number, previous_path=previous_path,
                       next_path=next_path, title=title, description=description) -> bytes:
                canonical = urls.absolute(site.domain, page_path)
                jsonld = {
                    "@context": "https://schema.org",
                    "@graph": [
                        {"@type": "CollectionPage", "@id": f"{canonical}#page", "name": title, "url": canonical,
                         "description": description, "inLanguage": "en-US",
                         "isPartOf": {"@type": "WebSite", "name": site.brand, "url": f"{site.url}/"}},
                        _breadcrumbs_jsonld(site, crumbs),
                    ],
                }
                page = {
                    "title": title, "description": description, "canonical": canonical, "og_type": "website",
                    "noindex": False, "jsonld": [embed_json(jsonld)],
                    "crumbs": [(n, h) for n, h in crumbs[:-1]] + [(label, None)],
                }
                hub = {
                    "heading": heading if number == 1 else f"{heading} (page {number})",
                    "intro": intro if number == 1 else "",
                    "children": children if number == 1 else [],
                    "children_heading": f"Places in {label}",
                    "articles": chunk,
                    "articles_heading": f"Guides for {label}",
                    "page": number, "pages": pages_total, "previous": previous_path, "next": next_path,
                    "parent": parent,
                }
                return theme.render("hub.html", page=page, hub=hub, **base)

            output.add(page_file(page_path), inputs, render)
            if number == 1:
                sitemap.add(page_path, lastmod)
            result.hubs += 1

    def flush_state(state: _Link | None, places: list[tuple[_Link, list[_Item], date | None]],
                    state_items: list[_Item], state_lastmod: date | None) -> None:
        if state is None:
            return
        own = [p for p in places if p[0].path != state.path]
        children = [p[0] for p in own]
        render_hub(state.path, state.label, "state", None, children, state_items, state_lastmod)
        for link, items, lastmod in own:
            render_hub(link.path, link.label, "place", state, [], items, lastmod)

    def render_hubs() -> None:
        """The state and place hubs, from one more pass over the hub members (grouped by state, then place), and
        the articles' sitemap entries."""
        state: _Link | None = None
        state_count = 0
        state_lastmod: date | None = None
        places: list[tuple[_Link, list[_Item], date | None]] = []
        state_items: list[_Item] = []
        current_place: tuple[str, str] | None = None
        place_items: list[_Item] = []
        place_lastmod: date | None = None

        def close_place() -> None:
            if current_place is None:
                return
            path, label = current_place
            if path == state_path_now:  # state mode: the state's own articles
                state_items.extend(place_items)
            else:
                places.append((_Link(path, label, len(place_items)), list(place_items), place_lastmod))

        state_path_now = ""
        for member in hub_members():
            if state is None or member.state_path != state.path:
                close_place()
                if state is not None:
                    flush_state(_Link(state.path, state.label, state_count), places, state_items, state_lastmod)
                    states.append(_Link(state.path, state.label, state_count))
                state = _Link(member.state_path, member.state_label)
                state_path_now = member.state_path
                state_count, state_lastmod, places, state_items = 0, None, [], []
                current_place, place_items, place_lastmod = None, [], None
            if current_place is None or member.place_path != current_place[0]:
                close_place()
                current_place, place_items, place_lastmod = (member.place_path, member.place_label), [], None
            article_path = urls.article_path(member.slug)
            place_items.append(_Item(article_path, member.title))
            sitemap.add(article_path, member.modified)  # the sitemap lists articles as their hubs do
            state_count += 1
            if place_lastmod is None or member.modified > place_lastmod:
                place_lastmod = member.modified
            if state_lastmod is None or member.modified > state_lastmod:
                state_lastmod = member.modified
        close_place()
        if state is not None:
            flush_state(_Link(state.path, state.label, state_count), places, state_items, state_lastmod)
            states.append(_Link(state.path, state.label, state_count))
        if progress:
            progress("hubs", result.hubs)

    # --- articles ---------------------------------------------------------------------------------------------------
    # Phase 1 walks the article stream (light rows when `article_bodies` is given: no bodies) and keeps every article
    # whose inputs did not change; phase 2 reads the bodies of the others and renders them.
    def render_article(article: ArticlePage, path: str, content: str) -> bytes:
        canonical = urls.absolute(site.domain, path)
        crumbs = [("Home", urls.HOME), (article.state_label, article.state_path)]
        if article.place_path != article.state_path:
            crumbs.append((article.place_label, article.place_path))
        page = {
            "title": article.seo_title or article.title, "description": article.seo_description,
            "canonical": canonical, "og_type": "article", "noindex": False,
            "jsonld": [embed_json(article_jsonld(article))],
            "crumbs": crumbs + [(article.title, None)],
        }
        view = {"body": article_body(content), "published": article.published, "modified": article.modified}
        return theme.render("article.html", page=page, article=view, **base)

    def article_inputs(article: ArticlePage, unpublished: tuple[str, ...]) -> str:
        version = article.version or _digest(article.content, article.seo_title, article.seo_description,
                                             article.schema_text)
        return _digest(shared, "article", article.slug, article.title, version, article.published, article.modified,
                       article.place_path, article.place_label, article.state_path, article.state_label, unpublished)

    html_type = CONTENT_TYPES[".html"]
    parallel = workers > 1
    if first_build:
        # nothing to compare with: every article is rendered, by slug range, straight from its full row
        def render_range(slugs: SlugRange) -> int:
            """Render the articles of a slug range; how many of them the hub members listed."""
            listed, last = 0, None
            for article in article_bodies(slugs):
                if article.slug == last:  # the stream is ordered by slug: a second row for one slug follows the first
                    raise BuildError(f"two published articles at /{article.slug}/: give one another slug")
                last = article.slug
                path = urls.article_path(article.slug)
                content, unpublished = published_nearby(article.content, article_paths)
                output.write(page_file(path), article_inputs(article, unpublished),
                             render_article(article, path, content), html_type, article=True)
                listed += path in article_paths
            return listed

        split = _quantile(sample, PARENT_SHARE) if article_count >= PARALLEL_MIN_PAGES else None
        del sample
        if parallel and split:
            with _Forked(output, lambda: render_range(SlugRange(split, None)), after_fork) as forked:
                render_hubs()
                rendered = render_range(SlugRange(None, split))
                rendered += forked.join()
        else:
            render_hubs()
            rendered = render_range(SlugRange(None, None))
        if rendered < article_count:
            raise BuildError(f"{article_count - rendered} article(s) vanished while the site was built: build again")
    else:
        # phase 1 walks the article stream (light rows when `article_bodies` is given: no bodies) and keeps every
        # article whose inputs did not change; phase 2 reads the bodies of the others and renders them
        pending: dict[str, str | None] = {}  # slug -> inputs digest (None: known only once the body is read)
        seen_articles = 0
        for article in articles():
            path = urls.article_path(article.slug)
            relative = page_file(path)
            seen_articles += 1
            if article.nearby is not None:
                inputs: str | None = article_inputs(article, tuple(p for p in article.nearby
                                                                    if p not in article_paths))
            elif article_bodies is None:
                inputs = article_inputs(article, published_nearby(article.content, article_paths)[1])
            else:
                inputs = None
            if inputs is not None and output.unchanged(relative, inputs, html_type):
                output.keep(relative, article=True)
            elif article_bodies is None:
                content, unpublished = published_nearby(article.content, article_paths)
                output.write(relative, inputs or article_inputs(article, unpublished),
                             render_article(article, path, content), html_type, article=True)
            else:
                pending[article.slug] = inputs
            if progress and seen_articles % 5000 == 0:
                progress("articles", seen_articles)

        def render_bodies(slugs: list[str]) -> list[str]:
            """Read and render these articles; the slugs that were not found (unpublished meanwhile)."""
            for article in article_bodies(slugs):
                path = urls.article_path(article.slug)
                relative = page_file(path)
                content, unpublished = published_nearby(article.content, article_paths)
                inputs = pending.pop(article.slug, None) or article_inputs(article, unpublished)
                if output.unchanged(relative, inputs, html_type):
                    output.keep(relative, article=True)
                else:
                    output.write(relative, inputs, render_article(article, path, content), html_type, article=True)
            return [slug for slug in slugs if slug in pending]

        slugs = sorted(pending)
        if not slugs:
            render_hubs()
            vanished: list[str] = []
        elif parallel and len(slugs) >= PARALLEL_MIN_PAGES:
            # the last articles in a forked process (its own database connections: `after_fork`); here the hubs,
            # then the first articles (fewer: the hubs take their time)
            cut = int(len(slugs) * PARENT_SHARE)
            with _Forked(output, lambda: render_bodies(slugs[cut:]), after_fork) as forked:
                render_hubs()
                vanished = render_bodies(slugs[:cut])
                vanished += forked.join()
        else:
            render_hubs()
            vanished = render_bodies(slugs)
        if vanished:
            raise BuildError(f"{len(vanished)} article(s) vanished while the site was built (first: "
                             f"{vanished[0]}): build again")
    result.articles = result_articles

    # --- pages and posts --------------------------------------------------------------------------------------------
    for path, static in sorted(page_paths.items()):
        inputs = _digest(shared, "page", static)

        def render(static=static, path=path) -> bytes:
            canonical = urls.absolute(site.domain, path)
            kind = "WebPage" if static.kind == "page" else "BlogPosting"
            node: dict[str, Any] = {"@type": kind, "@id": f"{canonical}#page", "url": canonical,
                                    "name": static.title, "inLanguage": "en-US",
                                    "datePublished": static.published.isoformat(),
                                    "dateModified": static.modified.isoformat()}
            if static.kind == "post":
                node["headline"] = static.title[:110]
                node["publisher"] = {"@type": "Organization", "name": site.brand, "url": f"{site.url}/"}
            page = {
                "title": static.seo_title or _with_brand(static.title, site.brand),
                "description": static.seo_description or _summary(static.content),
                "canonical": canonical, "og_type": "article" if static.kind == "post" else "website",
                "noindex": False, "jsonld": [embed_json({"@context": "https://schema.org", **node})],
                "crumbs": [("Home", urls.HOME), (static.title, None)],
            }
            view = {"title": static.title, "kind": static.kind, "published": static.published,
                    "modified": static.modified,
                    "body": _clean(static.content)}
            return theme.render("page.html", page=page, static=view, **base)

        output.add(page_file(path), inputs, render)
        sitemap.add(path, static.modified)
        result.pages += 1

    # --- home, 404, feed, robots, sitemap ---------------------------------------------------------------------------
    latest_items = [_Item(urls.article_path(a.slug), a.title) for a in latest[:HOME_LATEST]]
    page_links = [_Item(path, p.title) for path, p in sorted(page_paths.items()) if p.kind == "page"]
    site_lastmod = max((a.modified for a in latest), default=None)
    home_inputs = _digest(shared, "home", states, latest_items, page_links)

    def render_home() -> bytes:
        canonical = urls.absolute(site.domain, urls.HOME)
        jsonld = {"@context": "https://schema.org", "@type": "WebSite", "@id": f"{canonical}#website",
                  "name": site.title, "url": canonical, "inLanguage": "en-US",
                  "publisher": {"@type": "Organization", "name": site.brand, "url": canonical}}
        description = site.description or (
            f"{site.brand}: local guides for " + ", ".join(s.label for s in states[:4])
            + (" and more" if len(states) > 4 else "") + "." if states else "")
        page = {"title": site.title, "description": description, "canonical": canonical, "og_type": "website",
                "noindex": False, "jsonld": [embed_json(jsonld)], "crumbs": []}
        home = {"heading": site.title, "states": states, "latest": latest_items, "pages": page_links}
        return theme.render("home.html", page=page, home=home, **base)

    output.add("index.html", home_inputs, render_home)
    sitemap.add(urls.HOME, site_lastmod)

    def render_404() -> bytes:
        page = {"title": f"Page not found | {site.brand}", "description": "", "canonical": None,
                "og_type": "website", "noindex": True, "jsonld": [], "crumbs": []}
        return theme.render("404.html", page=page, states=states, **base)

    output.add("404.html", _digest(shared, "404", states), render_404)
    feed = atom_feed(site, latest[:FEED_SIZE])
    output.add("feed.xml", _digest(feed), lambda: feed.encode(), ATOM_CONTENT_TYPE)
    sitemap.close()
    robots = robots_txt(site)
    output.add("robots.txt", _digest(robots), lambda: robots.encode())

    output.remove_stale()
    result.manifest_hash = output.files.hash
    result.counts = {"states": len(states)}
    return result


def _with_brand(title: str, brand: str) -> str:
    """`title | brand` when that stays within a title tag's 60 characters, else the title."""
    branded = f"{title} | {brand}"
    return branded if len(branded) <= 60 and brand not in title else title


def _summary(html_text: str) -> str:
    """An operator page's description when it has none: its text's leading whole sentences (never cut mid-word)."""
    text = " ".join(nh3.clean(html_text or "", tags=set()).split())
    return html.unescape(description_from_intro(text)) if text else ""


def atom_feed(site: Site, latest: Sequence[ArticlePage]) -> str:
    """An Atom 1.0 feed of the latest articles; `updated` is the newest change among them (never the build time)."""
    home = f"{site.url}/"
    updated = max((a.modified for a in latest), default=date(2000, 1, 1))
    entries = []
    for article in latest:
        link = urls.absolute(site.domain, urls.article_path(article.slug))
        summary = f"<summary>{xml_escape(article.seo_description)}</summary>" if article.seo_description else ""
        entries.append(
            f"<entry><title>{xml_escape(article.title)}</title><link rel=\"alternate\" href=\"{xml_escape(link)}\"/>"
            f"<id>{xml_escape(link)}</id><published>{article.published.isoformat()}T00:00:00Z</published>"
            f"<updated>{article.modified.isoformat()}T00:00:00Z</updated>{summary}</entry>\n"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">\n'
        f"<title>{xml_escape(site.title)}</title>\n"
        + (f"<subtitle>{xml_escape(site.description)}</subtitle>\n" if site.description else "")
        + f'<link rel="alternate" href="{xml_escape(home)}"/>\n'
        f'<link rel="self" href="{xml_escape(home)}feed.xml"/>\n'
        f"<id>{xml_escape(home)}</id>\n<updated>{updated.isoformat()}T00:00:00Z</updated>\n"
        f"<author><name>{xml_escape(site.brand)}</name></author>\n"
        + "".join(entries)
        + "</feed>\n"
    )


def robots_txt(site: Site) -> str:
    return f"User-agent: *\nAllow: /\n\nSitemap: {site.url}/sitemap.xml\n"
