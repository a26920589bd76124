"""Near-duplicate detection over a campaign's article bodies, with MinHash + LSH from `datasketch`.

Spintax campaigns produce tens of thousands of articles from the same fragments; when a template has too little
variation, articles come out as near-copies of each other, which search engines treat as thin duplicate content. This
module measures how many articles have a near-copy so an asset check can block publishing above a threshold.

Thresholds: what is measured is the Jaccard similarity of 5-word shingle sets, on which practitioners read >= 0.5 as
a near-copy (the default here and in blueprints' `publishing.similarity_threshold`) and 0.35-0.5 as similar enough to
look at (the gate's `similar_content` warning); the earlier default, 0.8, let pages sharing most of their text through.

How: each body becomes a set of word 5-gram "shingles" (after stripping HTML), whose Jaccard similarity is what
"near-copy" means. Comparing every pair of 50,000 articles is 1.25 billion comparisons, so each set is reduced to a
MinHash signature (`num_perm` small integers whose agreement rate estimates Jaccard) and a MinHashLSH index proposes
only the pairs likely to be above the threshold. Candidates are then verified with the signature estimate.

Documents are streamed: only ids and signatures are kept (num_perm * 4 bytes each, plus the LSH buckets), never texts.

Cost (benchmarks/dedupe_speed.py, 2-core VM): ~1 ms per 900-word article, 5,000 in 5-6 s (up to ~9 s while other
work loads the machine); memory ~4 KB per article, mostly datasketch's LSH buckets. That is linear while near-copies are rare. When most of a campaign is
near-copies of itself the candidate pairs grow quadratically, every new copy being compared with all earlier ones
inside datasketch's query (2,000 copies of one article take ~5 s, 5,000 take ~18 s); such a campaign fails the check
anyway, but checking it in full is slow.

Plain Python + numpy + datasketch, no dagster: the content core is unit-tested and benchmarked on its own.
"""

from __future__ import annotations

import heapq
import html
import re
import zlib
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np
from datasketch import MinHash, MinHashLSH

# Fixed (with the permutation scheme, pinned where the MinHash is made) so the same documents always get the same
# signatures, hence the same report, in every process and across datasketch upgrades that change the default scheme.
_SEED = 1
# MinHash needs a deterministic, well-spread 32-bit hash per shingle. datasketch's default (SHA-1) costs ~8x more per
# shingle and dominated the run time; CRC-32 is in the standard library, and datasketch's "affine32" scheme mixes every
# input hash with the MurmurHash3 finalizer before permuting it, which covers CRC's regularities (measured: the same
# Jaccard estimate error as SHA-1). Python's hash() is salted per process, so it would break determinism.
_HASHFUNC = zlib.crc32
# MinHashLSH picks its bands to balance missed pairs against spurious candidates; with the default (0.5, 0.5) and
# threshold 0.8 / 64 permutations it misses ~40% of pairs at 0.85 similarity and ~15% at 0.9. Every candidate is
# verified against its signature anyway (a cheap vectorised compare), so spurious candidates cost little and missed
# near-copies are what matters: weighting misses 9:1 brings those to ~3% and ~0.3%.
_LSH_WEIGHTS = (0.1, 0.9)

_TAG_RE = re.compile(r"<[^>]*>")
# Apostrophes are deleted ("don't" is the word "dont", not "don" + "t"); every other non-alphanumeric separates words.
_APOSTROPHE_RE = re.compile(r"['\u2019]")
_WORD_RE = re.compile(r"[^\W_]+")  # runs of letters/digits in any script
# For ASCII text str.translate + split finds the same words ~5x faster than the regex (tokenising was a third of the
# run time); the common typographic punctuation is folded first so "smart quotes" do not force the slow path.
_ASCII_TABLE = {code: " " for code in range(128) if not chr(code).isalnum()} | {ord("'"): None}
_TYPOGRAPHY = {"\u2019": "", **dict.fromkeys("\u2018\u201c\u201d\u2013\u2014\u2026\u00a0", " ")}  # ’ is an apostrophe


