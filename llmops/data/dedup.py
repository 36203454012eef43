"""Exact and near-duplicate detection over a record's key: the whole example (system message,
every turn and the answer) or the prompt alone, as the data contract says.

Near duplicates use MinHash (`rensa`, Rust) + LSH banding over the whole key to find
candidates, then confirm each candidate exactly: the Jaccard of the two shingle sets reaches
the threshold, and so does the word-level similarity of each part of the key (system, prompt,
answer). The part check is what keeps a paraphrased question with the same canned answer, or
another answer to the same question, from passing as a near duplicate when the shared part is
long.

The batch path works on arrays, not on a Python object per shingle: Arrow splits every key's
words and each distinct word is hashed once (64-bit), a word shingle's fingerprint folds the
hashes of its words, rensa builds the signature matrix from the flat fingerprints in one call
and flags the keys that share a band, and numpy groups those keys' bands. Only records that
share a band with another record reach Python. docs/data.md has the profiles this layout
comes from.
"""

import gc
import re
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandas.util import hash_array
from rapidfuzz.distance import Indel
from rensa import RMinHash, RMinHashDigestMatrix, RMinHashLSH

WORD = re.compile(r"\w+")
# For ASCII text `\w` is [A-Za-z0-9_]: mapping every other ASCII character to a space and
# splitting gives the regex's words about 3x faster (normalize runs on every record 3-4 times).
_ASCII_NON_WORD = str.maketrans(
    {chr(c): " " for c in range(128) if not (chr(c).isalnum() or chr(c) == "_")}
)
_SEPARATOR = " Q "  # between parts of a key when all are tokenized at once
_U64 = np.uint64
_FOLD = _U64(0x100000001B3)  # FNV-1a's 64-bit prime: folds a band's values into one

DedupKey = Literal["example", "prompt"]
Key = tuple[str, ...]  # a record's key text in parts; the whole key is the parts joined


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


def render(messages: list[dict]) -> str:
    """Messages as "role: content" lines (the role is part of what is compared)."""
    return "\n".join(map(_line, messages))


def _line(message: dict) -> str:
    return f"{message['role']}: {message['content']}"


def record_key(messages: list[dict], key: DedupKey, rejected: str | None = None) -> Key:
    """What a record is compared on. "example": (system message, turns before the answer, the
    answer), plus a preference pair's rejected answer. "prompt": the turns before the answer
    alone, without the system message, which is house instructions shared by many records
    rather than part of the customer's question.

    Two pairs with one prompt and one chosen answer but different rejected answers teach two
    preferences, so they are not copies: the rejected answer is a part of its own, which the
    near-duplicate check compares on its own too."""
    # One pass over the turns, each rendered once (`render`'s lines): this runs per record.
    system: list[str] = []
    turns: list[str] = []
    for m in messages[:-1]:
        (system if m["role"] == "system" else turns).append(_line(m))
    if key == "prompt":
        return ("\n".join(turns),)
    pair = (f"rejected: {rejected}",) if rejected is not None else ()
    return ("\n".join(system), "\n".join(turns), render(messages[-1:]), *pair)


def key_text(key: Key) -> str:
    """The whole key as one text."""
    return "\n".join(part for part in key if part)


def normalized_prompt(messages: list[dict]) -> str:
    """The prompt key in normalized form: what two records share when they ask the same."""
    return normalize(key_text(record_key(messages, "prompt")))


def normalize(text: str) -> str:
    """Case-, whitespace- and punctuation-insensitive form used for exact duplicates."""
    if text.isascii():
        return " ".join(text.lower().translate(_ASCII_NON_WORD).split())
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


@dataclass(frozen=True)
class Signature:
    """One key's MinHash values (a row of `signature_matrix`)."""

    values: tuple[int, ...]

    def digest(self) -> list[int]:
        return list(self.values)


def minhashes(shingle_sets: list[set[str]], settings: MinHashSettings) -> list[Signature]:
    """One MinHash per shingle set; equal to the `signature_matrix` row of the key the set
    came from."""
    with _collector_paused():
        shingle_lists = [list(shingle_set) for shingle_set in shingle_sets]
        fingerprints = _shingle_fingerprints([s for lst in shingle_lists for s in lst], settings)
        bounds = np.concatenate([[0], np.cumsum([len(lst) for lst in shingle_lists])])
        rows = _flat_signatures(fingerprints, bounds.astype(np.int64), settings)
        return [Signature(tuple(row)) for row in rows.tolist()]


