"""The operator CLI against a real PostgreSQL: what an operator types, what they read back, and that bad input writes
nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from click.testing import CliRunner

from spark_assets.ops.cli import main

from .conftest import DEMO_BLUEPRINT, database_snapshot


@pytest.fixture
def spark(database_url, monkeypatch):
    """Run `spark ...` against the test database; returns the click Result."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(main, list(args), catch_exceptions=False)

    return invoke


def _blueprint(tmp_path: Path, mutate) -> Path:
    """The demo blueprint with one change applied, written to a file named after the test."""
    data = yaml.safe_load(DEMO_BLUEPRINT.read_text())
    mutate(data)
    path = tmp_path / "campaign.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_site_add_list_and_add_again(spark):
    added = spark("site", "add", "Demo-Roofing.Example", "--brand", "Summit Roofing Co.")
    assert added.exit_code == 0
    assert "registered: demo-roofing.example (Summit Roofing Co.)" in added.output

    again = spark("site", "add", "demo-roofing.example")
    assert again.exit_code == 0 and "already registered" in again.output

    listing = spark("site", "list")
    assert "demo-roofing.example" in listing.output and "Summit Roofing Co." in listing.output
    assert listing.output.count("demo-roofing.example") == 1


@pytest.mark.parametrize(
    "domain, phrase",
    [
        ("https://demo.example/", "is a URL, not a domain"),
        ("localhost", "has no top-level domain"),
        ("bad_name.example", "must be 1-63 letters"),
        ("demo.example:8080", "has a port"),
        ("www.demo.example", "register the apex domain, not its www host: `spark site add demo.example`"),
    ],
)
def test_site_add_rejects_an_invalid_domain_and_writes_nothing(spark, engine, domain, phrase):
    before = database_snapshot(engine)
    result = spark("site", "add", domain)
    assert result.exit_code == 1
    assert phrase in result.output
    assert database_snapshot(engine) == before


def test_campaign_import_creates_then_is_unchanged_then_updates_in_place(spark, engine, tmp_path):
    spark("site", "add", "demo-roofing.example")
    created = spark("campaign", "import", str(DEMO_BLUEPRINT), "--site", "demo-roofing.example")
    assert created.exit_code == 0, created.output
    assert "created: demo-roofing.example/roof-repair-replacement" in created.output
    with engine.connect() as conn:
        first_id = conn.execute(sa.text("SELECT id FROM campaign_masters")).scalar_one()

    same = spark("campaign", "import", str(DEMO_BLUEPRINT), "--site", "demo-roofing.example")
    assert "unchanged: demo-roofing.example/roof-repair-replacement" in same.output

    edited = _blueprint(tmp_path, lambda d: d.update(target_word_count=1100))
    updated = spark("campaign", "import", str(edited), "--site", "demo-roofing.example")
    assert "updated: demo-roofing.example/roof-repair-replacement" in updated.output
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT id, target_word_count FROM campaign_masters")).all()
    assert rows == [(first_id, 1100)]

    listing = spark("campaign", "list")
    assert "demo-roofing.example/roof-repair-replacement" in listing.output


def test_campaign_import_for_an_unknown_site_is_refused(spark, engine):
    before = database_snapshot(engine)
    result = spark("campaign", "import", str(DEMO_BLUEPRINT), "--site", "nowhere.example")
    assert result.exit_code == 1
    assert "site 'nowhere.example' is not registered" in result.output
    assert database_snapshot(engine) == before


def _set(path: str, value):
    """A mutation that sets a nested field, e.g. _set('fragments.intro_hook.0', '...')."""

    def mutate(data):
        *parents, last = path.split(".")
        node = data
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        if last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


def _delete(field: str):
    return lambda data: data.pop(field)


BAD_BLUEPRINTS = [
    pytest.param(_set("colour", "red"), ["unknown field 'colour'"], id="unknown-key"),
    pytest.param(_set("avatars.0.mood", "calm"), ["avatars[0]: unknown field 'mood'"], id="unknown-nested-key"),
    pytest.param(_delete("headline_spintax_root"), ["missing required field 'headline_spintax_root'"], id="missing"),
    pytest.param(
        _set("headline_spintax_root", "{Best|Top Roofers in {{city}}"),
        ["headline_spintax_root: malformed spintax: unbalanced '{'", "at position 0"],
        id="unbalanced-brace",
    ),
    pytest.param(
        _set("fragments.pillar_1.1", "Roofs {age||wear} fast in {{city}}."),
        ["fragments.pillar_1[1]: malformed spintax: empty option in '{...}' at position 11"],
        id="empty-option",
    ),
    pytest.param(
        _set("fragments.conclusion.0", "Call {{brand}} today}"),
        ["fragments.conclusion[0]: malformed spintax: unmatched '}' at position 20"],
        id="unmatched-close",
    ),
    pytest.param(
        _set("patterns.0.logic", "Roof help for {{ciy}}"),
        ["patterns[0].logic: unknown token '{{ciy}}'", "at position 14"],
        id="unknown-token",
    ),
    pytest.param(
        _set("faq.0.answer", "We cover all of {{county}}."),
        ["faq[0].answer: token '{{county}}' is not available in location mode 'city'"],
        id="token-not-in-mode",
    ),
    pytest.param(
        _set("slug", "../etc/passwd"), ["slug: slug '../etc/passwd' is not URL-safe"], id="unsafe-slug"
    ),
    pytest.param(
        _set("avatars.0.variants.0.slug", "First Time"), ["avatars[0].variants[0].slug: slug 'First Time'"],
        id="unsafe-variant-slug",
    ),
    pytest.param(
        _set("link_targets.0.url", "javascript:alert(1)"), ["link_targets[0].url: 'javascript:alert(1)' must be"],
        id="unsafe-link",
    ),
    pytest.param(_set("location.states", ["TX", "XX"]), ["unknown state code(s) 'XX'"], id="unknown-state"),
    pytest.param(_set("outline", ["intro_hook", "pillar_9"]), ["outline section 'pillar_9'"], id="bad-outline"),
    pytest.param(
        _set("patterns.0.logic", "Help for {{variant:plurl}}"),
        ["patterns[0].logic: unknown form 'plurl' in '{{variant:plurl}}' at position 9 (known forms: a, A, plural"],
        id="unknown-token-form",
    ),
    pytest.param(
        _set("fragments.conclusion.0", 'Call us <script>alert(1)</script> or <a href="javascript:x()">here</a>.'),
        ["fragments.conclusion[0]: <script> is not allowed at position 8",
         'fragments.conclusion[0]: <a href="javascript:x()"> is not allowed at position 37'],
        id="fragment-markup",
    ),
]


