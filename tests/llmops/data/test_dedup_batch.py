"""The array path of near-duplicate detection against the per-record definitions it replaces:
the same words, shingles, signatures and decisions, and its compiled loops against plain
references."""

import re
from difflib import SequenceMatcher

import numpy as np
import pytest
from pandas.util import hash_array
from rapidfuzz.distance import Indel

from llmops.data import dedup_kernels
from llmops.data.dedup import (
    MinHashSettings,
    _Batch,
    _part_words,
    _permutations,
    band_hashes,
    cross_matches,
    is_near_duplicate,
    key_text,
    near_duplicates,
    normalize,
    shingles,
    signature_matrix,
    word_similarity,
)
from tests.llmops.data.test_dedup import example, planted_clusters

WORD = re.compile(r"\w+")


@pytest.mark.parametrize(
    "text",
    [
        "Reset  my_password\tnow!! (v2.0)",
        "\x1c\x1dcontrol\x1fchars\x7f and-hyphens--",
        "Ünïcode Straße — “quoted” ½ ２",
        "",
    ],
)
def test_normalize_matches_the_regex_definition(text):
    assert normalize(text) == " ".join(WORD.findall(text.casefold()))


def test_word_similarity_is_the_lcs_ratio_never_below_difflib():
    pairs = [("a b c d e f", "a c b d f e"), ("x y z", "x y z"), ("", ""), ("a b", "")]
    assert [round(word_similarity(a, b), 4) for a, b in pairs] == [0.6667, 1.0, 1.0, 0.0]
    for a, b in pairs:
        difflib = SequenceMatcher(None, a.split(), b.split(), autojunk=False).ratio()
        assert word_similarity(a, b) >= difflib


def test_signature_rows_are_per_key_and_the_minhash_of_the_shingles():
    settings = MinHashSettings()
    keys = [
        example("How do I export a notebook?", "Use File, Export."),
        ("one",),  # shorter than a shingle
        ("",),
        ("Ünïcode Straße question about syncing notes",),
    ]
    batch = signature_matrix(keys, settings)
    assert batch.shape == (4, 128) and batch.dtype == np.uint32
    alone = np.vstack([signature_matrix([k], settings) for k in keys])
    assert (batch == alone).all()  # a shard signed apart agrees with the whole batch
    # rensa 0.5's values, which the kernel took over (pinned: the same candidates as before).
    assert batch[:, :3].tolist() == [
        [3500631628, 3221971176, 33086357],
        [3836804535, 3968495056, 4031379990],
        [3525376080, 3252806195, 3804056324],
        [2345247958, 3884376011, 3491795721],
    ]
    assert batch.sum(axis=1).tolist() == [385090347264, 471568733236, 468210142205, 419242783854]
    batch_keys = _Batch(keys, settings)
    assert np.diff(batch_keys.gram_bounds).tolist() == [
        len(set(shingles(key_text(k), settings))) for k in keys
    ]
    bounds = batch_keys.gram_bounds.tolist()
    a, b = _permutations(settings.num_perm, settings.seed)
    for row, (start, end) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        values = batch_keys.grams[start:end].tolist()
        assert batch[row].tolist() == rensa_digest(values, a.tolist(), b.tolist())
    bands = band_hashes(keys + keys[:1], settings)
    assert bands.shape == (5, settings.num_bands) and (bands[0] == bands[4]).all()
    rows = settings.num_perm // settings.num_bands  # a band folds its rows FNV-style
    first = 0
    for value in batch[0, :rows].tolist():
        first = (first * 0x100000001B3 + value) & M64
    assert int(bands[0, 0]) == first


M64 = (1 << 64) - 1


def splitmix64(value: int) -> int:
    value = (value + 0x9E3779B97F4A7C15) & M64
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & M64
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & M64
    return value ^ (value >> 31)


