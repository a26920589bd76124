"""Site builds: what a visitor, a search engine and an operator would check in a built site.

The renderer (`spark_assets.site.build`) is exercised directly on hand-made rows; the asset end to end on a real
PostgreSQL with two sites, and `spark site serve` over HTTP.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import urllib.error
import urllib.request
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from dagster import instance_for_test, materialize

import spark_assets.site.build as build_module
from spark_assets.assets.sites import site_build
from spark_assets.content.blueprint import parse_blueprint
from spark_assets.definitions import content_factory_assets
from spark_assets.ops.site_ops import last_good_build, serve_in_background
from spark_assets.records.registry import add_site, import_campaign
from spark_assets.records.site_inputs import upsert_page
from spark_assets.site.build import (
    HUB_PAGE_SIZE,
    BuildError,
    BuildResult,
    FileEntry,
    HubMember,
    SlugRange,
    Theme,
    build_site,
    check_relative_path,
    load_manifest,
    read_manifest,
)
from spark_assets.site.model import ArticlePage, HubText, NavItem, Site, StaticPage
from spark_resources.providers.matomo import MatomoResource

from .conftest import REPO_ROOT

SITE = Site("roofs.example", "Roof Pros", "Roof Pros", "Roofing help across Texas", navigation=(
    NavItem("Contact", "/contact/"),), matomo_site_id=7, matomo_url="https://matomo.example/")
DAY = date(2026, 3, 1)


def _article(slug: str, place: tuple[str, str] | None = ("austin-tx", "Austin, TX"), title: str | None = None,
             content: str | None = None, modified: date = DAY) -> ArticlePage:
    place_path, place_label = (f"/{place[0]}/", place[1]) if place else ("/texas/", "Texas")
    title = title or f"Roof help {slug}"
    schema = {"@context": "https://schema.org", "@graph": [
        {"@type": "Article", "headline": title, "mainEntityOfPage": f"https://roofs.example/{slug}/"},
        {"@type": "BreadcrumbList", "itemListElement": [
            {"@type": "ListItem", "position": 1, "name": "Home", "item": "https://roofs.example/"},
            {"@type": "ListItem", "position": 2, "name": "Texas", "item": "https://roofs.example/texas/"}]}]}
    return ArticlePage(
        slug=slug, title=title, content=content or f"<h1>{title}</h1>\n<section class=\"intro\"><p>Text about {slug}."
        "</p></section>", seo_title=title[:60], seo_description=f"All about {slug}.", schema_text=json.dumps(schema),
        published=DAY, modified=modified, place_path=place_path, place_label=place_label, state_path="/texas/",
        state_label="Texas",
    )


def _members(articles: list[ArticlePage]) -> list[HubMember]:
    rows = [HubMember(a.state_path, a.state_label, a.place_path, a.place_label, a.slug, a.title, a.modified)
            for a in articles]
    return sorted(rows, key=lambda m: (m.state_path, "" if m.place_path == m.state_path else m.place_path, m.title,
                                       m.slug))


def _build(root: Path, articles: list[ArticlePage], previous=None, pages=(), theme=None, hub_texts=None, site=SITE):
    ordered = sorted(articles, key=lambda a: a.slug)
    latest = sorted(articles, key=lambda a: (a.published, a.slug), reverse=True)[:20]
    return build_site(site, root, articles=lambda: iter(ordered), hub_members=lambda: iter(_members(articles)),
                      latest=latest, pages=pages, previous=previous, theme=theme, hub_texts=hub_texts)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


ARTICLES = [_article(f"austin-tx-roof-{i}") for i in range(3)] + [
    _article("dallas-tx-roof-1", ("dallas-tx", "Dallas, TX")),
    _article("houston-tx-roof-1", ("houston-tx", "Houston, TX")),
]


def test_a_site_has_its_pages_hubs_sitemap_feed_robots_and_404(tmp_path):
    result = _build(tmp_path, ARTICLES, pages=[StaticPage("page", "contact", "/contact/", "Contact", "<p>Call us.</p>",
                                                          None, None, DAY, DAY)])
    files = _files(tmp_path)
    for slug in [a.slug for a in ARTICLES] + ["texas", "austin-tx", "dallas-tx", "houston-tx", "contact"]:
        assert f"{slug}/index.html" in files
    for name in ("index.html", "404.html", "robots.txt", "sitemap.xml", "feed.xml", "sitemaps/sitemap-1.xml"):
        assert name in files
    css = [name for name in files if name.startswith("assets/site.")]
    assert len(css) == 1 and hashlib.sha256(files[css[0]]).hexdigest()[:12] in css[0]
    article = files["austin-tx-roof-0/index.html"].decode()
    assert '<link rel="canonical" href="https://roofs.example/austin-tx-roof-0/">' in article
    assert 'property="og:title"' in article and 'name="twitter:card"' in article
    assert f'href="/{css[0]}"' in article
    assert '<script src="/assets/tracking.js" data-matomo-site="7" async></script>' in article
    assert '"https://matomo.example/"' in files["assets/tracking.js"].decode()
    jsonld = json.loads(article.split('<script type="application/ld+json">')[1].split("</script>")[0])
    node = next(n for n in jsonld["@graph"] if n["@type"] == "Article")
    assert node["datePublished"] == node["dateModified"] == "2026-03-01"
    texas = files["texas/index.html"].decode()
    assert all(f'href="/{p}/"' in texas for p in ("austin-tx", "dallas-tx", "houston-tx"))
    austin = files["austin-tx/index.html"].decode()
    assert all(f'href="/austin-tx-roof-{i}/"' in austin for i in range(3)) and 'href="/texas/"' in austin
    robots = files["robots.txt"].decode()
    assert "Sitemap: https://roofs.example/sitemap.xml" in robots
    assert result.articles == 5 and result.hubs == 4 and result.pages == 1
    assert "noindex" in files["404.html"].decode() and "canonical" not in files["404.html"].decode()


def test_without_a_matomo_site_there_is_no_tracking_snippet(tmp_path):
    site = Site("roofs.example", "Roof Pros", "Roof Pros")
    build_site(site, tmp_path, articles=lambda: iter(ARTICLES[:1]), hub_members=lambda: iter(_members(ARTICLES[:1])),
               latest=ARTICLES[:1])
    assert "tracking.js" not in (tmp_path / "index.html").read_text()
    assert not (tmp_path / "assets/tracking.js").exists()


def test_a_new_tracker_address_rewrites_the_tracking_script_and_no_page(tmp_path):
    first = _build(tmp_path, ARTICLES)
    result = _build(tmp_path, ARTICLES, previous={f.path: f for f in first.files},
                    site=replace(SITE, matomo_url="https://analytics.example/"))
    assert result.written == 1 and "analytics.example" in (tmp_path / "assets/tracking.js").read_text()


def test_long_hubs_are_paginated_and_each_page_links_the_next(tmp_path):
    many = [_article(f"austin-tx-roof-{i:03d}") for i in range(HUB_PAGE_SIZE * 2 + 3)]
    _build(tmp_path, many)
    assert (tmp_path / "austin-tx/page/2/index.html").is_file() and (tmp_path / "austin-tx/page/3/index.html").is_file()
    assert not (tmp_path / "austin-tx/page/4").exists()
    first = (tmp_path / "austin-tx/index.html").read_text()
    assert 'rel="next" href="/austin-tx/page/2/"' in first
    second = (tmp_path / "austin-tx/page/2/index.html").read_text()
    assert 'rel="prev" href="/austin-tx/"' in second and "canonical\" href=\"https://roofs.example/austin-tx/page/2/" in second
    listed = sum(p.read_text().count('<li><a href="/austin-tx-roof-') for p in tmp_path.glob("austin-tx/**/index.html"))
    assert listed == len(many)


def test_two_builds_of_the_same_inputs_are_byte_identical(tmp_path):
    first, second = _build(tmp_path / "a", ARTICLES), _build(tmp_path / "b", ARTICLES)
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    assert first.manifest_hash == second.manifest_hash


def test_two_rendering_processes_write_the_same_files_and_a_failure_in_the_second_is_raised(tmp_path, monkeypatch):
    monkeypatch.setattr(build_module, "PARALLEL_MIN_PAGES", 2)
    ordered = sorted(ARTICLES, key=lambda a: a.slug)

    def bodies(slugs, fail_on=None):
        if isinstance(slugs, SlugRange):  # a first build: a range of slugs
            chosen = [a for a in ordered if (slugs.low is None or a.slug >= slugs.low)
                      and (slugs.high is None or a.slug < slugs.high)]
        else:  # a rebuild: the slugs to render
            chosen = [a for a in ordered if a.slug in set(slugs)]
        if fail_on in {a.slug for a in chosen}:
            raise ValueError(f"the row of {fail_on} is unreadable")
        return iter(chosen)

    def build(root, workers, fail_on=None, previous=None, version="v1"):
        light = [replace(a, content="", schema_text="", version=version, nearby=()) for a in ordered]
        return build_site(SITE, root, articles=lambda: iter(light), hub_members=lambda: iter(_members(ARTICLES)),
                          article_bodies=lambda slugs: bodies(slugs, fail_on), latest=ordered, workers=workers,
                          after_fork=lambda: (tmp_path / f"forked-{os.getpid()}").touch(), previous=previous)

    one = build(tmp_path / "one", workers=1)
    two = build(tmp_path / "two", workers=2)  # a first build: two slug ranges
    assert _files(tmp_path / "one") == _files(tmp_path / "two") and one.manifest_hash == two.manifest_hash
    assert (one.written, one.bytes, one.articles) == (two.written, two.bytes, two.articles)
    assert sorted(one.files) == sorted(two.files)
    forks = [int(p.name.split("-")[1]) for p in tmp_path.glob("forked-*")]
    assert len(forks) == 1 and forks[0] != os.getpid() and two.second_process_peak_rss_mb > 0
    # a rebuild where every article changed: the slugs to render split between the two
    again = build(tmp_path / "two", workers=2, previous={f.path: f for f in two.files}, version="v2")
    assert again.skipped + again.written + again.rendered_unchanged == len(two.files)
    assert again.rendered_unchanged == len(ARTICLES) and again.manifest_hash == two.manifest_hash
    assert len(list(tmp_path.glob("forked-*"))) == 2
    with pytest.raises(ValueError, match=f"the row of {ordered[-1].slug} is unreadable"):  # the second process's
        build(tmp_path / "three", workers=2, fail_on=ordered[-1].slug)


def test_a_rebuild_with_no_change_writes_nothing_and_one_change_rewrites_only_what_lists_it(tmp_path):
    first = _build(tmp_path, ARTICLES)
    previous = {f.path: f for f in first.files}
    before = {p: (tmp_path / p).stat().st_mtime_ns for p in previous}
    again = _build(tmp_path, ARTICLES, previous=previous)
    assert again.written == 0 and again.skipped == len(first.files)
    assert {p: (tmp_path / p).stat().st_mtime_ns for p in previous} == before

    changed = [*ARTICLES]
    changed[1] = _article("austin-tx-roof-1", title="Roof help, rewritten", modified=date(2026, 3, 5))
    third = _build(tmp_path, changed, previous=previous)
    rewritten = {p for p in previous if (tmp_path / p).stat().st_mtime_ns != before[p]}
    # its page, the hub that lists it (the state hub lists places and their counts: unchanged), the sitemap shard and
    # index (lastmod), the feed and the home page (their latest lists)
    assert rewritten == {"austin-tx-roof-1/index.html", "austin-tx/index.html", "sitemaps/sitemap-1.xml",
                         "sitemap.xml", "feed.xml", "index.html"}
    assert third.written == len(rewritten)


def test_a_removed_article_disappears_from_the_tree_and_its_hub(tmp_path):
    first = _build(tmp_path, ARTICLES)
    result = _build(tmp_path, [a for a in ARTICLES if a.slug != "houston-tx-roof-1"],
                    previous={f.path: f for f in first.files})
    assert not (tmp_path / "houston-tx-roof-1").exists() and not (tmp_path / "houston-tx").exists()
    assert result.removed == 2
    assert "houston" not in (tmp_path / "texas/index.html").read_text()


def test_hostile_text_in_an_article_is_inert_in_the_page_and_its_json_ld(tmp_path):
    hostile = _article("austin-tx-roof-9", title='Roofs </script><script>alert(1)</script>',
                       content='<h1>x</h1><p>hi<img src=x onerror="alert(2)"><script>alert(3)</script></p>')
    _build(tmp_path, [hostile])
    page = (tmp_path / "austin-tx-roof-9/index.html").read_text()
    assert "onerror" not in page and "alert(3)" not in page
    assert page.count("<script") == 2  # its JSON-LD and the Matomo loader, nothing else
    block = page.split('<script type="application/ld+json">')[1].split("</script>")[0]
    assert "<" not in block and json.loads(block)  # "</script>" in the data is written \u003c/script\u003e
    assert "&lt;/script&gt;" in page  # the title shows as text


def test_an_operators_page_is_sanitized_and_a_collision_with_a_hub_is_refused(tmp_path):
    page = StaticPage("page", "about", "/about/", "About", '<p onclick="x()">Hi</p><script>bad()</script>', None,
                      None, DAY, DAY)
    _build(tmp_path / "ok", ARTICLES, pages=[page])
    about = (tmp_path / "ok/about/index.html").read_text()
    assert "onclick" not in about and "bad()" not in about and "<p>Hi</p>" in about
    hub = StaticPage("page", "texas", "/texas/", "Texas", "<p>x</p>", None, None, DAY, DAY)
    with pytest.raises(BuildError, match="would take the hub page at /texas/"):
        _build(tmp_path / "clash", ARTICLES, pages=[hub])
    assert not (tmp_path / "clash" / "index.html").exists()


@pytest.mark.parametrize("path", ["../../etc/passwd", "/etc/passwd", "a/../../b", "a\\b", "a//b", ""])
def test_no_path_can_write_outside_the_build(tmp_path, path):
    with pytest.raises(BuildError, match="outside the build"):
        check_relative_path(path)
    page = StaticPage("page", "evil", "/../../etc/", "Evil", "", None, None, DAY, DAY)
    with pytest.raises(BuildError):
        _build(tmp_path / "site", ARTICLES, pages=[page])


def test_a_symlink_out_of_the_build_is_not_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "site"
    root.mkdir()
    (root / "texas").symlink_to(outside)
    with pytest.raises(BuildError, match="outside"):
        _build(root, ARTICLES)
    assert not any(outside.iterdir())


def test_a_sites_templates_override_the_theme_in_the_sandbox(tmp_path):
    overrides = tmp_path / "theme"
    overrides.mkdir()
    (overrides / "404.html").write_text('{% extends "base.html" %}{% block main %}<h1>Lost? Call Roof Pros</h1>'
                                        "{% endblock %}")
    theme = Theme(overrides)
    assert theme.overridden == ["404.html"]
    _build(tmp_path / "site", ARTICLES, theme=theme)
    assert "Lost? Call Roof Pros" in (tmp_path / "site/404.html").read_text()

    (overrides / "404.html").write_text("{{ ''.__class__.__mro__[1].__subclasses__() }}")
    from jinja2.exceptions import SecurityError

    with pytest.raises(SecurityError):
        _build(tmp_path / "site2", ARTICLES, theme=Theme(overrides))


def test_hub_texts_from_hub_pages_replace_the_default_words(tmp_path):
    texts = {"texas": HubText("Texas Roofing Guides", "<p>Everything about roofs in <strong>Texas</strong>.</p>",
                              "Texas Roof Guides | Roof Pros", "Roof repair guides for every Texas city we serve.")}
    _build(tmp_path, ARTICLES, hub_texts=texts)
    texas = (tmp_path / "texas/index.html").read_text()
    assert "<h1>Texas Roofing Guides</h1>" in texas and "<strong>Texas</strong>" in texas
    assert "<title>Texas Roof Guides | Roof Pros</title>" in texas


# --- end to end: the asset on PostgreSQL, two sites, and `spark site serve` -------------------------------------------

SMALL = REPO_ROOT / "tests" / "fixtures" / "small-campaign.yaml"


def _import(engine, domain: str, brand: str) -> str:
    data = yaml.safe_load(SMALL.read_text())
    data["publishing"]["auto_publish"] = True
    for target in data["link_targets"]:  # the site's pages, at their canonical paths (the pages are made below)
        target["url"] = target["url"].rstrip("/") + "/"
    with engine.begin() as conn:
        site, _ = add_site(conn, domain, brand)
        campaign, _ = import_campaign(conn, domain, parse_blueprint(yaml.safe_dump(data, sort_keys=False)))
        for target in data["link_targets"]:
            slug = target["url"].strip("/").split("/")[-1]
            upsert_page(conn, site.id, slug=slug, permalink=target["url"], title=target["anchor"].capitalize(),
                        content=f"<p>{target['anchor']}</p>")
    return campaign.partition_key


def _publish(database, instance, key: str) -> None:
    instance.add_dynamic_partitions("campaign", [key])
    for name in ["campaign_blueprint", "campaign_geo", "cartesian_permutations", "headlines", "articles",
                 "article_quality"]:
        materialize(content_factory_assets, selection=[name], partition_key=key, instance=instance,
                    resources={"database": database})


def _build_asset(instance, database, domain: str, checks: dict | None = None):
    instance.add_dynamic_partitions("site", [domain])
    result = materialize([site_build], partition_key=domain, instance=instance, resources={
        "database": database, "matomo": MatomoResource(base_url="https://matomo.example/index.php")})
    if checks is not None:
        checks.update({e.check_name: e for e in result.get_asset_check_evaluations()})
    return {k: v.value for k, v in result.get_asset_materialization_events()[0].materialization.metadata.items()}


def _failed_build(database, engine, domain: str) -> str:
    """Materialize the site's build, which must fail; its recorded error (no build row is left 'building')."""
    with instance_for_test() as instance:
        instance.add_dynamic_partitions("site", [domain])
        failed = materialize([site_build], partition_key=domain, instance=instance, raise_on_error=False,
                             resources={"database": database, "matomo": MatomoResource(base_url="https://m.example/")})
    assert not failed.success
    with engine.connect() as conn:
        building = conn.execute(sa.text("SELECT count(*) FROM site_builds WHERE status = 'building'")).scalar_one()
        error = conn.execute(sa.text(
            "SELECT error_message FROM site_builds WHERE status = 'failed' ORDER BY finished_at DESC LIMIT 1")).scalar()
    assert building == 0 and error
    return error


