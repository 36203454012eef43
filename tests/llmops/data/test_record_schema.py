"""The optional record columns: preference pairs (`rejected`) and `metadata`, from raw rows
through flattening, PII redaction, deduplication and the Parquet split, and contract slices."""

from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from llmops import store
from llmops.data.contracts import Deduplication, load_contract
from llmops.data.dedup import MinHashSettings
from llmops.data.ingest import flatten
from llmops.data.prepare import as_records, deduplicate, record_columns, redact_records
from llmops.datasets import encode_split, read_dataset, read_split

QUESTION = "How do I export all my notes to Markdown before I cancel my subscription?"
GOOD = "Open Settings > Export, choose Markdown and press Export all; the zip keeps folders."
BAD = "Open Settings > Export in Notewell and pick PDF; Notewell exports one note at a time."


def items(*raws: dict) -> list[dict]:
    return [{"source": f"pairs.jsonl:{n}", "raw": raw} for n, raw in enumerate(raws, start=1)]


def test_a_pair_ends_with_the_chosen_answer_and_keeps_the_rejected_one():
    frame = flatten(
        items(
            {"id": "p1", "prompt": QUESTION, "chosen": GOOD, "rejected": BAD, "topic": "export"},
            {
                "id": "p2",
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": QUESTION},
                ],
                "chosen": GOOD,
                "rejected": GOOD.upper() + "!",  # the same answer shouted
                "language": "en",
                "score": 0.5,
                "tags": ["a", "b"],  # not a scalar: no slice
                "note": None,
            },
            {"id": "p3", "prompt": QUESTION, "chosen": GOOD},  # no rejected answer
            {"id": "p4", "prompt": QUESTION, "chosen": GOOD, "rejected": 7},  # not text
            {"id": "s1", "prompt": QUESTION, "response": GOOD},  # a supervised record
        )
    )
    assert frame["roles"].tolist() == [
        "user,assistant",
        "system,user,assistant",
        "user,assistant",
        "user,assistant",
        "user,assistant",
    ]
    assert frame["response"].tolist() == [GOOD] * 5
    assert frame["rejected"].tolist() == [BAD, GOOD.upper() + "!", None, None, None]
    assert frame["rejected_differs"].tolist() == [True, False, None, None, None]
    assert frame["all_text"].tolist() == [True, True, True, False, True]
    assert frame["characters"].tolist()[:2] == [
        len(QUESTION) + len(GOOD) + len(BAD),
        len("Be brief.") + len(QUESTION) + 2 * len(GOOD) + 1,
    ]
    assert frame["metadata"].tolist() == [
        {"topic": "export"},
        {"language": "en", "score": "0.5"},
        {},
        {},
        {},
    ]


def test_pii_in_the_rejected_answer_and_in_metadata_is_redacted():
    frame = flatten(
        items(
            {
                "id": "p1",
                "prompt": QUESTION,
                "chosen": GOOD,
                "rejected": BAD + " Mail jo@example.com or call +44 20 7946 0958.",
                "customer": "jo@example.com",
            }
        )
    )
    redacted, dropped, counts = redact_records(frame, "redact")
    assert redacted["rejected"].tolist() == [BAD + " Mail [EMAIL] or call [PHONE]."]
    assert redacted["metadata"].tolist() == [{"customer": "[EMAIL]"}]
    assert counts == Counter({"EMAIL": 2, "PHONE": 1}) and redacted["pii"].tolist() == [True]
    kept, dropped, _ = redact_records(frame, "drop")
    assert kept.empty and [d["record_id"] for d in dropped] == ["p1"]


def test_pairs_that_differ_only_in_the_rejected_answer_are_not_duplicates():
    other = "Export is not available on your plan, sorry."
    frame = flatten(
        items(
            {"id": "a", "prompt": QUESTION, "chosen": GOOD, "rejected": BAD},
            {"id": "b", "prompt": QUESTION, "chosen": GOOD, "rejected": other},
            {"id": "a-copy", "prompt": QUESTION + " ", "chosen": GOOD, "rejected": BAD},
            {"id": "sft", "prompt": QUESTION, "response": GOOD},  # no pair: not a copy either
        )
    )
    kept, rejected, conflicts = deduplicate(frame, Deduplication(), MinHashSettings())
    assert kept["record_id"].tolist() == ["a", "b", "sft"]
    assert [(r["record_id"], r["reason"], r["duplicate_of"]) for r in rejected] == [
        ("a-copy", "exact_duplicate", "a")
    ]
    assert conflicts == []  # one chosen answer to the one prompt


def test_optional_columns_are_written_only_when_some_record_has_them(tmp_path: Path):
    plain = flatten(items({"id": "s1", "prompt": QUESTION, "response": GOOD}))
    assert record_columns(plain) == ["record_id", "source", "messages"]
    mixed = flatten(
        items(
            {"id": "s1", "prompt": QUESTION, "response": GOOD},
            {"id": "p1", "prompt": QUESTION, "chosen": GOOD, "rejected": BAD, "topic": "export"},
        )
    )
    columns = record_columns(mixed)
    assert columns == ["record_id", "source", "messages", "rejected", "metadata"]
    folder = tmp_path / "d1"
    folder.mkdir()
    # The eval split has no metadata key at all: it still reads back as (empty) dicts.
    (folder / "train.parquet").write_bytes(encode_split(as_records(mixed, columns)))
    (folder / "eval.parquet").write_bytes(encode_split(as_records(mixed.iloc[:1], columns)))
    store.write_json(
        str(folder / "manifest.json"),
        {"dataset_id": "d1", "counts": {"accepted": 3}, "slices": ["topic"]},
    )
    dataset = read_dataset(str(folder))
    assert dataset.slices == ["topic"]
    train, eval_ = read_split(dataset, "train"), read_split(dataset, "eval")
    assert list(train.columns) == columns
    assert train["rejected"].tolist() == [None, BAD]
    assert train["metadata"].tolist() == [{}, {"topic": "export"}]
    assert eval_["metadata"].tolist() == [{}]
    assert pd.api.types.is_object_dtype(eval_["rejected"])


@pytest.mark.parametrize(
    ("slices", "error"),
    [
        ("topic", "must be a list"),
        (["topic", "topic"], "repeat a field"),
        (["prompt"], "record field"),
    ],
)
def test_contract_slices_are_distinct_metadata_fields(tmp_path: Path, slices, error: str):
    path = tmp_path / "c.yaml"
    path.write_text(f"name: c\nslices: {slices!r}\nexpectations: []\n")
    with pytest.raises(ValueError, match=error):
        load_contract(str(path))
    path.write_text("name: c\nslices: [topic, language]\nexpectations: []\n")
    assert load_contract(str(path)).slices == ("topic", "language")
