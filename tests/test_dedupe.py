"""Near-duplicate detection (spark_assets.content.dedupe): pure, no database.

Articles are generated the way a campaign makes them: a spintax-like template whose every slot offers a few phrases,
rendered with a seeded random.Random. Articles from one template share their vocabulary but differ in wording, which
is the realistic background a near-duplicate check must not flag.
"""

from __future__ import annotations

import html
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
from datasketch import MinHash
from hypothesis import given, settings
from hypothesis import strategies as st

from spark_assets.content import dedupe
from spark_assets.content.dedupe import NearDuplicatePair, NearDuplicateReport, find_near_duplicates, shingles

REPO_ROOT = Path(__file__).resolve().parent.parent

VOCABULARY = (
    "roof repair leak storm damage shingle gutter flashing attic insulation contractor local licensed insured "
    "estimate free quote fast reliable trusted family owned team crew inspection replacement metal tile asphalt "
    "weather season winter summer rain wind hail homeowners neighbourhood city county service emergency same day "
    "warranty years experience quality materials affordable price financing call today schedule visit expert honest "
    "clean job site protect home value curb appeal energy bills ventilation moisture mold prevent costly problems "
    "early signs missing cracked curling granules sagging deck water stains ceiling chimney skylight vent pipe"
).split()


def spun_template(seed: int, slots: int = 300, vocabulary: list[str] = VOCABULARY) -> list[list[str]]:
    """Like `{a b|c d e|f g} {h i|...}`: every slot offers 3 phrases of 2-4 words (~900 words an article)."""
    rng = random.Random(seed)
    return [
        [" ".join(rng.choice(vocabulary) for _ in range(rng.randint(2, 4))) for _ in range(3)] for _ in range(slots)
    ]


def article(template: list[list[str]], seed: int) -> str:
    """One rendering of `template`, in paragraphs of HTML as the factory emits bodies."""
    rng = random.Random(seed)
    phrases = [rng.choice(options) for options in template]
    paragraphs = [" ".join(phrases[i : i + 20]) + "." for i in range(0, len(phrases), 20)]
    return "\n".join(f"<p>{paragraph.capitalize()}</p>" for paragraph in paragraphs)


def change_words(text: str, count: int, seed: int) -> str:
    """`text` with `count` of its words replaced by words it is very unlikely to contain."""
    rng = random.Random(seed)
    words = text.split(" ")
    for i in rng.sample(range(1, len(words) - 1), count):
        words[i] = f"zzchanged{i}"
    return " ".join(words)


def word_count(text: str) -> int:
    return len(re.sub(r"<[^>]*>", " ", text).split())


def true_jaccard(a: str, b: str) -> float:
    first, second = shingles(a), shingles(b)
    return len(first & second) / len(first | second)


TEMPLATE = spun_template(seed=1)
BODY = article(TEMPLATE, seed=100)


def siblings(count: int, first_seed: int = 1000) -> list[str]:
    return [article(TEMPLATE, seed) for seed in range(first_seed, first_seed + count)]


# --- finding near-duplicates --------------------------------------------------------------------------------------


def test_generated_articles_are_realistic_size_and_unalike():
    assert 800 <= word_count(BODY) <= 1000
    a, b = siblings(2)
    assert true_jaccard(a, b) < 0.2  # same vocabulary, different wording


def test_identical_documents_are_reported_with_similarity_one():
    docs = [("b-article", BODY), ("a-article", BODY), *((f"sibling-{i}", t) for i, t in enumerate(siblings(3)))]
    report = find_near_duplicates(docs)
    assert report.worst_pairs == [NearDuplicatePair("a-article", "b-article", 1.0)]
    assert (report.documents, report.near_duplicate_documents) == (5, 2)
    assert report.rate == pytest.approx(0.4)


def test_a_copy_with_one_word_changed_in_900_is_found():
    copy = change_words(BODY, 1, seed=5)
    assert copy != BODY
    report = find_near_duplicates([("original", BODY), ("copy", copy), *zip("xyz", siblings(3))])
    assert [(p.first, p.second) for p in report.worst_pairs] == [("copy", "original")]
    assert report.worst_pairs[0].similarity >= 0.9
    assert report.near_duplicate_documents == 2


