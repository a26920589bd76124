"""A second trade, read as an SEO editor would: HVAC repair in county mode (tests/fixtures/hvac-county-campaign.yaml,
written without tuning it to the generator), generated through the real assets, then checked with tools that are not
ours: the standard library's HTML parser for what a reader sees, inflect for "a"/"an", a haversine over the zipcodes
package's own coordinates for "nearby"."""

from __future__ import annotations

import math
import re
from collections import defaultdict
from html.parser import HTMLParser

import pytest
import sqlalchemy as sa
from dagster import instance_for_test, materialize

from spark_assets.content.blueprint import load_blueprint
from spark_assets.definitions import content_factory_assets
from spark_assets.records.registry import add_site, import_campaign

from .conftest import REPO_ROOT

FIXTURE = REPO_ROOT / "tests" / "fixtures" / "hvac-county-campaign.yaml"
DOMAIN = "coastal-comfort.example"
KEY = f"{DOMAIN}/hvac-repair"
CHAIN = ["locations", "avatars", "campaign_blueprint", "campaign_geo", "cartesian_permutations", "headlines",
         "articles", "article_quality"]


class _Page(HTMLParser):
    """What a reader sees (text, entities decoded) and every link, by an HTML parser that is not ours."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.hrefs: list[str] = []
        self.nearby: list[str] = []
        self._nav: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "nav":
            self._nav.append(attrs.get("class") or "")
        if tag == "a":
            self.hrefs.append(attrs["href"])
            if self._nav and self._nav[-1] == "nearby":
                self.nearby.append(attrs["href"])

    def handle_endtag(self, tag):
        if tag == "nav" and self._nav:
            self._nav.pop()

    def handle_data(self, data):
        self.text.append(data)


def _read(content: str) -> _Page:
    page = _Page()
    page.feed(content)
    page.close()
    return page


@pytest.fixture(scope="module")
def generated(admin_url, migrated_template):
    """The campaign generated once for the module's tests, on a database of its own."""
    from spark_resources.database import DatabaseResource

    from .conftest import _create_database, _drop_database

    url = _create_database(admin_url, template=migrated_template)
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    blueprint = load_blueprint(FIXTURE)
    with engine.begin() as conn:
        add_site(conn, DOMAIN, "Coastal Comfort HVAC")
        import_campaign(conn, DOMAIN, blueprint)
    with instance_for_test() as instance:
        instance.add_dynamic_partitions("campaign", [KEY])
        for name in CHAIN:
            materialize(content_factory_assets, selection=[name], partition_key=None if name in ("locations", "avatars")
                        else KEY, instance=instance, resources={"database": DatabaseResource(url=url)})
    with engine.connect() as conn:
        articles = [dict(r._mapping) for r in conn.execute(sa.text(
            """SELECT g.slug, g.title, g.seo_title, g.seo_description, g.content, g.quality_issues, geo.location_key,
                      geo.state
               FROM generated_articles g JOIN cartesian_permutations p ON p.id = g.permutation_id
               JOIN geo_intelligence geo ON geo.id = p.geo_id ORDER BY g.slug""")
        )]
        places = conn.execute(sa.text("SELECT location_key, county, state_code, state FROM geo_intelligence")).all()
        report = conn.execute(sa.text("SELECT publishable, near_duplicate_rate FROM campaign_quality")).one()
    yield articles, places, report
    engine.dispose()
    _drop_database(admin_url, url)


def test_it_generates_every_combination(generated):
    articles, places, _ = generated
    assert len(places) == 8  # Rhode Island's 5 counties and Delaware's 3
    assert len({p.location_key for p in places}) == 8  # both states' Kent County keep apart
    assert len(articles) == 8 * 4 * 2


def test_no_a_or_an_disagrees_with_the_word_after_it(generated):
    inflect = pytest.importorskip("inflect").engine()
    slips = []
    for article in generated[0]:
        texts = [article["title"], article["seo_title"] or "", article["seo_description"] or "",
                 " ".join(_read(article["content"]).text)]
        for text in texts:
            for match in re.finditer(r"\b([Aa]n?) ([A-Za-z][\w-]*)", text):
                article_word, word = match.group(1).lower(), match.group(2)
                if word.isupper() and len(word) > 1:
                    # an acronym is read letter by letter: inflect says "a SEO", so judge by the first letter's name
                    wanted = "an" if word[0] in "AEFHILMNORSX" else "a"
                else:
                    wanted = inflect.a(word.lower()).split()[0]
                if article_word != wanted:
                    slips.append(f"{article['slug']}: '{match.group(0)}'")
    assert slips == []


