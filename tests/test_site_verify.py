"""The independent checks of a built site (spark_assets/site/verify.py) on tiny sites written by hand.

One good site passes every check; each test plants one defect and asserts the right check names the right file.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from spark_assets.site import verify as v

DOMAIN = "example-plumbing.com"
ORIGIN = f"https://{DOMAIN}"
CSS = "assets/site.3f2a9c.css"


def _jsonld(data: dict) -> str:
    return '<script type="application/ld+json">' + json.dumps(data).replace("<", "\\u003c") + "</script>"


def _article_schema(slug: str, title: str, *, published: str | None = "2026-11-01") -> dict:
    article = {
        "@type": "Article",
        "@id": f"{ORIGIN}/{slug}/#article",
        "headline": title,
        "inLanguage": "en-US",
        "wordCount": 420,
        "author": {"@type": "Organization", "name": "Example Plumbing", "url": f"{ORIGIN}/"},
        "publisher": {"@id": f"{ORIGIN}/#business"},
        "mainEntityOfPage": f"{ORIGIN}/{slug}/",
        "about": {"@type": "Place", "name": "Austin, TX"},
        "dateModified": "2026-11-20",
    }
    if published is not None:
        article["datePublished"] = published
    crumbs = [("Home", f"{ORIGIN}/"), ("Texas", f"{ORIGIN}/texas/"), (title, f"{ORIGIN}/{slug}/")]
    return {
        "@context": "https://schema.org",
        "@graph": [
            article,
            {
                "@type": "BreadcrumbList",
                "itemListElement": [
                    {"@type": "ListItem", "position": i, "name": name, "item": item}
                    for i, (name, item) in enumerate(crumbs, start=1)
                ],
            },
            {
                "@type": "Plumber",
                "@id": f"{ORIGIN}/#business",
                "name": "Example Plumbing",
                "url": f"{ORIGIN}/",
                "telephone": "+1-512-555-0100",
                "areaServed": {"@type": "City", "name": "Austin, TX"},
                "address": {"@type": "PostalAddress", "streetAddress": "1 Main St", "addressLocality": "Austin",
                            "addressRegion": "TX", "postalCode": "78701", "addressCountry": "US"},
            },
            {
                "@type": "FAQPage",
                "mainEntity": [{"@type": "Question", "name": "How much does it cost?",
                                "acceptedAnswer": {"@type": "Answer", "text": "Usually < $200 & quick."}}],
            },
        ],
    }


def _page(url: str, title: str, body: str, *, canonical: str | None = "self", schema: dict | None = None) -> str:
    canon = ORIGIN + url if canonical == "self" else canonical
    head = [
        '<meta charset="utf-8">',
        f"<title>{title}</title>",
        f'<link rel="stylesheet" href="/{CSS}">',
        f'<meta property="og:title" content="{title}">',
        '<meta name="twitter:card" content="summary">',
    ]
    if canon:
        head.append(f'<link rel="canonical" href="{canon}">')
    if schema is not None:
        head.append(_jsonld(schema))
    nav = '<nav><a href="/">Home</a> <a href="/texas/">Texas</a> <a href="https://other.example.org/x">x</a></nav>'
    return f"<!doctype html><html><head>{''.join(head)}</head><body>{nav}<main>{body}</main></body></html>"


ARTICLES = {
    "water-heater-repair-austin-tx": "Water Heater Repair in Austin, TX",
    "drain-cleaning-austin-tx": "Drain Cleaning in Austin, TX",
}


def _write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _sitemap_index(shards: list[str]) -> str:
    items = "".join(f"<sitemap><loc>{ORIGIN}/{s}</loc><lastmod>2026-11-20</lastmod></sitemap>" for s in shards)
    return f'<?xml version="1.0" encoding="UTF-8"?><sitemapindex xmlns="{v.SITEMAP_NS}">{items}</sitemapindex>'


def _urlset(paths: list[str], extra: str = "") -> str:
    items = "".join(f"<url><loc>{ORIGIN}{p}</loc><lastmod>2026-11-20</lastmod>{extra}</url>" for p in paths)
    return f'<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="{v.SITEMAP_NS}">{items}</urlset>'


def _feed(slugs: list[str]) -> str:
    entries = "".join(
        f"<entry><title>{ARTICLES.get(s, s)}</title><link href=\"{ORIGIN}/{s}/\"/><id>{ORIGIN}/{s}/</id>"
        f"<updated>2026-11-20T00:00:00Z</updated><summary>About {s}</summary></entry>"
        for s in slugs
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        f'<title>Example Plumbing</title><link href="{ORIGIN}/"/><link rel="self" href="{ORIGIN}/feed.xml"/>'
        f"<id>{ORIGIN}/</id><updated>2026-11-20T00:00:00Z</updated><author><name>Example Plumbing</name></author>"
        f"{entries}</feed>"
    )


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A small build that passes every check: home, a state hub with two list pages, two articles, a page, 404."""
    root = tmp_path / "site"
    _write(root, CSS, "body{font-family:system-ui}")
    article_links = "".join(f'<li><a href="/{s}/">{t}</a></li>' for s, t in ARTICLES.items())
    _write(root, "index.html", _page("/", "Example Plumbing", f"<h1>Example Plumbing</h1><ul>{article_links}</ul>"
                                     '<p><a href="/about/#team">About us</a></p>'))
    _write(root, "texas/index.html", _page("/texas/", "Plumbing in Texas",
                                           f'<h1>Plumbing in Texas</h1><ul>{article_links}</ul>'
                                           '<a href="/texas/page/2/">Next</a>'))
    _write(root, "texas/page/2/index.html", _page("/texas/page/2/", "Plumbing in Texas, page 2",
                                                  '<h1>Plumbing in Texas</h1><a href="/texas/">Previous</a>'))
    for slug, title in ARTICLES.items():
        body = (f"<h1>{title}</h1><p>Call us when the water runs cold &amp; the tank leaks; most fixes take "
                f"&lt; 2 hours.</p><img src=\"/{CSS}\" alt=\"\"><a href=\"{ORIGIN}/texas/?ref=article\">Texas</a>")
        _write(root, f"{slug}/index.html", _page(f"/{slug}/", title, body, schema=_article_schema(slug, title)))
    _write(root, "about/index.html", _page("/about/", "About Example Plumbing",
                                           '<h1 id="team">About us</h1><p>Family owned.</p>'))
    _write(root, "404.html", _page("/404.html", "Page not found", "<h1>Page not found</h1><p>Sorry.</p>",
                                   canonical=None))
    pages = ["/", "/texas/", "/about/"] + [f"/{s}/" for s in ARTICLES]
    _write(root, "sitemaps/sitemap-1.xml", _urlset(pages[:3]))
    _write(root, "sitemaps/sitemap-2.xml", _urlset(pages[3:]))
    _write(root, "sitemap.xml", _sitemap_index(["sitemaps/sitemap-1.xml", "sitemaps/sitemap-2.xml"]))
    _write(root, "robots.txt", f"User-agent: *\nAllow: /\n\nSitemap: {ORIGIN}/sitemap.xml\n")
    _write(root, "feed.xml", _feed(list(ARTICLES)))
    return root