def test_the_asset_builds_each_site_from_its_own_articles_only_and_serves_it(database, engine, tmp_path, monkeypatch):
    with instance_for_test() as instance:
        keys = [_import(engine, "gutters.example", "Gutter Pros"), _import(engine, "other-gutters.example", "Others")]
        materialize(content_factory_assets, selection=["locations", "avatars"], instance=instance,
                    resources={"database": database})
        for key in keys:
            _publish(database, instance, key)
        checks: dict = {}
        first = _build_asset(instance, database, "gutters.example", checks)
        _build_asset(instance, database, "other-gutters.example")
        again = _build_asset(instance, database, "gutters.example")
        # rendered in two processes (the second reads its half with connections of its own), the tree gone: the
        # same files; the first process's connections still work for what it records afterwards
        monkeypatch.setattr(build_module, "PARALLEL_MIN_PAGES", 2)
        shutil.rmtree(last_good_build("gutters.example", engine)[0])
        forked = _build_asset(instance, database, "gutters.example")
        assert forked["manifest_hash"] == first["manifest_hash"] and forked["files_written"] == first["files"]
        assert forked["renderers"] == 2 and first["renderers"] == 1
        monkeypatch.setattr(build_module, "PARALLEL_MIN_PAGES", 2000)
        assert sorted(checks) == ["feed_parses", "internal_links_resolve", "json_ld_expands", "pages_are_complete",
                                  "robots_allows_the_site", "sitemap_is_valid"]
        assert all(c.passed for c in checks.values()), {n: c.metadata for n, c in checks.items() if not c.passed}

        # an editor's hand edit links a page the site does not have: the build still goes out, its check fails
        with engine.begin() as conn:
            conn.execute(sa.text(
                """UPDATE generated_articles SET content = content || '<p><a href="/no-such-page/">x</a></p>'
                   WHERE id = (SELECT a.id FROM generated_articles a JOIN sites s ON s.id = a.site_id
                               WHERE s.domain = 'other-gutters.example' AND a.is_published LIMIT 1)"""))
        broken: dict = {}
        _build_asset(instance, database, "other-gutters.example", broken)
        assert not broken["internal_links_resolve"].passed
        assert "/no-such-page/" in broken["internal_links_resolve"].metadata["examples"].value
        assert broken["sitemap_is_valid"].passed and broken["pages_are_complete"].passed

    with engine.connect() as conn:
        published = conn.execute(sa.text(
            "SELECT count(*) FROM generated_articles a JOIN sites s ON s.id = a.site_id "
            "WHERE s.domain = 'gutters.example' AND a.is_published")).scalar_one()
        builds = conn.execute(sa.text(
            "SELECT b.status, b.manifest_path, b.files_written FROM site_builds b JOIN sites s ON s.id = b.site_id "
            "WHERE s.domain = 'gutters.example' ORDER BY b.finished_at")).all()
    assert published > 0 and first["articles"] == published and first["pages_and_posts"] == 2
    assert [b.status for b in builds] == ["built", "built", "built"] and builds[1].files_written == 0
    assert again["files_written"] == 0 and again["files_skipped"] == first["files"]

    tree, files = last_good_build("gutters.example", engine)
    other_tree, other_files = last_good_build("other-gutters.example", engine)
    assert tree != other_tree
    ours = (tree / "sitemaps/sitemap-1.xml").read_text()
    assert "other-gutters.example" not in ours and "other-gutters.example" not in (tree / "feed.xml").read_text()
    manifest = read_manifest(Path(builds[-1].manifest_path))
    assert set(manifest) == set(files) and all((tree / p).is_file() for p in manifest)

    # a page on a hub's path fails the build with a clear error; the last good build stays the one served
    with engine.begin() as conn:
        site_id = conn.execute(sa.text("SELECT id FROM sites WHERE domain = 'gutters.example'")).scalar_one()
        upsert_page(conn, site_id, slug="texas-page", permalink="/texas/", title="Texas", content="<p>x</p>")
    error = _failed_build(database, engine, "gutters.example")
    assert "page 'texas-page' would take the hub page at /texas/" in error
    assert last_good_build("gutters.example", engine)[1] == files

    # the site's own template with a mistake: the build fails naming the file and line, and is recorded as failed
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM pages WHERE slug = 'texas-page'"))
    themes = tmp_path / "themes"
    (themes / "gutters.example").mkdir(parents=True)
    (themes / "gutters.example" / "404.html").write_text("{% extends 'base.html' %}\n{% block main %}{% endblok %}")
    monkeypatch.setenv("SPARK_THEMES_DIR", str(themes))
    error = _failed_build(database, engine, "gutters.example")
    assert "TemplateSyntaxError" in error and "404.html, line 2" in error
    monkeypatch.delenv("SPARK_THEMES_DIR")

    server, _ = serve_in_background(tree, files)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        article = next(p for p in files if p.endswith("/index.html") and p.count("/") == 1 and "-" in p.split("/")[0])
        with urllib.request.urlopen(f"{base}/{article[:-len('index.html')]}") as answer:
            assert answer.status == 200 and answer.headers["Content-Type"].startswith("text/html")
            assert b"<h1>" in answer.read()
        with urllib.request.urlopen(f"{base}/texas/") as answer:  # the state hub of a campaign in Texas
            assert answer.status == 200 and b"Texas" in answer.read()
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"{base}/no-such-page/")
        assert missing.value.code == 404 and b"Page not found" in missing.value.read()
        with pytest.raises(urllib.error.HTTPError) as escape:
            urllib.request.urlopen(f"{base}/../../etc/passwd")
        assert escape.value.code == 404
    finally:
        server.shutdown()
        server.server_close()