@dataclass(frozen=True)
class NearDuplicatePair:
    """Two documents whose estimated shingle Jaccard similarity is at or above the threshold; `first < second`."""

    first: str
    second: str
    similarity: float  # 0..1, rounded to 3 places


@dataclass(frozen=True)
class NearDuplicateReport:
    """What an asset check needs: the share of documents that have a near-copy, and the worst offenders to look at.

    `rate` counts documents, not pairs: three mutual copies among ten documents is 3/10, although they form 3 pairs.
    """

    documents: int
    near_duplicate_documents: int  # documents with at least one near-duplicate partner
    rate: float  # near_duplicate_documents / documents; 0.0 when there are no documents
    threshold: float  # the similarity at or above which two documents count as near-duplicates
    worst_pairs: list[NearDuplicatePair]  # highest similarity first, then by ids; at most `keep_pairs`
    # documents with a near-duplicate earlier in the stream: in each group of copies all but the first, so flagging
    # these keeps one article of every group publishable
    flagged: frozenset[str] = frozenset()

    def summary(self) -> str:
        """One line for a person, e.g. '3 of 1,200 articles (0.25%) have a near-duplicate at >= 0.80 similarity'."""
        threshold = _format_threshold(self.threshold)
        if self.documents == 0:
            return f"no articles to check for near-duplicates at >= {threshold} similarity"
        noun = "article" if self.documents == 1 else "articles"
        verb = "has" if self.near_duplicate_documents == 1 else "have"
        return (
            f"{self.near_duplicate_documents:,} of {self.documents:,} {noun} ({_format_percent(self.rate)}) "
            f"{verb} a near-duplicate at >= {threshold} similarity"
        )


def _format_threshold(threshold: float) -> str:
    text = f"{threshold:.2f}"
    return text if float(text) == threshold else f"{threshold:g}"  # 0.875 must not print as 0.88


def _format_percent(rate: float) -> str:
    if 0 < rate < 0.0001:
        return "<0.01%"  # 1 in 50,000 is not 0.00%
    return f"{rate:.2%}"


def shingles(text: str, size: int = 5) -> set[bytes]:
    """The word `size`-grams of `text`, UTF-8 encoded: what two documents are compared on.

    HTML tags are stripped (the same words in different markup are the same article to a reader and a search engine)
    and entities decoded; text is case-folded and punctuation removed, so only wording counts. A text shorter than
    `size` words gives one shingle of all its words, so short texts still compare; a text without words gives none.
    """
    if size < 1:
        raise ValueError(f"shingle size must be at least 1, got {size}")
    return set(_shingle_stream(text, size))


def _shingle_stream(text: str, size: int) -> Iterator[bytes]:
    """The shingles of `text` one by one, repeats included (MinHash ignores them), as slices of its normalised bytes.

    Everything here is a C-level iterator: MinHash.update_batch runs one Python loop over it (calling the hash
    function), and that single loop is most of the cost of a document, so no second per-shingle loop is added.
    """
    encoded = _normalised(text)
    if not encoded:
        return iter(())
    # UTF-8 never uses the space byte inside a multi-byte character, so the spaces are exactly the word boundaries
    spaces = np.flatnonzero(np.frombuffer(encoded, dtype=np.uint8) == 0x20)
    if len(spaces) < size:  # fewer than size + 1 words: the whole text is the one shingle
        return iter((encoded,))
    starts = [0, *(spaces + 1).tolist()]
    ends = [*spaces.tolist(), len(encoded)]
    return map(encoded.__getitem__, map(slice, starts, ends[size - 1 :]))


