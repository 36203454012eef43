"""Shard planning and the global resolution of near duplicates, on plain functions."""

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from llmops.data import ingest
from llmops.data.shards import (
    Outcomes,
    ShardIndex,
    band_candidates,
    bucket_pairs,
    conflicting_answers,
    cross_matches,
    exact_duplicates,
    near_duplicates,
    plan_shards,
    read_shard,
    split_pairs,
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
    # Buckets by value: 7 -> {0, 3, 5}, 9 -> {1, 6}, the rest alone; 3 is excluded. The
    # records sit at global positions 10 apart.
    values = np.array([7, 9, 4, 7, 2, 7, 9, 8], np.uint64)
    positions = np.arange(8) * 10
    alive = positions != 30
    pairs = bucket_pairs(positions[alive], values[alive])
    assert sorted(map(tuple, pairs.tolist())) == [(50, 0), (60, 10)]
    is_eval = np.array([True, False, False, False, False, False, True, False])
    cross = bucket_pairs(positions, values, is_eval)
    assert sorted(map(tuple, cross.tolist())) == [(10, 60), (30, 0), (50, 0)]
    assert bucket_pairs(positions[:1], values[:1]).shape == (0, 2)


def write_signatures(folder: Path, columns: dict[str, list]) -> str:
    """A shard scratch folder holding only a signature table."""
    folder.mkdir()
    pq.write_table(pa.table(columns), folder / "signatures.parquet")
    return str(folder)


def listed(outcomes: Outcomes) -> list[tuple[int, int, int]]:
    columns = (outcomes.position, outcomes.reason, outcomes.related)
    return list(zip(*(c.tolist() for c in columns), strict=True))


def test_grouping_by_hash_range_finds_what_grouping_everything_finds(tmp_path: Path):
    # 3 shards (the middle one empty) of records whose exact key and prompt repeat across
    # shards and ranges; a repeat with another answer is a conflict.
    rng = np.random.default_rng(0)
    n = 300
    key = rng.integers(0, 40, n).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    answer = rng.integers(0, 3, n).astype(np.uint64)
    band = rng.integers(0, 60, n).astype(np.uint64)
    is_eval = rng.random(n) < 0.3
    columns = {
        "exact_hi": key,
        "exact_lo": key // np.uint64(3),
        "prompt_hi": key,
        "prompt_lo": key // np.uint64(3),
        "answer_hi": answer,
        "answer_lo": answer,
        "band_0": band,
        "is_eval": is_eval,
    }
    cuts = [(0, 120), (120, 120), (120, n)]
    uris = [
        write_signatures(tmp_path / f"shard-{s}", {c: v[a:b] for c, v in columns.items()})
        for s, (a, b) in enumerate(cuts)
    ]
    bounds = np.array([0, 120, 120, n])
    whole, split = ShardIndex(uris, bounds, 1), ShardIndex(uris, bounds, 7)
    exact = exact_duplicates(whole)
    assert len(exact.position) > 200  # 40 keys in 300 records
    assert listed(exact_duplicates(split)) == listed(exact)
    excluded = exact.position[::2]
    for cross in (False, True):
        pairs = band_candidates(whole, "band_0", excluded, cross)
        assert len(pairs) > 50
        assert sorted(map(tuple, band_candidates(split, "band_0", excluded, cross).tolist())) == (
            sorted(map(tuple, pairs.tolist()))
        )
    conflicts = conflicting_answers(whole, excluded)
    assert len(conflicts.position) > 20
    assert listed(conflicting_answers(split, excluded)) == listed(conflicts)
    # Every conflict names the first record with its prompt among those not excluded.
    first = {}
    for p in sorted(set(range(n)) - set(excluded.tolist())):
        first.setdefault(int(key[p]), p)
    assert all(
        first[int(key[p])] == j for p, j in zip(conflicts.position, conflicts.related, strict=True)
    )


def test_candidate_pairs_are_split_once_in_sorted_runs():
    band_a = np.array([[2, 0], [4, 1], [6, 3]])
    band_b = np.array([[4, 1], [3, 2], [2, 1]])  # (4, 1) again from another band
    runs = split_pairs([band_a, np.zeros((0, 2), np.int64), band_b], 3)
    assert [r.tolist() for r in runs] == [[[2, 0], [2, 1]], [[3, 2], [4, 1]], [[6, 3]]]
    assert [r.shape for r in split_pairs([], 2)] == [(0, 2)] * 2
