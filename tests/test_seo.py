"""Title tags, meta descriptions, H1s, dates and business facts, as an SEO editor checks them: on the pure assembler."""

from __future__ import annotations

import copy
import json
from datetime import date
from pathlib import Path
from uuid import UUID

import pytest

from spark_assets.content import seo
from spark_assets.content.articles import ArticleAssembler, SiteInfo
from spark_assets.content.blueprint import (
    BlueprintError,
    blueprint_warnings,
    load_blueprint_with_warnings,
    parse_blueprint,
)
from spark_assets.content.geo import GeoTarget
from spark_assets.content.permutations import PatternRef, Persona, iter_permutations

from .conftest import REPO_ROOT

GEOS = [
    GeoTarget(UUID(int=i + 1), key, label, state, code, city=city, population=pop)
    for i, (key, label, state, code, city, pop) in enumerate(
        [
            ("austin-tx", "Austin, TX", "Texas", "TX", "Austin", 961855),
            ("dallas-tx", "Dallas, TX", "Texas", "TX", "Dallas", 1304379),
            ("miami-fl", "Miami, FL", "Florida", "FL", "Miami", 442241),
            ("san-antonio-tx", "San Antonio, TX", "Texas", "TX", "San Antonio", 1434625),
        ]
    )
]
PERSONAS = [
    Persona(UUID(int=100), "owner", "Owner", ("leaks",), UUID(int=101), "new", "New Owner"),
    Persona(UUID(int=100), "owner", "Owner", ("leaks",), UUID(int=102), "retiree", "Retiree"),
]
DESCRIPTION = (
    "{Roof repair|Roofing help} in {{city}}, {{state_code}} for the {{variant}}: {warning signs|signs to watch}, "
    "{repair or replace|costs and materials} and {how to hire|choosing} a roofer you can trust. "
    "{Free quotes.|Free inspections.}"
)
BASE = {
    "name": "Roofs",
    "headline_spintax_root": "{Roof Repair|Roofing} in {{city}} for the {{variant}}",
    "seo_title": "{Roof Repair|Roofing Help|Roof Care} in {{city}} for the {{variant}}",
    "meta_description": DESCRIPTION,
    "location": {"mode": "city"},
    "avatars": [{"slug": "owner", "name": "Owner", "pain_points": ["leaks"],
                 "variants": [{"slug": "new", "name": "New Owner"}, {"slug": "retiree", "name": "Retiree"}]}],
    "patterns": [{"slug": "guide", "name": "Guide", "logic": "{The|A} {{city}} Roof {Guide|Checklist} in {{year}}"},
                 {"slug": "signs", "name": "Signs", "logic": "{Seven|7} Signs Your {{city}} Roof Needs Help"}],
    "outline": ["intro", "faq"],
    "fragments": {"intro": ["Roofs in {{city}} take a beating from {sun|storms}. A {{variant}} should check twice "
                            "a year.", "Every roof in {{location}} ages. Inspect it after storms."]},
    "faq": [{"question": f"Question {i} about {{{{city}}}}?", "answer": f"Answer {i}."} for i in range(5)],
    "business": {"name": "Summit Roofing Co.", "type": "RoofingContractor", "phone": "+1-704-555-0134",
                 "service_area": "Texas and Florida", "image": "https://example.com/crew.jpg",
                 "opening_hours": [{"days": ["Monday", "Friday"], "opens": "08:00", "closes": "17:00"}]},
}


def _blueprint(**changes):
    data = copy.deepcopy(BASE)
    data.update(changes)
    return parse_blueprint(json.dumps(data))


def _articles(blueprint, on=date(2026, 6, 1), site_taken=None, campaign="example.com/roofs"):
    taken = site_taken or {}
    assembler = ArticleAssembler(
        blueprint=blueprint, campaign_slug=campaign.split("/")[1], site=SiteInfo("example.com", "Summit"), geos=GEOS,
        fragment_ids={}, offer_ids={}, blueprint_hash="h", generated_on=on,
        taken_titles=taken.get("titles"), taken_descriptions=taken.get("descriptions"), taken_h1s=taken.get("h1s"),
    )
    patterns = [PatternRef(UUID(int=200 + i), p.slug, p.logic) for i, p in enumerate(blueprint.patterns)]
    return [assembler.assemble(p) for p in iter_permutations(campaign, GEOS, PERSONAS, patterns)]