def test_nearby_links_to_articles_not_published_yet_are_left_out_until_they_are(tmp_path):
    nearby = ('<nav class="nearby"><h2>Nearby Areas</h2><ul><li><a href="/dallas-tx-roof-1/">Dallas, TX</a></li>'
              '<li><a href="/waco-tx-roof-1/">Waco, TX</a></li></ul></nav>')
    article = _article("austin-tx-roof-0", content=f"<h1>Roofs</h1><p>Text.</p>{nearby}")
    first = _build(tmp_path, [article, ARTICLES[3]])
    page = (tmp_path / "austin-tx-roof-0/index.html").read_text()
    assert 'href="/dallas-tx-roof-1/"' in page and "/waco-tx-roof-1/" not in page
    waco = _article("waco-tx-roof-1", ("waco-tx", "Waco, TX"))
    _build(tmp_path, [article, ARTICLES[3], waco], previous={f.path: f for f in first.files})
    assert 'href="/waco-tx-roof-1/"' in (tmp_path / "austin-tx-roof-0/index.html").read_text()
    _build(tmp_path / "alone", [article])
    assert "Nearby Areas" not in (tmp_path / "alone/austin-tx-roof-0/index.html").read_text()


def test_a_site_without_published_articles_is_not_built(tmp_path):
    with pytest.raises(BuildError, match="no published articles yet"):
        _build(tmp_path, [])
    assert not any(tmp_path.iterdir())