def _only(results: dict[str, v.Problems], check: str, needle: str) -> None:
    """`check` reports a problem containing `needle` (the file), and the other checks are clean unless said."""
    assert any(needle in p for p in results[check]), (check, list(results[check]))


# --- the good site ---------------------------------------------------------------------------------------------------


def test_good_site_passes_every_check(site: Path) -> None:
    results = v.verify(site, DOMAIN)
    assert {name: list(p) for name, p in results.items() if p} == {}
    index = v.scan(site, DOMAIN)
    assert index.by_url["/texas/page/2/"].kind == "paginated"
    assert index.by_url["/"].kind == "home" and index.by_url["/404.html"].kind == "404"
    assert index.by_url["/texas/"].canonical == f"{ORIGIN}/texas/"


def test_checks_accept_a_root_or_an_index(site: Path) -> None:
    index = v.scan(site, DOMAIN)
    assert v.broken_references(index) == [] and v.broken_references(site, DOMAIN) == []
    assert v.page_problems(site) == []
    with pytest.raises(ValueError):
        v.sitemap_problems(index, "other.example")


# --- 1. references ---------------------------------------------------------------------------------------------------


def test_broken_link_is_caught(site: Path) -> None:
    path = site / "about/index.html"
    path.write_text(path.read_text().replace("<p>Family owned.</p>", '<p><a href="/no-such-page/">x</a></p>'))
    problems = v.broken_references(site, DOMAIN)
    assert problems.total == 1 and "about/index.html" in problems[0] and "/no-such-page/" in problems[0]


