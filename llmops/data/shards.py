"""Sharded data preparation: the same outcomes as preparing the whole batch at once, with the
corpus never held in one process.

Sources are cut into shards of at most `shard_records` lines (JSONL files by byte ranges; other
formats one shard a file). Each shard is read, checked against the contract, redacted and
signed on its own (`prepare_shard`), and leaves its records and a signature table (128-bit
hashes of the normalized key, answer and prompt; MinHash band hashes; the key parts) in a
scratch folder. Deduplication then works across shards on those columns alone, the way
text-dedup does it on Spark: exact duplicates by grouping the key hash; near duplicates by
grouping each band's hashes (one task a band) into candidate pairs, confirming each pair exactly
(`is_near_duplicate`), then resolving in the global record order exactly as the sequential
algorithm does: record i is a near duplicate iff a confirmed candidate j < i is kept, and it
names the smallest such j. Positions are global: shard by shard, record by record, the order
in which the whole-batch code visits them. The grouping steps take the records one hash range
at a time (`read_range`): records that share a value share its range, so memory holds a range,
not the corpus. See docs/data.md, "Sharded and distributed".
"""

import hashlib
import io
import itertools
import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from llmops import store
from llmops.collector import collector_paused
from llmops.data import eda, ingest
from llmops.data.contracts import Contract, Deduplication, failing_rows
from llmops.data.dedup import (
    Key,
    MinHashSettings,
    band_hashes,
    is_near_duplicate,
    key_text,
    normalize,
    record_key,
    shingles,
)
from llmops.data.errors import SourceUnreadableError
from llmops.data.prepare import (
    as_records,
    dumps_jsonl,
    prompt_bucket,
    redact_records,
)
from llmops.datasets import encode_split, split_table
from llmops.records import OPTIONAL_COLUMNS, RECORD_COLUMNS, reference_response

# Why each rejected record of deduplication and decontamination goes, by code.
REASONS = ("exact_duplicate", "near_duplicate", "conflicting_answer", "contaminated")
EXACT, NEAR, CONFLICT, CONTAMINATED = range(len(REASONS))
_RELATION = ("duplicate_of", "duplicate_of", "conflicts_with", "duplicate_of")
_READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class Shard:
    """A piece of one source file: lines [first_line, ...) in bytes [start, end) of a JSONL
    file, or the whole file (end None)."""

    index: int
    url: str
    start: int = 0
    end: int | None = None
    first_line: int = 1


@dataclass(frozen=True)
class ShardSummary:
    """What a prepared shard hands back: counts, and where its records and signatures are."""

    index: int
    uri: str  # the shard's scratch folder
    items: int  # records parsed
    ingest_rejected: int  # lines, rows or files that held no record
    kept: int  # records past the contract and the PII policy (what deduplication sees)
    contract_failures: dict[str, int]  # quarantined by the contract, by reason, in row order
    ingest_failures: dict[str, int]  # quarantined at ingest, by reason
    expectations: dict[str, int]  # failing rows per expectation (GX)
    pii: dict[str, int]  # PII found, by type
    pii_records: int  # kept records in which PII was redacted
    pii_sources: list[str]  # sources of the records with PII, kept redacted or dropped


def plan_shards(
    files: list[str], storage_options: dict[str, Any], shard_records: int
) -> tuple[list[Shard], str]:
    """Cut the files into shards of at most `shard_records` lines, streaming each file once;
    returns the shards and a hash of every file's name and bytes (the data part of the dataset
    id: the same whatever the shard size)."""
    shards: list[Shard] = []
    digest = hashlib.sha256()
    for url in files:
        pieces, file_hash = _plan_file(url, storage_options, shard_records)
        shards += [Shard(len(shards) + i, url, *piece) for i, piece in enumerate(pieces)]
        digest.update(f"{url.rsplit('/', 1)[-1]}\0{file_hash}\0".encode())
    return shards, digest.hexdigest()[:16]