def _normalised(text: str) -> bytes:
    """The words of `text` (see `shingles`), lower-cased and joined by single spaces, UTF-8 encoded."""
    plain = html.unescape(_TAG_RE.sub(" ", text)).casefold()
    for char, replacement in _TYPOGRAPHY.items():
        if char in plain:
            plain = plain.replace(char, replacement)
    if plain.isascii():
        words = plain.translate(_ASCII_TABLE).split()
    else:
        words = _WORD_RE.findall(_APOSTROPHE_RE.sub("", plain))
    return " ".join(words).encode("utf-8")


def find_near_duplicates(
    documents: Iterable[tuple[str, str]],
    *,
    threshold: float = 0.5,
    num_perm: int = 64,
    shingle_size: int = 5,
    keep_pairs: int = 10,
) -> NearDuplicateReport:
    """Stream `(id, text)` pairs once and report the documents that have a near-duplicate among the others.

    Two documents are near-duplicates when the MinHash estimate of their shingle Jaccard similarity is >= `threshold`.
    Each document queries the LSH index before it is inserted, so every pair is found once, from its later document.
    LSH is probabilistic: a pair just above the threshold can be missed (more `num_perm` makes that rarer); a pair
    well above it (a copy with a few words changed) is found with near certainty.

    Bodies with no words at all share the empty signature, so they are reported as duplicates of each other (1.0):
    an empty article is a defect worth surfacing, not something to wave through.

    Raises ValueError for a repeated id (the report would be ambiguous) or parameters out of range.
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    if num_perm < 2:
        raise ValueError(f"num_perm must be at least 2, got {num_perm}")
    if shingle_size < 1:
        raise ValueError(f"shingle_size must be at least 1, got {shingle_size}")
    if keep_pairs < 0:
        raise ValueError(f"keep_pairs must be >= 0, got {keep_pairs}")

    lsh = _lsh_index(threshold, num_perm)
    # copies of one template skip re-deriving the permutations for every document
    template = MinHash(num_perm=num_perm, seed=_SEED, hashfunc=_HASHFUNC, scheme="affine32")
    ids: list[str] = []
    seen: set[str] = set()
    # Row i is document i's signature; LSH keys are row numbers, so a candidate's signature is one fancy-index away.
    signatures = np.empty((1024, num_perm), dtype=template.hashvalues.dtype)
    partnered = np.zeros(1024, dtype=bool)
    later_copy = np.zeros(1024, dtype=bool)  # documents with a near-duplicate earlier in the stream
    best: list[tuple[int, str, str]] = []  # (-matching signature slots, first, second): sorts best first

    for doc_id, text in documents:
        if doc_id in seen:
            raise ValueError(f"duplicate document id {doc_id!r}: each document must have a unique id")
        seen.add(doc_id)
        minhash = template.copy()
        minhash.update_batch(_shingle_stream(text, shingle_size))
        row = len(ids)
        if row == len(signatures):  # grow by doubling: amortised O(1) per document, no per-document arrays
            signatures = np.concatenate([signatures, np.empty_like(signatures)])
            partnered = np.concatenate([partnered, np.zeros_like(partnered)])
            later_copy = np.concatenate([later_copy, np.zeros_like(later_copy)])

        candidates = lsh.query(minhash)
        if candidates:
            others = np.fromiter(candidates, dtype=np.intp, count=len(candidates))
            matches = np.count_nonzero(signatures[others] == minhash.hashvalues, axis=1)
            verified = matches / num_perm >= threshold  # the MinHash Jaccard estimate, as MinHash.jaccard computes it
            if verified.any():
                others, matches = others[verified], matches[verified]
                partnered[others] = True
                partnered[row] = True
                later_copy[row] = True
                if keep_pairs:
                    best.extend(_best_pairs_of(doc_id, others, matches, ids, keep_pairs))
                    if len(best) > 4 * keep_pairs:
                        best = sorted(best)[:keep_pairs]

        lsh.insert(row, minhash, check_duplication=False)  # ids were checked above; rows are unique by construction
        signatures[row] = minhash.hashvalues
        ids.append(doc_id)

    count = len(ids)
    near = int(np.count_nonzero(partnered[:count]))
    return NearDuplicateReport(
        documents=count,
        near_duplicate_documents=near,
        rate=near / count if count else 0.0,
        threshold=threshold,
        worst_pairs=[
            NearDuplicatePair(first, second, round(-negative / num_perm, 3))
            for negative, first, second in sorted(best)[:keep_pairs]
        ],
        flagged=frozenset(ids[i] for i in np.flatnonzero(later_copy[:count])),
    )


def _lsh_index(threshold: float, num_perm: int) -> MinHashLSH:
    if threshold * num_perm > num_perm - 1:
        # Only identical signatures pass verification, and datasketch's optimum here is a single band, which it refuses
        # (b < 2). Two half-signature bands catch every identical pair.
        return MinHashLSH(threshold=threshold, num_perm=num_perm, params=(2, num_perm // 2))
    return MinHashLSH(threshold=threshold, num_perm=num_perm, weights=_LSH_WEIGHTS)


def _best_pairs_of(
    doc_id: str, others: np.ndarray, matches: np.ndarray, ids: list[str], keep: int
) -> list[tuple[int, str, str]]:
    """The `keep` best pairs between `doc_id` and its verified partners, as sortable (-matches, first, second).

    A campaign of near-copies gives every new document thousands of partners, so only the ones that can reach the
    report are turned into Python tuples. With one side fixed, ordering pairs by (first, second) is ordering partners
    by id (a partner below `doc_id` leads its pair; one above it follows `doc_id`, which leads all those pairs).
    """
    if len(others) <= keep:
        chosen = list(zip(others.tolist(), matches.tolist()))
    else:
        cut = int(np.partition(matches, len(matches) - keep)[len(matches) - keep])  # the keep-th highest count
        above = matches > cut
        chosen = list(zip(others[above].tolist(), matches[above].tolist()))
        tied = heapq.nsmallest(keep - len(chosen), others[matches == cut].tolist(), key=ids.__getitem__)
        chosen += [(row, cut) for row in tied]
    pairs = []
    for row, count in chosen:
        partner = ids[row]
        first, second = (partner, doc_id) if partner < doc_id else (doc_id, partner)
        pairs.append((-count, first, second))
    return pairs


def find_copies_of(
    reference: Iterable[tuple[str, str]],
    documents: Iterable[tuple[str, str]],
    *,
    threshold: float = 0.5,
    num_perm: int = 64,
    shingle_size: int = 5,
) -> frozenset[str]:
    """The ids of `documents` that have a near-duplicate (MinHash Jaccard estimate >= `threshold`) among `reference`.

    For the gate's site-wide and cross-site checks: the reference (the site's other campaigns, the operator's other
    sites) is indexed once, and each document only queries it, so copies inside `documents` are not reported here
    (`find_near_duplicates` reports those). Streamed like `find_near_duplicates`: signatures are kept, texts never.
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    lsh = _lsh_index(threshold, num_perm)
    template = MinHash(num_perm=num_perm, seed=_SEED, hashfunc=_HASHFUNC, scheme="affine32")
    signatures: list[np.ndarray] = []
    for _, text in reference:
        minhash = template.copy()
        minhash.update_batch(_shingle_stream(text, shingle_size))
        lsh.insert(len(signatures), minhash, check_duplication=False)
        signatures.append(minhash.hashvalues)
    if not signatures:
        return frozenset()
    matrix = np.stack(signatures)
    found = []
    for doc_id, text in documents:
        minhash = template.copy()
        minhash.update_batch(_shingle_stream(text, shingle_size))
        candidates = lsh.query(minhash)
        if candidates:
            others = np.fromiter(candidates, dtype=np.intp, count=len(candidates))
            matches = np.count_nonzero(matrix[others] == minhash.hashvalues, axis=1)
            if (matches / num_perm >= threshold).any():
                found.append(doc_id)
    return frozenset(found)