def test_responsive_images_and_share_images_are_checked_too(site: Path) -> None:
    _write(site, "img/roof-1x.png", "png")
    path = site / "about/index.html"
    path.write_text(path.read_text()
                    .replace("<p>Family owned.</p>", '<p>Family owned.</p><picture><source srcset="/img/roof.webp 1x">'
                             '<img src="/img/roof-1x.png" srcset="/img/roof-1x.png 1x, /img/roof-2x.png 2x" alt="">'
                             "</picture>")
                    .replace("</head>", '<meta property="og:image" content="/img/share.png">'
                             '<meta name="twitter:image" content="https://cdn.example.org/share.png"></head>'))
    problems = v.broken_references(site, DOMAIN)
    assert sorted(problems) == [f"about/index.html: broken link '/img/{name}'"
                                for name in ("roof-2x.png", "roof.webp", "share.png")]


def test_missing_asset_and_absolute_internal_link_are_caught(site: Path) -> None:
    (site / CSS).unlink()
    path = site / "about/index.html"
    path.write_text(path.read_text().replace("Family owned.", f'<a href="{ORIGIN}/gone/">gone</a>'))
    problems = v.broken_references(site, DOMAIN)
    assert any("about/index.html" in p and f"{ORIGIN}/gone/" in p for p in problems)
    assert any(CSS in p for p in problems)
    assert problems.total >= len(v.scan(site, DOMAIN).pages)  # every page references the stylesheet


def test_breadcrumb_to_a_missing_hub_is_caught(site: Path) -> None:
    (site / "texas/index.html").unlink()
    # keep the plain links valid so that only breadcrumbs (and the hub's own links) are in question
    for rel in ["index.html", "about/index.html", "404.html", "texas/page/2/index.html", *(
            f"{s}/index.html" for s in ARTICLES)]:
        p = site / rel
        p.write_text(p.read_text().replace('href="/texas/"', 'href="/"').replace(f'href="{ORIGIN}/texas/?ref=article"',
                                                                                  'href="/"'))
    problems = v.broken_references(site, DOMAIN)
    slug = next(iter(ARTICLES))
    assert any(p.startswith(f"{slug}/index.html") and "breadcrumb" in p and f"{ORIGIN}/texas/" in p
               for p in problems), list(problems)


def test_link_without_trailing_slash_gets_a_hint(site: Path) -> None:
    path = site / "about/index.html"
    path.write_text(path.read_text().replace("Family owned.", '<a href="/texas">Texas</a>'))
    problems = v.broken_references(site, DOMAIN)
    assert problems.total == 1 and "did you mean /texas/" in problems[0]


def test_problem_list_is_capped_but_counted(site: Path) -> None:
    path = site / "about/index.html"
    links = "".join(f'<a href="/missing-{i}/">m</a>' for i in range(30))
    path.write_text(path.read_text().replace("Family owned.", links))
    problems = v.broken_references(site, DOMAIN, limit=10)
    assert len(problems) == 10 and problems.total == 30
    assert "30 problem(s)" in problems.summary() and "20 more" in problems.summary()


# --- 2. sitemaps -----------------------------------------------------------------------------------------------------


def test_relative_loc_is_caught(site: Path) -> None:
    _write(site, "sitemaps/sitemap-2.xml",
           _urlset([f"/{s}/" for s in ARTICLES]).replace(f"<loc>{ORIGIN}/drain", "<loc>/drain"))
    problems = v.sitemap_problems(site, DOMAIN)
    assert any("sitemaps/sitemap-2.xml" in p and "'/drain-cleaning-austin-tx/'" in p for p in problems), list(problems)


def test_element_the_xsd_refuses_is_caught(site: Path) -> None:
    _write(site, "sitemaps/sitemap-1.xml", _urlset(["/", "/texas/", "/about/"], extra="<color>blue</color>"))
    problems = v.sitemap_problems(site, DOMAIN)
    assert any(p.startswith("sitemaps/sitemap-1.xml: does not validate against sitemap.xsd") for p in problems)


def test_bad_lastmod_and_changefreq_fail_the_xsd(site: Path) -> None:
    text = _urlset(["/", "/texas/", "/about/"]).replace("2026-11-20", "30/11/2026", 1)
    _write(site, "sitemaps/sitemap-1.xml", text.replace("</lastmod>", "</lastmod><changefreq>often</changefreq>", 1))
    problems = v.sitemap_problems(site, DOMAIN)
    assert sum("sitemaps/sitemap-1.xml: does not validate" in p for p in problems) >= 1


