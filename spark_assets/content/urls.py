"""The site's URL scheme: the one place that turns pages into paths. Plain Python: no database and no dagster.

Every page of a site lives at a path of one segment with a trailing slash:

- the home page at `/`;
- an article at `/<article slug>/`;
- a state hub at `/<state slug>/` ("/texas/");
- a city or county hub at `/<geo key>/` ("/austin-tx/", "/adair-county-ok/");

so an article's breadcrumbs, its links to hubs and to sibling articles, and the site build all agree on where a page
is. A state-mode target's key is its state slug, so its place hub and its state hub are one page. Article slugs start
with the geo key and go on with pattern and persona slugs, so they never collide with a hub path.
"""

from __future__ import annotations

from spark_assets.content.geo import GeoTarget
from spark_assets.content.names import slugify

HOME = "/"


def article_path(slug: str) -> str:
    return f"/{slug}/"


def state_slug(state_name: str) -> str:
    return slugify(state_name)


def state_hub_path(state_name: str) -> str:
    return f"/{state_slug(state_name)}/"


def place_hub_path(geo: GeoTarget) -> str:
    """The hub of one city or county target; a state target's place hub is its state hub."""
    if geo.city or geo.county:
        return f"/{geo.key}/"
    return state_hub_path(geo.state)


def hub_paths(geos: "list[GeoTarget] | tuple[GeoTarget, ...]") -> set[str]:
    """Every hub page the site has for these targets: their place hubs and their states' hubs."""
    return {place_hub_path(g) for g in geos} | {state_hub_path(g.state) for g in geos}


def absolute(domain: str, path: str) -> str:
    """`path` on the site at `domain`: absolute("example.com", "/texas/") -> "https://example.com/texas/"."""
    if not path.startswith("/"):
        raise ValueError(f"a site path starts with '/': {path!r}")
    return f"https://{domain}{path}"