def test_hubs_pages_and_home_say_something_of_their_own(tmp_path):
    contact = StaticPage("page", "contact", "/contact/", "Contact", "<p>Call us on weekdays. We answer fast.</p>",
                         None, None, DAY, DAY)
    _build(tmp_path, ARTICLES, pages=[contact])
    texas = (tmp_path / "texas/index.html").read_text()
    assert "Roof Pros has written 5 guides for 3 places in Texas" in texas
    assert "<title>Texas: Local Guides | Roof Pros</title>" in texas
    page = (tmp_path / "contact/index.html").read_text()
    assert "<title>Contact | Roof Pros</title>" in page
    assert '<meta name="description" content="Call us on weekdays. We answer fast.">' in page
    home = (tmp_path / "index.html").read_text()
    assert '<a href="/contact/">Contact</a>' in home  # in the header (no navigation rows: the pages) and footer


def test_an_unchanged_site_fingerprint_reuses_the_previous_build_without_reading_a_row(tmp_path):
    ordered = sorted(ARTICLES, key=lambda a: a.slug)
    first = build_site(SITE, tmp_path, articles=lambda: iter(ordered), hub_members=lambda: iter(_members(ARTICLES)),
                       latest=ordered, fingerprint="rows-v1")
    header = {"site_inputs": first.site_inputs, "counts": {"articles": first.articles, "hubs": first.hubs}}

    def unread():
        raise AssertionError("an unchanged site reads no rows")

    again = build_site(SITE, tmp_path, articles=unread, hub_members=unread, latest=[], fingerprint="rows-v1",
                       previous={f.path: f for f in first.files}, previous_header=header)
    assert again.written == 0 and again.skipped == len(first.files) and again.manifest_hash == first.manifest_hash
    assert again.articles == len(ARTICLES)
    # another fingerprint (a row changed), a file gone, or another theme: the per-file way, which puts back what is gone
    (tmp_path / "texas/index.html").unlink()
    third = build_site(SITE, tmp_path, articles=lambda: iter(ordered), hub_members=lambda: iter(_members(ARTICLES)),
                       latest=ordered, fingerprint="rows-v1", previous={f.path: f for f in first.files},
                       previous_header=header)
    assert third.written == 1 and (tmp_path / "texas/index.html").is_file()