def signature_matrix(keys: list[Key], settings: MinHashSettings) -> np.ndarray:
    """(keys, num_perm) uint32: each key's MinHash; a row depends on its key alone, so shards
    signed apart agree with a batch signed at once."""
    with _collector_paused():
        batch = _Batch(keys, settings)
        return _flat_signatures(batch.grams, batch.gram_bounds, settings)


def band_hashes(keys: list[Key], settings: MinHashSettings) -> np.ndarray:
    """(keys, num_bands) uint64: each band of the key's MinHash (`rows` consecutive values, as
    an LSH index bands them) folded into one number. Two keys share a band's hash when the band
    is equal (and, rarely, by a collision, which only adds a candidate to confirm)."""
    return _bands(signature_matrix(keys, settings), settings)


def jaccard(a: set[str], b: set[str]) -> float:
    """Exact Jaccard similarity of two sets."""
    return len(a & b) / len(a | b) if a or b else 1.0


def word_similarity(a: str, b: str) -> float:
    """Similarity of two texts' normalized word sequences, 2·LCS / (|a| + |b|) (1.0 when both
    are empty). Shingle Jaccard of a short text drops to 0 after one edited word; this does
    not.

    rapidfuzz's Indel similarity replaced difflib's ratio (20x faster). The LCS is at least as
    long as difflib's matching blocks, so this is never lower; on the planted support benchmark
    precision and recall stayed the same (docs/data.md), and the existing counts did not move."""
    return Indel.normalized_similarity(normalize(a).split(), normalize(b).split())


def is_near_duplicate(a: Key, b: Key, a_shingles: set[str], b_shingles: set[str], t: float) -> bool:
    """The exact check of a MinHash candidate: the whole key's Jaccard reaches `t`, and so does
    the word similarity of each part (a single-part key has nothing more to check)."""
    if len(a) != len(b):  # a preference pair and a supervised record are never copies
        return False
    if jaccard(a_shingles, b_shingles) < t:
        return False
    return len(a) == 1 or all(word_similarity(x, y) >= t for x, y in zip(a, b, strict=True))


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


def conflicting_answers(prompts: list[str], answers: list[str]) -> dict[int, int]:
    """Map each record whose (normalized) answer differs from that of the first record with
    the same (normalized) prompt to that first record."""
    first: dict[str, int] = {}
    conflicts = {}
    for i, prompt in enumerate(prompts):
        j = first.setdefault(prompt, i)
        if answers[i] != answers[j]:
            conflicts[i] = j
    return conflicts


def near_duplicates(keys: list[Key], settings: MinHashSettings) -> dict[int, int]:
    """Map each near duplicate's index to the earliest kept key it matches.

    Keys are visited in order and only kept ones can be matched, so each cluster keeps its
    first member: deterministic for a given input order.
    """
    with _collector_paused():
        batch = _Batch(keys, settings)
        kept_in: dict[int, list[int]] = defaultdict(list)  # bucket -> kept keys in it
        duplicates = {}
        for i, shared in batch.shared_buckets(settings).items():
            match = next(
                (j for j in _members(shared, kept_in) if batch.is_near_duplicate(i, j)), None
            )
            if match is None:
                for b in shared:
                    kept_in[b].append(i)
            else:
                duplicates[i] = match
        return duplicates


def cross_matches(
    queries: list[Key], corpus: list[Key], settings: MinHashSettings
) -> dict[int, int]:
    """Map each query index to a corpus index it near-duplicates (used for contamination)."""
    n = len(corpus)
    with _collector_paused():
        batch = _Batch(corpus + queries, settings)  # corpus first: positions below n
        buckets = batch.shared_buckets(settings)
        members: dict[int, list[int]] = defaultdict(list)  # bucket -> corpus keys in it
        for j, shared in buckets.items():
            if j < n:
                for b in shared:
                    members[b].append(j)
        matches = {}
        for i, shared in buckets.items():
            if i >= n:
                hit = next(
                    (j for j in _members(shared, members) if batch.is_near_duplicate(i, j)), None
                )
                if hit is not None:
                    matches[i - n] = hit
        return matches