def test_documents_from_disjoint_vocabularies_have_no_near_duplicates():
    rng = random.Random(3)
    syllables = ["ka", "lo", "mi", "ne", "su", "ta", "ri", "po", "ve", "du", "zo", "fa", "gi", "hu"]
    words = sorted({"".join(rng.choice(syllables) for _ in range(4)) for _ in range(3000)})
    rng.shuffle(words)
    vocabularies = [words[i * 60 : (i + 1) * 60] for i in range(12)]  # disjoint slices
    docs = [(f"doc-{i}", article(spun_template(i, vocabulary=v), seed=i)) for i, v in enumerate(vocabularies)]
    report = find_near_duplicates(docs)
    assert report == NearDuplicateReport(documents=12, near_duplicate_documents=0, rate=0.0, threshold=0.5,
                                         worst_pairs=[])


def test_articles_spun_from_one_template_are_not_near_duplicates():
    report = find_near_duplicates((f"a{i}", text) for i, text in enumerate(siblings(40)))
    assert (report.documents, report.near_duplicate_documents, report.worst_pairs) == (40, 0, [])


def test_the_rate_counts_documents_not_pairs():
    copies = [("copy-1", BODY), ("copy-2", BODY), ("copy-3", change_words(BODY, 1, seed=9))]
    unique = [(f"unique-{i}", text) for i, text in enumerate(siblings(7))]
    report = find_near_duplicates(unique[:4] + copies + unique[4:])
    assert report.documents == 10
    assert report.near_duplicate_documents == 3
    assert report.rate == 0.3
    assert len(report.worst_pairs) == 3  # three pairs among three documents
    assert {(p.first, p.second) for p in report.worst_pairs} == {
        ("copy-1", "copy-2"), ("copy-1", "copy-3"), ("copy-2", "copy-3")
    }


def test_flagged_keeps_the_first_of_every_group_of_copies():
    docs = [("u0", siblings(1)[0]), ("z-first", BODY), ("a-second", BODY), ("u1", siblings(1, first_seed=7)[0]),
            ("m-third", change_words(BODY, 1, seed=9))]
    report = find_near_duplicates(docs)
    assert report.flagged == frozenset({"a-second", "m-third"})  # stream order decides, not id order
    assert report.near_duplicate_documents == 3
    assert find_near_duplicates([]).flagged == frozenset()


def _family() -> list[tuple[str, str]]:
    """An original, exact copies and copies edited more and more, under ids that do not arrive in sorted order."""
    return [
        ("m", BODY),
        ("c", BODY),
        ("x", change_words(BODY, 8, seed=1)),
        ("a", BODY),
        ("q", change_words(BODY, 40, seed=2)),
        ("k", change_words(BODY, 3, seed=3)),
        ("b", BODY),
        *((f"s{i}", text) for i, text in enumerate(siblings(4))),
    ]


def _key(pair: NearDuplicatePair) -> tuple[float, str, str]:
    return (-pair.similarity, pair.first, pair.second)


def test_worst_pairs_are_ordered_by_similarity_then_ids():
    report = find_near_duplicates(_family(), threshold=0.5, keep_pairs=100)
    pairs = report.worst_pairs
    assert len(pairs) == len(set(pairs)) == 21  # the 7 related articles pair up 21 ways, all above 0.5
    assert pairs == sorted(pairs, key=_key)
    assert all(p.first < p.second for p in pairs)
    # four exact copies: six pairs at 1.0, first by first id then second id
    assert pairs[:6] == [
        NearDuplicatePair(first, second, 1.0)
        for first, second in [("a", "b"), ("a", "c"), ("a", "m"), ("b", "c"), ("b", "m"), ("c", "m")]
    ]
    assert {p.first for p in pairs} | {p.second for p in pairs} <= {"a", "b", "c", "m", "k", "x", "q"}


@pytest.mark.parametrize("cap", [0, 1, 3, 7])
def test_worst_pairs_are_capped_at_keep_pairs_and_are_the_best(cap):
    everything = find_near_duplicates(_family(), threshold=0.5, keep_pairs=100)
    capped = find_near_duplicates(_family(), threshold=0.5, keep_pairs=cap)
    assert capped.worst_pairs == everything.worst_pairs[:cap]
    assert capped.near_duplicate_documents == everything.near_duplicate_documents  # the cap only trims the list


def test_a_document_with_many_partners_keeps_its_best_pairs():
    """One late document matching many earlier ones: only the `keep_pairs` best of its partners may be kept."""
    ids = [f"id-{n:02d}" for n in random.Random(4).sample(range(60), 12)]
    docs = [(doc_id, BODY if n % 3 else change_words(BODY, 2, seed=n)) for n, doc_id in enumerate(ids)]
    everything = find_near_duplicates(docs, keep_pairs=1000)
    assert len(everything.worst_pairs) == 12 * 11 // 2
    for cap in (1, 2, 5, 20):
        assert find_near_duplicates(docs, keep_pairs=cap).worst_pairs == everything.worst_pairs[:cap]