def test_missing_shard_is_caught(site: Path) -> None:
    (site / "sitemaps/sitemap-2.xml").unlink()
    problems = v.sitemap_problems(site, DOMAIN)
    assert any(p.startswith("sitemap.xml:") and "sitemap-2.xml is missing" in p for p in problems)
    # and the pages it listed are now unlisted
    assert any(p.startswith(f"{next(iter(ARTICLES))}/index.html") and "no sitemap lists it" in p for p in problems)


def test_sitemap_listing_a_missing_page_twice_or_a_noncanonical_page_is_caught(site: Path) -> None:
    _write(site, "sitemaps/sitemap-2.xml", _urlset([f"/{s}/" for s in ARTICLES] + ["/gone/", "/about/",
                                                                                    "/texas/page/2/"]))
    path = site / "texas/page/2/index.html"
    path.write_text(path.read_text().replace(f'href="{ORIGIN}/texas/page/2/"', f'href="{ORIGIN}/texas/"'))
    problems = v.sitemap_problems(site, DOMAIN)
    text = "\n".join(problems)
    assert f"{ORIGIN}/gone/ has no page" in text
    assert f"{ORIGIN}/about/ listed twice" in text
    assert f"{ORIGIN}/texas/page/2/ is listed but its canonical is '{ORIGIN}/texas/'" in text


def test_sitemap_index_not_well_formed_or_missing(site: Path) -> None:
    _write(site, "sitemap.xml", "<sitemapindex><sitemap>")
    assert "sitemap.xml: not a well-formed XML document" in v.sitemap_problems(site, DOMAIN)[0]
    (site / "sitemap.xml").unlink()
    assert v.sitemap_problems(site, DOMAIN) == ["sitemap.xml: missing"]