def rensa_digest(hashes: list[int], a: list[int], b: list[int]) -> list[int]:
    """rensa 0.5's R-MinHash of token hashes, transcribed from the reference in its tests
    (rminhash/bucket.rs): three bucket rounds, then a fallback rank for each coordinate."""
    count = len(a)
    values = [0xFFFFFFFF] * count
    for h in hashes:
        fallback = splitmix64(h ^ a[0] ^ 0xBB67AE8584CAA73B)
        for k in range(count):
            rank = (3 << 30) | ((((a[k] * fallback + b[k]) & M64) >> 34) & ((1 << 30) - 1))
            values[k] = min(values[k], rank)
        for r in range(3):
            mixed = splitmix64(h ^ b[0] ^ 0x6A09E667F3BCC909 ^ ((r * 0x3C6EF372FE94F82B) & M64))
            candidate = mixed
            while ((candidate & 0xFFFFFFFF) * count) & 0xFFFFFFFF < (1 << 32) % count:
                candidate = splitmix64(candidate)
            bucket = ((candidate & 0xFFFFFFFF) * count) >> 32
            values[bucket] = min(values[bucket], (r << 30) | (mixed >> 34))
    return values


def test_lcs_kernel_gives_rapidfuzz_similarity():
    # Short and multi-word (> 64 positions) sequences, repeats, no overlap, empty.
    rng = np.random.default_rng(0)
    pairs = [
        (rng.integers(0, 6, size), rng.integers(0, 6, other))
        for size, other in [(5, 7), (64, 64), (70, 130), (200, 3), (0, 4), (0, 0)]
    ]
    pairs.append((np.arange(10), np.arange(10, 20)))
    for x, y in pairs:
        x, y = x.astype(np.uint64), y.astype(np.uint64)
        expected = Indel.normalized_similarity(x.tolist(), y.tolist())
        assert dedup_kernels.indel_similarity(x, y) == expected


@pytest.mark.parametrize("unit", ["word", "char"])
def test_batch_decisions_equal_the_pairwise_definition(unit):
    settings = MinHashSettings(
        threshold=0.7, shingle_unit=unit, shingle_size=3 if unit == "word" else 5
    )
    texts, _ = planted_clusters(seed=3, clusters=12)
    keys = [(t,) for t in texts] + [("tiny",), ("tiny",), ("ab",)]
    found = near_duplicates(keys, settings)
    sets = [set(shingles(key_text(k), settings)) for k in keys]
    for i, j in found.items():
        assert j < i and is_near_duplicate(keys[i], keys[j], sets[i], sets[j], 0.7)
    assert found[len(texts) + 1] == len(texts)  # two keys shorter than a shingle
    assert len(found) == 12 * 3 + 1


def test_part_check_and_cross_matches_on_planted_pairs():
    settings = MinHashSettings()
    question = "My exported notebook is missing the attachments from the shared Projects folder"
    answer = "Open the notebook menu, choose Export, and tick Include attachments before saving."
    keys = [
        example(question, answer),
        example(question + " today", answer),  # a near duplicate
        example(question, "Contact your workspace admin to raise the attachment size limit."),
    ]
    assert near_duplicates(keys, settings) == {1: 0}
    assert cross_matches([keys[1], keys[2]], [keys[0]], settings) == {0: 0}


@pytest.mark.parametrize(
    ("parts", "starts"),
    [
        # Non-ASCII parts in the batch: each part is normalized apart.
        ([" ,leading", "", "Ünïcode Straße — Q ½", "\tMIXED_case\x1cQ  q", "", "２ end"],
         [0, 1, 1, 5, 8, 8, 10]),
        # All ASCII: one translation of the raw join.
        ([" ,leading", "", "Q q", "\tMIXED_case\x1cQ  q", "", "end"], [0, 1, 1, 3, 6, 6, 7]),
        # All ASCII, but a part holds the control character the raw join separates with.
        (["a\x1eb", "C"], [0, 2, 3]),
    ],
)  # fmt: skip
def test_batch_words_are_normalize_words_part_by_part(parts, starts):
    # Arrow splits the joined parts: leading separators, empty parts, and ASCII parts beside
    # non-ASCII ones in one batch must give `normalize`'s words, each in its own part.
    words, found = _part_words(parts)
    expected = [normalize(part).split() for part in parts]
    assert found.tolist() == starts
    assert words.tolist() == hash_array(np.array(sum(expected, []), dtype=object)).tolist()