def _members(buckets: list[int], members: dict[int, list[int]]) -> list[int]:
    """The keys in any of the buckets, ascending (each bucket's list is filled in key order)."""
    if len(buckets) == 1:  # most keys share one bucket: no merge to do
        return members[buckets[0]]
    return sorted({j for b in buckets for j in members[b]})


class _Batch:
    """Keys as arrays: their words hashed, their shingle fingerprints and signatures, and the
    exact confirmation of a candidate pair.

    Word hashes are 64-bit and a word shingle's fingerprint mixes them, so the Jaccard of two
    fingerprint sets is the Jaccard of the shingle sets unless two distinct shingles collide
    (about 2^-64 a pair). The part check compares the normalized parts themselves."""

    def __init__(self, keys: list[Key], settings: MinHashSettings):
        self.threshold = settings.threshold
        self.parts = [len(key) for key in keys]
        self.first_part = np.concatenate([[0], np.cumsum(self.parts)]).astype(np.int64).tolist()
        self.words, part_start = _part_words([part for key in keys for part in key])
        self.part_start = part_start.tolist()
        self.part_digest = _sequence_digests(self.words, part_start).tolist()
        if settings.shingle_unit == "char":
            grams = [shingles(key_text(key), settings) for key in keys]
            self.grams = _hash_tokens([g for key_grams in grams for g in key_grams])
            gram_start = np.concatenate([[0], np.cumsum([len(g) for g in grams])])
        else:
            key_start = part_start[self.first_part]
            self.grams, gram_start = _word_grams(self.words, key_start, settings.shingle_size)
        self.gram_bounds = gram_start.astype(np.int64)
        self.gram_start = self.gram_bounds.tolist()
        self._sets: dict[int, set[int]] = {}
        self._part_lists: dict[int, list[int]] = {}

    def shared_buckets(self, settings: MinHashSettings) -> dict[int, list[int]]:
        """`_shared_buckets` of the keys' MinHash bands.

        rensa's LSH flags the keys that share a band with another (its bands are ours: rows
        consecutive), and only those are signed again and brought over as arrays. rensa hands
        a matrix back only as Python lists, and converting all of it took 4x its hashing."""
        if len(self.parts) < 2:
            return {}
        matrix = _digest_matrix(self.grams, self.gram_bounds, settings)
        lsh = RMinHashLSH(settings.threshold, settings.num_perm, settings.num_bands)
        rows = np.flatnonzero(np.array(lsh.query_duplicate_flags_matrix_one_shot(matrix), bool))
        grams, bounds = _select_rows(self.grams, self.gram_bounds, rows)
        shared = _shared_buckets(_bands(_flat_signatures(grams, bounds, settings), settings))
        return {int(rows[i]): buckets for i, buckets in shared.items()}

    def is_near_duplicate(self, i: int, j: int) -> bool:
        """`is_near_duplicate` of keys i and j."""
        if self.parts[i] != self.parts[j]:
            return False
        a, b = self._gram_set(i), self._gram_set(j)
        if min(len(a), len(b)) < self.threshold * max(len(a), len(b)):
            return False  # the Jaccard is at most the ratio of the sizes
        shared = len(a & b)
        if shared < self.threshold * (len(a) + len(b) - shared):
            return False
        p, q = self.first_part[i], self.first_part[j]
        return self.parts[i] == 1 or all(
            self._part_similarity(p + k, q + k) >= self.threshold for k in range(self.parts[i])
        )

    def _gram_set(self, i: int) -> set[int]:
        if i not in self._sets:
            self._sets[i] = set(self.grams[self.gram_start[i] : self.gram_start[i + 1]].tolist())
        return self._sets[i]

    def _part_similarity(self, p: int, q: int) -> float:
        # On the parts' word hashes: the same LCS as on their normalized words (but for a 2^-64
        # collision), without normalizing each candidate's parts again.
        if self.part_digest[p] == self.part_digest[q]:  # most parts of a near duplicate are
            return 1.0  # untouched: no lists to build for them
        return Indel.normalized_similarity(self._part_words(p), self._part_words(q))

    def _part_words(self, p: int) -> list[int]:
        if p not in self._part_lists:
            self._part_lists[p] = self.words[self.part_start[p] : self.part_start[p + 1]].tolist()
        return self._part_lists[p]