def test_a_symlink_planted_at_a_file_or_its_temporary_name_is_never_written_through(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    root = tmp_path / "site"
    # a new file is created exclusively: a symlink already at its name is replaced (by a rename), never followed
    (root / "texas").mkdir(parents=True)
    (root / "texas" / "index.html").symlink_to(outside)
    first = _build(root, ARTICLES)
    assert outside.read_text() == "keep me" and not (root / "texas" / "index.html").is_symlink()
    # a file the previous build has is replaced through a temporary name: a symlink planted there is refused
    (root / ARTICLES[0].slug / ".index.html.tmp").symlink_to(outside)
    changed = [replace(ARTICLES[0], title="Austin Roofs, Revised")] + ARTICLES[1:]
    with pytest.raises(OSError):
        _build(root, changed, previous={f.path: f for f in first.files})
    assert outside.read_text() == "keep me"


@pytest.mark.parametrize("count", [0, 1, 1000, 2001])
def test_the_manifest_is_written_in_chunks_as_the_same_document(tmp_path, count):
    result = BuildResult(files=[FileEntry(f"p-{i}/index.html", f"{i:064x}", i, "text/html; charset=utf-8", f"{i:032x}")
                                for i in range(count)], manifest_hash="h", site_inputs="s", articles=count)
    path = tmp_path / "manifests" / "b1.json"
    path.parent.mkdir()
    result.write_manifest(path, "b1", "roofs.example")
    assert json.loads(path.read_text()) == result.manifest("b1", "roofs.example")
    files, header = load_manifest(path)
    assert list(files.values()) == result.files and header["manifest_hash"] == "h"
    assert [p.name for p in path.parent.iterdir()] == ["b1.json"]  # no temporary file left


def test_json_ld_that_states_what_the_page_does_not_show_fails_its_check(tmp_path):
    from spark_assets.site import verify

    def schema(slug, title, place="Austin, TX", crumbs=None, **extra):
        url = f"https://roofs.example/{slug}/"
        trail = crumbs or [("Home", "https://roofs.example/"), ("Texas", "https://roofs.example/texas/"),
                           ("Austin, TX", "https://roofs.example/austin-tx/"), (title, url)]
        return json.dumps({"@context": "https://schema.org", "@graph": [
            {"@type": "Article", "headline": title, "mainEntityOfPage": url, "about": {"@type": "Place", "name": place},
             **extra},
            {"@type": "BreadcrumbList", "itemListElement": [
                {"@type": "ListItem", "position": i, "name": n, "item": u} for i, (n, u) in enumerate(trail, 1)]}]})

    good = [replace(a, schema_text=schema(a.slug, a.title)) for a in ARTICLES[:3]]
    _build(tmp_path / "good", good)
    assert list(verify.jsonld_problems(tmp_path / "good", "roofs.example")) == []

    a, b, c = good
    planted = [
        replace(a, schema_text=schema(a.slug, a.title, aggregateRating={"@type": "AggregateRating",
                                                                         "ratingValue": 4.9, "reviewCount": 212})),
        replace(b, schema_text=schema(b.slug, b.title, place="Dallas, TX")),
        replace(c, schema_text=schema(c.slug, "An old title")),  # the title was edited after the JSON-LD was made
    ]
    _build(tmp_path / "bad", planted)
    problems = verify.jsonld_problems(tmp_path / "bad", "roofs.example")
    text = "\n".join(problems)
    assert f"{a.slug}/index.html: JSON-LD block 1: Article claims aggregateRating, which no data of ours holds" in text
    assert f"{b.slug}/index.html: JSON-LD block 1: Article about 'Dallas, TX' is not a place of the page's" in text
    assert f"{c.slug}/index.html: JSON-LD block 1: Article headline 'An old title' is not the page's title" in text
    assert f"{c.slug}/index.html: JSON-LD block 1: its BreadcrumbList (Home > Texas > Austin, TX > An old title) " \
           f"is not the trail the page shows (Home > Texas > Austin, TX > {c.title})" in text
    assert problems.total == 4, list(problems)


def test_an_unchanged_build_reuses_the_previous_manifest_file_reading_its_header_first(tmp_path):
    from spark_assets.site.build import reused_build

    ordered = sorted(ARTICLES, key=lambda a: a.slug)
    theme = Theme()
    first = build_site(SITE, tmp_path / "site", articles=lambda: iter(ordered),
                       hub_members=lambda: iter(_members(ARTICLES)), latest=ordered, fingerprint="rows-v1", theme=theme)
    manifest = tmp_path / "b1.json"
    first.write_manifest(manifest, "b1", SITE.domain)
    again = reused_build(SITE, tmp_path / "site", "rows-v1", theme, manifest)
    assert again is not None and again.manifest_hash == first.manifest_hash and again.skipped == len(first.files)
    assert (len(again.files), again.files.html_count, again.bytes) == (len(first.files), first.files.html_count,
                                                                       first.bytes)
    assert sorted(again.files) == sorted(first.files)
    copy = tmp_path / "b2.json"
    again.write_manifest(copy, "b2", SITE.domain)
    assert json.loads(copy.read_text()) == {**json.loads(manifest.read_text()), "build_id": "b2"}
    # anything else: the general way (None)
    assert reused_build(SITE, tmp_path / "site", "rows-v2", theme, manifest) is None
    assert reused_build(SITE, tmp_path / "site", "rows-v1", theme, tmp_path / "none.json") is None
    (tmp_path / "old.json").write_bytes(json.dumps(json.loads(manifest.read_text()), indent=2).encode())
    assert reused_build(SITE, tmp_path / "site", "rows-v1", theme, tmp_path / "old.json") is None
    (tmp_path / "site" / "texas" / "index.html").unlink()
    assert reused_build(SITE, tmp_path / "site", "rows-v1", theme, manifest) is None