def test_the_same_input_gives_the_same_report():
    docs = _family()
    first = find_near_duplicates(docs, threshold=0.5)
    again = find_near_duplicates(iter(docs), threshold=0.5)  # a one-shot generator, like a database cursor
    assert first == again


def test_reports_do_not_depend_on_the_process(tmp_path):
    """Python's str hash is salted per process; signatures must not be (same report under different salts)."""
    script = tmp_path / "run.py"
    script.write_text(
        "import sys\n"
        "from tests.test_dedupe import _family\n"
        "from spark_assets.content.dedupe import find_near_duplicates\n"
        "report = find_near_duplicates(_family(), threshold=0.5, keep_pairs=50)\n"
        "print(report.summary()); print(report.worst_pairs)\n"
        "bad = sorted(m for m in sys.modules if m == 'dagster' or m.startswith('dagster.'))\n"
        "sys.exit(1 if bad else 0)\n"
    )
    outputs = []
    for salt in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": salt, "PYTHONPATH": str(REPO_ROOT)}
        result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=REPO_ROOT, env=env)
        assert result.returncode == 0, result.stdout + result.stderr  # 1 means dagster got imported
        outputs.append(result.stdout)
    assert outputs[0] == outputs[1]
    assert "NearDuplicatePair" in outputs[0]


def test_html_tags_do_not_count():
    text = "Storm damage to your roof? Our licensed crew repairs leaks fast, with a written warranty on every job."
    plain = text
    in_paragraph = f"<p>{text}</p>"
    in_markup = ('<div class="hero"><h2>Storm damage</h2> to your <strong>roof</strong>?<br/>Our '
                 '<a href="/crew">licensed crew</a> repairs leaks <em>fast</em>, with a written warranty on every '
                 "job.</div>")
    assert shingles(plain) == shingles(in_paragraph) == shingles(in_markup)
    report = find_near_duplicates([("plain", plain), ("paragraph", in_paragraph), ("markup", in_markup)])
    assert [p.similarity for p in report.worst_pairs] == [1.0, 1.0, 1.0]
    assert report.near_duplicate_documents == 3


def test_a_long_body_in_different_markup_is_the_same_article():
    div_version = BODY.replace("<p>", '<div class="body-copy"><span>').replace("</p>", "</span></div>")
    report = find_near_duplicates([("p", BODY), ("div", div_version)])
    assert report.worst_pairs == [NearDuplicatePair("div", "p", 1.0)]


def test_empty_input():
    report = find_near_duplicates([])
    assert report == NearDuplicateReport(documents=0, near_duplicate_documents=0, rate=0.0, threshold=0.5,
                                         worst_pairs=[])
    assert find_near_duplicates(iter(())).rate == 0.0


def test_a_single_document_has_no_near_duplicate():
    report = find_near_duplicates([("only", BODY)])
    assert (report.documents, report.near_duplicate_documents, report.rate, report.worst_pairs) == (1, 0, 0.0, [])


def test_bodies_without_words_are_duplicates_of_each_other_only():
    report = find_near_duplicates([("blank-1", ""), ("article", BODY), ("blank-2", "<p> </p>")])
    assert report.worst_pairs == [NearDuplicatePair("blank-1", "blank-2", 1.0)]


def test_duplicate_ids_raise_naming_the_id():
    def docs():
        yield "0b6f7c52-aaaa", BODY
        yield "1c2d3e4f-bbbb", siblings(1)[0]
        yield "0b6f7c52-aaaa", siblings(1, first_seed=5)[0]

    with pytest.raises(ValueError, match="duplicate document id '0b6f7c52-aaaa'"):
        find_near_duplicates(docs())


def test_the_threshold_is_honoured():
    """Two articles sharing two thirds of their text: true Jaccard about 0.5."""
    shared = article(spun_template(seed=2, slots=200), seed=1)
    ending_a = article(spun_template(seed=3, slots=100), seed=2)
    ending_b = article(spun_template(seed=4, slots=100), seed=3)
    a, b = shared + "\n" + ending_a, shared + "\n" + ending_b
    jaccard = true_jaccard(a, b)
    assert 0.45 <= jaccard <= 0.55
    docs = [("a", a), ("b", b), *((f"s{i}", t) for i, t in enumerate(siblings(3)))]

    strict = find_near_duplicates(docs, threshold=0.8)
    assert (strict.near_duplicate_documents, strict.worst_pairs) == (0, [])

    loose = find_near_duplicates(docs, threshold=0.3)
    assert [(p.first, p.second) for p in loose.worst_pairs] == [("a", "b")]
    assert loose.worst_pairs[0].similarity == pytest.approx(jaccard, abs=0.15)
    assert loose.threshold == 0.3 and loose.rate == 2 / 5