def test_shard_over_the_url_limit_is_caught(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(v, "MAX_SITEMAP_URLS", 2)
    problems = v.sitemap_problems(site, DOMAIN)
    assert any(p.startswith("sitemaps/sitemap-1.xml: 3 URLs, more than") for p in problems)


# --- 3. feed ---------------------------------------------------------------------------------------------------------


def test_feed_not_well_formed_is_caught(site: Path) -> None:
    _write(site, "feed.xml", _feed(list(ARTICLES)).replace("</feed>", ""))
    problems = v.feed_problems(site, DOMAIN)
    assert any(p.startswith("feed.xml: not well-formed") for p in problems)


def test_feed_entry_to_a_missing_page_and_rss_are_caught(site: Path) -> None:
    _write(site, "feed.xml", _feed([*ARTICLES, "gone"]))
    assert any("feed.xml: entry 3 link" in p and "/gone/" in p for p in v.feed_problems(site, DOMAIN))
    _write(site, "feed.xml", '<?xml version="1.0"?><rss version="2.0"><channel><title>x</title>'
                             f"<link>{ORIGIN}/</link><description>d</description><item><title>a</title>"
                             f"<link>{ORIGIN}/about/</link></item></channel></rss>")
    assert any("not an Atom feed" in p for p in v.feed_problems(site, DOMAIN))


# --- 4. robots.txt ---------------------------------------------------------------------------------------------------


def test_robots_without_sitemap_is_caught(site: Path) -> None:
    _write(site, "robots.txt", "User-agent: *\nAllow: /\n")
    assert v.robots_problems(site, DOMAIN) == [f"robots.txt: does not name Sitemap: {ORIGIN}/sitemap.xml"]


def test_robots_disallowing_everything_is_caught(site: Path) -> None:
    _write(site, "robots.txt", f"User-agent: *\nDisallow: /\n\nSitemap: {ORIGIN}/sitemap.xml\n")
    problems = v.robots_problems(site, DOMAIN)
    assert f"robots.txt: disallows {ORIGIN}/ for *" in problems
    assert f"robots.txt: disallows {ORIGIN}/ for Googlebot" in problems
    slug = next(iter(ARTICLES))
    assert f"robots.txt: disallows {ORIGIN}/{slug}/ for *" in problems


def test_robots_disallowing_articles_for_googlebot_only_is_caught(site: Path) -> None:
    slug = next(iter(ARTICLES))
    _write(site, "robots.txt", f"User-agent: *\nAllow: /\n\nUser-agent: Googlebot\nDisallow: /{slug}/\n\n"
                               f"Sitemap: {ORIGIN}/sitemap.xml\n")
    assert v.robots_problems(site, DOMAIN) == [f"robots.txt: disallows {ORIGIN}/{slug}/ for Googlebot"]


# --- 5. pages --------------------------------------------------------------------------------------------------------


def test_page_without_h1_is_caught(site: Path) -> None:
    path = site / "about/index.html"
    path.write_text(path.read_text().replace('<h1 id="team">About us</h1>', "<h2>About us</h2>"))
    assert v.page_problems(site) == ["about/index.html: 0 <h1> elements, want exactly one"]


def test_two_h1_empty_title_and_empty_page_are_caught(site: Path) -> None:
    path = site / "about/index.html"
    path.write_text(path.read_text().replace("<title>About Example Plumbing</title>", "<title> </title>")
                    .replace("<p>Family owned.</p>", "<h1>Again</h1>"))
    _write(site, "blank/index.html", "")
    problems = v.page_problems(site)
    assert "about/index.html: empty <title>" in problems
    assert "about/index.html: 2 <h1> elements, want exactly one" in problems
    assert "blank/index.html: empty page (no visible text)" in problems


def test_visible_escaped_html_is_caught(site: Path) -> None:
    path = site / "about/index.html"
    path.write_text(path.read_text().replace("Family owned.", "&lt;strong&gt;Family owned.&lt;/strong&gt;"))
    problems = v.page_problems(site)
    assert problems == ["about/index.html: escaped HTML shown as text (e.g. '&lt;strong&gt;')"]


def test_leftover_template_markup_is_caught(site: Path) -> None:
    path = site / "about/index.html"
    path.write_text(path.read_text().replace("Family owned.", "Serving {{ city }} since {% year %}."))
    problems = v.page_problems(site)
    assert len(problems) == 1 and problems[0].startswith("about/index.html: leftover template markup")


# --- 6. JSON-LD ------------------------------------------------------------------------------------------------------


def _replace_schema(site: Path, slug: str, schema_text: str, *, escape: bool = True) -> None:
    """Put `schema_text` in place of the page's JSON-LD block, with "<" written as the build writes it (\\u003c)."""
    if escape:
        schema_text = schema_text.replace("<", "\\u003c")
    path = site / f"{slug}/index.html"
    html = path.read_text()
    start = html.index('<script type="application/ld+json">') + len('<script type="application/ld+json">')
    end = html.index("</script>", start)
    path.write_text(html[:start] + schema_text + html[end:])


def test_jsonld_that_does_not_parse_is_caught(site: Path) -> None:
    slug = next(iter(ARTICLES))
    _replace_schema(site, slug, '{"@context": "https://schema.org", "@type": "Article",')
    problems = v.jsonld_problems(site, DOMAIN)
    assert len(problems) == 1 and problems[0].startswith(f"{slug}/index.html: JSON-LD block 1 does not parse")


def test_article_without_date_published_is_caught(site: Path) -> None:
    slug, title = next(iter(ARTICLES.items()))
    _replace_schema(site, slug, json.dumps(_article_schema(slug, title, published=None)))
    assert v.jsonld_problems(site, DOMAIN) == [f"{slug}/index.html: JSON-LD block 1: Article has no datePublished"]
    _replace_schema(site, slug, json.dumps(_article_schema(slug, title, published="November 1st")))
    assert v.jsonld_problems(site, DOMAIN) == [
        f"{slug}/index.html: JSON-LD block 1: Article datePublished 'November 1st' is not an ISO date"]


def test_unknown_schema_org_term_is_caught(site: Path) -> None:
    slug, title = next(iter(ARTICLES.items()))
    schema = _article_schema(slug, title)
    schema["@graph"][0]["headlin"] = schema["@graph"][0].pop("headline")
    schema["@graph"][2]["@type"] = "Plumbr"
    _replace_schema(site, slug, json.dumps(schema))
    problems = v.jsonld_problems(site, DOMAIN)
    assert problems == [f"{slug}/index.html: JSON-LD block 1 uses terms schema.org does not define: Plumbr, headlin"]


def test_jsonld_with_a_remote_context_fails_without_touching_the_network(
        site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args, **kwargs):
        raise AssertionError("the checks must not open a socket")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    slug = next(iter(ARTICLES))
    _replace_schema(site, slug, json.dumps({"@context": "https://example.org/ctx.jsonld", "@type": "Thing"}))
    problems = v.jsonld_problems(site, DOMAIN)
    assert len(problems) == 1 and problems[0].startswith(f"{slug}/index.html: JSON-LD block 1 does not expand")
    assert "refused" in problems[0]


def test_document_loader_serves_only_the_vendored_context(monkeypatch: pytest.MonkeyPatch) -> None:
    from pyld import jsonld

    def no_network(*args, **kwargs):
        raise AssertionError("the loader must not open a socket")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    for url in ("https://schema.org", "http://schema.org/", "https://schema.org/docs/jsonldcontext.jsonld"):
        doc = v.document_loader(url)["document"]
        assert doc["@context"]["headline"] == {"@id": "schema:headline"}
    for url in ("https://example.org/context.jsonld", "https://schema.org.evil.example/", "file:///etc/passwd"):
        with pytest.raises(jsonld.JsonLdError):
            v.document_loader(url)
    expanded = jsonld.expand({"@context": "https://schema.org", "@type": "Article", "headline": "Hi"},
                             {"documentLoader": v.document_loader})
    assert expanded[0]["http://schema.org/headline"] == [{"@value": "Hi"}]


def test_hostile_text_in_jsonld_stays_inert(site: Path) -> None:
    slug, title = next(iter(ARTICLES.items()))
    schema = _article_schema(slug, "</script><img src=x onerror=alert(1)>")
    _replace_schema(site, slug, json.dumps(schema).replace("<", "\\u003c"))
    results = v.verify(site, DOMAIN)
    # inert: it parses, expands and breaks nothing; the one complaint is that the page does not show that headline
    assert {name: list(p) for name, p in results.items() if p} == {"jsonld": [
        f"{slug}/index.html: JSON-LD block 1: Article headline '</script><img src=x onerror=alert(1)>' is not the "
        "page's title, H1 or breadcrumb"]}


# --- speed -----------------------------------------------------------------------------------------------------------


def test_scan_of_many_small_pages_is_fast(tmp_path: Path) -> None:
    import time

    root = tmp_path / "big"
    n = 1000
    _write(root, CSS, "body{}")
    for i in range(n):
        slug = f"article-{i}"
        _write(root, f"{slug}/index.html",
               _page(f"/{slug}/", f"Article {i}", f"<h1>Article {i}</h1><p>Text {i}.</p>"
                     + "".join(f'<a href="/article-{(i + k) % n}/">n</a>' for k in range(1, 20)),
                     schema=_article_schema(slug, f"Article {i}")))
    _write(root, "texas/index.html", _page("/texas/", "Texas", "<h1>Texas</h1>"))
    _write(root, "index.html", _page("/", "Home", "<h1>Home</h1>"))
    start = time.perf_counter()
    index = v.scan(root, DOMAIN)
    scanned = time.perf_counter() - start
    assert v.broken_references(index) == [] and v.page_problems(index) == []
    assert scanned < 20, f"scan of {n} pages took {scanned:.1f}s"


def test_restricted_context_expands_exactly_like_the_whole_vendored_context() -> None:
    from pyld import jsonld

    options = {"documentLoader": v.document_loader}
    for doc in (_article_schema("a", "A & <b>"), {"@context": "http://schema.org/", "@type": "WebPage",
                                                  "name": "x", "url": "/x/", "schema:description": "d"}):
        assert jsonld.expand(v.with_vendored_context(doc), options) == jsonld.expand(doc, options)


def test_jsonld_problems_in_worker_processes_match(site: Path) -> None:
    slug, title = next(iter(ARTICLES.items()))
    _replace_schema(site, slug, json.dumps(_article_schema(slug, title, published=None)))
    index = v.scan(site, DOMAIN)
    assert list(v.jsonld_problems(index, processes=2)) == list(v.jsonld_problems(index, processes=1)) == [
        f"{slug}/index.html: JSON-LD block 1: Article has no datePublished"]


def test_pages_are_read_as_utf8_even_without_a_charset(site: Path) -> None:
    _write(site, "cafe/index.html", "<html><head><title>Café Plumbing</title></head><body><h1>Café – “Austin”</h1>"
                                    "<p>Open.</p></body></html>")
    page = v.scan(site, DOMAIN).by_url["/cafe/"]
    assert page.title == "Café Plumbing" and page.h1s == ["Café – “Austin”"]


def test_raw_less_than_in_jsonld_is_caught(site: Path) -> None:
    slug, title = next(iter(ARTICLES.items()))
    schema = _article_schema(slug, title)
    schema["@graph"][0]["description"] = "Fixes in < 2 hours"
    _replace_schema(site, slug, json.dumps(schema), escape=False)
    assert v.jsonld_problems(site, DOMAIN) == [
        f"{slug}/index.html: JSON-LD block 1 has a raw '<' (write it as \\u003c)"]
