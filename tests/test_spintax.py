"""Unit tests for spark_assets.content.spintax: parsing, rendering, counting and indexing derivations (pure Python)."""

from __future__ import annotations

import itertools
import random
import re
import sys
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spark_assets.content import spintax as spintax_module
from spark_assets.content.spintax import (
    MAX_NESTING,
    Choice,
    Sequence,
    SpintaxError,
    Text,
    Token,
    count_variations,
    describe_position,
    parse,
    render,
    tokens,
    variation,
)

from .bounded import run_bounded

VALUES = {"city": "Austin", "state": "Texas", "state_code": "TX", "avatar": "Busy Homeowner"}


def outputs(template: str, values=VALUES) -> list[str]:
    """Every derivation of `template`, through `variation`, in index order."""
    tree = parse(template)
    return [variation(tree, i, values) for i in range(count_variations(tree))]


def renders(template: str, seeds=range(200), values=VALUES) -> set[str]:
    tree = parse(template)
    return {render(tree, values, random.Random(seed)) for seed in seeds}


def parse_error(template: str) -> SpintaxError:
    with pytest.raises(SpintaxError) as info:
        parse(template)
    return info.value


# --- parsing -----------------------------------------------------------------------------------------------------


def test_plain_text_is_one_text_node():
    assert parse("Roof repair") == Sequence((Text("Roof repair"),))
    assert parse("") == Sequence(())
    assert count_variations(parse("")) == 1
    assert render(parse(""), {}, random.Random(0)) == ""


def test_simple_choice():
    tree = parse("{a|b|c}")
    assert tree == Sequence(
        (Choice((Sequence((Text("a"),)), Sequence((Text("b"),)), Sequence((Text("c"),))), 0),)
    )
    assert count_variations(tree) == 3
    assert sorted(outputs("{a|b|c}")) == ["a", "b", "c"]


def test_nested_choice():
    tree = parse("{a|b|{c|d}}")
    assert count_variations(tree) == 4
    assert sorted(outputs("{a|b|{c|d}}")) == ["a", "b", "c", "d"]
    inner = tree.nodes[0].options[2].nodes[0]
    assert isinstance(inner, Choice) and inner.position == 5


def test_deep_nesting_and_sequences_multiply():
    template = "{x|{y|{z|w}}}-{1|2}"
    assert count_variations(parse(template)) == 8
    assert sorted(outputs(template)) == sorted(f"{a}-{b}" for a in "xyzw" for b in "12")


def test_text_around_choices_is_kept():
    assert sorted(outputs("Best {roof|gutter} repair!")) == ["Best gutter repair!", "Best roof repair!"]


@pytest.mark.parametrize("template", ["{{city}}", "{{ city }}", "{{city }}", "{{  city}}", "{{\tcity\t}}"])
def test_token_with_and_without_spaces(template):
    tree = parse(template)
    assert tree == Sequence((Token("city", 0),))
    assert render(tree, VALUES, random.Random(0)) == "Austin"
    assert count_variations(tree) == 1


def test_tokens_inside_and_outside_choices():
    template = "Roofers in {{city}}: {serving {{ city }}, {{state_code}}|proud of {{state}}}"
    tree = parse(template)
    assert [t.name for t in tokens(tree)] == ["city", "city", "state_code", "state"]
    assert [t.position for t in tokens(tree)] == [11, 30, 42, 66]
    assert sorted(outputs(template)) == ["Roofers in Austin: proud of Texas", "Roofers in Austin: serving Austin, TX"]


def test_token_positions_point_at_the_opening_braces():
    template = "a {{city}} {b|{{ state }}}"
    for token in tokens(parse(template)):
        assert template[token.position : token.position + 2] == "{{"


def test_choice_whose_first_option_starts_with_a_nested_choice():
    tree = parse("{{a|b}|c}")
    outer = tree.nodes[0]
    assert isinstance(outer, Choice) and outer.position == 0
    assert isinstance(outer.options[0].nodes[0], Choice) and outer.options[0].nodes[0].position == 1
    assert count_variations(tree) == 3
    assert sorted(outputs("{{a|b}|c}")) == ["a", "b", "c"]


