"""Hostile or broken input, as an operator would give it to `spark` (issue 9): blueprints (YAML bombs, deep spintax,
control characters, a name with no ASCII letters, offer HTML with scripts), DATABASE_URL values (bad, unreachable,
passwords in every form libpq takes) and domains that look like options. Each is refused with one clear message saying
what and where, in bounded time and memory, with no traceback and no part of a password, and nothing is written.

The expanding ones (alias bombs, deep nesting, endless files) run in a child process under a 1 GiB memory limit and a
timeout (tests/bounded.py), so a regression fails its test instead of taking the machine down."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from spark_assets.content.blueprint import MAX_BLUEPRINT_BYTES, MAX_YAML_DEPTH, MAX_YAML_VALUES
from spark_assets.ops.cli import main

from .bounded import run_bounded
from .conftest import DEMO_BLUEPRINT, database_snapshot

SITE = "demo-roofing.example"


@pytest.fixture
def spark(database_url, monkeypatch):
    """Run `spark ...` in-process against the test database; returns the click Result (stdout and stderr apart)."""
    monkeypatch.setenv("DATABASE_URL", database_url)

    def invoke(*args: str):
        return CliRunner().invoke(main, list(args), catch_exceptions=False)

    invoke("site", "add", SITE)
    return invoke


def _alias_bomb(levels: int, width: int = 9) -> str:
    """The "billion laughs": each level a list of `width` aliases of the level before; `width ** levels` strings."""
    lines = ["name: Alias bomb", "laughs0: &laughs0 [" + ", ".join(['"lol"'] * width) + "]"]
    for level in range(1, levels):
        lines.append(f"laughs{level}: &laughs{level} [" + ", ".join([f"*laughs{level - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def _import_bounded(path: Path, database_url: str):
    """`spark campaign import PATH` in a child process under the memory limit and timeout."""
    return run_bounded(
        f"""
        import sys
        from spark_assets.ops.cli import main
        sys.argv = ["spark", "campaign", "import", {str(path)!r}, "--site", {SITE!r}]
        main()
        """,
        env={**os.environ, "DATABASE_URL": database_url},
    )


HOSTILE_FILES = [
    pytest.param(
        lambda: _alias_bomb(10), "2: not valid YAML: anchor '&laughs0': YAML aliases and anchors are not allowed",
        id="alias-bomb-10-levels",
    ),
    pytest.param(
        lambda: "name: x\nbase: {a: 1}\nother:\n  <<: *base\n",
        "4: not valid YAML: alias '*base': YAML aliases and anchors are not allowed", id="merge-key-alias",
    ),
    pytest.param(
        lambda: "name: " + "[" * 100_000 + "]" * 100_000 + "\n", "1: not valid YAML: ", id="nested-100000-levels"
    ),
    pytest.param(
        lambda: "name: x\nfragments:\n  p: [" + ", ".join(["a"] * 300_000) + "]\n",
        f"3: not valid YAML: more than {MAX_YAML_VALUES:,} values", id="300000-values",
    ),
    pytest.param(
        lambda: "# padding\n" * (MAX_BLUEPRINT_BYTES // 10 + 1), "file is larger than 1 MiB (1,048,576 bytes)",
        id="over-1-MiB",
    ),
]


@pytest.mark.parametrize("content, phrase", HOSTILE_FILES)
def test_a_hostile_yaml_file_is_refused_in_bounded_memory_and_time_and_writes_nothing(
    spark, engine, database_url, tmp_path, content, phrase
):
    path = tmp_path / "hostile.yaml"
    path.write_text(content())
    before = database_snapshot(engine)

    result = _import_bounded(path, database_url)

    assert result.returncode == 1, result.stderr[-2000:]
    assert f"{path}:{phrase}" in result.stderr or f"{path}: {phrase}" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and "MemoryError" not in result.stderr
    assert database_snapshot(engine) == before


def test_an_endless_file_is_not_read_whole(spark, engine, database_url):
    before = database_snapshot(engine)
    result = _import_bounded(Path("/dev/zero"), database_url)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "/dev/zero: file is larger than 1 MiB (1,048,576 bytes), the most a blueprint may be" in result.stderr
    assert database_snapshot(engine) == before


def test_the_alias_bomb_of_the_issue_costs_little():
    """Issue 9: 31 KB at 7 levels took 1.2 GB and 5.8 s. Refused at the first anchor, before anything expands."""
    result = run_bounded(
        f"""
        from spark_assets.content.blueprint import BlueprintError, parse_blueprint
        try:
            parse_blueprint({_alias_bomb(7, width=40)!r}, "bomb.yaml")
        except BlueprintError as exc:
            print(exc)
        report()
        """
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "bomb.yaml:2: not valid YAML: anchor '&laughs0'" in result.stdout
    print(result.stdout)  # peak memory and time, for the curious (pytest -s)


def test_yaml_nesting_up_to_the_limit_reaches_validation():
    from spark_assets.content.blueprint import BlueprintError, parse_blueprint

    def nested(depth: int) -> str:  # the root mapping is level 1, `location`'s value level 2, ...
        return "name: x\nlocation: " + "[" * (depth - 1) + "]" * (depth - 1) + "\n"

    with pytest.raises(BlueprintError) as caught:
        parse_blueprint(nested(MAX_YAML_DEPTH), "ok.yaml")
    assert "not valid YAML" not in str(caught.value)  # the structure is wrong, but it was read and validated
    with pytest.raises(BlueprintError, match=f"deep.yaml:2: not valid YAML: nested more than {MAX_YAML_DEPTH} levels"):
        parse_blueprint(nested(MAX_YAML_DEPTH + 1), "deep.yaml")


def _blueprint(tmp_path: Path, mutate) -> Path:
    data = yaml.safe_load(DEMO_BLUEPRINT.read_text())
    mutate(data)
    path = tmp_path / "campaign.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return path


def _line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


@pytest.mark.parametrize(
    "field, mutate, message",
    [
        pytest.param(
            "fragments.intro_hook[0]", lambda d: d["fragments"]["intro_hook"].__setitem__(0, "Roofs\0 in {{city}}."),
            "contains a NUL character (U+0000) at position 5", id="nul-in-fragment",
        ),
        pytest.param(
            "name", lambda d: d.update(name="Roof \x1b[31mrepair"),
            "contains the control character U+001B at position 5", id="escape-in-name",
        ),
        pytest.param(
            "faq[1].answer", lambda d: d["faq"][1].update(answer="Yes.\x9b"),
            "contains the control character U+009B at position 4", id="c1-control-in-faq",
        ),
        pytest.param(
            "offer_blocks[0].html", lambda d: d["offer_blocks"][0].update(html="<p>\x00</p>"),
            "contains a NUL character (U+0000) at position 3", id="nul-in-offer",
        ),
        pytest.param(
            "avatars[0].demographics.ag\x07e", lambda d: d["avatars"][0]["demographics"].update({"ag\x07e": "x"}),
            "the key contains the control character U+0007 at position 2", id="bell-in-a-key",
        ),
    ],
)
def test_text_postgresql_or_html_cannot_hold_is_refused_with_field_and_line(spark, engine, tmp_path, field, mutate,
                                                                             message):
    path = _blueprint(tmp_path, mutate)
    before = database_snapshot(engine)

    result = spark("campaign", "import", str(path), "--site", SITE)

    assert result.exit_code == 1
    shown_field = field.replace("\x07", "\\u0007")  # control characters are shown escaped, never raw
    assert f"{path}:" in result.stderr and f": {shown_field}: {message}" in result.stderr, result.stderr
    assert "Traceback" not in result.output + result.stderr and "DataError" not in result.stderr
    assert database_snapshot(engine) == before


def test_spintax_nested_too_deep_is_refused_with_field_line_and_position(spark, engine, tmp_path):
    path = _blueprint(tmp_path, lambda d: d.update(headline_spintax_root="{x|" * 1000 + "y" + "}" * 1000))
    before = database_snapshot(engine)

    result = spark("campaign", "import", str(path), "--site", SITE)

    line = _line_of(path, "headline_spintax_root:")
    assert result.exit_code == 1
    assert (f"{path}:{line}: headline_spintax_root: malformed spintax: choices nested more than 20 deep at position 60"
            in result.stderr), result.stderr
    assert "RecursionError" not in result.output + result.stderr
    assert database_snapshot(engine) == before


def test_a_raw_nul_byte_in_the_file_is_refused_with_its_line(spark, engine, tmp_path):
    path = tmp_path / "campaign.yaml"
    text = DEMO_BLUEPRINT.read_text()
    path.write_text(text.replace("name: ", "name: Roof\0", 1))
    before = database_snapshot(engine)

    result = spark("campaign", "import", str(path), "--site", SITE)

    line = _line_of(path, "name: Roof")
    assert result.exit_code == 1
    assert f"{path}:{line}: not valid YAML: control characters are not allowed (U+0000)" in result.stderr
    assert database_snapshot(engine) == before


@pytest.mark.parametrize(
    "value, reason",
    [("9" * 5000, "Exceeds the limit (4300 digits) for integer string conversion"), ("2026-13-45", "month must be in")],
    ids=["5000-digit-integer", "impossible-date"],
)
def test_a_value_yaml_types_but_python_cannot_build_is_refused_with_its_line(spark, tmp_path, value, reason):
    path = tmp_path / "campaign.yaml"
    path.write_text(DEMO_BLUEPRINT.read_text().replace("target_word_count: ", f"target_word_count: {value} #", 1))

    result = spark("campaign", "import", str(path), "--site", SITE)

    line = _line_of(path, "target_word_count:")
    assert result.exit_code == 1
    assert f"{path}:{line}: not valid YAML: value cannot be read: {reason}" in result.stderr, result.stderr


def test_tabs_and_newlines_are_ordinary_text(spark, tmp_path):
    path = _blueprint(tmp_path, lambda d: d["fragments"]["intro_hook"].__setitem__(0, "Roofs\tin\r\n{{city}}."))
    result = spark("campaign", "import", str(path), "--site", SITE)
    assert result.exit_code == 0, result.output


def test_a_campaign_named_in_another_script_is_asked_for_a_slug(spark, engine, tmp_path):
    def russian(data):
        data["name"] = "Ремонт крыши"
        data.pop("slug", None)

    path = _blueprint(tmp_path, russian)
    before = database_snapshot(engine)
    result = spark("campaign", "import", str(path), "--site", SITE)

    assert result.exit_code == 1
    assert "name 'Ремонт крыши' has no ASCII letters or digits to derive a slug from" in result.stderr
    assert "give the campaign a `slug:`, ASCII letters, digits and hyphens" in result.stderr
    assert database_snapshot(engine) == before

    with_slug = _blueprint(tmp_path, lambda d: (russian(d), d.update(slug="roof-repair-ru")))
    assert spark("campaign", "import", str(with_slug), "--site", SITE).exit_code == 0


def test_a_name_with_no_letters_at_all_says_so(tmp_path):
    from spark_assets.content.blueprint import BlueprintError, parse_blueprint

    data = yaml.safe_load(DEMO_BLUEPRINT.read_text())
    data["name"] = "!!! ???"
    data.pop("slug", None)
    with pytest.raises(BlueprintError, match="name '!!! \\?\\?\\?' has no letters or digits .* give the campaign a"):
        parse_blueprint(yaml.safe_dump(data))

# --- DATABASE_URL ----------------------------------------------------------------------------------------------------

UNREACHABLE = "127.0.0.1:1"  # loopback, nothing listens on port 1: refused at once
COMMANDS = [("db", "upgrade"), ("db", "status"), ("site", "list")]


def _run_with_url(monkeypatch, url: str, *args: str):
    monkeypatch.setenv("DATABASE_URL", url)
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
@pytest.mark.parametrize(
    "url, line",
    [
        pytest.param(
            f"postgresql://spark:pw@{UNREACHABLE}/spark",
            f"error: cannot connect to postgresql+psycopg://spark:***@{UNREACHABLE}/spark: connection to server at "
            '"127.0.0.1", port 1 failed: Connection refused', id="unreachable",
        ),
        pytest.param(
            "postgresql://spark@127.0.0.1:fivefourthreetwo/spark",
            "error: DATABASE_URL is not a valid URL: its port is not a number", id="port-not-a-number",
        ),
        pytest.param(
            "the database on the other box",
            "error: DATABASE_URL is not a valid URL: expected postgresql://user:password@host:port/database",
            id="not-a-url",
        ),
        pytest.param(
            "mysql://spark@127.0.0.1/spark",
            "error: DATABASE_URL must be a PostgreSQL URL (postgresql://...), not mysql://", id="not-postgresql",
        ),
    ],
)
def test_a_bad_or_unreachable_database_url_is_one_line_for_every_command(monkeypatch, command, url, line):
    result = _run_with_url(monkeypatch, url, *command)

    assert result.exit_code == 1
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith(line), result.stderr
    assert "Traceback" not in result.stderr


PASSWORD_PARTS = ("Hunter2", "Sekr1t", "Taill")  # the password is Hunter2@Sekr1t#Taill: no part of it may be shown


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
@pytest.mark.parametrize(
    "url",
    [
        pytest.param(f"postgresql://spark:Hunter2%40Sekr1t%23Taill@{UNREACHABLE}/spark", id="user-info-encoded"),
        pytest.param(f"postgresql://spark:Hunter2@Sekr1t#Taill@{UNREACHABLE}/spark", id="user-info-unescaped-at-hash"),
        pytest.param(f"postgresql://spark:Hunter2#Sekr1t#Taill@{UNREACHABLE}/spark", id="user-info-unescaped-hash"),
        pytest.param(f"postgres://spark@{UNREACHABLE}/spark?password=Hunter2%40Sekr1t%23Taill", id="query-encoded"),
        pytest.param(f"postgresql://spark@{UNREACHABLE}/spark?password=Hunter2@Sekr1t#Taill", id="query-unescaped"),
        pytest.param(
            "host=127.0.0.1 port=1 user=spark password='Hunter2@Sekr1t#Taill' dbname=spark", id="key-value-quoted"
        ),
        pytest.param("host=127.0.0.1 port=1 password=Hunter2@Sekr1t#Taill dbname=spark", id="key-value-bare"),
    ],
)
def test_no_part_of_a_password_is_shown_whatever_its_form(monkeypatch, command, url):
    result = _run_with_url(monkeypatch, url, *command)

    assert result.exit_code == 1
    assert len(result.stderr.splitlines()) == 1, result.stderr
    for part in PASSWORD_PARTS:
        assert part not in result.stdout + result.stderr


def test_a_password_in_the_query_is_masked_when_the_server_answers_too(database_url, monkeypatch):
    # the test server trusts local connections, so the password is ignored: the commands succeed and print the URL
    with_password = database_url + ("&" if "?" in database_url else "?") + "password=Hunter2Sekr1tTaill"
    for command in COMMANDS:
        result = _run_with_url(monkeypatch, with_password, *command)
        assert result.exit_code == 0, result.output
        assert "Hunter2" not in result.output
    status = _run_with_url(monkeypatch, with_password, "db", "status")
    first_line = status.output.splitlines()[0]
    assert first_line.startswith("database: postgresql+psycopg://") and ":***@" in first_line  # shown, masked


@pytest.mark.parametrize("url, timeout", [("postgresql://spark@db.example/spark", 10),
                                          ("postgresql://spark@db.example/spark?connect_timeout=3", "3")])
def test_a_connection_attempt_gives_up_after_the_connect_timeout(url, timeout):
    """libpq waits for ever by default, so an unreachable host (no refusal, just silence) would hang a command."""
    import sqlalchemy as sa

    from spark_resources.database import open_engine

    engine = open_engine(url)
    seen = {}

    @sa.event.listens_for(engine, "do_connect")
    def capture(dialect, record, cargs, cparams):
        seen.update(cparams)
        raise ConnectionAbortedError("not connecting: only the parameters are under test")

    with pytest.raises(ConnectionAbortedError):
        engine.connect()
    assert seen["connect_timeout"] == timeout


def test_a_driver_error_that_repeats_the_password_is_masked():
    from spark_resources.database import mask_secrets

    url = "postgresql://spark:Hunter2%40Sekr1t%23Taill@db.example/spark"
    error = (
        'could not translate host name "Sekr1t#Taill@db.example" for Hunter2@Sekr1t#Taill (Hunter2%40Sekr1t%23Taill)'
    )
    assert mask_secrets(error, url) == 'could not translate host name "***#***@db.example" for *** (***)'


# --- domains on the command line -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [("site", "add", "-evil.example"), ("site", "add", "--", "-evil.example"), ("site", "add", "--brand", "X", "--",
                                                                                 "-evil.example")],
    ids=["as-an-option", "after-double-dash", "after-options-and-double-dash"],
)
def test_a_domain_starting_with_a_hyphen_is_an_invalid_domain_not_an_option(spark, engine, args):
    before = database_snapshot(engine)
    result = spark(*args)
    assert result.exit_code == 1
    assert result.stderr == "error: '-evil.example' is not a valid domain: a domain cannot start with a hyphen ('-')\n"
    assert database_snapshot(engine) == before


def test_options_and_double_dash_still_work_for_a_good_domain(spark):
    result = spark("site", "add", "--brand", "Good Roofs", "--", "good.example")
    assert result.exit_code == 0 and "registered: good.example (Good Roofs)" in result.output


# --- offer HTML ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "markup, message",
    [
        ("<aside><p>Call us</p><script>alert(document.cookie)</script></aside>", "<script> is not allowed"),
        ('<p onmouseover="steal()">{Free|No-cost} quote</p>', "the event handler onmouseover= on <p> is not allowed"),
        ('<a href="javascript:alert(1)">Book now</a>', 'href="javascript:..." on <a> is not allowed'),
        ('<a href=" java\tscript:alert(1)">Book now</a>', 'href="javascript:..." on <a> is not allowed'),
        ("<p>{Call us|<iframe src='https://evil.example'></iframe>}</p>", "<iframe> is not allowed"),
        ('<p style="position:fixed">Call</p>', "the attribute style= on <p> is not allowed"),
        ("<p>Call</p><!-- tracking -->", "HTML comments (<!-- -->) are not allowed"),
        ("<p>{<|x}script>alert(1)</p>", "<script> is not allowed"),  # a tag only spintax puts together
    ],
)
def test_offer_html_the_sanitizer_would_strip_is_refused_at_import_naming_the_field(spark, engine, tmp_path, markup,
                                                                                     message):
    path = _blueprint(tmp_path, lambda d: d["offer_blocks"][1].update(html=markup))
    before = database_snapshot(engine)

    result = spark("campaign", "import", str(path), "--site", SITE)

    assert result.exit_code == 1
    html_lines = [i for i, line in enumerate(path.read_text().splitlines(), 1) if line.strip().startswith("html:")]
    assert f"{path}:{html_lines[1]}: offer_blocks[1].html: {message}" in result.stderr, result.stderr
    assert database_snapshot(engine) == before


ALLOWED_OFFERS = [
    '<aside class="offer"><h2>Free quote</h2><p>Call <strong>today</strong>.</p></aside>',
    '<p><a class="button" href="/contact#quote" rel="sponsored nofollow">Book</a> or '
    '<a href="tel:+15125550100">call</a></p>',
    '<ul><li>One</li><li><em>Two</em></li></ul><img src="https://cdn.example/badge.png" alt="Licensed" width="80">',
]
REFUSED_OFFERS = [
    "<script>x()</script>",
    '<p onclick="x()">a</p>',
    '<a href="data:text/html,hi">a</a>',
    "<form><input name=q></form>",
    "<style>p { color: red }</style>",
    '<p id="login">a</p>',
    "<!-- c --><p>a</p>",
    "<object data=x></object>",
]


@pytest.mark.parametrize("markup", ALLOWED_OFFERS + REFUSED_OFFERS)
def test_the_import_check_refuses_exactly_what_the_sanitizer_strips(markup):
    from spark_assets.content.blueprint import offer_html_problems, sanitize_offer_html
    from spark_assets.content.spintax import parse

    refused = bool(offer_html_problems(parse(markup)))
    assert refused == (sanitize_offer_html(markup) != markup)
    assert refused == (markup in REFUSED_OFFERS)


def test_the_article_assembler_sanitizes_offer_html_that_escaped_the_import_check():
    from datetime import date
    from uuid import UUID

    from spark_assets.content.articles import ArticleAssembler, SiteInfo
    from spark_assets.content.blueprint import Blueprint
    from spark_assets.content.geo import GeoTarget
    from spark_assets.content.permutations import PatternRef, Persona, iter_permutations

    # built without parse_blueprint (as if an old row or a bug let it through): the assembler is the last guard
    blueprint = Blueprint.model_validate({
        "name": "Guard", "headline_spintax_root": "Roofs in {{city}}", "location": {"mode": "city"},
        "avatars": [{"slug": "owner", "name": "Owner", "variants": [{"slug": "new", "name": "New"}]}],
        "patterns": [{"slug": "p", "name": "P", "logic": "Roofs"}], "outline": ["intro", "offer"],
        "fragments": {"intro": ["Roofs in {{city}}."]},
        "offer_blocks": [{"slug": "o", "name": "O", "html": '<aside class="offer" onclick="x()"><p>Call</p>'
                                                           '<script>steal()</script></aside>'}],
    })
    geo = GeoTarget(UUID(int=1), "austin-tx", "Austin, TX", "Texas", "TX", city="Austin", population=961855)
    assembler = ArticleAssembler(
        blueprint=blueprint, campaign_slug="guard", site=SiteInfo("example.com", "Brand"), geos=[geo],
        fragment_ids={}, offer_ids={}, blueprint_hash="h", generated_on=date(2026, 1, 1),
    )
    persona = Persona(UUID(int=100), "owner", "Owner", (), UUID(int=101), "new", "New")
    [permutation] = iter_permutations("example.com/guard", [geo], [persona], [PatternRef(UUID(int=200), "p", "Roofs")])

    content = assembler.assemble(permutation).content

    assert '<aside class="offer"><p>Call</p></aside>' in content
    assert "script" not in content and "onclick" not in content
