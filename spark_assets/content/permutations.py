"""The Cartesian product geo target x avatar x variant x pattern, streamed in a fixed order with stable ids.

The product of a large campaign (hundreds of thousands of rows) is never held in memory: `iter_permutations` yields one
permutation at a time from the (small) dimension lists. A permutation's id is a UUID 5 of the campaign key and the
combination, so the same combination keeps its id on every run and in every database, whatever else changed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Iterator, Sequence
from uuid import UUID

from spark_assets.content.geo import GeoTarget

#: namespaces of the derived ids (fixed forever: changing one changes every id)
PERMUTATION_NAMESPACE = UUID("6f1d2b7e-7c1a-4f4e-9a51-2f0b8c3d5e11")
ARTICLE_NAMESPACE = UUID("0c9a4e52-3d1b-4b8e-8f27-6a5d1c2e9b30")
HEADLINE_NAMESPACE = UUID("b3e8d6a1-52c4-4f0a-9d7e-1c6b2a8f4e95")


_VERSION_BITS = (0xF000 << 64) | (0xC000 << 48)
_VERSION_5 = (5 << 76) | (0x8000 << 48)  # version 5, RFC 4122 variant


def uuid5(namespace: UUID, name: str) -> UUID:
    """uuid.uuid5(namespace, name), the same id, in half the time (it skips UUID()'s keyword checks): three are made
    per article."""
    digest = hashlib.sha1(namespace.bytes + name.encode()).digest()
    return UUID(int=(int.from_bytes(digest[:16], "big") & ~_VERSION_BITS) | _VERSION_5)


@dataclass(frozen=True, slots=True)
class Persona:
    """One avatar x variant pair, with the stored ids of both."""

    avatar_id: UUID
    avatar_slug: str
    avatar_name: str
    pain_points: tuple[str, ...]
    variant_id: UUID
    variant_slug: str
    variant_name: str


@dataclass(frozen=True, slots=True)
class PatternRef:
    id: UUID
    slug: str
    logic: str


@dataclass(frozen=True, slots=True)
class Permutation:
    id: UUID
    ordinal: int
    geo: GeoTarget
    persona: Persona
    pattern: PatternRef

    @property
    def combination_key(self) -> str:
        return f"{self.geo.key}/{self.persona.avatar_slug}/{self.persona.variant_slug}/{self.pattern.slug}"

    @property
    def article_id(self) -> UUID:
        return uuid5(ARTICLE_NAMESPACE, str(self.id))

    @property
    def headline_id(self) -> UUID:
        return uuid5(HEADLINE_NAMESPACE, str(self.id))


def permutation_count(geos: Sequence[GeoTarget], personas: Sequence[Persona], patterns: Sequence[PatternRef]) -> int:
    return len(geos) * len(personas) * len(patterns)


def iter_permutations(
    campaign_key: str, geos: Sequence[GeoTarget], personas: Sequence[Persona], patterns: Sequence[PatternRef]
) -> Iterator[Permutation]:
    """Every combination, geo-major (all of one place's articles together), in the order of the inputs."""
    ordinal = 0
    for geo in geos:
        for persona in personas:
            for pattern in patterns:
                key = f"{geo.key}/{persona.avatar_slug}/{persona.variant_slug}/{pattern.slug}"
                yield Permutation(uuid5(PERMUTATION_NAMESPACE, f"{campaign_key}/{key}"), ordinal, geo, persona, pattern)
                ordinal += 1
