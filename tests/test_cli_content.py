"""The content side of the operator CLI against a real PostgreSQL: `spark campaign generate`, `spark campaign list`
with its counts, `spark articles list` filters and paging, `spark articles show`, and the hints a bad blueprint gets."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from dagster import AssetKey, DagsterInstance

from spark_assets.ops.cli import main
from spark_assets.ops.generate import CAMPAIGN_ASSETS

from .conftest import DEMO_BLUEPRINT, REPO_ROOT
from .test_cli import _blueprint

SMALL = REPO_ROOT / "tests" / "fixtures" / "small-campaign.yaml"
KEY = "gutters.example/gutter-cleaning"


@pytest.fixture
def spark(database_url, monkeypatch, tmp_path):
    """Run `spark ...` against the test database and a Dagster instance of the test's own; returns the click Result
    (stdout and stderr kept apart, so a test sees where a message goes)."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    try:
        runner = CliRunner(mix_stderr=False)  # click 8.1; from 8.2 stderr is always kept apart
    except TypeError:
        runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(main, list(args), catch_exceptions=False)

    return invoke


def test_campaign_generate_materializes_the_chain_into_the_instance_and_says_what_changed(spark, tmp_path):
    assert spark("site", "add", "gutters.example", "--brand", "Gutter Pros").exit_code == 0
    assert spark("campaign", "import", str(SMALL), "--site", "gutters.example").exit_code == 0

    first = spark("campaign", "generate", KEY)

    assert first.exit_code == 0, first.stderr
    steps = [line for line in first.stdout.splitlines() if line.startswith("-> materialize")]
    # no locations yet: they are loaded first, then the campaign's assets in dependency order
    order = [s.split()[3] for s in steps]
    assert order[0] == "locations" and sorted(order[1:]) == sorted(CAMPAIGN_ASSETS)
    assert order.index("campaign_blueprint") < order.index("campaign_geo") < order.index("cartesian_permutations")
    assert order[-3:] == ["headlines", "articles", "article_quality"]
    assert f"materialize {order.index('campaign_geo') + 1}/8 campaign_geo [{KEY}]" in first.stdout
    print(first.stdout)  # shown when the test fails: what an operator saw
    assert f"{KEY}: articles 12 new, 0 changed, 0 unchanged" in first.stdout
    assert "quality gate: publishable (near-duplicate rate" in first.stdout
    instance = DagsterInstance.get()  # the instance in $DAGSTER_HOME, which `spark ui` opens
    assert KEY in instance.get_dynamic_partitions("campaign")
    for name in ("campaign_blueprint", "campaign_geo", "cartesian_permutations", "headlines", "articles",
                 "article_quality"):
        assert instance.get_materialized_partitions(AssetKey(name)) == {KEY}, name
    assert instance.get_latest_materialization_event(AssetKey("avatars")) is not None

    again = spark("campaign", "generate", KEY)
    assert again.exit_code == 0, again.stderr
    assert "locations" not in again.stdout  # loaded already
    assert f"{KEY} already present" in again.stdout
    assert f"{KEY}: articles 0 new, 0 changed, 12 unchanged" in again.stdout

    listing = spark("campaign", "list")
    header, row = listing.stdout.splitlines()
    assert header.split()[:8] == ["CAMPAIGN", "STATUS", "ARTICLES", "DRAFT", "APPROVED", "PUBLISHED", "ISSUES",
                                  "QUALITY"]
    # ISSUES: the articles whose quality issues `articles list` shows (the small fixture has no meta_description, so
    # its intros make descriptions of the wrong length: flagged, not blocking)
    flagged = [line for line in spark("articles", "list", "--campaign", KEY).stdout.splitlines() if line.endswith("]")]
    assert row.split()[:8] == [KEY, "active", "12", "12", "0", "0", str(len(flagged)), "publishable"]
    assert 0 < len(flagged) < 12

    page = spark("articles", "list", "--campaign", KEY, "--limit", "5", "--offset", "5")
    lines = page.stdout.splitlines()
    assert lines[:2] == ["draft: 12", "showing 6–10 of 12"]
    assert len([line for line in lines if line.startswith("draft ")]) == 5
    assert lines[-1] == "next page: --offset 10"

    houston = spark("articles", "list", "--campaign", KEY, "--place", "houston")
    assert "showing 1–4 of 4" in houston.stdout  # 1 avatar x 2 variants x 2 patterns in each city
    assert all("houston" in line for line in houston.stdout.splitlines() if line.startswith("draft "))

    assert "no articles match" in spark("articles", "list", "--campaign", KEY, "--status", "approved").stdout
    assert "no articles match" in spark("articles", "list", "--campaign", KEY, "--issue", "near_duplicate").stdout


def test_campaign_generate_of_an_unknown_campaign_says_how_to_list_them(spark):
    result = spark("campaign", "generate", "nowhere.example/nothing")
    assert result.exit_code == 1
    assert result.stderr == (
        "error: campaign 'nowhere.example/nothing' is not registered: `spark campaign list` shows the campaigns\n"
    )
    assert result.stdout == ""


