"""The EDA tables on records built here: outcomes and PII by source file, near-duplicate
clusters, the per-record profile (turns, language, slices, pair lengths)."""

import pandas as pd

from llmops.data.eda import explore, pii_sources, writing_system
from llmops.records import instruction_to_messages

CHAT = [
    {"role": "user", "content": "Can I share a notebook?"},
    {"role": "assistant", "content": "Yes, from its menu."},
    {"role": "user", "content": "Read-only too?"},
    {"role": "assistant", "content": "Yes: set the role to Viewer."},
]


def record(record_id: str, source: str, prompt: str = "How do I sync?", **extra) -> dict:
    messages = instruction_to_messages(prompt, "Pull down on the list to sync.", "Be brief.")
    return {"record_id": record_id, "source": source, "messages": messages, **extra}


def test_outcomes_pii_and_clusters_by_source_file():
    train = pd.DataFrame([record("a", "a.jsonl:1"), record("b", "a.jsonl:2")])
    eval_ = pd.DataFrame([record("c", "b.csv:row1")])
    rejected = [
        {"record_id": "a.jsonl:3", "source": "a.jsonl:3", "reason": "quarantined"},
        {"record_id": "d", "source": "b.csv:row2", "reason": "near_duplicate", "duplicate_of": "c"},
        {"record_id": "e", "source": "a.jsonl:4", "reason": "near_duplicate", "duplicate_of": "c"},
        {"record_id": "f", "source": "a.jsonl:5", "reason": "near_duplicate", "duplicate_of": "a"},
        {
            "record_id": "g",
            "source": "b.csv:row3",
            "reason": "exact_duplicate",
            "duplicate_of": "c",
        },
        {"record_id": "h", "source": "c.json:1", "reason": "contaminated", "duplicate_of": "c"},
    ]
    found = ["a.jsonl:2", "c.json:1", "b.csv:row3"]
    exploration = explore(train, eval_, rejected, found, ())
    assert exploration.by_source.to_dict("records") == [
        {
            "source_file": "a.jsonl",
            "records": 5,
            "accepted": 2,
            "with_pii": 1,
            "quarantined": 1,
            "exact_duplicate": 0,
            "near_duplicate": 2,
            "conflicting_answer": 0,
            "contaminated": 0,
        },
        {
            "source_file": "b.csv",
            "records": 3,
            "accepted": 1,
            "with_pii": 1,
            "quarantined": 0,
            "exact_duplicate": 1,
            "near_duplicate": 1,
            "conflicting_answer": 0,
            "contaminated": 0,
        },
        {
            "source_file": "c.json",
            "records": 1,
            "accepted": 0,
            "with_pii": 1,
            "quarantined": 0,
            "exact_duplicate": 0,
            "near_duplicate": 0,
            "conflicting_answer": 0,
            "contaminated": 1,
        },
    ]
    # Exact copies and contamination are no near-duplicate cluster.
    assert exploration.clusters.to_dict("records") == [
        {"kept": "c", "size": 3, "dropped": "d, e"},
        {"kept": "a", "size": 2, "dropped": "f"},
    ]


def test_profile_turns_language_slices_and_pair_lengths():
    train = pd.DataFrame(
        [
            record("en", "a:1", metadata={"topic": "sync", "language": "en"}, rejected=None),
            record("ru", "a:2", "Как синхронизировать заметки?", metadata={}, rejected=None),
            {
                "record_id": "chat",
                "source": "a:3",
                "messages": CHAT,
                "metadata": {"topic": "sharing", "segment": "team"},
                "rejected": "No sharing, sorry and goodbye.",
            },
        ]
    )
    eval_ = train.iloc[:0]
    profile = explore(train, eval_, [], [], ()).profile
    assert profile.pop("rejected_words").fillna(0).tolist() == [0, 0, 5]  # pairs only
    assert profile.to_dict("list") == {
        "split": ["train"] * 3,
        "source_file": ["a"] * 3,
        "prompt_words": [4, 3, 11],  # without the system message; every turn before the answer
        "response_words": [7, 7, 6],
        "turns": [1, 1, 2],
        "language": ["en", "Cyrillic", "Latin"],  # metadata, else the prompt's script
        # No slices named: every metadata field the records have.
        "slice.language": ["en", "(none)", "(none)"],
        "slice.segment": ["(none)", "(none)", "team"],
        "slice.topic": ["sync", "(none)", "sharing"],
    }
    named = explore(train, eval_, [], [], ("topic",))
    assert named.slice_fields == ["slice.topic"]
    assert "slice.segment" not in named.profile


def test_writing_system_and_pii_sources():
    assert [writing_system(t) for t in ("hello", "Привет, мир", "こんにちは", "1234 ?")] == [
        "Latin",
        "Cyrillic",
        "Hiragana",
        "none",
    ]
    screened = pd.DataFrame({"source": ["a:1", "a:2", "b:1"], "pii": [True, False, True]})
    assert pii_sources(screened, [{"source": "c:9"}]) == ["a:1", "b:1", "c:9"]
    assert pii_sources(screened.drop(columns="pii"), []) == []  # pii_mode: off
