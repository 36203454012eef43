"""The pure core of data preparation: from flattened records to clean splits + rejected rows.

Every input record ends in exactly one place: the train or eval split, or `rejected` with a
reason (quarantined, exact_duplicate, near_duplicate, contaminated), so the counts add up.
"""

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field

import pandas as pd

from llmops.data.dedup import MinHashSettings, cross_matches, exact_duplicates, near_duplicates
from llmops.data.pii import redact
from llmops.records import RECORD_COLUMNS


@dataclass
class Prepared:
    """Clean splits, rejected rows and counts."""

    train: pd.DataFrame
    eval: pd.DataFrame
    rejected: list[dict] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    pii: dict[str, int] = field(default_factory=dict)


def redact_records(frame: pd.DataFrame, mode: str) -> tuple[pd.DataFrame, list[dict], Counter]:
    """Apply PII policy `mode` (redact | drop | off) to every message; returns (kept, dropped
    as rejected rows, counts by PII type)."""
    if mode == "off":
        return frame, [], Counter()
    totals: Counter = Counter()
    new_messages, has_pii = [], []
    for messages in frame["messages"]:
        found: Counter = Counter()
        redacted = []
        for message in messages:
            text, counts = redact(message["content"])
            found += counts
            redacted.append({"role": message["role"], "content": text})
        totals += found
        new_messages.append(redacted)
        has_pii.append(bool(found))
    frame = frame.assign(messages=new_messages, pii=has_pii)
    if mode == "redact":
        return frame, [], totals
    dropped = frame[frame["pii"]]
    rejected = [
        _rejection(row, "quarantined", "contains PII (pii_mode=drop)")
        for row in dropped.itertuples()
    ]
    return frame[~frame["pii"]], rejected, totals


def deduplicate(
    frame: pd.DataFrame, text_column: str, settings: MinHashSettings
) -> tuple[pd.DataFrame, list[dict]]:
    """Drop exact, then near duplicates of `text_column`; rejections name what they duplicate."""
    texts = frame[text_column].tolist()
    ids = frame["record_id"].tolist()
    exact = exact_duplicates(texts)
    rejected = [
        _rejection(row, "exact_duplicate", duplicate_of=ids[exact[i]])
        for i, row in enumerate(frame.itertuples())
        if i in exact
    ]
    kept = frame[[i not in exact for i in range(len(frame))]]
    near = near_duplicates(kept[text_column].tolist(), settings)
    kept_ids = kept["record_id"].tolist()
    rejected += [
        _rejection(row, "near_duplicate", duplicate_of=kept_ids[near[i]])
        for i, row in enumerate(kept.itertuples())
        if i in near
    ]
    return kept[[i not in near for i in range(len(kept))]], rejected


def split_records(
    frame: pd.DataFrame, eval_fraction: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Deterministic split by a seeded hash of record_id: stable under re-runs and additions."""

    def bucket(record_id: str) -> float:
        digest = hashlib.sha256(f"{seed}:{record_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    is_eval = frame["record_id"].map(bucket) < eval_fraction
    return frame[~is_eval], frame[is_eval]


def decontaminate(
    train: pd.DataFrame, eval_: pd.DataFrame, text_column: str, settings: MinHashSettings
) -> tuple[pd.DataFrame, list[dict]]:
    """Drop train records that near-duplicate an eval record (the eval side stays held out)."""
    hits = cross_matches(train[text_column].tolist(), eval_[text_column].tolist(), settings)
    eval_ids = eval_["record_id"].tolist()
    rejected = [
        _rejection(row, "contaminated", duplicate_of=eval_ids[hits[i]])
        for i, row in enumerate(train.itertuples())
        if i in hits
    ]
    return train[[i not in hits for i in range(len(train))]], rejected


def _rejection(
    row, reason: str, detail: str | None = None, duplicate_of: str | None = None
) -> dict:
    entry = {"record_id": row.record_id, "source": row.source, "reason": reason}
    if detail:
        entry["detail"] = detail
    if duplicate_of is not None:
        entry["duplicate_of"] = duplicate_of
    return entry


def count_outcomes(
    total: int, accepted: int, rejected: list[dict], pii: Counter, pii_records: int
) -> dict[str, int]:
    """The manifest's counts; `total` always equals accepted + every rejection reason."""
    by_reason = Counter(r["reason"] for r in rejected)
    counts = {
        "total": total,
        "accepted": accepted,
        "quarantined": by_reason["quarantined"],
        "exact_duplicates": by_reason["exact_duplicate"],
        "near_duplicates": by_reason["near_duplicate"],
        "contaminated": by_reason["contaminated"],
        "pii_redacted": pii_records,
        **{f"pii_{kind.lower()}": n for kind, n in sorted(pii.items())},
    }
    lost = total - accepted - sum(by_reason.values())
    if lost:
        raise AssertionError(f"{lost} records unaccounted for: {counts}")
    return counts


def content_hash(parts: list[bytes | str]) -> str:
    """A short sha256 over the given parts (data bytes, contract text, config json)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def as_records(frame: pd.DataFrame) -> pd.DataFrame:
    """Only the record columns, in order, with a clean index."""
    return frame.loc[:, list(RECORD_COLUMNS)].reset_index(drop=True)


def dumps_jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