def _plan_file(
    url: str, storage_options: dict[str, Any], shard_records: int
) -> tuple[list[tuple[int, int | None, int]], str]:
    """(start, end, first line) of each shard of one file, and the sha256 of its bytes."""
    digest = hashlib.sha256()
    try:
        with ingest.open_regular_file(url, storage_options) as handle:
            if not url.endswith(".jsonl"):
                while chunk := handle.read(_READ_CHUNK):
                    digest.update(chunk)
                return [(0, None, 1)], digest.hexdigest()
            starts, offset, binary = [0], 0, False
            for lines, line in enumerate(handle, start=1):
                digest.update(line)
                binary = binary or b"\0" in line
                offset += len(line)
                if lines % shard_records == 0:
                    starts.append(offset)
    except OSError as error:
        raise SourceUnreadableError(f"cannot read {url}: {error}") from error
    if binary or offset == 0:  # one rejection for the whole file, as read_file gives it
        return [(0, None, 1)], digest.hexdigest()
    ends = [*starts[1:], offset]
    pieces = [
        (start, end, 1 + i * shard_records)
        for i, (start, end) in enumerate(zip(starts, ends, strict=True))
        if end > start
    ]
    return pieces, digest.hexdigest()


def read_shard(shard: Shard, storage_options: dict[str, Any]) -> tuple[list[dict], list[dict]]:
    """The shard's items and its rejected lines, as `ingest.read_file` gives them for a file."""
    if shard.end is None:
        return ingest.read_file(shard.url, storage_options)
    return ingest.read_jsonl_lines(
        shard.url, shard.start, shard.end, shard.first_line, storage_options
    )


@dataclass(frozen=True)
class ShardSettings:
    """What every shard is prepared with."""

    storage_options: dict[str, Any]
    pii_mode: str
    minhash: MinHashSettings
    seed: int  # of the split
    eval_fraction: float
    scratch: str  # the folder the shards write their records and signatures to


def prepare_shard(shard: Shard, contract: Contract, settings: ShardSettings) -> ShardSummary:
    """Read, validate (GX), redact and sign one shard; write its records, signatures and
    quarantined rows under `scratch`/shard-N/ and return the counts."""
    with collector_paused():
        return _prepare_shard(shard, contract, settings)


def _prepare_shard(shard: Shard, contract: Contract, settings: ShardSettings) -> ShardSummary:
    items, ingest_rejected = read_shard(shard, settings.storage_options)
    records = ingest.flatten(items)
    failures, expectations = failing_rows(records, contract) if len(records) else ({}, {})
    quarantined = ingest.quarantined_rows(records, failures)
    ingest_quarantined = ingest.quarantined_at_ingest(ingest_rejected)
    kept, pii_dropped, pii = redact_records(
        records[~records["row"].isin(failures)], settings.pii_mode
    )
    kept = kept.reset_index(drop=True)
    folder = store.join(settings.scratch, f"shard-{shard.index:06d}")
    # The records as their split file will hold them (converted to Arrow once, here); write_splits
    # filters and copies the table (a pickled frame cost more to write and read than all that).
    records_table = split_table(as_records(kept, [*RECORD_COLUMNS, *OPTIONAL_COLUMNS]))
    _write_table(store.join(folder, "records.parquet"), records_table)
    signatures = sign_records(
        kept, contract.deduplication, settings.minhash, settings.seed, settings.eval_fraction
    )
    _write_table(store.join(folder, "signatures.parquet"), signatures)
    for name, rows in (
        ("quarantined", quarantined),
        ("ingest", ingest_quarantined),
        ("pii", pii_dropped),
    ):
        store.write_text(store.join(folder, f"{name}.jsonl"), dumps_jsonl(rows))
    return ShardSummary(
        index=shard.index,
        uri=folder,
        items=len(records),
        ingest_rejected=len(ingest_rejected),
        kept=len(kept),
        contract_failures=dict(Counter(q["detail"] for q in quarantined)),
        ingest_failures=dict(Counter(q["detail"] for q in ingest_quarantined)),
        expectations=expectations,
        pii=dict(pii),
        pii_records=int(kept["pii"].sum()) if "pii" in kept else 0,
        pii_sources=eda.pii_sources(kept, pii_dropped),
    )