def test_titles_and_descriptions_are_written_within_limits_and_unique():
    articles = _articles(_blueprint())
    titles = [a.seo_title for a in articles]
    descriptions = [a.seo_description for a in articles]
    assert all(len(t) <= 60 for t in titles) and len(set(map(str.casefold, titles))) == len(titles)
    assert all(120 <= len(d) <= 155 for d in descriptions), [len(d) for d in descriptions]
    assert len(set(descriptions)) == len(descriptions)
    assert not any("…" in t + d for t, d in zip(titles, descriptions))
    assert all(d.endswith(("quotes.", "inspections.")) for d in descriptions)  # whole sentences as written
    assert not any(set(a.issues) & {"seo_title_too_long", "duplicate_seo_title", "meta_description_length",
                                    "duplicate_meta_description", "duplicate_h1"} for a in articles)


def test_the_same_inputs_choose_the_same_fields():
    first, second = _articles(_blueprint()), _articles(_blueprint())
    assert [(a.seo_title, a.seo_description, a.title) for a in first] == [
        (a.seo_title, a.seo_description, a.title) for a in second
    ]


def test_a_pattern_seo_title_overrides_the_campaign_one():
    data = copy.deepcopy(BASE["patterns"])
    data[1]["seo_title"] = "{Roof Warning Signs|Roof Damage Signs} in {{city}}: {{variant}}"
    articles = _articles(_blueprint(patterns=data))
    signs = [a for a in articles if "Signs" in a.title]
    assert signs and all(a.seo_title.startswith(("Roof Warning Signs", "Roof Damage Signs")) for a in signs)
    assert not any(a.seo_title.startswith("Roof Warning") for a in articles if a not in signs)


def test_a_title_that_cannot_fit_is_flagged_not_cut():
    long_title = "The Complete and Definitive Roofing Handbook for Every Homeowner in {{city}}"
    articles = _articles(_blueprint(seo_title=long_title))
    # nothing fits in 60 characters: stored empty (the column holds 60) and flagged, never cut
    assert all(a.seo_title == "" and "seo_title_too_long" in a.issues for a in articles)


def test_titles_used_by_the_sites_other_campaigns_are_avoided_or_flagged():
    other = _articles(_blueprint(), campaign="example.com/other")
    taken = {"titles": {seo.digest(a.seo_title) for a in other},
             "descriptions": {seo.digest(a.seo_description) for a in other},
             "h1s": {seo.digest(a.title) for a in other}}
    ours = _articles(_blueprint(), site_taken=taken)
    for a in ours:
        assert seo.digest(a.seo_title) not in taken["titles"] or "duplicate_seo_title" in a.issues
        assert seo.digest(a.seo_description) not in taken["descriptions"] or "duplicate_meta_description" in a.issues
        assert seo.digest(a.title) not in taken["h1s"] or "duplicate_h1" in a.issues
    # the templates have room (3 title and 8 description wordings per place and persona): most avoid the other campaign
    assert sum("duplicate_meta_description" in a.issues for a in ours) == 0


def test_an_h1_without_a_place_repeats_and_is_flagged_and_warned():
    patterns = [{"slug": "generic", "name": "Generic", "logic": "Roof Repair Tips"}]
    blueprint = _blueprint(patterns=patterns)
    articles = _articles(blueprint)
    assert articles[0].title == "Roof Repair Tips" and "duplicate_h1" not in articles[0].issues
    assert all("duplicate_h1" in a.issues for a in articles[1:])
    warnings = blueprint_warnings(blueprint)
    assert any(w.field == "patterns[0].logic" and "no place token" in w.message for w in warnings)


def test_h1s_walk_their_variations_to_stay_unique():
    patterns = [{"slug": "guide", "name": "Guide", "logic": "{The|A|Your} {{city}} Roof {Guide|Checklist|Plan}"}]
    articles = _articles(_blueprint(patterns=patterns))  # 2 personas per city: 9 H1 variations per city are plenty
    assert len({a.title for a in articles}) == len(articles)
    assert not any("duplicate_h1" in a.issues for a in articles)