def test_choice_whose_first_option_starts_with_a_token():
    tree = parse("{{{city}} roofers|local roofers}")
    assert [t.name for t in tokens(tree)] == ["city"]
    assert sorted(outputs("{{{city}} roofers|local roofers}")) == ["Austin roofers", "local roofers"]


def test_nested_choice_starting_with_nested_choice_and_token():
    template = "{{{{city}}|here}|there} now"
    assert sorted(outputs(template)) == ["Austin now", "here now", "there now"]


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        (r"\{", "{"),
        (r"\}", "}"),
        (r"\|", "|"),
        ("\\\\", "\\"),
        (r"\{\{city\}\}", "{{city}}"),
        (r"price \{a\|b\} \\ done", r"price {a|b} \ done"),
        (r"{a\|b|c\}}", None),  # checked below: options are "a|b" and "c}"
        ("lone \\ backslash \\q", "lone \\ backslash \\q"),
        ("ends with \\", "ends with \\"),
    ],
)
def test_escapes_give_literal_characters(template, expected):
    if expected is None:
        assert sorted(outputs(template)) == ["a|b", "c}"]
        return
    tree = parse(template)
    assert count_variations(tree) == 1
    assert [node for node in tree.nodes if not isinstance(node, Text)] == []
    assert render(tree, VALUES, random.Random(0)) == expected


def test_escaped_backslash_before_a_choice_still_opens_the_choice():
    assert sorted(outputs("\\\\{a|b}")) == ["\\a", "\\b"]


def test_escaped_brace_before_a_token():
    assert outputs(r"\{{{city}}\}") == ["{Austin}"]


def test_top_level_pipe_is_literal():
    tree = parse("Roof Repair in {{city}} | {Acme|Summit}")
    assert count_variations(tree) == 2
    assert sorted(outputs("Roof Repair in {{city}} | {Acme|Summit}")) == [
        "Roof Repair in Austin | Acme",
        "Roof Repair in Austin | Summit",
    ]
    assert outputs("a|b||c") == ["a|b||c"]


def test_whitespace_only_options_are_allowed():
    assert sorted(outputs("x{ |-}y")) == ["x y", "x-y"]


# --- counting and indexing -----------------------------------------------------------------------------------------


def test_count_variations_of_a_huge_template_is_exact_and_instant():
    template = " ".join("{" + "|".join(f"w{i}_{j}" for j in range(10)) + "}" for i in range(30))
    tree = parse(template)
    started = time.perf_counter()
    assert count_variations(tree) == 10**30
    assert time.perf_counter() - started < 0.5
    first, last = variation(tree, 0, {}), variation(tree, 10**30 - 1, {})
    assert first != last
    assert len(first.split()) == len(last.split()) == 30


def test_count_variations_of_deeply_nested_template():
    template = "{a|b}" * 3 + "{x|{y|{z|{{city}}}}}"
    assert count_variations(parse(template)) == 8 * 4


def test_variation_enumerates_every_derivation_exactly_once():
    template = "{Best|Top|{Trusted|Local}} roofer in {{city}}{!|.}"
    every = outputs(template)
    assert len(every) == count_variations(parse(template)) == 8
    assert len(set(every)) == 8
    expected = {f"{a} roofer in Austin{p}" for a in ("Best", "Top", "Trusted", "Local") for p in "!."}
    assert set(every) == expected


def test_variation_set_equals_the_set_of_renders():
    template = "{a|{b|c}}-{d|e|{f|{g|h}}}"
    assert set(outputs(template)) == renders(template, range(2000))


def test_variation_index_out_of_range():
    tree = parse("{a|b}")
    with pytest.raises(IndexError):
        variation(tree, 2, {})
    with pytest.raises(IndexError):
        variation(tree, -1, {})
    assert variation(parse("plain"), 0, {}) == "plain"