def sign_records(
    frame: pd.DataFrame,
    rules: Deduplication,
    settings: MinHashSettings,
    seed: int,
    eval_fraction: float,
) -> pa.Table:
    """One row per record: id and source; 128-bit hashes of the normalized key, answer and
    prompt; the split side; the dedup and decontamination keys in parts and their band hashes;
    whether the optional record columns hold a value."""
    messages = frame["messages"].tolist()
    pairs = frame["rejected"].tolist() if "rejected" in frame else [None] * len(frame)
    # The prompt key serves the prompt hash, the split and (by default) decontamination:
    # each record's is built once.
    prompt_keys = [record_key(m, "prompt") for m in messages]
    keys = (
        prompt_keys
        if rules.key == "prompt"
        else [record_key(m, rules.key, r) for m, r in zip(messages, pairs, strict=True)]
    )
    dkeys = (
        prompt_keys
        if rules.decontamination_key == "prompt"
        else [record_key(m, rules.decontamination_key) for m in messages]
    )
    prompts = [normalize(key_text(k)) for k in prompt_keys]  # normalized_prompt of each
    columns: dict[str, Any] = {
        "record_id": frame["record_id"].astype(str).tolist(),
        "source": frame["source"].tolist(),
        **_hash128("exact", [normalize(key_text(k)) for k in keys]),
        **_hash128("answer", [normalize(reference_response(m)) for m in messages]),
        **_hash128("prompt", prompts),
        "is_eval": np.array([prompt_bucket(p, seed) < eval_fraction for p in prompts], bool),
        "key": pa.array([list(k) for k in keys], pa.list_(pa.string())),
        "dkey": pa.array([list(k) for k in dkeys], pa.list_(pa.string())),
    }
    bands = band_hashes(keys, settings)
    dbands = bands if rules.decontamination_key == rules.key else band_hashes(dkeys, settings)
    for b in range(bands.shape[1]):
        columns[f"band_{b}"] = bands[:, b]
        columns[f"dband_{b}"] = dbands[:, b]
    for name in OPTIONAL_COLUMNS:
        values = frame[name] if name in frame else [None] * len(frame)
        columns[f"has_{name}"] = np.array(
            [isinstance(v, str | dict) and bool(v) for v in values], bool
        )
    return pa.table(columns)


def _hash128(name: str, texts: list[str]) -> dict[str, np.ndarray]:
    """A 128-bit blake2b of each text as two uint64 columns: equal texts, equal hashes, and a
    collision (which would drop a record) is out of reach (2^-64 for a billion records)."""
    digests = b"".join(hashlib.blake2b(t.encode(), digest_size=16).digest() for t in texts)
    words = np.frombuffer(digests, dtype=">u8").astype(np.uint64).reshape(-1, 2)
    return {f"{name}_hi": words[:, 0].copy(), f"{name}_lo": words[:, 1].copy()}


def _write_table(url: str, table: pa.Table) -> None:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    store.write_bytes(url, buffer.getvalue())


def _read_table(url: str, columns: list[str] | None = None) -> pa.Table:
    fs, path = fsspec.core.url_to_fs(url)
    return pq.read_table(path, columns=columns, filesystem=fs)


def _read_columns(uri: str, columns: list[str]) -> pa.Table:
    return _read_table(store.join(uri, "signatures.parquet"), columns)


def shard_totals(summaries: list[ShardSummary]) -> tuple[int, Counter, int]:
    """All records read (parsed or rejected at ingest), PII found by type, records with PII."""
    pii: Counter = Counter()
    for summary in summaries:
        pii.update(summary.pii)
    total = sum(s.items + s.ingest_rejected for s in summaries)
    return total, pii, sum(s.pii_records for s in summaries)


def offsets(summaries: list[ShardSummary]) -> np.ndarray:
    """The global position of each shard's first kept record (and the total at the end)."""
    return np.concatenate([[0], np.cumsum([s.kept for s in summaries])]).astype(np.int64)


