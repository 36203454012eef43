"""The array path of near-duplicate detection against the per-record definitions it replaces:
the same words, shingles, signatures and decisions."""

import re
from difflib import SequenceMatcher

import numpy as np
import pytest
from pandas.util import hash_array

from llmops.data.dedup import (
    MinHashSettings,
    _part_words,
    band_hashes,
    cross_matches,
    is_near_duplicate,
    key_text,
    minhashes,
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


def test_signature_rows_are_per_key_and_match_minhashes():
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
    sets = [set(shingles(key_text(k), settings)) for k in keys]
    assert [m.digest() for m in minhashes(sets, settings)] == batch.tolist()
    bands = band_hashes(keys + keys[:1], settings)
    assert bands.shape == (5, settings.num_bands) and (bands[0] == bands[4]).all()


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


def test_batch_words_are_normalize_words_part_by_part():
    # Arrow splits the joined parts: leading separators, empty parts, and ASCII parts beside
    # non-ASCII ones in one batch must give `normalize`'s words, each in its own part.
    parts = [" ,leading", "", "Ünïcode Straße — Q ½", "\tMIXED_case\x1cQ  q", "", "２ end"]
    words, starts = _part_words(parts)
    expected = [normalize(part).split() for part in parts]
    assert starts.tolist() == [0, 1, 1, 5, 8, 8, 10]
    assert words.tolist() == hash_array(np.array(sum(expected, []), dtype=object)).tolist()
