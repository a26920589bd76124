"""Properties of the pure article assembler for any valid blueprint text: hypothesis writes the spintax."""

from __future__ import annotations

import json
import re
from datetime import date
from uuid import UUID

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from spark_assets.content import spintax
from spark_assets.content.articles import SEO_DESCRIPTION_MAX, SEO_TITLE_MAX, ArticleAssembler, SiteInfo
from spark_assets.content.blueprint import Blueprint, fragment_html_problems, offer_html_problems, parse_blueprint
from spark_assets.content.geo import GeoTarget
from spark_assets.content.grammar import FORMS
from spark_assets.content.permutations import PatternRef, Persona, iter_permutations
from spark_assets.content.tokens import TOKENS, available_tokens

CITY_TOKENS = sorted(available_tokens("city"))
_TEXT = st.text(alphabet="abcdefghijklmnopqrstuvwxyz ABCDEF.,'!?-&<>\"", min_size=1, max_size=14)
# a token, sometimes with forms ("{{variant:plural:lower}}")
_TOKEN = st.tuples(st.sampled_from(CITY_TOKENS), st.lists(st.sampled_from(sorted(FORMS)), max_size=2)).map(
    lambda token: "{{" + ":".join((token[0], *token[1])) + "}}"
)


def _choice(children):
    # each option starts with text, so no option can open with "{" and fuse with the choice's brace into "{{"
    option = st.tuples(_TEXT, children).map("".join)
    return st.lists(option, min_size=1, max_size=3).map(lambda options: "{" + "|".join(options) + "}")


SPINTAX = st.recursive(
    st.one_of(_TEXT, _TOKEN),
    lambda children: st.one_of(_choice(children), st.lists(children, min_size=2, max_size=4).map("".join)),
    max_leaves=14,
)