def test_lsh_candidates_below_the_threshold_are_rejected():
    """At a low threshold LSH proposes many unrelated pairs (one band of 2 slots matching is enough); the signature
    estimate must turn them away: spun siblings are ~0.05 alike, far below 0.3."""
    report = find_near_duplicates(((f"a{i}", t) for i, t in enumerate(siblings(40))), threshold=0.3)
    assert (report.near_duplicate_documents, report.worst_pairs) == (0, [])


def test_near_copies_just_above_the_threshold_are_all_found():
    """LSH can miss pairs; it is tuned for recall, so 30 of 30 copies at ~0.92 similarity (threshold 0.8) are found.
    (datasketch's default balance would miss ~8% of them.)"""
    originals = siblings(30, first_seed=5000)
    copies = [change_words(text, 8, seed=n) for n, text in enumerate(originals)]
    assert 0.88 <= true_jaccard(originals[0], copies[0]) <= 0.95
    docs = [(f"orig-{n:02d}", text) for n, text in enumerate(originals)]
    docs += [(f"copy-{n:02d}", text) for n, text in enumerate(copies)]
    report = find_near_duplicates(docs, keep_pairs=100)
    found = sorted((p.first, p.second) for p in report.worst_pairs)
    assert found == [(f"copy-{n:02d}", f"orig-{n:02d}") for n in range(30)]
    assert report.rate == 1.0


@pytest.mark.parametrize("threshold", [0.99, 1.0])
def test_thresholds_near_one_find_exact_copies(threshold):
    """datasketch cannot band a signature for these thresholds by itself (it wants one band)."""
    docs = [("a", BODY), ("b", change_words(BODY, 20, seed=1)), ("c", BODY)]
    report = find_near_duplicates(docs, threshold=threshold)
    assert report.worst_pairs == [NearDuplicatePair("a", "c", 1.0)]


def test_similarity_is_the_datasketch_minhash_estimate():
    copy = change_words(BODY, 25, seed=7)
    report = find_near_duplicates([("a", BODY), ("b", copy)], threshold=0.5, num_perm=128)
    expected = []
    for text in (BODY, copy):
        minhash = MinHash(num_perm=128, seed=dedupe._SEED, hashfunc=dedupe._HASHFUNC, scheme="affine32")
        minhash.update_batch(shingles(text))
        expected.append(minhash)
    assert report.worst_pairs == [NearDuplicatePair("a", "b", round(expected[0].jaccard(expected[1]), 3))]
    assert report.worst_pairs[0].similarity == pytest.approx(true_jaccard(BODY, copy), abs=0.1)


def test_more_documents_than_the_initial_signature_table():
    """Past 1,024 documents the signature table grows; pairs across the boundary must still be found."""
    rng = random.Random(11)
    words = [f"w{n}" for n in range(20000)]
    bodies = [" ".join(rng.choice(words) for _ in range(12)) for _ in range(1100)]
    bodies[1024] = bodies[1023]
    bodies[1099] = bodies[0]
    report = find_near_duplicates((f"{n:04d}", body) for n, body in enumerate(bodies))
    assert report.documents == 1100
    assert [(p.first, p.second) for p in report.worst_pairs] == [("0000", "1099"), ("1023", "1024")]
    assert report.near_duplicate_documents == 4


@pytest.mark.parametrize(
    "kwargs",
    [{"threshold": 0.0}, {"threshold": 1.5}, {"threshold": -0.1}, {"num_perm": 1}, {"shingle_size": 0},
     {"keep_pairs": -1}],
)
def test_bad_parameters_are_rejected_before_reading_documents(kwargs):
    def docs():
        raise AssertionError("documents were read")
        yield

    with pytest.raises(ValueError):
        find_near_duplicates(docs(), **kwargs)


# --- shingles ----------------------------------------------------------------------------------------------------


