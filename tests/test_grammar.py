"""Grammar of token values in generated articles: articles agree with values, forms, case by position, inline HTML."""

from __future__ import annotations

import json
import re
from datetime import date
from uuid import UUID

import pytest

from spark_assets.content import grammar, spintax
from spark_assets.content.articles import ArticleAssembler, SiteInfo
from spark_assets.content.blueprint import BlueprintError, parse_blueprint
from spark_assets.content.geo import GeoTarget
from spark_assets.content.markup import visible_escaped_markup
from spark_assets.content.permutations import PatternRef, Persona, iter_permutations

GEOS = [
    GeoTarget(UUID(int=i + 1), key, label, state, code, city=city, population=pop)
    for i, (key, label, state, code, city, pop) in enumerate(
        [
            ("oklahoma-city-ok", "Oklahoma City, OK", "Oklahoma", "OK", "Oklahoma City", 681054),
            ("ogden-ut", "Ogden, UT", "Utah", "UT", "Ogden", 87321),
            ("austin-tx", "Austin, TX", "Texas", "TX", "Austin", 961855),
        ]
    )
]
AVATARS = [
    # (avatar, its variant, a pain point): vowel sounds, an acronym, a hyphenated head noun
    ("Office Manager", "Energy-Conscious Family", "uneven cooling"),
    ("HVAC Technician", "Owner of a Small Business", "rising energy bills"),
    ("Busy Homeowner", "Elderly Renter", "a furnace that short-cycles"),
]


def hvac_blueprint(**overrides) -> dict:
    data = {
        "name": "HVAC grammar",
        "headline_spintax_root": "What {a|an} {{avatar}} Should Know About {{pain_point}} in {{state}}",
        "location": {"mode": "city"},
        "avatars": [
            {
                "slug": f"a{i}", "name": avatar, "pain_points": [pain],
                "variants": [{"slug": f"v{i}", "name": variant}],
            }
            for i, (avatar, variant, pain) in enumerate(AVATARS)
        ],
        "patterns": [
            {"slug": "guide", "name": "Guide", "logic": "A {{state}} Guide for {{variant:plural}}: {{pain_point}}"},
            {"slug": "tips", "name": "Tips", "logic": "{{avatar:plural:possessive}} Tips on {{pain_point}}"},
        ],
        "offer_blocks": [{"slug": "o", "name": "O", "html": "<p>Call {{brand}}: a {{avatar}} in {{city}} deserves better.</p>"}],
        "outline": ["intro", "offer", "faq"],
        "headings": {"intro": "When {{pain_point}} Hits {{city:possessive}} Homes"},
        "fragments": {
            "intro": [
                "A {{state}} summer is hard on a {{avatar}}. As {the|a} {{variant}}, {{pain_point}} is the first sign. "
                "{{avatar}} or not, an {{variant}} {needs|wants} a plan."
            ]
        },
        "faq": [{"question": "Is this for a {{avatar}}?", "answer": "Yes: a {{variant}} in {{state}} too."}],
        "target_word_count": 100,
    }
    data.update(overrides)
    return data


def assemble_all(data: dict) -> list:
    blueprint = parse_blueprint(json.dumps(data))
    assembler = ArticleAssembler(
        blueprint=blueprint, campaign_slug="hvac", site=SiteInfo("cool.example", "eCool Air"), geos=GEOS,
        fragment_ids={}, offer_ids={}, blueprint_hash="h", generated_on=date(2026, 1, 1),
    )
    personas = [
        Persona(UUID(int=100 + i), a.slug, a.name, tuple(a.pain_points), UUID(int=200 + i), a.variants[0].slug,
                a.variants[0].name)
        for i, a in enumerate(blueprint.avatars)
    ]
    patterns = [PatternRef(UUID(int=300 + i), p.slug, p.logic) for i, p in enumerate(blueprint.patterns)]
    return [assembler.assemble(p) for p in iter_permutations("cool.example/hvac", GEOS, personas, patterns)]


def _visible_text(article) -> str:
    return " ".join((article.headline, article.title, re.sub(r"<[^>]+>", " ", article.content)))


# an article followed by a word it does not agree with, as a reader would hear it
_DISAGREEING_ARTICLE_RE = re.compile(
    r"\b[Aa] (?:[AEIOaeio]\w*|HVAC|FAQ|SEO|MRI|uneven)\b|\b[Aa]n (?:Utah|URL|UFO|busy|[Bb]usy|rising|[Rr]ising)\b"
)


def test_no_article_disagrees_with_the_token_value_after_it_in_any_part_of_any_article():
    articles = assemble_all(hvac_blueprint())
    assert len(articles) == 18
    texts = [_visible_text(a) for a in articles]
    assert not [m for t in texts for m in _DISAGREEING_ARTICLE_RE.findall(t)]
    joined = " ".join(texts)
    # the fixes a reader sees, in headline, pattern (H1), fragment, FAQ and offer
    for expected in ("What an Office Manager Should Know", "What an HVAC Technician Should Know", "An Oklahoma summer",
                     "A Utah summer", "is hard on an office manager", "an energy-conscious family",
                     "Is this for an HVAC technician?", "a busy homeowner in Austin deserves better", "An Oklahoma Guide"):
        assert expected in joined, expected


