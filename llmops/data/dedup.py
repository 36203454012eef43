"""Exact and near-duplicate detection. Near duplicates use MinHash + LSH from `rensa` (Rust)
to find candidates, then confirm each candidate with the exact Jaccard of the two shingle sets,
so a reported pair is always truly above the threshold (precision 1 by construction)."""

import re
from dataclasses import dataclass

from rensa import RMinHash, RMinHashLSH

WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class MinHashSettings:
    threshold: float = 0.8
    num_perm: int = 128
    shingle_size: int = 3
    shingle_unit: str = "word"  # "word" or "char"
    seed: int = 42

    @property
    def num_bands(self) -> int:
        # Banding tuned so the S-curve's midpoint sits a bit below the threshold (recall first;
        # candidates are verified afterwards).
        for bands in (64, 32, 16, 8, 4):
            rows = self.num_perm // bands
            if self.num_perm % bands == 0 and (1 / bands) ** (1 / rows) >= self.threshold - 0.15:
                return bands
        return 4


def normalize(text: str) -> str:
    """Case- and whitespace-insensitive form used for exact duplicates."""
    return " ".join(WORD.findall(text.casefold()))


def shingles(text: str, settings: MinHashSettings) -> list[str]:
    """Word or character n-grams of the normalized text (the whole text when shorter)."""
    if settings.shingle_unit == "char":
        norm = normalize(text)
        n = settings.shingle_size
        return [norm[i : i + n] for i in range(max(1, len(norm) - n + 1))]
    words = normalize(text).split()
    n = settings.shingle_size
    return [" ".join(words[i : i + n]) for i in range(max(1, len(words) - n + 1))]


def minhashes(shingle_sets: list[set[str]], settings: MinHashSettings) -> list[RMinHash]:
    """One MinHash per shingle set."""
    result = []
    for shingle_set in shingle_sets:
        mh = RMinHash(num_perm=settings.num_perm, seed=settings.seed)
        mh.update(list(shingle_set))
        result.append(mh)
    return result


def jaccard(a: set[str], b: set[str]) -> float:
    """Exact Jaccard similarity of two sets."""
    return len(a & b) / len(a | b) if a or b else 1.0


def exact_duplicates(texts: list[str]) -> dict[int, int]:
    """Map each duplicate's index to the index of the first identical text."""
    first: dict[str, int] = {}
    duplicates = {}
    for i, text in enumerate(texts):
        key = normalize(text)
        if key in first:
            duplicates[i] = first[key]
        else:
            first[key] = i
    return duplicates


def near_duplicates(texts: list[str], settings: MinHashSettings) -> dict[int, int]:
    """Map each near duplicate's index to the earliest kept text it matches (>= threshold).

    Texts are visited in order and only kept ones enter the index, so each cluster keeps its
    first member: deterministic for a given input order.
    """
    sets = [set(shingles(t, settings)) for t in texts]
    hashes = minhashes(sets, settings)
    lsh = RMinHashLSH(
        threshold=settings.threshold, num_perm=settings.num_perm, num_bands=settings.num_bands
    )
    duplicates = {}
    for i, mh in enumerate(hashes):
        matches = [j for j in lsh.query(mh) if jaccard(sets[i], sets[j]) >= settings.threshold]
        if matches:
            duplicates[i] = min(matches)
        else:
            lsh.insert(i, mh)
    return duplicates


def cross_matches(
    queries: list[str], corpus: list[str], settings: MinHashSettings
) -> dict[int, int]:
    """Map each query index to a corpus index it near-duplicates (used for contamination)."""
    corpus_sets = [set(shingles(t, settings)) for t in corpus]
    query_sets = [set(shingles(t, settings)) for t in queries]
    corpus_hashes = minhashes(corpus_sets, settings)
    lsh = RMinHashLSH(
        threshold=settings.threshold, num_perm=settings.num_perm, num_bands=settings.num_bands
    )
    for j, mh in enumerate(corpus_hashes):
        lsh.insert(j, mh)
    matches = {}
    for i, mh in enumerate(minhashes(query_sets, settings)):
        hits = [
            j for j in lsh.query(mh) if jaccard(query_sets[i], corpus_sets[j]) >= settings.threshold
        ]
        if hits:
            matches[i] = min(hits)
    return matches