def read_signatures(summaries: list[ShardSummary], columns: list[str]) -> dict[str, np.ndarray]:
    """Signature columns of every record, in global order (a few bytes a record), each filled
    shard by shard into one array (joining parts would hold every column twice)."""
    if not summaries:
        return {c: np.array([]) for c in columns}
    bounds = offsets(summaries)
    found: dict[str, np.ndarray] = {}
    for s, summary in enumerate(summaries):
        table = _read_columns(summary.uri, columns)
        for c in columns:
            values = table[c].to_numpy()
            if c not in found:
                found[c] = np.empty(bounds[-1], values.dtype)
            found[c][bounds[s] : bounds[s + 1]] = values
    return found


@dataclass
class Outcomes:
    """Records rejected by deduplication or decontamination, by global position."""

    position: np.ndarray  # int64
    reason: np.ndarray  # int8, an index into REASONS
    related: np.ndarray  # int64: the record it repeats or contradicts

    @classmethod
    def of(cls, position, reason, related) -> "Outcomes":
        return cls(
            np.asarray(position, np.int64),
            np.asarray(reason, np.int8),
            np.asarray(related, np.int64),
        )

    def __add__(self, other: "Outcomes") -> "Outcomes":
        return Outcomes.of(
            np.concatenate([self.position, other.position]),
            np.concatenate([self.reason, other.reason]),
            np.concatenate([self.related, other.related]),
        )

    def where(self, mask: np.ndarray) -> "Outcomes":
        return Outcomes.of(self.position[mask], self.reason[mask], self.related[mask])

    def in_order(self) -> "Outcomes":
        """The same outcomes by ascending position (hash ranges find them out of order)."""
        return self.where(np.argsort(self.position, kind="stable"))