def test_year_is_the_generation_year_and_only_articles_using_it_change():
    in_2026 = {a.id: a for a in _articles(_blueprint(), on=date(2026, 12, 31))}
    in_2027 = {a.id: a for a in _articles(_blueprint(), on=date(2027, 1, 1))}
    changed = {i for i in in_2026 if in_2026[i].content_hash != in_2027[i].content_hash}
    uses_year = {i for i, a in in_2026.items() if "2026" in a.title + a.content + a.seo_title + a.seo_description}
    assert changed == uses_year and uses_year  # the "guide" pattern says the year; "signs" does not
    assert all("2027" in in_2027[i].title for i in changed)
    # another day of the same year changes nothing
    same_year = {a.id: a.content_hash for a in _articles(_blueprint(), on=date(2026, 1, 2))}
    assert same_year == {i: a.content_hash for i, a in in_2026.items()}


def test_json_ld_holds_the_business_and_no_publication_dates():
    article = _articles(_blueprint())[0]
    graph = {node["@type"]: node for node in article.schema_json["@graph"]}
    assert "datePublished" not in graph["Article"] and "dateModified" not in graph["Article"]
    business = graph["RoofingContractor"]
    assert business["name"] == "Summit Roofing Co." and business["telephone"] == "+1-704-555-0134"
    assert business["areaServed"]["@type"] == "City" and business["areaServed"]["name"] in {g.label for g in GEOS}
    assert graph["Article"]["image"] == "https://example.com/crew.jpg"
    text = json.dumps(article.schema_json)
    assert "aggregateRating" not in text and "review" not in text.lower()  # never invented


def test_faq_per_article_picks_k_of_n_deterministically():
    articles = _articles(_blueprint(faq_per_article=2))
    for a in articles:
        faq = next(n for n in a.schema_json["@graph"] if n["@type"] == "FAQPage")
        assert len(faq["mainEntity"]) == 2
        assert a.content.count("<h3>") == 2
    picks = {tuple(q["name"] for q in next(n for n in a.schema_json["@graph"] if n["@type"] == "FAQPage")["mainEntity"])
             for a in articles}
    assert len(picks) > 1  # articles differ in which questions they show
    assert [a.content for a in articles] == [a.content for a in _articles(_blueprint(faq_per_article=2))]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"business": {**BASE["business"], "type": "RoofingWizard"}}, "supported schema.org LocalBusiness types"),
        ({"business": {**BASE["business"], "logo": "http://example.com/logo.png"}}, "must be an https:// URL"),
        ({"business": {k: v for k, v in BASE["business"].items() if k != "service_area"}}, "address or a service_area"),
        ({"business": {**BASE["business"], "opening_hours": [{"days": ["Mon"], "opens": "8", "closes": "17:00"}]}},
         "business.opening_hours[0].days[0]"),
        ({"seo_title": "{Roof|} in {{city}}"}, "seo_title: malformed spintax"),
        ({"meta_description": "Roofs in {{county}}."}, "meta_description: token '{{county}}' is not available"),
        ({"faq_per_article": 9}, "only 5 faq entries"),
    ],
)
def test_new_fields_are_validated_with_their_field(change, message):
    with pytest.raises(BlueprintError) as error:
        _blueprint(**change)
    assert message in str(error.value)


def test_templates_that_cannot_fit_for_the_longest_places_are_warned_with_field_and_line(tmp_path: Path):
    data = copy.deepcopy(BASE)
    data["seo_title"] = "Everything a {{variant}} Should Know in {{location}}"
    text = json.dumps(data, indent=1)  # JSON is YAML: one field per line
    path = tmp_path / "roofs.yaml"
    path.write_text(text)
    _, warnings = load_blueprint_with_warnings(path)
    (warning,) = [w for w in warnings if w.field == "seo_title"]
    assert "no variation fits in 60 characters" in warning.message and "estimated" in warning.message
    assert warning.line == next(i for i, line in enumerate(text.splitlines(), 1) if '"seo_title"' in line)
    # with the campaign's real (short) places it fits: no warning
    assert not [w for w in blueprint_warnings(_blueprint(seo_title=data["seo_title"]),
                                              longest={"location": 10}) if w.field == "seo_title"]