@pytest.mark.parametrize("mutate, phrases", BAD_BLUEPRINTS)
def test_a_bad_blueprint_is_refused_with_file_field_and_position_and_nothing_is_written(
    spark, engine, tmp_path, mutate, phrases
):
    spark("site", "add", "demo-roofing.example")
    path = _blueprint(tmp_path, mutate)
    before = database_snapshot(engine)

    result = spark("campaign", "import", str(path), "--site", "demo-roofing.example")

    assert result.exit_code == 1
    assert f"blueprint {path} has" in result.output
    assert f"{path}:" in result.output  # every problem names the file (and the line)
    for phrase in phrases:
        assert phrase in result.output
    assert "Traceback" not in result.output
    assert database_snapshot(engine) == before


def test_a_blueprint_with_warnings_imports_and_the_warnings_are_printed_with_file_line_field_and_position(
    spark, engine, tmp_path
):
    spark("site", "add", "demo-roofing.example")
    path = _blueprint(tmp_path, _set("headings.conclusion", "Next Steps for {{variant}}s"))
    result = spark("campaign", "import", str(path), "--site", "demo-roofing.example")
    assert result.exit_code == 0, result.output
    assert "created: demo-roofing.example/roof-repair-replacement" in result.output
    assert f"warning: {path}:" in result.output
    assert "headings.conclusion: '{{variant}}s' at position 15: write '{{variant:plural}}'" in result.output


def test_every_problem_in_a_blueprint_is_reported_at_once(spark, tmp_path):
    def many(data):
        data["colour"] = "red"
        data["headline_spintax_root"] = "{a|"
        data["patterns"][0]["logic"] = "{{nope}}"

    result = spark("campaign", "import", str(_blueprint(tmp_path, many)), "--site", "demo-roofing.example")
    assert "has 3 problems" in result.output


def test_a_yaml_syntax_error_gives_the_line(spark, tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nlocation: [unclosed\n")
    result = spark("campaign", "import", str(path), "--site", "demo-roofing.example")
    assert result.exit_code == 1
    assert f"{path}:3: not valid YAML" in result.output


def test_a_duplicate_yaml_key_is_an_error_not_a_silent_override(spark, tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text(DEMO_BLUEPRINT.read_text() + "\ntarget_word_count: 5000\n")
    result = spark("campaign", "import", str(path), "--site", "demo-roofing.example")
    assert result.exit_code == 1
    assert "target_word_count: duplicate key" in result.output


def test_a_missing_blueprint_file_is_reported(spark, tmp_path):
    result = spark("campaign", "import", str(tmp_path / "nope.yaml"), "--site", "demo-roofing.example")
    assert result.exit_code == 1
    assert "cannot read file" in result.output


def test_a_title_template_that_cannot_fit_is_a_warning_at_import(spark, tmp_path):
    spark("site", "add", "demo-roofing.example")
    long_title = "Everything a {{variant}} in {{city}}, {{state}} Should Know About Roof Repair"
    path = _blueprint(tmp_path, _set("seo_title", long_title))
    result = spark("campaign", "import", str(path), "--site", "demo-roofing.example")
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if " seo_title: no variation fits in 60" in line]
    assert warnings and all(line.startswith(f"warning: {path}:") for line in warnings), result.output


def test_site_page_adds_a_page_the_links_point_at_and_refuses_bad_input(spark, engine, tmp_path):
    body = tmp_path / "contact.html"
    body.write_text("<p>Call us on +1-704-555-0134.</p>", encoding="utf-8")
    assert spark("site", "add", "roofs.example").exit_code == 0
    done = spark("site", "page", "roofs.example", "/contact/", "--title", "Contact Us", "--file", str(body))
    assert done.exit_code == 0 and "roofs.example/contact/: Contact Us (published; in the next build)" in done.output
    again = spark("site", "page", "roofs.example", "/contact/", "--title", "Contact", "--file", str(body))
    assert again.exit_code == 0
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT slug, permalink, title, status FROM pages")).all()
    assert [tuple(r) for r in rows] == [("contact", "/contact/", "Contact", "published")]

    before = database_snapshot(engine)
    bad_path = spark("site", "page", "roofs.example", "/Contact", "--title", "x", "--file", str(body))
    assert bad_path.exit_code == 2 and "must look like /contact/" in bad_path.output
    binary = tmp_path / "page.bin"
    binary.write_bytes(b"\xff\xfe<p>")
    not_text = spark("site", "page", "roofs.example", "/about/", "--title", "About", "--file", str(binary))
    assert not_text.exit_code == 2 and "not UTF-8 text" in not_text.output
    unknown = spark("site", "page", "nobody.example", "/about/", "--title", "About", "--file", str(body))
    assert unknown.exit_code == 1 and "nobody.example" in unknown.output
    assert database_snapshot(engine) == before
