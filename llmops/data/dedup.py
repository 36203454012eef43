"""Exact and near-duplicate detection over a record's key: the whole example (system message,
every turn and the answer) or the prompt alone, as the data contract says.

Near duplicates use MinHash + LSH banding over the whole key to find candidates, then confirm
each candidate exactly: the Jaccard of the two shingle sets reaches the threshold, and so does
the word-level similarity of each part of the key (system, prompt, answer). The part check is
what keeps a paraphrased question with the same canned answer, or another answer to the same
question, from passing as a near duplicate when the shared part is long.

The batch path works on arrays, not on a Python object per shingle: Arrow splits every key's
words and each distinct word is hashed once (64-bit), a word shingle's fingerprint folds the
hashes of its words, a compiled loop (`dedup_kernels`, numba) signs the flat fingerprints,
numpy groups equal bands, and another compiled loop confirms the candidates keep-first. Only
the found pairs come back as Python objects. docs/data.md has the profiles this layout comes
from.
"""

import re
from dataclasses import dataclass
from functools import cache
from itertools import chain
from types import ModuleType
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandas.util import hash_array
from rapidfuzz.distance import Indel

from llmops.collector import collector_paused

WORD = re.compile(r"\w+")
# For ASCII text `\w` is [A-Za-z0-9_]: mapping every other ASCII character to a space and
# splitting gives the regex's words about 3x faster (normalize runs on every record 3-4 times).
_ASCII_NON_WORD = str.maketrans(
    {chr(c): " " for c in range(128) if not (chr(c).isalnum() or chr(c) == "_")}
)
_SEPARATOR = " Q "  # between parts of a key when all are tokenized at once
# An all-ASCII batch joins its parts raw around a control character and translates once:
# lower-casing, non-word characters to spaces and the control character to the "Q" separator.
_RAW_SEPARATOR = " \x1e "
_ASCII_WORDS = str.maketrans(
    {
        **{chr(c): " " for c in range(128) if not (chr(c).isalnum() or chr(c) == "_")},
        **{chr(c): chr(c).lower() for c in range(ord("A"), ord("Z") + 1)},
        "\x1e": "Q",
    }
)
_U64 = np.uint64
_MASK64 = (1 << 64) - 1
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


def signature_matrix(keys: list[Key], settings: MinHashSettings) -> np.ndarray:
    """(keys, num_perm) uint32: each key's MinHash; a row depends on its key alone, so shards
    signed apart agree with a batch signed at once."""
    batch = _Batch(keys, settings)
    return _signatures(batch.grams, batch.gram_bounds, settings)


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
    batch = _Batch(keys, settings)
    return batch.first_matches(settings, np.ones(len(keys), bool), keep_unmatched=True)


def cross_matches(
    queries: list[Key], corpus: list[Key], settings: MinHashSettings
) -> dict[int, int]:
    """Map each query index to a corpus index it near-duplicates (used for contamination)."""
    n = len(corpus)
    batch = _Batch(corpus + queries, settings)  # corpus first: positions below n
    is_query = np.arange(n + len(queries)) >= n  # the corpus is never checked, always joins
    matches = batch.first_matches(settings, is_query, keep_unmatched=False)
    return {i - n: j for i, j in matches.items()}


class _Batch:
    """Keys as arrays: their words hashed, their shingle fingerprints, and the parts' digests.

    Word hashes are 64-bit and a word shingle's fingerprint mixes them, so the Jaccard of two
    fingerprint sets is the Jaccard of the shingle sets unless two distinct shingles collide
    (about 2^-64 a pair). The part check compares the parts' word hashes: the same LCS as on
    their normalized words (but for a 2^-64 collision)."""

    def __init__(self, keys: list[Key], settings: MinHashSettings):
        # Nothing here is cyclic, and a full collection walks the caller's whole heap of
        # records: with the collector on, near_duplicates took 1.7x the CPU at 50k keys.
        with collector_paused():
            self.parts = np.array([len(key) for key in keys], np.int64)
            self.first_part = np.concatenate([[0], np.cumsum(self.parts)]).astype(np.int64)
            self.words, self.part_start = _part_words([part for key in keys for part in key])
            self.part_digest = _kernels().sequence_digests(self.words, self.part_start)
            if settings.shingle_unit == "char":
                grams = [shingles(key_text(key), settings) for key in keys]
                self.grams = _hash_tokens([g for key_grams in grams for g in key_grams])
                gram_start = np.concatenate([[0], np.cumsum([len(g) for g in grams])])
            else:
                key_start = self.part_start[self.first_part]
                self.grams, gram_start = _kernels().word_grams(
                    self.words, key_start, settings.shingle_size, _POSITION
                )
            self.gram_bounds = gram_start.astype(np.int64)

    def first_matches(
        self, settings: MinHashSettings, check: np.ndarray, keep_unmatched: bool
    ) -> dict[int, int]:
        """`dedup_kernels.keep_first` over the keys that share a MinHash band with another,
        as {key: the earliest key it matches}."""
        if len(self.parts) < 2:
            return {}
        bucket = _shared_buckets(
            _bands(_signatures(self.grams, self.gram_bounds, settings), settings)
        )
        rows = np.flatnonzero((bucket >= 0).any(axis=1))
        capacity = np.bincount(bucket[bucket >= 0], minlength=int(bucket.max()) + 1)
        found = _kernels().keep_first(
            rows,
            np.ascontiguousarray(bucket[rows]),
            capacity.astype(np.int64),
            check,
            keep_unmatched,
            self.grams,
            self.gram_bounds,
            self.parts,
            self.first_part,
            self.part_digest,
            self.words,
            self.part_start,
            settings.threshold,
        )
        hit = found >= 0
        return dict(zip(rows[hit].tolist(), found[hit].tolist(), strict=True))