def test_the_agreement_detector_finds_a_before_a_vowel_but_not_the_exceptions():
    assert seo.agreement_slips("Call a Office today, or a estimator.") == ["a Office", "a estimator"]
    assert seo.agreement_slips("a one-time fee, a university, a US company, a unit, an office, A usual day") == []


def test_the_demo_blueprint_is_clean():
    blueprint, warnings = load_blueprint_with_warnings(REPO_ROOT / "examples" / "demo-roofing.yaml")
    assert blueprint.business is not None and blueprint.seo_title and blueprint.meta_description
    assert [w for w in warnings if "place token" in w.message] == []
    for fragment in [t for texts in blueprint.fragments.values() for t in texts]:
        assert seo.agreement_slips(fragment) == []
    assert "Should Know" not in blueprint.patterns[2].logic.split("|")[0] or "What" in blueprint.patterns[2].logic
    assert "Roughly} {{population}}" not in json.dumps(blueprint.fragments) and "About|Roughly" not in json.dumps(
        blueprint.fragments
    )


SCHEMAORG = REPO_ROOT / "tests" / "fixtures" / "schemaorg"


def test_json_ld_expands_with_an_independent_parser_to_schema_org_types_only():
    from pyld import jsonld

    from spark_assets.content.business import BUSINESS_TYPES

    context = json.loads((SCHEMAORG / "context.jsonld").read_text())

    def loader(url, options=None):  # pyld cannot fetch offline: schema.org's context is vendored (reduced)
        assert url.rstrip("/") in ("https://schema.org", "http://schema.org"), url
        return {"contentType": "application/ld+json", "contextUrl": None, "documentUrl": url, "document": context}

    known = {f"https://schema.org/{t}" for t in (SCHEMAORG / "types.txt").read_text().split()}
    known |= {f"https://schema.org/{t}" for t in BUSINESS_TYPES}
    for article in _articles(_blueprint(faq_per_article=3))[:4]:
        expanded = jsonld.expand(article.schema_json, {"documentLoader": loader})
        flat = jsonld.flatten(expanded, None, {"documentLoader": loader})
        types = {t for node in flat for t in node.get("@type", [])}
        assert types <= known, types - known
        business = next(n for n in flat if "https://schema.org/RoofingContractor" in n.get("@type", []))
        area = next(n for n in flat if n["@id"] == business["https://schema.org/areaServed"][0]["@id"])
        assert area["@type"] == ["https://schema.org/City"]
        assert area["https://schema.org/name"][0]["@value"] in {g.label for g in GEOS}
        article_node = next(n for n in flat if "https://schema.org/Article" in n.get("@type", []))
        assert article_node["https://schema.org/image"] == [{"@id": "https://example.com/crew.jpg"}]
        assert "https://schema.org/datePublished" not in article_node


def test_a_link_leads_somewhere_the_site_will_have_or_is_broken():
    from spark_assets.content.quality import broken_links

    content = ('<p><a href="/austin-tx-guide/">a</a> <a href="/texas/">b</a> <a href="/services/x">c</a> '
               '<a href="https://partner.example/y">d</a> <a href="/nowhere/">e</a> <a href="//evil.example/">f</a> '
               '<a href="javascript:alert(1)">g</a> <a href="relative/">h</a></p>')
    pages = {"/austin-tx-guide/", "/texas/"}
    assert broken_links(content, pages, {"/services/x"}) == [
        "/nowhere/", "//evil.example/", "javascript:alert(1)", "relative/"
    ]


def test_a_link_target_without_a_trailing_slash_is_warned_with_the_path_to_write():
    targets = [{"url": "/contact", "anchor": "contact us"}, {"url": "/services/roof-repair/", "anchor": "roof repair"},
               {"url": "/files/guide.pdf", "anchor": "the guide"}, {"url": "https://partner.example/x", "anchor": "x"}]
    warnings = [w for w in blueprint_warnings(_blueprint(link_targets=targets)) if w.field.startswith("link_targets")]
    assert [(w.field, "write '/contact/'" in w.message) for w in warnings] == [("link_targets[0].url", True)]