def test_render_is_deterministic_for_the_same_seed():
    tree = parse("{a|b|c|d|e|f} {g|h|i|j} {{city}} {k|{l|m|n}|o}")
    for seed in range(20):
        assert render(tree, VALUES, random.Random(seed)) == render(tree, VALUES, random.Random(seed))
    assert len({render(tree, VALUES, random.Random(seed)) for seed in range(200)}) > 1


def test_render_missing_token_value_raises():
    with pytest.raises(KeyError):
        render(parse("{{county}}"), VALUES, random.Random(0))


# --- errors ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("template", "position"), [("{a|b", 0), ("text {a|{b|c}", 5), ("{a|b} and {c", 10)])
def test_unbalanced_open_brace_reports_the_opening_brace(template, position):
    error = parse_error(template)
    assert error.position == position
    assert "unbalanced '{'" in str(error)
    assert f"at position {position}" in str(error)


@pytest.mark.parametrize(("template", "position"), [("{", 0), ("Roof {", 5), ("{a|", 0)])
def test_unbalanced_open_brace_at_end_of_text(template, position):
    error = parse_error(template)
    assert "unbalanced '{'" in str(error)
    assert error.position == position


@pytest.mark.parametrize(("template", "position"), [("}", 0), ("a}", 1), ("{a|b}}", 5), ("x {a} y } z", 8)])
def test_unmatched_close_brace_reports_its_position(template, position):
    error = parse_error(template)
    assert error.position == position
    assert "unmatched '}'" in str(error)
    assert error.reason == "unmatched '}'"


@pytest.mark.parametrize(
    ("template", "position"),
    [("{a||b}", 3), ("{}", 1), ("{|a}", 1), ("{a|}", 3), ("x {a|{b|}}", 8), ("{{}|a}", 2)],
)
def test_empty_options_are_errors_at_their_position(template, position):
    error = parse_error(template)
    assert error.position == position
    assert "empty option" in str(error)
    assert f"at position {position}" in str(error)
    assert error.template == template


def test_multi_line_text_reports_line_and_column():
    template = "First line\nsecond {a|b\nthird"
    error = parse_error(template)
    assert error.position == 18
    assert "(line 2, column 8)" in str(error)

    template = "ok {a|b}\n\n  }"
    error = parse_error(template)
    assert error.position == 12
    assert str(error) == "unmatched '}' at position 12 (line 3, column 3)"

    error = parse_error("one\ntwo {x||y}")
    assert "empty option" in str(error)
    assert "at position 11 (line 2, column 8)" in str(error)


def test_one_line_text_has_no_line_and_column():
    assert describe_position("abc", 2) == "at position 2"
    assert describe_position("a\nbc", 0) == "at position 0 (line 1, column 1)"
    assert describe_position("a\nbc", 2) == "at position 2 (line 2, column 1)"


def test_spintax_error_is_a_value_error():
    assert issubclass(SpintaxError, ValueError)


# --- hostile templates ---------------------------------------------------------------------------------------------


def _nested(depth: int) -> str:
    """`{x|{x|...{x|y}...}}`: `depth` choices, each nested in the one before."""
    return "{x|" * depth + "y" + "}" * depth


def test_choices_nested_up_to_the_limit_are_accepted():
    tree = parse(_nested(MAX_NESTING))
    assert count_variations(tree) == MAX_NESTING + 1
    assert variation(tree, MAX_NESTING, {}) == "y"


def test_choices_nested_past_the_limit_are_an_error_at_the_brace_that_goes_too_deep():
    error = parse_error("Roofs " + _nested(MAX_NESTING + 5))
    assert MAX_NESTING == 20
    assert str(error) == "choices nested more than 20 deep at position 66"  # "Roofs " + 20 x "{x|"
    assert error.position == len("Roofs ") + 3 * MAX_NESTING