def _part_words(parts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The hashes of every part's normalized words, flat, and where each part's begin.

    One pass over all parts joined rather than a `normalize` call per part: the separator's
    "Q" is no word of case-folded text, so its tokens mark where each part ends. Arrow splits
    the joined text and encodes the distinct words in C: `str.split` made a Python string per
    word (3M at 50k keys), which cost more than everything else here together."""
    if not parts:
        return np.zeros(0, _U64), np.zeros(1, np.int64)
    # The empty last part puts a separator after the last part too.
    text = _RAW_SEPARATOR.join(chain(parts, ("",)))
    if text.isascii() and text.count(_RAW_SEPARATOR[1]) == len(parts):
        text = text.translate(_ASCII_WORDS)  # (no part holds the control character itself)
    else:
        # ASCII parts: lower + translate is `normalize` without the join; other parts go
        # through `normalize` itself (translate leaves its output as it is).
        text = _SEPARATOR.join(
            chain((p.lower() if p.isascii() else normalize(p) for p in parts), ("",))
        ).translate(_ASCII_NON_WORD)
    words = pc.dictionary_encode(
        pc.ascii_split_whitespace(pa.array([text], pa.large_string())).flatten()
    )
    distinct = words.dictionary.to_numpy(zero_copy_only=False)
    end, empty = (np.flatnonzero(distinct == w) for w in (_SEPARATOR.strip(), ""))
    return _kernels().part_words(
        words.indices.to_numpy(),
        _hash_distinct(distinct.astype(object)),
        end[0],
        empty[0] if len(empty) else -1,  # leading or trailing whitespace splits into ""
    )


def _kernels() -> ModuleType:
    """The compiled loops (`dedup_kernels`), imported on first use: numba's import takes 0.2 s,
    and serving imports this module for `normalize` alone."""
    from llmops.data import dedup_kernels

    return dedup_kernels


def _hash_tokens(tokens: list[str]) -> np.ndarray:
    """A 64-bit hash of each token (SipHash with pandas' fixed key: the same in every process),
    computed once per distinct token."""
    if not tokens:
        return np.zeros(0, _U64)
    codes, distinct = pd.factorize(np.array(tokens, dtype=object))
    return _hash_distinct(np.asarray(distinct, dtype=object))[codes]


def _hash_distinct(tokens: np.ndarray) -> np.ndarray:
    """pandas' `hash_array` of tokens known to be distinct: the same values, without its
    default factorize first (which only pays off for repeated values; 3.3x the time on 240k
    distinct words, and the biggest cost of signing a shard)."""
    return hash_array(tokens, categorize=False)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: spreads a folded value over all 64 bits."""
    x = x ^ (x >> _U64(30))
    x = x * _U64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> _U64(27))
    x = x * _U64(0x94D049BB133111EB)
    return x ^ (x >> _U64(31))


# One odd multiplier per position in a shingle (config allows shingles of up to 10 words).
_POSITION = _mix(np.arange(1, 65, dtype=_U64)) | _U64(1)


def _signatures(flat: np.ndarray, bounds: np.ndarray, settings: MinHashSettings) -> np.ndarray:
    """(rows, num_perm) uint32 MinHash of each row of flat fingerprints."""
    a, b = _permutations(settings.num_perm, settings.seed)
    return _kernels().signatures(np.ascontiguousarray(flat, _U64), bounds, a, b)


@cache
def _permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """rensa's (a, b) pairs: xoshiro256++ seeded through splitmix64 (rand_xoshiro's
    `seed_from_u64`), a = next | 1, b = next, per permutation."""
    state, words = seed, []
    for _ in range(4):
        state = (state + 0x9E3779B97F4A7C15) & _MASK64
        words.append(int(_mix(np.array([state], _U64))[0]))
    pairs = []
    for _ in range(2 * num_perm):
        pairs.append((_rotl(words[0] + words[3], 23) + words[0]) & _MASK64)
        shifted = (words[1] << 17) & _MASK64
        words[2] ^= words[0]
        words[3] ^= words[1]
        words[1] ^= words[2]
        words[0] ^= words[3]
        words[2] ^= shifted
        words[3] = _rotl(words[3], 45)
    raw = np.array(pairs, _U64)
    return raw[0::2] | _U64(1), raw[1::2]


def _rotl(value: int, bits: int) -> int:
    value &= _MASK64
    return ((value << bits) | (value >> (64 - bits))) & _MASK64


def _bands(signatures: np.ndarray, settings: MinHashSettings) -> np.ndarray:
    bands = settings.num_bands
    return _kernels().fold_bands(signatures, bands, settings.num_perm // bands, _FOLD)


def _shared_buckets(bands: np.ndarray) -> np.ndarray:
    """(keys, bands) int64: the dense id of the bucket (band, value) each key is in when another
    key shares it, else -1. A key in no shared bucket can match nothing."""
    n, num_bands = bands.shape
    bucket = np.full((n, num_bands), -1, np.int64)
    next_id = 0
    for b in range(num_bands):
        values, inverse, counts = np.unique(bands[:, b], return_inverse=True, return_counts=True)
        shared = counts[inverse] > 1
        ids = np.cumsum(counts > 1) - 1 + next_id  # dense ids for shared buckets
        bucket[shared, b] = ids[inverse[shared]]
        next_id += int((counts > 1).sum())
    return bucket