def test_case_follows_position_but_names_of_places_and_the_brand_keep_theirs():
    articles = assemble_all(hvac_blueprint())
    titles = {a.title for a in articles}
    headlines = {a.headline for a in articles}
    # a lower-case pain point is title-cased in the H1 and the headline
    assert "An Oklahoma Guide for Energy-Conscious Families: Uneven Cooling" in titles
    assert any("About Rising Energy Bills in Utah" in h for h in headlines)
    assert "What a Busy Homeowner Should Know About a Furnace That Short-Cycles in Texas" in headlines
    contents = " ".join(a.content for a in articles)
    assert "<h2>When Uneven Cooling Hits Oklahoma City&#x27;s Homes</h2>" in contents
    # mid-sentence a Title-Case persona is lower-cased (an acronym keeps its capitals); at a sentence start capitalised
    assert "As the owner of a small business, rising energy bills is the first sign." in contents
    assert "Office manager or not," in contents and "HVAC technician or not," in contents
    assert not re.search(r"\b(oklahoma|utah|austin|ecool)\b", " ".join(_visible_text(a) for a in articles))


@pytest.mark.parametrize(
    ("value", "article"),
    [
        ("Office Manager", "an"), ("HVAC Technician", "an"), ("Energy-Conscious Family", "an"), ("Utah", "a"),
        ("Oklahoma", "an"), ("FAQ", "an"), ("SEO", "an"), ("MRI", "an"), ("URL", "a"), ("UFO", "a"), ("NASA", "a"),
        ("OSHA", "an"), ("hour", "an"), ("unicorn", "a"), ("European", "a"), ("8", "an"), ("18,000", "an"), ("110", "a"),
    ],
)
def test_the_indefinite_article_follows_the_sound_of_the_value(value, article):
    assert grammar.indefinite_article(value) == article
    assert grammar.apply_forms(value, ("a",)) == f"{article} {value}"


def test_forms_on_our_values():
    forms = grammar.apply_forms
    assert forms("Energy-Conscious Family", ("plural",)) == "Energy-Conscious Families"  # inflect alone: "Familys"
    assert forms("Office Manager", ("plural",)) == "Office Managers"
    assert forms("HVAC Technician", ("plural", "lower")) == "HVAC technicians"
    assert forms("Owner of a Small Business", ("plural",)) == "Owners of a Small Business"
    assert forms("Dallas", ("possessive",), proper=True) == "Dallas's"
    assert forms("Homeowner", ("plural", "possessive")) == "Homeowners'"
    assert forms("homeowners", ("possessive",)) == "homeowners'"
    assert forms("Office Manager", ("possessive",)) == "Office Manager's"
    assert forms("uneven cooling in the attic", ("title",)) == "Uneven Cooling in the Attic"
    assert forms("Energy-Conscious Family", ("lower",)) == "energy-conscious family"
    assert forms("uneven cooling", ("cap",)) == forms("uneven cooling", ("upper",)) == "Uneven cooling"
    assert forms("Office Manager", ("lower", "A")) == "An office manager"
    assert forms("Busy Homeowner", ("keep", "a")) == "a Busy Homeowner"
    # places and the brand are never re-cased
    assert forms("Oklahoma City", ("lower",), proper=True) == "Oklahoma City"
    assert forms("eCool Air", ("title", "a"), proper=True) == "an eCool Air"


def test_a_form_is_written_after_a_colon_and_a_pipe_is_still_a_choice():
    assert list(spintax.tokens(spintax.parse("{{ variant : plural:lower }}"))) == [
        spintax.Token("variant", 0, ("plural", "lower"))
    ]
    assert spintax.Token("variant", 0, ("plural", "lower")).key == "variant:plural:lower"
    assert isinstance(spintax.parse("{{avatar|plural}}").nodes[0], spintax.Choice)


def test_an_unknown_form_is_refused_with_its_field_line_and_position_and_the_known_forms():
    with pytest.raises(BlueprintError) as caught:
        parse_blueprint(json.dumps(hvac_blueprint(faq=[{"question": "Q?", "answer": "For {{variant:plurall}}."}]), indent=1))
    message = str(caught.value)
    assert re.search(r"<blueprint>:\d+: faq\[0\]\.answer: unknown form 'plurall' in '\{\{variant:plurall\}\}' "
                     r"at position 4 \(known forms: a, A, plural, possessive, title, lower, cap, upper, keep\)", message)