def test_a_thousand_levels_of_nesting_are_refused_quickly_under_a_memory_limit():
    result = run_bounded(
        """
        from spark_assets.content.spintax import SpintaxError, parse
        for depth in (1_000, 100_000):
            try:
                parse("{x|" * depth + "y" + "}" * depth)
            except SpintaxError as exc:
                print(exc)
        report()
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("choices nested more than 20 deep at position 60") == 2
    assert "Traceback" not in result.stderr


def _calls_into_spintax(work) -> int:
    """How many Python functions of the spintax module `work()` calls: a measure of work that does not depend on the
    machine's speed."""
    calls = 0
    module = spintax_module.__file__

    def profile(frame, event, arg):
        nonlocal calls
        if event == "call" and frame.f_code.co_filename == module:
            calls += 1

    sys.setprofile(profile)
    try:
        work()
    finally:
        sys.setprofile(None)
    return calls


def test_counting_and_indexing_a_deep_and_wide_template_is_linear_in_its_size():
    def index(depth: int, width: int):
        tree = parse(" ".join([_nested(depth)] * width))
        total = count_variations(tree)
        return lambda: [variation(tree, i, {}) for i in (0, total // 2, total - 1)]

    base = _calls_into_spintax(index(10, 20))
    deeper = _calls_into_spintax(index(20, 20))
    wider = _calls_into_spintax(index(10, 40))
    # twice the nodes, about twice the work: each node's count is known, never recomputed for every level above it
    assert deeper <= 2.2 * base
    assert wider <= 2.2 * base


# --- properties --------------------------------------------------------------------------------------------------
#
# A small generator of valid spintax. Templates are built as trees of
#   ("text", [chunks])   chunks are plain characters or escapes (a chunk is (source, rendered))
#   ("token", name, spaced)
#   ("choice", [options]) with at least two non-empty options (a one-option choice of a bare name, `{{name}}`, would
#                         be a token: the grammar is deliberately ambiguous there)
# and serialised to source text; `ref_render` is an independent reference that consumes the RNG the same way.

TOKEN_NAMES = ["city", "state", "avatar", "pain_point"]
TOKEN_VALUES = {name: f"<{name.upper()}>" for name in TOKEN_NAMES}
PLAIN = st.sampled_from(list("abcxyz ,.-'!"))
ESCAPES = st.sampled_from([("\\{", "{"), ("\\}", "}"), ("\\|", "|"), ("\\\\", "\\")])


def _chunks(top_level: bool):
    plain = PLAIN | st.just("|") if top_level else PLAIN
    return st.lists(plain.map(lambda c: (c, c)) | ESCAPES, min_size=1, max_size=6)


def _sequences(top_level: bool, depth: int):
    piece = st.one_of(
        _chunks(top_level).map(lambda chunks: ("text", chunks)),
        st.tuples(st.just("token"), st.sampled_from(TOKEN_NAMES), st.booleans()),
    )
    if depth > 0:
        option = _sequences(False, depth - 1)
        piece = piece | st.lists(option, min_size=2, max_size=3).map(lambda opts: ("choice", opts))
    return st.lists(piece, min_size=0 if top_level else 1, max_size=3)


TEMPLATES = _sequences(True, 3)


def to_source(seq, markers=None) -> str:
    """Serialise a generated tree; with `markers` (an itertools.count) every option is prefixed by a unique `#n#`."""
    out = []
    for piece in seq:
        if piece[0] == "text":
            out.extend(source for source, _ in piece[1])
        elif piece[0] == "token":
            out.append("{{ " + piece[1] + " }}" if piece[2] else "{{" + piece[1] + "}}")
        else:
            options = []
            for option in piece[1]:
                prefix = f"#{next(markers)}#" if markers is not None else ""
                options.append(prefix + to_source(option, markers))
            out.append("{" + "|".join(options) + "}")
    return "".join(out)


def ref_count(seq) -> int:
    total = 1
    for piece in seq:
        if piece[0] == "choice":
            total *= sum(ref_count(option) for option in piece[1])
    return total


def ref_render(seq, rng: random.Random, stats: dict) -> str:
    out = []
    for piece in seq:
        if piece[0] == "text":
            for source, rendered in piece[1]:
                out.append(rendered)
                if source != rendered:
                    stats[rendered] = stats.get(rendered, 0) + 1
        elif piece[0] == "token":
            out.append(TOKEN_VALUES[piece[1]])
        else:
            out.append(ref_render(piece[1][rng.randrange(len(piece[1]))], rng, stats))
    return "".join(out)


PLACEHOLDER_RE = re.compile(r"\{\{\s*[A-Za-z_][A-Za-z0-9_]*\s*\}\}")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TEMPLATES, st.integers(0, 2**32))
def test_generated_templates_parse_and_render_without_syntax(seq, seed):
    source = to_source(seq)
    tree = parse(source)
    count = count_variations(tree)
    assert count >= 1
    assert count == ref_count(seq)
    assert sorted(t.name for t in tokens(tree)) == sorted(_ref_tokens(seq))

    stats: dict[str, int] = {}
    expected = ref_render(seq, random.Random(seed), stats)
    rendered = render(tree, TOKEN_VALUES, random.Random(seed))
    assert rendered == expected
    # The only braces and pipes in the output are the escaped ones: no syntax leaks through.
    assert rendered.count("{") == stats.get("{", 0)
    assert rendered.count("}") == stats.get("}", 0)
    if not stats.get("{") and not stats.get("}"):
        assert "{{" not in rendered and not PLACEHOLDER_RE.search(rendered)
    for name in TOKEN_NAMES:
        assert "{{" + name not in rendered and "{{ " + name not in rendered


def _ref_tokens(seq):
    for piece in seq:
        if piece[0] == "token":
            yield piece[1]
        elif piece[0] == "choice":
            for option in piece[1]:
                yield from _ref_tokens(option)


MARKER_RE = re.compile(r"#(\d+)#")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TEMPLATES)
def test_generated_variations_are_distinct_derivations(seq):
    # Every option starts with a unique marker, so the markers in an output spell out the derivation (chosen path).
    source = to_source(seq, itertools.count())
    tree = parse(source)
    count = count_variations(tree)
    assert count == ref_count(seq)
    n = min(count, 50)
    paths = [tuple(MARKER_RE.findall(variation(tree, i, TOKEN_VALUES))) for i in range(n)]
    assert len(set(paths)) == n
    if count <= 50:
        # ... and together they are every derivation: the same set rendering reaches with many seeds.
        rendered_paths = {
            tuple(MARKER_RE.findall(render(tree, TOKEN_VALUES, random.Random(seed)))) for seed in range(200)
        }
        assert rendered_paths <= set(paths)
        if count <= 4:  # every derivation then has probability >= 1/8: 200 seeds reach them all
            assert rendered_paths == set(paths)


@pytest.mark.parametrize(("template", "position"), [("Fix {{pain-point}} now", 4), ("{a|{{1st}}}", 3), ("{{ }}", 0)])
def test_a_mistyped_token_is_an_error_not_literal_text(template, position):
    error = parse_error(template)
    assert "malformed token" in str(error)
    assert error.position == position


def test_compiled_rendering_gives_exactly_the_templates_variations():
    import html as html_module
    import random as random_module

    from spark_assets.content.spintax import compile_function, compile_template

    template = "A {b|c {d|e}} & {{city}} {f|{g|h {{city}}}}"
    tree = parse(template)
    values = {"city": "Austin"}
    expected = {variation(tree, i, values) for i in range(count_variations(tree))}
    compiled = compile_function(compile_template(tree))
    rng = random_module.Random(7)
    seen = {compiled(values, rng.random) for _ in range(400)}
    assert seen == expected
    escaped = compile_function(compile_template(tree, html_module.escape))
    assert all("&amp;" in escaped(values, rng.random) for _ in range(20))
    first, second = random_module.Random(3), random_module.Random(3)
    assert compiled(values, first.random) == compiled(values, second.random)


def test_a_compiled_variation_is_the_variation_of_the_same_index():
    from spark_assets.content.spintax import compile_variation

    for template in ("A {b|c {d|e}} & {{city}} {f|{g|h {{city}}}}", "{x|y}{{city}}{z|w {{city}}}", "plain", "{a|b|c}{d|{e|f}g}"):
        tree = parse(template)
        values = {"city": "Austin"}
        function = compile_variation(tree)
        assert [function(i, values) for i in range(count_variations(tree))] == [
            variation(tree, i, values) for i in range(count_variations(tree))
        ]