GEOS = [
    GeoTarget(UUID(int=i + 1), key, label, state, code, city=city, population=pop)
    for i, (key, label, state, code, city, pop) in enumerate(
        [
            ("austin-tx", "Austin, TX", "Texas", "TX", "Austin", 961855),
            ("dallas-tx", "Dallas, TX", "Texas", "TX", "Dallas", 1304379),
            ("miami-fl", "Miami, FL", "Florida", "FL", "Miami", 442241),
        ]
    )
]
PERSONAS = [
    # token values with characters that mean something in spintax or HTML: they must come out as text
    Persona(UUID(int=100), "owner", "Owner <b>|\\", ("leaks & drips",), UUID(int=101), "new", "New | Owner"),
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(
    headline=SPINTAX,
    pattern=SPINTAX,
    fragments=st.lists(SPINTAX, min_size=1, max_size=3),
    offer=SPINTAX,
    question=SPINTAX,
    answer=SPINTAX,
    heading=SPINTAX,
)
def test_every_generated_text_is_free_of_spintax_and_tokens(headline, pattern, fragments, offer, question, answer, heading):
    assume(not offer_html_problems(spintax.parse(offer)))  # random '<' and '>' can spell a tag the allow-list refuses
    assume(not any(fragment_html_problems(fragment) for fragment in fragments))  # and a fragment's "<a" one
    data = {
        "name": "Property campaign",
        "headline_spintax_root": headline,
        "location": {"mode": "city"},
        "avatars": [{"slug": "owner", "name": "Owner", "pain_points": ["leaks"], "variants": [{"slug": "new", "name": "New"}]}],
        "patterns": [{"slug": "p", "name": "P", "logic": pattern}],
        "offer_blocks": [{"slug": "o", "name": "O", "html": offer}],
        "outline": ["intro", "offer", "faq"],
        "headings": {"intro": heading},
        "fragments": {"intro": fragments},
        "faq": [{"question": question, "answer": answer}],
    }
    blueprint = parse_blueprint(json.dumps(data))  # the generated text is valid blueprint spintax
    assembler = ArticleAssembler(
        blueprint=blueprint,
        campaign_slug="property-campaign",
        site=SiteInfo("example.com", "Brand & Sons"),
        geos=GEOS,
        fragment_ids={},
        offer_ids={},
        blueprint_hash="h",
        generated_on=date(2026, 1, 1),
    )
    patterns = [PatternRef(UUID(int=200), "p", pattern)]
    for perm in iter_permutations("example.com/property-campaign", GEOS, PERSONAS, patterns):
        article = assembler.assemble(perm)
        for text in (article.title, article.seo_title, article.seo_description, article.content, article.headline):
            assert "{" not in text and "}" not in text, text
            assert not re.search(r"\{\{\s*(" + "|".join(TOKENS) + r")\s*\}\}", text)
        assert "Owner <b>" not in article.content  # values are escaped in the HTML body
        # written, never cut: what does not fit is flagged for an editor
        assert len(article.seo_title) <= SEO_TITLE_MAX and len(article.seo_description) <= 160  # the columns' limits
        assert 0 < len(article.seo_title) or "seo_title_too_long" in article.issues
        assert len(article.seo_description) <= SEO_DESCRIPTION_MAX or "meta_description_length" in article.issues
        assert "…" not in article.seo_title + article.seo_description or "…" in headline + pattern + "".join(fragments)
        json.dumps(article.schema_json)  # serialisable
        assert "<script" not in article.content.lower() or "<script" in offer.lower()


def test_the_same_inputs_give_the_same_articles():
    blueprint = Blueprint.model_validate(
        {
            "name": "Same",
            "headline_spintax_root": "{A|B|C} roofing in {{city}} for {{variant}}",
            "location": {"mode": "city"},
            "avatars": [{"slug": "owner", "name": "Owner", "pain_points": ["leaks"], "variants": [{"slug": "new", "name": "New"}]}],
            "patterns": [{"slug": "p", "name": "P", "logic": "{Fix|Mend} roofs in {{city}}"}],
            "outline": ["intro"],
            "fragments": {"intro": ["{One|Two|Three} {a|b|c} {x|y|z} in {{location}}.", "Other {d|e} text."]},
        }
    )

    def build():
        assembler = ArticleAssembler(
            blueprint=blueprint, campaign_slug="same", site=SiteInfo("example.com", "Brand"), geos=GEOS,
            fragment_ids={}, offer_ids={}, blueprint_hash="h", generated_on=date(2026, 1, 1),
        )
        patterns = [PatternRef(UUID(int=200), "p", "x")]
        return [assembler.assemble(p) for p in iter_permutations("example.com/same", GEOS, PERSONAS, patterns)]

    assert build() == build()


# --- sanitizing once per template -----------------------------------------------------------------------------------
_MARKUP_PIECES = st.sampled_from([
    "<strong>", "</strong>", "<em>", "</em>", "<p>", "</p>", "<ul><li>", "</li></ul>", '<a href="/roofing/">', "</a>",
    '<a href="https://example.com/?a=1&amp;b=2">', "<script>", "</script>", "<b>", "<!-- ", " -->", "&amp;", "&quot;",
    "&#39;", "&nbsp;", "\xa0", "&", "<", ">", "'", '"', " text ", "{{city}}", "{{avatar:plural}}", "{<em>|plain}",
    "{x & y|z}", "{one|two}", '<a href="/{{city}}/">', "{{pain_point}}",
])
_HOSTILE_VALUE = st.text(alphabet="ab <>&\"'\xa0\r;#x27quot", max_size=12)


@settings(max_examples=300, deadline=None)
@given(pieces=st.lists(_MARKUP_PIECES, min_size=1, max_size=8), values=st.lists(
    st.tuples(_HOSTILE_VALUE, _HOSTILE_VALUE, _HOSTILE_VALUE), min_size=2, max_size=5))
def test_an_offer_sanitized_once_per_template_equals_nh3_on_every_render(pieces, values):
    """The fast path of `_SanitizedTemplate` gives nh3's bytes on every render, for any template and token values
    (html.escape'd, as the assembler passes them): after its first render it no longer asks nh3, so a template or a
    value it misjudges shows up here as a difference."""
    import html
    import random

    from spark_assets.content import grammar
    from spark_assets.content.articles import _SanitizedTemplate
    from spark_assets.content.blueprint import sanitize_offer_html

    text = "".join(pieces)
    try:
        tree = grammar.prepare(spintax.parse(text), "sentence")
    except spintax.SpintaxError:
        assume(False)
    function = spintax.compile_function(spintax.compile_template(tree, lambda t: " ".join(t.split(" "))))
    template = _SanitizedTemplate(text, function, sanitize_offer_html)
    template.checks_left = 1
    for n, (city, avatar, pain) in enumerate(values):
        raw = {"city": city, "avatar": avatar, "pain_point": pain}
        formed = grammar.FormedValues({k: html.escape(v) for k, v in raw.items()}, raw=raw, escape=html.escape)
        render = function(formed, random.Random(n).random)
        assert template(formed, random.Random(n).random) == sanitize_offer_html(render)
