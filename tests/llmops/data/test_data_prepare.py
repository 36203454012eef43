"""The pure core of data preparation on records built here: two answers to one question, 1-3
word variants of whole examples, and the counts that must add up."""

import json
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from llmops.data.contracts import Deduplication
from llmops.data.dedup import MinHashSettings
from llmops.data.prepare import count_outcomes, decontaminate, deduplicate, split_records
from llmops.records import instruction_to_messages

FIXTURE = Path(__file__).parent / "fixtures" / "shared_prompts.jsonl"


def frame(records: list[dict]) -> pd.DataFrame:
    """Records (instruction schema) in the internal form, in order."""
    return pd.DataFrame(
        {
            "record_id": [r["id"] for r in records],
            "source": [f"shared_prompts.jsonl:{n}" for n in range(1, len(records) + 1)],
            "messages": [
                instruction_to_messages(r["prompt"], r["response"], r.get("system"))
                for r in records
            ],
        }
    )


def outcome(rejected: list[dict]) -> dict[str, tuple]:
    return {
        r["record_id"]: (r["reason"], r.get("duplicate_of") or r["conflicts_with"])
        for r in rejected
    }


# Two answers to one password question (with an exact copy and another system message), and an
# export answer with 1-3 word variants, a paraphrased question and another system message.
RECORDS = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
SUPPORT = frame(RECORDS)


def test_two_answers_to_one_question_stay_and_are_listed():
    kept, rejected, conflicts = deduplicate(SUPPORT, Deduplication(), MinHashSettings())
    assert outcome(rejected) == {
        "reset-phone-shouted": ("exact_duplicate", "reset-phone"),
        "export-1": ("near_duplicate", "export"),
        "export-2": ("near_duplicate", "export"),
        "export-3": ("near_duplicate", "export"),
    }
    assert kept["record_id"].tolist() == [
        "reset-email",
        "reset-phone",
        "reset-phone-system",
        "export",
        "export-paraphrase",
        "export-system",
    ]
    assert conflicts == [
        {
            "record_id": "reset-phone",
            "source": "shared_prompts.jsonl:2",
            "conflicts_with": "reset-email",
        },
        {
            "record_id": "reset-phone-system",
            "source": "shared_prompts.jsonl:4",
            "conflicts_with": "reset-email",
        },
    ]


def test_the_contract_can_drop_conflicting_answers_under_their_own_reason():
    rules = Deduplication(conflicting_answers="drop")
    kept, rejected, conflicts = deduplicate(SUPPORT, rules, MinHashSettings())
    assert {k: v for k, v in outcome(rejected).items() if v[0] == "conflicting_answer"} == {
        "reset-phone": ("conflicting_answer", "reset-email"),
        "reset-phone-system": ("conflicting_answer", "reset-email"),
    }
    assert len(conflicts) == 2
    counts = count_outcomes(len(SUPPORT), len(kept), rejected, Counter(), 0, len(conflicts))
    assert (counts["conflicting_answers"], counts["conflicting_answers_dropped"]) == (2, 2)
    assert counts["accepted"] == 4  # reset-email, export, export-paraphrase, export-system


def test_the_prompt_key_keeps_one_record_per_prompt_and_says_why():
    rules = Deduplication(key="prompt", conflicting_answers="drop")
    kept, rejected, conflicts = deduplicate(SUPPORT, rules, MinHashSettings())
    found = outcome(rejected)
    # An identical prompt with another answer is a conflict, never an "exact duplicate".
    assert found["reset-phone"] == ("conflicting_answer", "reset-email")
    assert found["reset-phone-system"] == ("conflicting_answer", "reset-email")
    assert found["reset-phone-shouted"] == ("conflicting_answer", "reset-email")
    assert found["export-system"] == ("exact_duplicate", "export")  # same prompt and answer
    # Any difference in the answer text counts, a one-word edit too: review them, not lose them.
    assert found["export-2"] == ("conflicting_answer", "export")
    assert {"reset-email", "export", "export-paraphrase"} <= set(kept["record_id"])
    assert [c["record_id"] for c in conflicts] == [
        "reset-phone",
        "reset-phone-shouted",
        "reset-phone-system",
        "export-2",
        "export-3",
    ]


def test_a_held_out_question_leaves_train_whatever_its_answer():
    by_id = {r["id"]: r for r in RECORDS}
    train = frame([by_id["reset-phone"], by_id["export"]])
    eval_ = frame([by_id["reset-email"]])
    kept, contaminated = decontaminate(train, eval_, "prompt", MinHashSettings())
    assert outcome(contaminated) == {"reset-phone": ("contaminated", "reset-email")}
    assert kept["record_id"].tolist() == ["export"]
    kept, contaminated = decontaminate(train, eval_, "example", MinHashSettings())
    assert contaminated == [] and len(kept) == 2


def test_records_that_share_a_prompt_fall_on_the_same_side_of_the_split():
    records = [
        {"id": f"{n}-{answer}", "prompt": f"Question {n}?", "response": f"Answer {answer}."}
        for n in range(200)
        for answer in ("a", "b")
    ]
    train, eval_ = split_records(frame(records), eval_fraction=0.15, seed=13)
    held_out = {i.split("-")[0] for i in eval_["record_id"]}
    assert 0 < len(held_out) < 200
    assert not held_out & {i.split("-")[0] for i in train["record_id"]}


def test_counts_refuse_a_lost_record():
    rejected = [{"record_id": "a", "reason": "conflicting_answer"}]
    assert count_outcomes(2, 1, rejected, Counter(), 0, 1)["conflicting_answers_dropped"] == 1
    with pytest.raises(AssertionError, match="1 records unaccounted for"):
        count_outcomes(3, 1, rejected, Counter(), 0, 1)
