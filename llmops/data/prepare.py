"""The pure core of data preparation: from flattened records to clean splits + rejected rows.

Every input record ends in exactly one place: the train or eval split, or `rejected` with a
reason (quarantined, exact_duplicate, near_duplicate, conflicting_answer, contaminated), so the
counts add up.
"""

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field

import pandas as pd

from llmops.data.contracts import Deduplication
from llmops.data.dedup import (
    DedupKey,
    MinHashSettings,
    conflicting_answers,
    cross_matches,
    exact_duplicates,
    key_text,
    near_duplicates,
    normalize,
    normalized_prompt,
    record_key,
)
from llmops.data.pii import redact_into
from llmops.records import OPTIONAL_COLUMNS, RECORD_COLUMNS, reference_response


@dataclass
class Prepared:
    """Clean splits, rejected rows and counts."""

    train: pd.DataFrame
    eval: pd.DataFrame
    rejected: list[dict] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    pii: dict[str, int] = field(default_factory=dict)


def redact_records(frame: pd.DataFrame, mode: str) -> tuple[pd.DataFrame, list[dict], Counter]:
    """Apply PII policy `mode` (redact | drop | off) to every message, a pair's rejected answer
    and the metadata values; returns (kept, dropped as rejected rows, counts by PII type)."""
    if mode == "off":
        return frame, [], Counter()
    totals: Counter = Counter()
    new_messages, new_rejected, new_metadata, has_pii = [], [], [], []
    for messages, rejected, metadata in zip(
        frame["messages"], _column(frame, "rejected"), _column(frame, "metadata"), strict=True
    ):
        before = totals.total()  # the record holds PII iff its texts add to the counts
        new_messages.append(
            [{"role": m["role"], "content": redact_into(m["content"], totals)} for m in messages]
        )
        new_rejected.append(redact_into(rejected, totals) if isinstance(rejected, str) else None)
        new_metadata.append({k: redact_into(v, totals) for k, v in (metadata or {}).items()})
        has_pii.append(totals.total() > before)
    frame = frame.assign(
        messages=new_messages, rejected=new_rejected, metadata=new_metadata, pii=has_pii
    )
    if mode == "redact":
        return frame, [], totals
    dropped = frame[frame["pii"]]
    rejected = [
        _rejection(row, "quarantined", "contains PII (pii_mode=drop)")
        for row in dropped.itertuples()
    ]
    return frame[~frame["pii"]], rejected, totals


def _column(frame: pd.DataFrame, name: str) -> list:
    """An optional record column's values, None for every row when the frame has none."""
    return frame[name].tolist() if name in frame else [None] * len(frame)


def deduplicate(
    frame: pd.DataFrame, rules: Deduplication, settings: MinHashSettings
) -> tuple[pd.DataFrame, list[dict], list[dict]]:
    """Drop exact, then near duplicates of the contract's key, then find conflicting answers:
    records that answer an already answered prompt differently. Those stay unless the contract
    drops them. Returns (kept, rejected, conflicts); a rejection names the record it repeats."""
    messages = frame["messages"].tolist()
    pairs = _column(frame, "rejected")
    keys = [record_key(m, rules.key, r) for m, r in zip(messages, pairs, strict=True)]
    answers = [normalize(reference_response(m)) for m in messages]
    fate: dict[int, tuple[str, int]] = {}  # position -> (reason, position of the first record)
    for i, j in exact_duplicates([key_text(k) for k in keys]).items():
        # Under the prompt key an identical key can carry another answer: that is no copy.
        fate[i] = ("exact_duplicate" if answers[i] == answers[j] else "conflicting_answer", j)
    rest = [i for i in range(len(keys)) if i not in fate]
    for a, b in near_duplicates([keys[i] for i in rest], settings).items():
        fate[rest[a]] = ("near_duplicate", rest[b])
    rest = [i for i in rest if i not in fate]
    prompts = [normalized_prompt(messages[i]) for i in rest]
    conflicting = conflicting_answers(prompts, [answers[i] for i in rest])
    conflicts = {rest[a]: rest[b] for a, b in conflicting.items()}
    conflicts |= {i: j for i, (reason, j) in fate.items() if reason == "conflicting_answer"}
    if rules.conflicting_answers == "drop":
        fate |= {i: ("conflicting_answer", j) for i, j in conflicts.items()}
    rows = list(frame.itertuples())
    ids = frame["record_id"].tolist()
    rejected = [
        _rejection(rows[i], reason, **{_RELATION[reason]: ids[j]})
        for i, (reason, j) in sorted(fate.items())
    ]
    listed = [
        {"record_id": ids[i], "source": rows[i].source, "conflicts_with": ids[j]}
        for i, j in sorted(conflicts.items())
    ]
    return frame[[i not in fate for i in range(len(frame))]], rejected, listed


