"""The drip-feed order: which of a site's queued articles are published next, and in what order (pure, no database).

A site with a daily publishing quota publishes its approved, passing articles a few a day. The order is one an operator
can predict from the queue alone:

1. **Breadth before depth.** Articles are taken in rounds: round 0 holds each place's first article, round 1 each
   place's second, and so on, so every place (every hub) gets its first article before any place gets its second.
   Rounds count the place's articles already published: a place that got one yesterday is in round 1 today, so the
   rule holds across days, and publishing N today then M tomorrow publishes exactly what N + M at once would have.
2. **Largest places first** within a round: by `place_size` descending (the caller says what size is; the records
   layer uses the place's population, see `spark_assets.records.drip_feed`), ties by place key.
3. **Oldest first** within a place: by `created` (any comparable: a timestamp, an ordinal), ties by slug.

The result is fully determined by the queue's contents (not by its order), so two ticks over the same queue agree.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Iterable, Mapping


@dataclass(frozen=True)
class QueuedArticle:
    """One article waiting to be published: its slug (unique in the site), its place (the hub it belongs to), the
    place's size, the article's creation order, and labels for display."""

    slug: str
    place: str
    place_size: int
    created: Any
    id: str = ""
    state: str = ""
    place_label: str = ""


def drip_order(queue: Iterable[QueuedArticle], published: Mapping[str, int] | None = None) -> list[QueuedArticle]:
    """The whole queue in publishing order (see the module docstring); `published` counts each place's articles
    already published (a place missing from it has none)."""
    published = published or {}
    by_place: dict[str, list[QueuedArticle]] = defaultdict(list)
    for article in queue:
        by_place[article.place].append(article)
    ranked = []
    for place, articles in by_place.items():
        articles.sort(key=lambda a: (a.created, a.slug))
        size = max(a.place_size for a in articles)  # one size per place, even if the rows disagree
        for depth, article in enumerate(articles):
            ranked.append(((published.get(place, 0) + depth, -size, place), article))
    ranked.sort(key=lambda item: item[0])  # (round, place) is unique per article: no tie left to the input order
    return [article for _, article in ranked]


def next_batch(
    queue: Iterable[QueuedArticle], quota: int, published: Mapping[str, int] | None = None
) -> list[QueuedArticle]:
    """The next `quota` articles to publish: the first min(quota, len(queue)) of `drip_order`."""
    if quota < 0:
        raise ValueError(f"a quota is a count of articles, not {quota}")
    return drip_order(queue, published)[:quota]