def test_a_failed_asset_stops_campaign_generate_with_one_line_naming_it(spark, engine):
    spark("site", "add", "gutters.example")
    spark("campaign", "import", str(SMALL), "--site", "gutters.example")
    with engine.begin() as conn:  # a stored blueprint that no longer validates: campaign_blueprint refuses it
        conn.execute(sa.text("""UPDATE campaign_masters SET blueprint = blueprint - 'headline_spintax_root'"""))

    result = spark("campaign", "generate", KEY)

    assert result.exit_code == 1
    # the first asset to read the stored blueprint fails (avatars reads every campaign's), and says why
    failed = result.stderr.split(" failed: ")[0]
    assert failed in ("error: avatars", f"error: campaign_blueprint [{KEY}]")
    assert "validation error for Blueprint headline_spintax_root" in result.stderr
    assert result.stderr.endswith("(the full log is in the Dagster UI: `spark ui`)\n")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert "quality gate" not in result.stdout  # no summary of a generation that did not happen


def _site_with_articles(engine, domain: str, articles: list[dict], quality: bool | None = None) -> None:
    """A site, a campaign and hand-made article rows (and its quality report's verdict, if given)."""
    with engine.begin() as conn:
        site = conn.execute(sa.text("INSERT INTO sites (domain, name) VALUES (:d, :d) RETURNING id"), {"d": domain})
        site_id = site.scalar_one()
        campaign_id = conn.execute(
            sa.text("""INSERT INTO campaign_masters (site_id, slug, name, headline_spintax_root, location_mode,
                                                    blueprint, blueprint_hash)
                       VALUES (:s, 'roofs', 'Roofs', 'Roofs', 'city', '{}'::jsonb, 'abc') RETURNING id"""),
            {"s": site_id},
        ).scalar_one()
        for article in articles:
            conn.execute(
                sa.text(
                    """INSERT INTO generated_articles (site_id, campaign_id, slug, title, content, status, is_published,
                                                       seo_title, seo_description, word_count, quality_issues,
                                                       provenance)
                       VALUES (:s, :c, :slug, :title, :content, :status, :status = 'published', :seo_title, :seo_desc,
                               :words, CAST(:issues AS jsonb), CAST(:provenance AS jsonb))"""
                ),
                {"s": site_id, "c": campaign_id, "title": "A title", "content": "<p>x</p>", "status": "draft",
                 "seo_title": None, "seo_desc": None, "words": 1, "provenance": None,
                 **article, "issues": json.dumps(article.get("issues", []))},
            )
        if quality is not None:
            conn.execute(
                sa.text("""INSERT INTO campaign_quality (campaign_id, articles, near_duplicate_rate,
                                                         max_near_duplicate_rate, similarity_threshold, publishable)
                           VALUES (:c, :n, 0, 0.1, 0.8, :ok)"""),
                {"c": campaign_id, "n": len(articles), "ok": quality},
            )


ARTICLE_HTML = (
    "<article><h1>Roof Repair in Austin, TX</h1><p>Storms &amp; hail are hard on\n   roofs.</p>"
    "<h2>What we check</h2><ul><li>Shingles</li><li>Flashing and <b>vents</b></li></ul>"
    '<p>See <a href="https://roofs.example/roof-repair-dallas-tx/">roof repair in Dallas</a> or the '
    '<a href="https://www.energy.gov/roofs">DOE guide</a>.</p>'
    '<script type="application/ld+json">{"@type": "Article"}</script></article>'
)


def test_articles_show_prints_the_article_as_a_reader_sees_it_with_status_issues_and_provenance(spark, engine):
    provenance = {"combination": "austin-tx/homeowner/new-owner/guide", "blueprint_hash": "0123456789abcdef",
                  "fragments": [{"section": "intro", "position": 0, "fragment_id": "f"}] * 3,
                  "faq_fragment_ids": ["q", "r"], "offer_block_id": "o"}
    _site_with_articles(engine, "roofs.example", [
        {"slug": "roof-repair-austin-tx", "title": "Roof Repair in Austin, TX", "content": ARTICLE_HTML,
         "seo_title": "Roof Repair Austin", "seo_desc": "Fast roof repair in Austin.", "words": 17,
         "issues": ["word_count_low"], "provenance": json.dumps(provenance)},
    ])

    shown = spark("articles", "show", "roof-repair-austin-tx")

    assert shown.exit_code == 0, shown.stderr
    assert shown.stdout.splitlines()[:7] == [
        "Roof Repair in Austin, TX",
        "https://roofs.example/roof-repair-austin-tx/",
        "SEO title:       Roof Repair Austin",
        "SEO description: Fast roof repair in Austin.",
        "status: draft   words: 17   place: -   campaign: roofs.example/roofs",
        "quality issues: word_count_low",
        "provenance: combination austin-tx/homeowner/new-owner/guide, 3 fragment(s), 2 FAQ answer(s), an offer block, "
        "blueprint 0123456789ab",
    ]
    body = shown.stdout.split("\n\n", 1)[1]
    assert body == (
        "Roof Repair in Austin, TX\n=========================\n\nStorms & hail are hard on roofs.\n\n"
        "What we check\n-------------\n  - Shingles\n  - Flashing and vents\n\n"
        "See roof repair in Dallas (/roof-repair-dallas-tx/) or the DOE guide (https://www.energy.gov/roofs).\n"
    )

    raw = spark("articles", "show", "roof-repair-austin-tx", "--html")
    assert raw.stdout.endswith(ARTICLE_HTML + "\n")