def _pairs(bounds: list[int]) -> zip:
    return zip(bounds[:-1], bounds[1:], strict=True)


def _part_words(parts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The hashes of every part's normalized words, flat, and where each part's begin.

    One pass over all parts joined rather than a `normalize` call per part: the separator's
    "Q" is no word of case-folded text, so its tokens mark where each part ends. Arrow splits
    the joined text and encodes the distinct words in C: `str.split` made a Python string per
    word (3M at 50k keys), which cost more than everything else here together."""
    if not parts:
        return np.zeros(0, _U64), np.zeros(1, np.int64)
    # ASCII parts: lower + translate is `normalize` without the join; other parts go through
    # `normalize` itself (translate leaves its output as it is).
    text = _SEPARATOR.join(
        part.lower() if part.isascii() else normalize(part) for part in parts
    ).translate(_ASCII_NON_WORD)
    end = _SEPARATOR.strip()  # the last part's end
    # Unlike `str.split`, Arrow's split gives an empty first word for leading whitespace.
    text = f"{text} {end}".lstrip()
    words = pc.dictionary_encode(
        pc.ascii_split_whitespace(pa.array([text], pa.large_string())).flatten()
    )
    codes = words.indices.to_numpy()
    distinct = words.dictionary.to_numpy(zero_copy_only=False)
    ends = codes == np.flatnonzero(distinct == end)[0]
    hashes = hash_array(distinct.astype(object))[codes[~ends]]
    # The k-th separator sits after k earlier separators: minus those, it is where part k+1 begins.
    ends_at = np.flatnonzero(ends)
    return hashes, np.concatenate([[0], ends_at - np.arange(len(ends_at))]).astype(np.int64)


def _sequence_digests(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """A 64-bit digest of each run of values (from starts[k] to starts[k+1]), order and length
    included: equal runs get equal digests, others differ but for a 2^-64 collision."""
    lengths = np.diff(starts)
    position = np.arange(len(values)) - np.repeat(starts[:-1], lengths)
    with np.errstate(over="ignore"):
        # Prefix sums wrap modulo 2^64, so a run's sum is a difference of two of them.
        sums = np.concatenate([[_U64(0)], np.cumsum(_mix(values + position.astype(_U64)))])
        return _mix(sums[starts[1:]] - sums[starts[:-1]] + lengths.astype(_U64))


def _hash_tokens(tokens: list[str]) -> np.ndarray:
    """A 64-bit hash of each token (SipHash with pandas' fixed key: the same in every process),
    computed once per distinct token."""
    if not tokens:
        return np.zeros(0, _U64)
    codes, distinct = pd.factorize(np.array(tokens, dtype=object))
    return hash_array(np.asarray(distinct, dtype=object))[codes]


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: spreads a folded value over all 64 bits."""
    x = x ^ (x >> _U64(30))
    x = x * _U64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> _U64(27))
    x = x * _U64(0x94D049BB133111EB)
    return x ^ (x >> _U64(31))


# One odd multiplier per position in a shingle (config allows shingles of up to 10 words).
_POSITION = _mix(np.arange(1, 65, dtype=_U64)) | _U64(1)


def _fold_words(words: np.ndarray, start: np.ndarray, length: np.ndarray, n: int) -> np.ndarray:
    """The fingerprint of each run of `length` (<= n) words from `start`: a mix of the word
    hashes, each times its position's odd multiplier (so "a b c" and "c b a" differ)."""
    padded = np.append(words, _U64(0))  # a run shorter than n reads zeros past its end
    total = length.astype(_U64)
    with np.errstate(over="ignore"):
        for r in range(n):
            total += padded[np.where(r < length, start + r, len(words))] * _POSITION[r]
    return _mix(total)


def _word_grams(words: np.ndarray, starts: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Every key's word n-gram fingerprints, flat, and where each key's begin: a key of fewer
    than n words is one shingle of all its words, as `shingles` has it."""
    lengths = np.diff(starts)
    per_key = np.maximum(lengths - n + 1, 1)
    gram_start = np.concatenate([[0], np.cumsum(per_key)])
    if len(lengths) and lengths.min() >= n:
        # The n-gram at every word from contiguous slices, less those running into the next key.
        total = np.full(len(words) - n + 1, n, _U64)
        with np.errstate(over="ignore"):
            for r in range(n):
                total += words[r : len(words) - n + 1 + r] * _POSITION[r]
        inside = np.ones(len(total), bool)
        for r in range(1, n):
            inside[starts[1:-1] - r] = False
        return _mix(total)[inside], gram_start
    key = np.repeat(np.arange(len(lengths)), per_key)
    start = starts[:-1][key] + np.arange(gram_start[-1]) - gram_start[:-1][key]
    return _fold_words(words, start, np.minimum(lengths[key], n), n), gram_start


def _shingle_fingerprints(shingle_list: list[str], settings: MinHashSettings) -> np.ndarray:
    """The fingerprints `_Batch` gives these shingles: mixed word hashes, or for character
    shingles the hash of the shingle."""
    if settings.shingle_unit == "char":
        return _hash_tokens(shingle_list)
    # A word shingle is its normalized words joined by single spaces ("" for an empty key).
    counts = np.array([s.count(" ") + 1 if s else 0 for s in shingle_list], np.int64)
    words = _hash_tokens(" ".join(filter(None, shingle_list)).split(" ") if counts.any() else [])
    start = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    return _fold_words(words, start, counts, settings.shingle_size)


def _digest_matrix(
    flat: np.ndarray, bounds: np.ndarray, settings: MinHashSettings
) -> RMinHashDigestMatrix:
    return RMinHash.digest_matrix_from_flat_token_hashes(
        np.ascontiguousarray(flat, _U64),
        np.asarray(bounds, _U64),
        num_perm=settings.num_perm,
        seed=settings.seed,
    )


def _flat_signatures(flat: np.ndarray, bounds: np.ndarray, settings: MinHashSettings) -> np.ndarray:
    if len(bounds) < 2:
        return np.zeros((0, settings.num_perm), np.uint32)
    # rensa hands the matrix back only as Python lists, one per key.
    rows = _digest_matrix(flat, bounds, settings).to_rows()
    return np.array(rows, np.uint32).reshape(-1, settings.num_perm)


def _select_rows(
    flat: np.ndarray, bounds: np.ndarray, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The flat values and bounds of the given rows alone."""
    lengths = np.diff(bounds)[rows]
    selected = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    at = np.repeat(bounds[rows] - selected[:-1], lengths) + np.arange(selected[-1])
    return flat[at], selected


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector. The batch path makes hundreds of thousands of lists
    and sets, none in a cycle (reference counting frees them), and each burst of them makes the
    collector walk the caller's whole heap, every record: 2.5x slower to_rows at 100k keys,
    30% slower near_duplicates."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _bands(signatures: np.ndarray, settings: MinHashSettings) -> np.ndarray:
    bands = settings.num_bands
    rows = settings.num_perm // bands
    digests = signatures[:, : bands * rows].astype(_U64).reshape(len(signatures), bands, rows)
    folded = np.zeros((len(signatures), bands), _U64)
    with np.errstate(over="ignore"):
        for r in range(rows):
            folded = folded * _FOLD + digests[:, :, r]
    return folded


def _shared_buckets(bands: np.ndarray) -> dict[int, list[int]]:
    """For each key that shares a band with another key, in key order: the ids of the buckets
    (band, value) it shares. A key in no shared bucket can match nothing and is left out."""
    n, num_bands = bands.shape
    bucket = np.full((n, num_bands), -1, np.int64)
    next_id = 0
    for b in range(num_bands):
        values, inverse, counts = np.unique(bands[:, b], return_inverse=True, return_counts=True)
        shared = counts[inverse] > 1
        ids = np.cumsum(counts > 1) - 1 + next_id  # dense ids for shared buckets
        bucket[shared, b] = ids[inverse[shared]]
        next_id += int((counts > 1).sum())
    rows = np.flatnonzero((bucket >= 0).any(axis=1))
    return {
        int(i): [b for b in row if b >= 0]
        for i, row in zip(rows, bucket[rows].tolist(), strict=True)
    }