def test_a_letter_added_after_a_token_is_a_warning_naming_field_position_and_form_but_imports():
    data = hvac_blueprint(headings={"intro": "Tips for {{variant}}s and {{city}}'s {{avatar}}es"})
    warnings: list = []
    parse_blueprint(json.dumps(data, indent=1), "hvac.yaml", warnings)
    # (the SEO warnings come through the same channel: keep the token ones)
    rendered = [w.render("hvac.yaml") for w in warnings if ": write '{{" in w.message]
    assert len(rendered) == 3
    assert re.fullmatch(r"hvac\.yaml:\d+: headings\.intro: '\{\{variant\}\}s' at position 9: write "
                        r"'\{\{variant:plural\}\}' .*", rendered[0])
    assert "'{{city}}'s' at position 26: write '{{city:possessive}}'" in rendered[1]
    assert "'{{avatar}}es' at position 37: write '{{avatar:plural}}'" in rendered[2]
    assert parse_blueprint(json.dumps(hvac_blueprint()), "ok.yaml", warnings := [])
    assert [w for w in warnings if ": write '{{" in w.message] == []


def test_allowed_inline_html_in_a_fragment_renders_as_html_and_prose_stays_text():
    fragment = ('<strong>If you smell gas</strong>, leave. See <a href="/safety/gas/">our guide</a> or '
                '<a href="https://example.org/x">this</a>.<br> It takes < 5 minutes & {{avatar}} <em>can</em> do it.')
    articles = assemble_all(hvac_blueprint(fragments={"intro": [fragment]}))
    content = articles[0].content
    assert ('<strong>If you smell gas</strong>, leave. See <a href="/safety/gas/">our guide</a> or '
            '<a href="https://example.org/x">this</a>.<br> It takes &lt; 5 minutes &amp; office manager <em>can</em>'
            in content)
    assert "visible_escaped_markup" not in articles[0].issues


def test_lists_in_a_fragment_are_not_put_in_a_paragraph():
    articles = assemble_all(hvac_blueprint(fragments={"intro": ["<ul><li>{{pain_point}}</li><li>Noise</li></ul>"]}))
    assert "Homes</h2><ul><li>Uneven cooling</li><li>Noise</li></ul></section>" in articles[0].content


@pytest.mark.parametrize(
    ("fragment", "message"),
    [
        ("Hi <script>alert(1)</script> there", "fragments.intro[1]: <script> is not allowed at position 3"),
        ('Go <a href="javascript:alert(1)">here</a>', 'fragments.intro[1]: <a href="javascript:alert(1)"> is not allowed '
                                                      "at position 3"),
        ('Go <a href="//evil.example/">here</a>', 'fragments.intro[1]: <a href="//evil.example/"> is not allowed'),
        ('A <strong class="x">b</strong>', "fragments.intro[1]: '<strong class=\"x\">' is not allowed at position 2"),
        ('Go <a href="{/x/|/y/}">here</a>', "fragments.intro[1]: a tag must be written whole, not split by spintax"),
        ("<!-- note --> text", "fragments.intro[1]: '<!-- note -->' is not allowed at position 0"),
    ],
)
def test_markup_outside_the_fragment_allow_list_is_refused_at_import_with_field_and_position(fragment, message):
    data = hvac_blueprint(fragments={"intro": ["Fine <em>text</em>.", fragment]})
    with pytest.raises(BlueprintError) as caught:
        parse_blueprint(json.dumps(data, indent=1))
    assert message in str(caught.value)


def test_the_detector_finds_escaped_markup_a_reader_would_see_and_nothing_else():
    assert visible_escaped_markup("<p>&lt;strong&gt;If you smell gas&lt;/strong&gt;</p>") == [
        "&lt;strong&gt;", "&lt;/strong&gt;"
    ]
    assert visible_escaped_markup("<p>Tom &amp;amp; Jerry, &amp;lt;b&amp;gt;</p>") == ["&amp;amp;", "&amp;lt;b&amp;gt;"]
    assert visible_escaped_markup("<p>It takes &lt; 5 minutes &amp; 2 &gt; 1. <strong>Fine</strong></p>") == []


def test_escaped_markup_in_an_article_is_an_issue_the_gate_can_count():
    data = hvac_blueprint(faq=[{"question": "Gas?", "answer": "<strong>If you smell gas</strong>, leave."}])
    articles = assemble_all(data)
    assert "&lt;strong&gt;If you smell gas" in articles[0].content  # FAQ answers are text, not HTML
    assert all("visible_escaped_markup" in a.issues for a in articles)
    assert not any("visible_escaped_markup" in a.issues for a in assemble_all(hvac_blueprint()))


def test_our_article_rules_for_ordinary_words_agree_with_inflect():
    """grammar.py spells out inflect's a/an rules so articles do not cost inflect's import (seconds per process)."""
    import inflect

    engine = inflect.engine()
    words = ["office", "energy-conscious", "oklahoma", "utah", "idaho", "ohio", "hour", "honest", "heir", "unicorn",
             "uniform", "unimportant", "uneven", "umbrella", "urban", "usual", "user", "european", "one-time", "onerous",
             "busy", "elderly", "hvac", "rising", "ukulele"]
    assert {w: grammar.indefinite_article(w) for w in words} == {w: engine.a(w).split(" ", 1)[0] for w in words}