def split_records(
    frame: pd.DataFrame, eval_fraction: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Deterministic split by a seeded hash of each record's prompt: stable under re-runs and
    additions, and records that share a prompt (two answers to one question) fall on the same
    side, so keeping both never makes one of them contaminated."""
    is_eval = frame["messages"].map(lambda messages: split_bucket(messages, seed)) < eval_fraction
    return frame[~is_eval], frame[is_eval]


def split_bucket(messages: list[dict], seed: int) -> float:
    """A record's place in [0, 1) for the split: a seeded hash of its normalized prompt."""
    return prompt_bucket(normalized_prompt(messages), seed)


def prompt_bucket(prompt: str, seed: int) -> float:
    """`split_bucket` of a record whose normalized prompt is `prompt`."""
    digest = hashlib.sha256(f"{seed}:{prompt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def decontaminate(
    train: pd.DataFrame, eval_: pd.DataFrame, key: DedupKey, settings: MinHashSettings
) -> tuple[pd.DataFrame, list[dict]]:
    """Drop train records whose `key` near-duplicates an eval record's (the eval side stays
    held out); with the prompt key a held-out question leaves train whatever its answer."""
    hits = cross_matches(
        [record_key(m, key) for m in train["messages"]],
        [record_key(m, key) for m in eval_["messages"]],
        settings,
    )
    eval_ids = eval_["record_id"].tolist()
    rejected = [
        _rejection(row, "contaminated", duplicate_of=eval_ids[hits[i]])
        for i, row in enumerate(train.itertuples())
        if i in hits
    ]
    return train[[i not in hits for i in range(len(train))]], rejected


# The field of a rejection that names the record it repeats or contradicts.
_RELATION = {
    "exact_duplicate": "duplicate_of",
    "near_duplicate": "duplicate_of",
    "conflicting_answer": "conflicts_with",
}


def _rejection(row, reason: str, detail: str | None = None, **related: str) -> dict:
    entry = {"record_id": row.record_id, "source": row.source, "reason": reason}
    if detail:
        entry["detail"] = detail
    return entry | related


def count_outcomes(
    total: int,
    accepted: int,
    rejected: list[dict],
    pii: Counter,
    pii_records: int,
    conflicts_found: int = 0,
) -> dict[str, int]:
    """The manifest's counts; `total` always equals accepted + every rejection reason.
    `conflicts_found` counts conflicting answers, kept or dropped (dropped is a reason)."""
    by_reason = Counter(r["reason"] for r in rejected)
    counts = {
        "total": total,
        "accepted": accepted,
        "quarantined": by_reason["quarantined"],
        "exact_duplicates": by_reason["exact_duplicate"],
        "near_duplicates": by_reason["near_duplicate"],
        "conflicting_answers_dropped": by_reason["conflicting_answer"],
        "contaminated": by_reason["contaminated"],
        "conflicting_answers": conflicts_found,
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


def record_columns(frame: pd.DataFrame) -> list[str]:
    """The record columns, plus each optional one that holds a value in some row (a dataset
    without pairs or metadata keeps the plain three columns)."""
    present = [
        c
        for c in OPTIONAL_COLUMNS
        if c in frame and frame[c].map(lambda v: isinstance(v, str | dict) and bool(v)).any()
    ]
    return [*RECORD_COLUMNS, *present]


def as_records(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Only the given record columns, in order, with a clean index."""
    return frame.loc[:, columns].reset_index(drop=True)


def dumps_jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