def test_shingles_are_word_five_grams():
    assert shingles("one two three four five six seven") == {
        b"one two three four five", b"two three four five six", b"three four five six seven"
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", set()),
        ("   \n\t ", set()),
        ("<p></p><br/>", set()),
        ("?!. -- ...", set()),
        ("Roof", {b"roof"}),
        ("Roof repair today", {b"roof repair today"}),  # shorter than size: one shingle of the whole text
        ("one two three four five", {b"one two three four five"}),  # exactly size words
        ("Hello, World! Hello... world?", {b"hello world hello world"}),  # case and punctuation do not count
        ("  spaced\tout\n\nwords  ", {b"spaced out words"}),
        ("<b>roof</b>repair<br>now", {b"roof repair now"}),  # a tag separates words
        ("Tom &amp; Jerry&#39;s roof", {b"tom jerrys roof"}),  # entities decoded; & is punctuation
        ("Don't wait, it\u2019s \u201cleaking\u201d", {b"dont wait its leaking"}),  # apostrophes join, quotes go
        ("snake_case-and\u2014dashes", {b"snake case and dashes"}),
        ("Caf\u00e9 in Z\u00fcrich, STRASSE", {"caf\u00e9 in z\u00fcrich strasse".encode()}),  # utf-8
        ("Stra\u00dfe", {b"strasse"}),  # case-folded, not just lower-cased
    ],
)
def test_shingle_edge_cases(text, expected):
    assert shingles(text) == expected


def test_repeated_shingles_collapse():
    assert shingles("a b a b a b", size=2) == {b"a b", b"b a"}


def test_shingle_size_one_and_large():
    assert shingles("the roof, the ROOF", size=1) == {b"the", b"roof"}
    assert shingles("a b c", size=50) == {b"a b c"}
    with pytest.raises(ValueError):
        shingles("a b c", size=0)


def _reference_words(text: str) -> list[str]:
    """The specification of the words, as one slow regex pass (the module takes a faster path for ASCII)."""
    plain = html.unescape(re.sub(r"<[^>]*>", " ", text)).casefold()
    return re.findall(r"[^\W_]+", re.sub("['\u2019]", "", plain))


@settings(max_examples=300, deadline=None)
@given(st.text() | st.text(alphabet=st.characters(max_codepoint=127)) | st.text(alphabet=" <>&;'\u2019ab,.-_\u00e9"))
def test_fast_tokenising_gives_the_reference_words(text):
    words = _reference_words(text)
    whole = shingles(text, size=10**9)  # one shingle of all the words
    assert whole == ({" ".join(words).encode("utf-8")} if words else set())


# --- summary ------------------------------------------------------------------------------------------------------


def _report(documents: int, near: int, threshold: float = 0.8) -> NearDuplicateReport:
    return NearDuplicateReport(documents, near, near / documents if documents else 0.0, threshold, [])


@pytest.mark.parametrize(
    ("report", "line"),
    [
        (_report(1200, 3), "3 of 1,200 articles (0.25%) have a near-duplicate at >= 0.80 similarity"),
        (_report(50_000, 1), "1 of 50,000 articles (<0.01%) has a near-duplicate at >= 0.80 similarity"),
        (_report(10, 0), "0 of 10 articles (0.00%) have a near-duplicate at >= 0.80 similarity"),
        (_report(1, 0, 0.9), "0 of 1 article (0.00%) have a near-duplicate at >= 0.90 similarity"),
        (_report(4, 4, 0.875), "4 of 4 articles (100.00%) have a near-duplicate at >= 0.875 similarity"),
        (_report(0, 0), "no articles to check for near-duplicates at >= 0.80 similarity"),
    ],
)
def test_summary(report, line):
    assert report.summary() == line


def test_summary_of_a_real_report():
    """The default threshold is 0.5 (5-word-shingle Jaccard): the siblings of one spun template stay below it."""
    copies = [("copy-1", BODY), ("copy-2", BODY), ("copy-3", BODY)]
    report = find_near_duplicates(copies + [(f"u{i}", t) for i, t in enumerate(siblings(7))])
    assert report.summary() == "3 of 10 articles (30.00%) have a near-duplicate at >= 0.50 similarity"


def test_copies_of_a_reference_are_found_and_copies_among_documents_are_not():
    from spark_assets.content.dedupe import find_copies_of

    base = " ".join(f"word{i}" for i in range(300))
    other = " ".join(f"other{i}" for i in range(300))
    reference = [("site-b/1", base)]
    documents = [("a/1", base.replace("word7 ", "changed ")), ("a/2", other), ("a/3", other)]
    assert find_copies_of(reference, documents, threshold=0.5) == frozenset({"a/1"})
    assert find_copies_of([], documents) == frozenset()
