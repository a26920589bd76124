"""Domains and slugs: the names that end up in partition keys, URLs and object-storage paths, so they must be safe.

`normalize_domain` uses the `idna` package (IDNA 2008 with UTS 46 mapping, what browsers and registrars do) rather than a
hand-written regex alone, so internationalised names are converted to their ASCII form the same way a registrar would.
"""

from __future__ import annotations

import re
import unicodedata

import idna

_LABEL_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_TLD_RE = re.compile(r"^(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})$")
_SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
SLUG_MAX_LENGTH = 80


class InvalidName(ValueError):
    """A domain or slug that cannot be used; the message says which rule it breaks."""


def normalize_domain(raw: str) -> str:
    """The canonical (lower-case, ASCII/punycode) form of a registrable host name, or InvalidName saying why not."""
    value = (raw or "").strip()
    if not value:
        raise InvalidName("domain is empty")
    if "://" in value or "/" in value:
        raise InvalidName(f"'{raw}' is a URL, not a domain: give the host name only, e.g. 'example.com'")
    if ":" in value:
        raise InvalidName(f"'{raw}' has a port or is an IPv6 address: give the host name only")
    if any(ch.isspace() for ch in value):
        raise InvalidName(f"'{raw}' contains whitespace")
    if value.startswith("-"):  # said plainly: on a command line it also looks like an option
        raise InvalidName(f"'{raw}' is not a valid domain: a domain cannot start with a hyphen ('-')")
    if value.endswith("."):
        value = value[:-1]
    if value.isascii():  # checked label by label below, with messages that name the rule
        ascii_name = value.lower()
    else:
        try:
            ascii_name = idna.encode(value, uts46=True).decode("ascii")
        except idna.IDNAError as exc:
            raise InvalidName(f"'{raw}' is not a valid domain name: {exc}") from None
    labels = ascii_name.split(".")
    if len(labels) < 2:
        raise InvalidName(f"'{raw}' has no top-level domain: a site needs a name like 'example.com'")
    if len(ascii_name) > 253:
        raise InvalidName(f"'{raw}' is longer than 253 characters")
    if all(label.isdigit() for label in labels):
        raise InvalidName(f"'{raw}' is an IP address, not a domain")
    for label in labels:
        if not _LABEL_RE.fullmatch(label):
            raise InvalidName(f"'{raw}': label '{label}' must be 1-63 letters, digits or inner hyphens")
        if label[2:4] == "--":
            if not label.startswith("xn--"):
                raise InvalidName(f"'{raw}': label '{label}' has hyphens in 3rd and 4th position (reserved for IDNA)")
            try:
                idna.decode(label)
            except (idna.IDNAError, UnicodeError):
                raise InvalidName(f"'{raw}': label '{label}' is not valid punycode") from None
    if not _TLD_RE.fullmatch(labels[-1]):
        raise InvalidName(f"'{raw}': top-level domain '{labels[-1]}' is not alphabetic")
    return ascii_name


def validate_slug(slug: str) -> str:
    """Return `slug` if it is URL- and path-safe (lower-case ASCII words joined by single hyphens), else InvalidName."""
    if not slug:
        raise InvalidName("slug is empty")
    if len(slug) > SLUG_MAX_LENGTH:
        raise InvalidName(f"slug '{slug}' is longer than {SLUG_MAX_LENGTH} characters")
    if not _SLUG_RE.fullmatch(slug):
        raise InvalidName(
            f"slug '{slug}' is not URL-safe: use lower-case letters, digits and single hyphens (e.g. 'roof-repair')"
        )
    return slug


def slugify(text: str, max_length: int = SLUG_MAX_LENGTH) -> str:
    """A URL-safe slug from free text: accents folded, anything else becomes a hyphen, cut at a word boundary."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    slug = re.sub(r"[^a-z0-9]+", "-", folded).strip("-")
    if len(slug) > max_length:
        cut = slug[:max_length]
        if slug[max_length] != "-" and "-" in cut:  # the cut splits a word: drop the partial word
            cut = cut.rsplit("-", 1)[0]
        slug = cut.rstrip("-")
    return slug