def test_a_reader_never_sees_markup(generated):
    for article in generated[0]:
        page = _read(article["content"])
        visible = " ".join(page.text)
        assert not re.search(r"<\s*/?\s*[a-zA-Z]", visible), (article["slug"], visible)
        assert "&lt;" not in visible and "&amp;" not in visible and "{" not in visible, article["slug"]
        for field in ("title", "seo_title", "seo_description"):
            assert not re.search(r"[<>{}]|&\w+;", article[field] or ""), (article["slug"], field)


def test_titles_and_descriptions_are_written_to_length_and_unique_in_the_site(generated):
    articles = generated[0]
    for article in articles:
        assert 0 < len(article["seo_title"]) <= 60, article["seo_title"]
        assert 120 <= len(article["seo_description"]) <= 155, article["seo_description"]
        assert not article["seo_title"].endswith("…") and not article["seo_description"].endswith("…")
        assert article["seo_description"].endswith((".", "!", "?"))
    for field in ("seo_title", "seo_description", "title"):  # title is the H1
        values = [a[field].casefold() for a in articles]
        assert len(set(values)) == len(values), field


def _zip_centroids() -> dict[tuple[str, str], tuple[float, float]]:
    """County centroids computed here from the zipcodes package's own rows (mean of the ZIP codes' points)."""
    import zipcodes

    points = defaultdict(list)
    for row in zipcodes.filter_by(state="RI") + zipcodes.filter_by(state="DE"):
        if row.get("county") and row.get("lat") and row.get("long"):
            points[(row["state"], row["county"].replace(" County", ""))].append((float(row["lat"]), float(row["long"])))
    return {k: (sum(p[0] for p in v) / len(v), sum(p[1] for p in v) / len(v)) for k, v in points.items()}


def _haversine(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6371 * math.asin(math.sqrt(h))


def test_nearby_links_are_the_nearest_places(generated):
    articles, places, _ = generated
    centroids = _zip_centroids()
    where = {p.location_key: centroids[(p.state_code, p.county.replace(" County", ""))] for p in places}
    by_slug = {a["slug"]: a for a in articles}
    for article in articles:
        nearby = [by_slug[href.strip("/")]["location_key"] for href in _read(article["content"]).nearby]
        assert 3 <= len(nearby) <= 5, article["slug"]
        here = where[article["location_key"]]
        distances = sorted(_haversine(here, where[k]) for k in where if k != article["location_key"])
        linked = [_haversine(here, where[k]) for k in nearby]
        assert linked == sorted(linked), article["slug"]  # nearest first
        assert linked[-1] <= distances[len(nearby) - 1] + 1.0, article["slug"]  # the nearest ones (1 km for rounding)


def test_every_link_goes_to_a_page_the_site_will_have(generated):
    articles, places, _ = generated
    blueprint = load_blueprint(FIXTURE)
    pages = {f"/{a['slug']}/" for a in articles}
    hubs = {f"/{p.location_key}/" for p in places} | {f"/{p.state.lower().replace(' ', '-')}/" for p in places}
    declared = {link.url for link in blueprint.link_targets}
    for article in articles:
        for href in _read(article["content"]).hrefs:
            assert href in pages | hubs | declared, (article["slug"], href)



def test_the_gate_holds_back_what_an_editor_would(generated):
    """Eleven fragments shared by 64 pages make near-copies and thin pages (the same paragraphs in every county): the
    gate says so and blocks publishing, rather than letting `approve --passing` wave them through."""
    articles, _, report = generated
    assert not report.publishable and report.near_duplicate_rate > 0.5
    flagged = [a for a in articles if {"near_duplicate", "thin_content"} & set(a["quality_issues"])]
    assert len(flagged) > len(articles) / 2
    # and what is right is not flagged: no grammar slip, no escaped markup, no link to a page the site will not have
    for article in articles:
        assert not {"article_agreement", "visible_escaped_markup", "broken_link"} & set(article["quality_issues"])
