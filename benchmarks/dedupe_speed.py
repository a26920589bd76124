"""Time `find_near_duplicates` on synthetic spintax-like articles: is the asset check fast enough for a campaign?

    .venv/bin/python benchmarks/dedupe_speed.py                 # 5,000 articles of ~900 words, 1% planted near-copies
    .venv/bin/python benchmarks/dedupe_speed.py --documents 20000
    .venv/bin/python benchmarks/dedupe_speed.py --copies 2000   # worst case: a whole campaign of near-copies
    .venv/bin/python benchmarks/dedupe_speed.py --memory --documents 20000   # peak memory of the detector

Articles are generated up front so only detection is timed. With --memory they are generated while the detector
streams them instead (so they do not fill memory, and the time includes generating), and the growth of the process's
peak RSS is reported.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spark_assets.content.dedupe import find_near_duplicates  # noqa: E402

_WORDS = (
    "roof repair leak storm damage shingle gutter flashing attic insulation contractor local licensed insured "
    "estimate free quote fast reliable trusted family owned team crew inspection replacement metal tile asphalt "
    "weather season winter summer rain wind hail homeowners neighbourhood city county service emergency same day "
    "warranty years experience quality materials affordable price financing call today schedule visit expert honest "
    "clean job site protect home value curb appeal energy bills ventilation moisture mold prevent costly problems "
    "early signs missing cracked curling granules sagging deck water stains ceiling chimney skylight vent pipe"
).split()


def spun_template(rng: random.Random, slots: int) -> list[list[str]]:
    """A campaign template: every slot has 3 alternative phrases, like `{a b|c d e|f g}` in spintax."""
    return [
        [" ".join(rng.choice(_WORDS) for _ in range(rng.randint(2, 4))) for _ in range(3)] for _ in range(slots)
    ]


def render(template: list[list[str]], rng: random.Random) -> str:
    """One article: a choice per slot, wrapped in paragraphs the way the factory emits bodies."""
    phrases = [rng.choice(options) for options in template]
    paragraphs = [" ".join(phrases[i : i + 25]) + "." for i in range(0, len(phrases), 25)]
    return "".join(f"<p>{paragraph.capitalize()}</p>" for paragraph in paragraphs)


def near_copy(text: str, rng: random.Random, changes: int) -> str:
    words = text.split(" ")
    for i in rng.sample(range(len(words)), changes):
        words[i] = rng.choice(_WORDS)
    return " ".join(words)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=5000)
    parser.add_argument("--copies", type=int, default=0, help="instead: this many near-copies of one article")
    parser.add_argument("--num-perm", type=int, default=64)
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--memory", action="store_true")
    args = parser.parse_args()

    rng = random.Random(2024)
    template = spun_template(rng, slots=300)  # ~900 words
    original = render(template, rng)

    def bodies():
        previous = original
        for i in range(args.copies or args.documents):
            if args.copies:
                yield near_copy(original, rng, 3)
            elif i % 100 == 1:  # 1% near-copies of their neighbour
                yield near_copy(previous, rng, 5)
            else:
                previous = render(template, rng)
                yield previous

    if args.memory:
        documents = ((f"article-{i:06d}", body) for i, body in enumerate(bodies()))
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    else:
        started = time.perf_counter()
        pregenerated = list(bodies())
        words = sum(len(b.split()) for b in pregenerated) / len(pregenerated)
        print(f"generated {len(pregenerated):,} articles of ~{words:.0f} words in {time.perf_counter() - started:.1f} s")
        documents = ((f"article-{i:06d}", body) for i, body in enumerate(pregenerated))

    started = time.perf_counter()
    report = find_near_duplicates(documents, threshold=args.threshold, num_perm=args.num_perm)
    elapsed = time.perf_counter() - started
    print(report.summary())
    print(
        f"find_near_duplicates: {elapsed:.2f} s ({report.documents / elapsed:,.0f} articles/s, num_perm={args.num_perm})"
        + (" including generating the articles" if args.memory else "")
    )
    if args.memory:
        grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) * 1024  # Linux reports KiB
        print(f"peak RSS grew by {grown / 1e6:.1f} MB ({grown / report.documents:,.0f} bytes/article)")
    for pair in report.worst_pairs[:3]:
        print(f"  {pair.first} ~ {pair.second}: {pair.similarity:.3f}")


if __name__ == "__main__":
    main()
