"""Unit tests for spark_assets.content.names: domain normalisation, slug validation and slugify (pure Python)."""

from __future__ import annotations

import re

import pytest

from spark_assets.content.names import SLUG_MAX_LENGTH, InvalidName, normalize_domain, slugify, validate_slug

# --- normalize_domain --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Example.COM", "example.com"),
        ("demo-roofing.example", "demo-roofing.example"),
        ("sub.domain.co.uk", "sub.domain.co.uk"),
        ("bücher.de", "xn--bcher-kva.de"),
        ("BÜCHER.de", "xn--bcher-kva.de"),
        ("xn--bcher-kva.de", "xn--bcher-kva.de"),
        ("example.com.", "example.com"),
        ("Demo-Roofing.Example.", "demo-roofing.example"),
        ("  example.com  ", "example.com"),
        ("a1.b2.example.org", "a1.b2.example.org"),
        ("123.example.com", "123.example.com"),
        ("shop.xn--p1ai", "shop.xn--p1ai"),
    ],
)
def test_normalize_domain_accepts(raw, expected):
    assert normalize_domain(raw) == expected


def test_normalize_domain_is_idempotent():
    for raw in ("Example.COM", "bücher.de", "example.com.", "sub.domain.co.uk"):
        once = normalize_domain(raw)
        assert normalize_domain(once) == once


def test_normalize_domain_length_limits_are_inclusive():
    label63 = "a" * 63
    assert normalize_domain(f"{label63}.com") == f"{label63}.com"
    name = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 57, "com"])  # 63+63+63+57+3 + 4 dots = 253
    assert len(name) == 253
    assert normalize_domain(name) == name


# The phrase is a regular expression: an ASCII name is checked label by label (messages naming the rule), a non-ASCII
# name goes through the idna package first (its messages, prefixed by "is not a valid domain name").
@pytest.mark.parametrize(
    ("raw", "phrase"),
    [
        ("https://x.com", "is a URL, not a domain"),
        ("http://example.com/", "is a URL, not a domain"),
        ("x.com/path", "is a URL, not a domain"),
        ("x.com:8080", "has a port"),
        ("[::1]", "IPv6"),
        ("localhost", "has no top-level domain"),
        ("localhost.", "has no top-level domain"),
        ("-bad.com", "(?i)hyphen"),
        ("bad-.com", "(?i)hyphen"),
        ("a_b.com", "label 'a_b'|not a valid domain name"),
        ("bücher_x.de", "not a valid domain name"),
        ("", "domain is empty"),
        ("   ", "domain is empty"),
        ("exa mple.com", "contains whitespace"),
        ("example.com\t.org", "contains whitespace"),
        ("a" * 64 + ".com", "(?i)too long|1-63"),
        (".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 58, "com"]), "(?i)longer than 253|too long"),  # 254 chars
        ("a..com", "(?i)label ''|empty label"),
        ("example.123", "top-level domain '123' is not alphabetic"),
    ],
)
def test_normalize_domain_rejects_with_a_clear_message(raw, phrase):
    with pytest.raises(InvalidName) as info:
        normalize_domain(raw)
    assert re.search(phrase, str(info.value)), str(info.value)


@pytest.mark.parametrize("raw", ["xn--zz.com", "ab--cd.com"])
def test_normalize_domain_rejects_malformed_a_labels(raw):
    with pytest.raises(InvalidName):
        normalize_domain(raw)


@pytest.mark.parametrize("raw", ["1.2.3.4", "192.168.0.1"])
def test_normalize_domain_rejects_ip_addresses(raw):
    with pytest.raises(InvalidName) as info:
        normalize_domain(raw)
    # Rejected by the top-level-domain rule; names.py's "is an IP address" branch is never reached (see report).
    assert "IP address" in str(info.value) or "is not alphabetic" in str(info.value)
    assert raw in str(info.value)


def test_invalid_name_is_a_value_error():
    assert issubclass(InvalidName, ValueError)


def test_normalize_domain_none_is_empty():
    with pytest.raises(InvalidName, match="domain is empty"):
        normalize_domain(None)  # type: ignore[arg-type]


# --- validate_slug -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("slug", ["roof-repair", "a", "roof", "r2-d2", "2024", "a" * SLUG_MAX_LENGTH])
def test_validate_slug_accepts(slug):
    assert validate_slug(slug) == slug


@pytest.mark.parametrize(
    ("slug", "phrase"),
    [
        ("Roof", "not URL-safe"),
        ("a--b", "not URL-safe"),
        ("-a", "not URL-safe"),
        ("a-", "not URL-safe"),
        ("../x", "not URL-safe"),
        ("a/b", "not URL-safe"),
        ("a b", "not URL-safe"),
        ("a_b", "not URL-safe"),
        ("café", "not URL-safe"),
        ("", "slug is empty"),
        ("a" * (SLUG_MAX_LENGTH + 1), f"longer than {SLUG_MAX_LENGTH} characters"),
    ],
)
def test_validate_slug_rejects(slug, phrase):
    with pytest.raises(InvalidName) as info:
        validate_slug(slug)
    assert phrase in str(info.value)


# --- slugify -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Roof Repair & Replacement", "roof-repair-replacement"),
        ("Crème Brûlée à la Café", "creme-brulee-a-la-cafe"),
        ("Ñandú São Paulo Zürich", "nandu-sao-paulo-zurich"),
        ("  --Hello,   World!--  ", "hello-world"),
        ("ROOF_repair 2024", "roof-repair-2024"),
        ("!!!", ""),
        ("", ""),
    ],
)
def test_slugify(text, expected):
    assert slugify(text) == expected


def test_slugify_output_is_a_valid_slug():
    for text in ("Roof Repair & Replacement", "Crème Brûlée", "x" * 200, "word " * 40, "Ünïcödé — dash"):
        slug = slugify(text)
        assert validate_slug(slug) == slug


def test_slugify_cuts_at_a_word_boundary():
    text = "summit roofing company emergency storm damage repair and full roof replacement services near you"
    slug = slugify(text, max_length=40)
    assert len(slug) <= 40
    assert text.replace(" ", "-").startswith(slug + "-")  # whole words only, no trailing hyphen
    assert slug == "summit-roofing-company-emergency-storm"
    assert slugify("hello world", 7) == "hello"
    assert slugify("aaa bbb ccc", 9) == "aaa-bbb"


def test_slugify_default_length_is_the_slug_limit():
    slug = slugify("word " * 40)
    assert len(slug) <= SLUG_MAX_LENGTH
    assert slug.endswith("word") and "--" not in slug


def test_slugify_cuts_one_long_word():
    assert slugify("a" * 100) == "a" * SLUG_MAX_LENGTH
    assert slugify("abcdefgh", 5) == "abcde"


def test_slugify_keeps_a_whole_word_ending_exactly_at_the_limit():
    assert slugify("ab cd ef", 5) == "ab-cd"


@pytest.mark.parametrize("slug", ["roof\n", "roof-repair\n"])
def test_validate_slug_rejects_a_trailing_newline(slug):
    with pytest.raises(InvalidName, match="not URL-safe"):
        validate_slug(slug)