def test_articles_show_asks_for_the_site_when_a_slug_is_on_several_and_names_an_unknown_one(spark, engine):
    for domain in ("roofs.example", "gutters.example"):
        _site_with_articles(engine, domain, [{"slug": "about-us", "title": f"About {domain}"}])

    ambiguous = spark("articles", "show", "about-us")
    assert ambiguous.exit_code == 1
    assert ambiguous.stderr == ("error: 'about-us' is an article of several sites (gutters.example, roofs.example): "
                                "say which with --site DOMAIN\n")

    chosen = spark("articles", "show", "about-us", "--site", "Roofs.Example")
    assert chosen.exit_code == 0 and chosen.stdout.startswith("About roofs.example\n")

    missing = spark("articles", "show", "nope", "--site", "roofs.example")
    assert missing.exit_code == 1
    assert missing.stderr.startswith("error: no article 'nope' on roofs.example: ")


def test_campaign_list_counts_every_campaign_in_one_query(spark, engine):
    _site_with_articles(engine, "a.example", [
        {"slug": "one", "status": "draft", "issues": ["near_duplicate"]},
        {"slug": "two", "status": "approved"},
        {"slug": "three", "status": "published"},
    ], quality=True)
    spark("campaign", "list")  # the first connection's setup queries are not the listing's

    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", count)
    try:
        one = spark("campaign", "list")
        queries_for_one = len(statements)
        _site_with_articles(engine, "b.example", [{"slug": "x", "issues": ["unresolved_markup"]}], quality=False)
        _site_with_articles(engine, "c.example", [])
        statements.clear()
        three = spark("campaign", "list")
        queries_for_three = len([s for s in statements if "campaign_masters" in s])
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", count)

    assert one.stdout.splitlines()[1].split()[:8] == ["a.example/roofs", "active", "3", "1", "1", "1", "1",
                                                      "publishable"]
    rows = [line.split()[:8] for line in three.stdout.splitlines()[1:]]
    assert rows[1] == ["b.example/roofs", "active", "1", "1", "0", "0", "1", "blocked"]
    assert rows[2] == ["c.example/roofs", "active", "0", "0", "0", "0", "0", "none"]
    assert queries_for_three == 1 and queries_for_one <= 1


@pytest.mark.parametrize(
    "mutate, hint",
    [
        pytest.param(lambda d: d["patterns"][0].update(logic="Roofs in {{ciy}}"), "did you mean {{city}}?",
                     id="misspelt-token"),
        pytest.param(lambda d: d.update(target_word_cont=900), "unknown field 'target_word_cont'; "
                     "did you mean 'target_word_count'?", id="misspelt-key"),
        pytest.param(lambda d: d["avatars"][0].update(variantz=[]), "avatars[0]: unknown field 'variantz'; "
                     "did you mean 'variants'?", id="misspelt-nested-key"),
        pytest.param(lambda d: d["location"].update(mod="city"), "location: unknown field 'mod'; did you mean 'mode'?",
                     id="misspelt-location-key"),
    ],
)
def test_a_misspelt_blueprint_name_gets_the_nearest_valid_one(spark, tmp_path, mutate, hint):
    result = spark("campaign", "import", str(_blueprint(tmp_path, mutate)), "--site", "demo-roofing.example")
    assert result.exit_code == 1
    assert hint in result.stderr


def test_an_unquoted_value_starting_with_a_brace_gets_a_hint_to_quote_it(spark, tmp_path):
    path = tmp_path / "campaign.yaml"
    text = DEMO_BLUEPRINT.read_text()
    lines = text.splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith("headline_spintax_root:"))
    lines[index] = "headline_spintax_root: {Best|Top} Roofers in {{city}}"
    path.write_text("\n".join(lines) + "\n")

    result = spark("campaign", "import", str(path), "--site", "demo-roofing.example")

    assert result.exit_code == 1
    assert f"{path}:{index + 1}: not valid YAML" in result.stderr
    hint = f"(line {index + 1}: a value that starts with '{{' is read as a YAML mapping: put it in quotes)"
    assert hint in result.stderr


def test_lower_case_state_codes_are_accepted_as_upper_case(spark, engine, tmp_path):
    spark("site", "add", "demo-roofing.example")
    path = _blueprint(tmp_path, lambda d: d["location"].update(states=["tx", "ok"]))

    result = spark("campaign", "import", str(path), "--site", "demo-roofing.example")

    assert result.exit_code == 0, result.stderr
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT blueprint -> 'location' -> 'states' FROM campaign_masters")).scalar_one()
    assert stored == ["TX", "OK"]
