"""Preference pairs end to end: the `llmops feedback export --pairs` command on a feedback log,
then the prepare flow under data_contracts/preference_pairs.yaml with planted bad pairs, on the
real Great Expectations and Prefect (the session harness). The command is called as a function:
CliRunner's closed streams break Prefect's log handler for the rest of the session."""

import json
from pathlib import Path

import pandas as pd
import pytest
from feedback_support import fill_log

from flows.prepare import prepare
from llmops.commands.serving import export
from llmops.datasets import read_split
from llmops.flow_configs import PrepareConfig
from llmops.serving.store import InferenceStore

CONTRACT = Path(__file__).resolve().parents[2] / "data_contracts" / "preference_pairs.yaml"
QUESTION = "My sync stopped on the phone app after the update, what should I do?"
CHOSEN = "Sign out and back in on the phone, then pull down on the note list to sync again."
REJECTED = "Reinstall Notewell. If it still fails mail jo@example.com or call +44 20 7946 0958."


def planted_pairs() -> list[dict]:
    pair = {"prompt": QUESTION, "chosen": CHOSEN, "rejected": REJECTED, "topic": "sync"}
    return [
        {"id": "pii-in-rejected", **pair},
        {"id": "exact-copy", **pair},
        {"id": "other-rejected", **pair, "rejected": "Sync is fine on our side."},
        {"id": "same-answers", **pair, "rejected": CHOSEN.upper()},
        {"id": "no-rejected", "prompt": QUESTION, "chosen": CHOSEN},
        {
            "id": "chat-form",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Can I share a notebook read-only?"},
            ],
            "chosen": "Yes: Share > Invite, then set the role to Viewer.",
            "rejected": "No, sharing is all or nothing.",
            "topic": "sharing",
        },
    ]


def test_exported_and_planted_pairs_through_prepare(
    tmp_path: Path, llmops_home: Path, prefect_harness: None, capsys: pytest.CaptureFixture
):
    log = tmp_path / "inference"
    fill_log(InferenceStore(str(log)))
    exported = tmp_path / "pairs" / "feedback.jsonl"
    export(
        output=str(exported),
        inference_log=str(log),
        min_score=1.0,
        pairs=True,
        max_rejected_score=0.0,
    )
    assert "wrote 4 preference pairs" in capsys.readouterr().out
    (tmp_path / "pairs" / "planted.jsonl").write_text(
        "".join(json.dumps(p) + "\n" for p in planted_pairs())
    )
    config = PrepareConfig.from_profile(
        "tiny",
        sources=[str(tmp_path / "pairs")],
        contract=str(CONTRACT),
        output=str(tmp_path / "datasets"),
    )
    dataset = prepare(config)
    folder = Path(dataset.uri)
    counts = dataset.counts
    assert (counts["total"], counts["accepted"], counts["quarantined"]) == (10, 7, 2)
    assert (counts["exact_duplicates"], counts["near_duplicates"], counts["contaminated"]) == (
        1,
        0,
        0,
    )
    assert (counts["pii_redacted"], counts["pii_email"], counts["pii_phone"]) == (2, 2, 2)
    rejected = [json.loads(line) for line in (folder / "rejected.jsonl").read_text().splitlines()]
    assert {(r["record_id"], r.get("detail") or r.get("duplicate_of")) for r in rejected} == {
        ("same-answers", "chosen and rejected answers are the same"),
        ("no-rejected", "missing rejected answer"),
        ("exact-copy", "pii-in-rejected"),
    }
    records = pd.concat([read_split(dataset, "train"), read_split(dataset, "eval")])
    assert list(records.columns) == ["record_id", "source", "messages", "rejected", "metadata"]
    by_id = records.set_index("record_id")
    assert by_id.at["pii-in-rejected", "rejected"] == (
        "Reinstall Notewell. If it still fails mail [EMAIL] or call [PHONE]."
    )
    assert by_id.at["pii-in-rejected", "messages"][-1]["content"] == CHOSEN
    assert by_id.at["chat-form", "metadata"] == {"topic": "sharing"}
    assert by_id.filter(like="pair-", axis=0)["metadata"].tolist() == [{}] * 4
    # Nothing of the rejected PII anywhere in what prepare wrote (the EDA report too).
    for path in (p for p in folder.rglob("*") if p.is_file()):
        assert b"jo@example.com" not in path.read_bytes() and b"7946" not in path.read_bytes()


def test_pairs_after_a_shard_of_plain_records_are_kept(tmp_path: Path, prefect_harness: None):
    # A corpus that grows by appending exported pairs: the first shards hold no `rejected`
    # answer at all (its column was null-typed there, and the pairs' shard could not join the
    # split file: save_splits failed).
    plain = [
        {
            "id": f"p{i}",
            "prompt": f"How do I rename folder {i} to {i * 7}?",
            "response": f"Pick {i}.",
        }
        for i in range(30)
    ]
    pairs = [
        {
            "id": f"q{i}",
            "prompt": f"Which plan gives me {i * 5} notebooks?",
            "chosen": f"The plan with {i * 5} notebooks is Pro {i}.",
            "rejected": "No idea.",
        }
        for i in range(10)
    ]
    for name, rows in (("a.jsonl", plain), ("b.jsonl", pairs)):
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = PrepareConfig.from_profile(
        "tiny",
        sources=[str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl")],
        output=str(tmp_path / "out"),
        shard_records=10,
        eda=False,
    )
    dataset = prepare(config)
    kept = pd.concat([read_split(dataset, "train"), read_split(dataset, "eval")])
    assert dataset.counts["accepted"] == len(kept) == 40
    by_id = dict(zip(kept["record_id"], kept["rejected"], strict=True))
    assert {i for i, r in by_id.items() if r == "No idea."} == {f"q{i}" for i in range(10)}
    assert all(by_id[f"p{i}"] is None for i in range(30))
