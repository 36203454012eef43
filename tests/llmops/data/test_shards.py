"""Shard planning and the global resolution of near duplicates, on plain functions."""

from pathlib import Path

import numpy as np

from llmops.data import ingest
from llmops.data.shards import (
    ShardIndex,
    bucket_pairs,
    cross_matches,
    near_duplicates,
    pairs_by_shard,
    plan_shards,
    read_shard,
)

LINES = (
    b'\xef\xbb\xbf{"id": "1", "prompt": "p", "response": "r"}\r\n'
    b"\n"
    b'{"id": "2", "prompt": "caf\xe9"}\r\n'
    b'{"id": "3", "prompt": \r\n'
    b"[1, 2]\n"
    b'{"id": "4", "prompt": "q", "response": "a"}\n'
    b'{"id": "5", "prompt": "last line without a newline"}'
)


def test_shards_read_what_the_whole_file_reads(tmp_path: Path):
    path = tmp_path / "a.jsonl"
    path.write_bytes(LINES)
    whole = ingest.read_file(str(path), {})
    for size in (1, 2, 3, 100):
        shards, data_hash = plan_shards([str(path)], {}, size)
        assert len(shards) == -(-7 // size)  # 7 lines, the last without a newline
        items, rejected = [], []
        for shard in shards:
            shard_items, shard_rejected = read_shard(shard, {})
            items += shard_items
            rejected += shard_rejected
        assert (sorted(items, key=lambda i: i["source"]), sorted(rejected, key=str)) == (
            sorted(whole[0], key=lambda i: i["source"]),
            sorted(whole[1], key=str),
        )
        assert data_hash == plan_shards([str(path)], {}, 1000)[1]  # the id ignores sharding


def test_a_binary_or_empty_jsonl_file_stays_one_shard(tmp_path: Path):
    (tmp_path / "empty.jsonl").write_bytes(b"")
    (tmp_path / "binary.jsonl").write_bytes(b"\n".join([b"x\0y"] * 5))
    shards, _ = plan_shards(sorted(str(p) for p in tmp_path.iterdir()), {}, 2)
    assert [(s.end, read_shard(s, {})[1][0]["reason"]) for s in shards] == [
        (None, "binary file, not text"),
        (None, "empty file (0 bytes)"),
    ]


def test_a_near_duplicate_of_a_dropped_record_is_kept():
    # 1 repeats 0; 2 repeats 1 only: 1 is dropped, so 2 has no kept match and stays. 4 repeats
    # 0 and 3 and names the first of them.
    confirmed = np.array([(1, 0), (2, 1), (4, 3), (4, 0)])
    outcomes = near_duplicates(confirmed)
    assert dict(zip(outcomes.position.tolist(), outcomes.related.tolist(), strict=True)) == {
        1: 0,
        4: 0,
    }


def test_contamination_names_the_first_eval_match():
    outcomes = cross_matches(np.array([(5, 9), (5, 2), (7, 3)]))
    assert dict(zip(outcomes.position.tolist(), outcomes.related.tolist(), strict=True)) == {
        5: 2,
        7: 3,
    }


def test_band_buckets_pair_every_earlier_member_or_train_with_eval():
    # Buckets by value: 7 -> {0, 3, 5}, 9 -> {1, 6}, the rest alone; 3 is excluded.
    values = np.array([7, 9, 4, 7, 2, 7, 9, 8], np.uint64)
    excluded = np.array([3])
    pairs = bucket_pairs(values, excluded)
    assert sorted(map(tuple, pairs.tolist())) == [(5, 0), (6, 1)]
    is_eval = np.array([True, False, False, False, False, False, True, False])
    cross = bucket_pairs(values, np.array([], np.int64), is_eval)
    assert sorted(map(tuple, cross.tolist())) == [(1, 6), (3, 0), (5, 0)]
    assert bucket_pairs(values[:1], np.array([], np.int64)).shape == (0, 2)


def test_candidate_pairs_go_once_to_the_shard_that_holds_i():
    # Three shards of 3, 0 and 4 kept records: global positions 0-2, none, 3-6.
    index = ShardIndex(["s0", "s1", "s2"], np.array([0, 3, 3, 7]))
    band_a = np.array([[2, 0], [4, 1], [6, 3]])
    band_b = np.array([[4, 1], [3, 2], [2, 1]])  # (4, 1) again from another band
    split = pairs_by_shard([band_a, np.zeros((0, 2), np.int64), band_b], index)
    assert [p.tolist() for p in split] == [[[2, 0], [2, 1]], [], [[3, 2], [4, 1], [6, 3]]]
    assert [p.shape for p in pairs_by_shard([], index)] == [(0, 2)] * 3