@dataclass(frozen=True)
class ShardIndex:
    """Where every shard's records are, where each begins in the global order, and in how many
    hash ranges the grouping steps take them: all a global task needs of the summaries.
    Prefect walks a task's list arguments item by item to resolve them, and a list of 500
    summaries took ~1 s a task at 10M records, for each of 2 x 500 confirm tasks; 500 URIs and
    an array cost it ~1 ms."""

    uris: list[str]
    bounds: np.ndarray
    ranges: int = 1

    @classmethod
    def of(cls, summaries: list[ShardSummary], range_records: int) -> "ShardIndex":
        """The summaries' index, with ranges of about `range_records` records each."""
        bounds = offsets(summaries)
        return cls([s.uri for s in summaries], bounds, max(1, -(-int(bounds[-1]) // range_records)))


def read_range(
    index: ShardIndex, by: str, columns: list[str], part: int
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The global positions (ascending) and signature `columns` of the records whose `by`
    hash falls in range `part` of `index.ranges` (value mod ranges): equal values fall in one
    range, so grouping range by range finds every group. Each range reads every shard again:
    ranges x shards small reads buy memory that holds one range, not the corpus."""
    wanted = list(dict.fromkeys([by, *columns]))
    positions: list[np.ndarray] = []
    found: dict[str, list[np.ndarray]] = {c: [] for c in wanted}
    for s, uri in enumerate(index.uris):
        if index.bounds[s + 1] == index.bounds[s]:
            continue
        table = _read_columns(uri, wanted)
        values = {c: table[c].to_numpy() for c in wanted}
        inside = np.flatnonzero(values[by] % np.uint64(index.ranges) == part)
        positions.append(index.bounds[s] + inside)
        for c in wanted:
            found[c].append(values[c][inside])
    if not positions:
        return np.zeros(0, np.int64), {c: np.zeros(0, np.uint64) for c in wanted}
    return np.concatenate(positions), {c: np.concatenate(v) for c, v in found.items()}


def exact_duplicates(index: ShardIndex) -> Outcomes:
    """Records whose normalized key repeats an earlier one's: an exact duplicate of the first
    with that key, or, when its answer differs (possible under the prompt key), a conflicting
    answer to it."""
    found = Outcomes.of([], [], [])
    for part in range(index.ranges):
        positions, cols = read_range(
            index, "exact_hi", ["exact_lo", "answer_hi", "answer_lo"], part
        )
        first = _first_of_group(cols["exact_hi"], cols["exact_lo"])
        i = np.flatnonzero(first != np.arange(len(first)))
        j = first[i]
        same = (cols["answer_hi"][i] == cols["answer_hi"][j]) & (
            cols["answer_lo"][i] == cols["answer_lo"][j]
        )
        found += Outcomes.of(positions[i], np.where(same, EXACT, CONFLICT), positions[j])
    return found.in_order()


def _first_of_group(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """For each index, the smallest index with the same (hi, lo) value."""
    n = len(hi)
    order = np.lexsort((lo, hi))  # stable: indices ascend within a group
    hi_s, lo_s = hi[order], lo[order]
    start = np.ones(n, bool)
    start[1:] = (hi_s[1:] != hi_s[:-1]) | (lo_s[1:] != lo_s[:-1])
    first = np.empty(n, np.int64)
    first[order] = order[np.maximum.accumulate(np.where(start, np.arange(n), 0))]
    return first


def band_candidates(
    index: ShardIndex, column: str, excluded: np.ndarray, cross: bool
) -> np.ndarray:
    """(i, j) pairs of records that share the band hash in `column`, neither of them in
    `excluded`: every j < i of a bucket; or, when `cross`, every train i with eval j."""
    pairs = []
    for part in range(index.ranges):
        positions, cols = read_range(index, column, ["is_eval"] if cross else [], part)
        alive = ~np.isin(positions, excluded)
        pairs.append(
            bucket_pairs(
                positions[alive], cols[column][alive], cols["is_eval"][alive] if cross else None
            )
        )
    return np.concatenate(pairs)  # ranges >= 1: never an empty list


def bucket_pairs(
    positions: np.ndarray, values: np.ndarray, is_eval: np.ndarray | None = None
) -> np.ndarray:
    """`band_candidates` over one band's hash `values` of the records at ascending global
    `positions`: pairs of positions."""
    order = np.argsort(values, kind="stable")
    # Nearly every bucket holds one record: one bool a record (equal to the next?) finds the
    # members of the others, where arrays of bucket bounds would be int64 a record.
    same = values[order[1:]] == values[order[:-1]]
    shared = np.zeros(len(order), bool)
    shared[1:] = same
    shared[:-1] |= same
    members = np.flatnonzero(shared)
    opens = np.ones(len(members), bool)  # a member opens its bucket unless it equals the one before
    opens[members > 0] = ~same[members[members > 0] - 1]
    bounds = [*np.flatnonzero(opens).tolist(), len(members)]
    pairs = []
    for start, end in itertools.pairwise(bounds):
        bucket = order[members[start:end]]
        ids = positions[bucket]
        if is_eval is None:
            pairs += [(i, j) for k, i in enumerate(ids) for j in ids[:k]]
        else:
            side = is_eval[bucket]
            pairs += [(i, j) for i in ids[~side] for j in ids[side]]
    return np.array(pairs, np.int64).reshape(-1, 2)


def split_pairs(candidates: list[np.ndarray], chunks: int) -> list[np.ndarray]:
    """Every band's candidate pairs (i, j), each distinct pair once, sorted, in `chunks` runs
    of about equal size (a confirm task each): done once here, not by every confirm task over
    all pairs. Sorted by i, a run's keys come from a few neighbouring shards."""
    pairs = np.concatenate([c for c in candidates if len(c)] or [np.zeros((0, 2), np.int64)])
    return np.array_split(np.unique(pairs, axis=0), chunks)  # unique sorts by i, then j


def confirm_candidates(
    index: ShardIndex, pairs: np.ndarray, key_column: str, settings: MinHashSettings
) -> np.ndarray:
    """The candidate `pairs` that are near duplicates on `key_column` (exact Jaccard and the
    part check, as the whole-batch code confirms them)."""
    if not len(pairs):
        return pairs
    keys = _keys_at(index, np.unique(pairs), key_column)
    sets = {p: set(shingles(key_text(k), settings)) for p, k in keys.items()}
    confirmed = [
        is_near_duplicate(keys[i], keys[j], sets[i], sets[j], settings.threshold)
        for i, j in pairs.tolist()
    ]
    return pairs[np.array(confirmed, bool)]


def _keys_at(index: ShardIndex, positions: np.ndarray, column: str) -> dict[int, Key]:
    """The key (in parts) of each record at the given global positions, shard by shard."""
    keys: dict[int, Key] = {}
    bounds = index.bounds
    shard_of = np.searchsorted(bounds, positions, side="right") - 1
    for s in np.unique(shard_of):
        wanted = positions[shard_of == s]
        values = _read_columns(index.uris[s], [column])[column]
        taken = values.take(pa.array(wanted - bounds[s])).to_pylist()
        keys |= {int(p): tuple(k) for p, k in zip(wanted, taken, strict=True)}
    return keys


def near_duplicates(confirmed: np.ndarray) -> Outcomes:
    """Resolve confirmed pairs (i, j < i) in the global order: i is a near duplicate iff some
    confirmed j is kept, and names the smallest such j (what visiting records in order and
    indexing only the kept ones gives)."""
    duplicate_of: dict[int, int] = {}
    for i, j in sorted(map(tuple, confirmed.tolist())):
        if i not in duplicate_of and j not in duplicate_of:
            duplicate_of[i] = j
    return Outcomes.of(list(duplicate_of), [NEAR] * len(duplicate_of), list(duplicate_of.values()))


def cross_matches(confirmed: np.ndarray) -> Outcomes:
    """Each train record with a confirmed eval match, naming the first such eval record."""
    first: dict[int, int] = {}
    for i, j in confirmed.tolist():
        first[i] = min(j, first.get(i, j))
    return Outcomes.of(list(first), [CONTAMINATED] * len(first), list(first.values()))


def conflicting_answers(index: ShardIndex, excluded: np.ndarray) -> Outcomes:
    """Records (outside `excluded`) whose answer differs from that of the first such record
    with the same normalized prompt."""
    found = Outcomes.of([], [], [])
    for part in range(index.ranges):
        positions, cols = read_range(
            index, "prompt_hi", ["prompt_lo", "answer_hi", "answer_lo"], part
        )
        alive = np.flatnonzero(~np.isin(positions, excluded))
        first = alive[_first_of_group(cols["prompt_hi"][alive], cols["prompt_lo"][alive])]
        differs = (cols["answer_hi"][alive] != cols["answer_hi"][first]) | (
            cols["answer_lo"][alive] != cols["answer_lo"][first]
        )
        found += Outcomes.of(
            positions[alive[differs]], [CONFLICT] * int(differs.sum()), positions[first[differs]]
        )
    return found.in_order()


def record_ids(summaries: list[ShardSummary], positions: np.ndarray) -> dict[int, tuple[str, str]]:
    """(record_id, source) of the records at the given global positions."""
    bounds = offsets(summaries)
    found: dict[int, tuple[str, str]] = {}
    shard_of = np.searchsorted(bounds, positions, side="right") - 1
    for s in np.unique(shard_of):
        wanted = positions[shard_of == s]
        table = _read_columns(summaries[s].uri, ["record_id", "source"])
        index = pa.array(wanted - bounds[s])
        ids = table["record_id"].take(index).to_pylist()
        sources = table["source"].take(index).to_pylist()
        found |= {int(p): (i, src) for p, i, src in zip(wanted, ids, sources, strict=True)}
    return found


def rejection_rows(summaries: list[ShardSummary], outcomes: Outcomes) -> list[dict]:
    """Rejected rows in position order, each naming the record it repeats or contradicts."""
    order = np.argsort(outcomes.position, kind="stable")
    outcomes = outcomes.where(order)
    ids = record_ids(summaries, np.unique(np.concatenate([outcomes.position, outcomes.related])))
    return [
        {
            "record_id": ids[i][0],
            "source": ids[i][1],
            "reason": REASONS[r],
            _RELATION[r]: ids[j][0],
        }
        for i, r, j in zip(
            outcomes.position.tolist(),
            outcomes.reason.tolist(),
            outcomes.related.tolist(),
            strict=True,
        )
    ]


def conflict_rows(summaries: list[ShardSummary], conflicts: Outcomes) -> list[dict]:
    """The manifest's list of conflicting answers, in position order."""
    return [
        {"record_id": r["record_id"], "source": r["source"], "conflicts_with": r["conflicts_with"]}
        for r in rejection_rows(summaries, conflicts)
    ]


def write_splits(
    summaries: list[ShardSummary], rejected: Outcomes, folder: str
) -> tuple[int, int, list[str]]:
    """Stream every shard's surviving records into <folder>/{train,eval}.parquet (one row group
    a shard, so memory holds one shard); returns (train, eval) sizes and the columns."""
    bounds = offsets(summaries)
    gone = np.zeros(bounds[-1], bool)
    gone[rejected.position] = True
    flags = read_signatures(summaries, ["is_eval", *(f"has_{c}" for c in OPTIONAL_COLUMNS)])
    present = [c for c in OPTIONAL_COLUMNS if flags[f"has_{c}"][~gone].any()]
    columns = [*RECORD_COLUMNS, *present]
    writers: dict[str, pq.ParquetWriter] = {}
    sizes = {"train": 0, "eval": 0}
    handles = {}
    try:
        for s, summary in enumerate(summaries):
            records = _read_table(store.join(summary.uri, "records.parquet"), columns)
            keep = ~gone[bounds[s] : bounds[s + 1]]
            side = flags["is_eval"][bounds[s] : bounds[s + 1]]
            for name, mask in (("train", keep & ~side), ("eval", keep & side)):
                if not mask.any():
                    continue
                table = records.filter(pa.array(mask))
                if name not in writers:
                    fs, path = fsspec.core.url_to_fs(store.join(folder, f"{name}.parquet"))
                    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
                    handles[name] = fs.open(path, "wb")
                    writers[name] = pq.ParquetWriter(handles[name], table.schema)
                writers[name].write_table(table.cast(writers[name].schema))
                sizes[name] += int(mask.sum())
    finally:
        for name, writer in writers.items():
            writer.close()
            handles[name].close()
    for name in ("train", "eval"):  # a split nobody fell into is still a (empty) file
        if name not in writers:
            empty = pd.DataFrame({c: [] for c in columns}, dtype=object)
            store.write_bytes(store.join(folder, f"{name}.parquet"), encode_split(empty))
    return sizes["train"], sizes["eval"], columns


def quarantined_rows(summaries: list[ShardSummary]) -> list[dict]:
    """Every record the contract, the reader or the PII policy rejected, in the whole-batch
    order: contract failures, then ingest failures, then PII drops."""
    rows: list[dict] = []
    for name in ("quarantined", "ingest", "pii"):
        for summary in summaries:
            text = store.read_text(store.join(summary.uri, f"{name}.jsonl"))
            rows += [json.loads(line) for line in text.splitlines()]
    return rows


def read_saved_split(url: str, limit: int) -> pd.DataFrame:
    """The first `limit` records of a split written by `write_splits` (metadata back to dicts),
    read batch by batch so a large split is never loaded whole."""
    fs, path = fsspec.core.url_to_fs(url)
    with fs.open(path, "rb") as handle:
        parquet = pq.ParquetFile(handle)
        batches, rows = [], 0
        for batch in parquet.iter_batches(batch_size=min(limit, 65_536)):
            batches.append(batch.slice(0, limit - rows))
            rows += len(batches[-1])
            if rows >= limit:
                break
        frame = pa.Table.from_batches(batches, parquet.schema_arrow).to_pandas()
    if "metadata" in frame:
        frame["metadata"] = frame["metadata"].map(dict)
    return frame
