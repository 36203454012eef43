"""The prepare flow on the bundled sample and on s3:// (moto's S3 server on loopback), with
real Great Expectations and a real Prefect server (the test harness)."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from flows.prepare import prepare
from llmops.data.errors import DataContractError, SourceUnreadableError
from llmops.datasets import read_split
from llmops.flow_configs import PrepareConfig
from llmops.outputs import DatasetRef

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample"


@pytest.fixture
def sample_dataset(tmp_path: Path, prefect_harness: None) -> DatasetRef:
    return prepare(PrepareConfig.from_profile("tiny", output=str(tmp_path / "datasets")))


def rejected_rows(dataset: DatasetRef) -> list[dict]:
    lines = (Path(dataset.uri) / "rejected.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_every_record_is_accounted_for(sample_dataset: DatasetRef):
    counts = sample_dataset.counts
    rejected = rejected_rows(sample_dataset)
    train = read_split(sample_dataset, "train")
    eval_ = read_split(sample_dataset, "eval")
    assert counts["total"] == 367  # every line/item/row in data/sample (see PLANTED.md)
    assert counts["total"] == (
        counts["accepted"]
        + counts["quarantined"]
        + counts["exact_duplicates"]
        + counts["near_duplicates"]
        + counts["contaminated"]
    )
    assert counts["accepted"] == len(train) + len(eval_)
    assert len(rejected) == counts["total"] - counts["accepted"]
    assert all(r["source"] and r["reason"] for r in rejected)
    assert all("duplicate_of" in r for r in rejected if r["reason"].endswith("duplicate"))
    assert list(train.columns) == ["record_id", "source", "messages"]
    assert not set(train["record_id"]) & set(eval_["record_id"])


def test_each_planted_problem_is_caught(sample_dataset: DatasetRef):
    rejected = {row["record_id"]: row for row in rejected_rows(sample_dataset)}
    quarantined = {k for k, r in rejected.items() if r["reason"] == "quarantined"}
    assert {
        "support_tickets.jsonl:41",  # invalid JSON
        "support_tickets.jsonl:197",  # undecodable bytes
        "bad-missing-response",
        "bad-null-response",
        "bad-empty-prompt",
        "bad-too-long",
        "bad-number-response",
        "bad-list-response",
        "bad-number-prompt",
        "bad-empty-prompt-2",
        "bad-missing-prompt",
        "bad-null-prompt",
        "bad-dict-response",
        "bad-missing-response-2",
        "bad-whitespace-prompt",
        "bad-role-order",
        "bad-ends-with-user",
        "bad-two-user-turns",
        "bad-unknown-role",
        "bad-too-long-chat",
    } == quarantined
    exact = {"dup-3", "dup-17", "dup-42", "dup-88", "dup-120", "near-140"}
    assert {rejected[i]["reason"] for i in exact} == {"exact_duplicate"}
    assert {rejected[f"near-{i}"]["reason"] for i in (5, 23, 61, 77)} == {"near_duplicate"}
    assert rejected["dup-42"]["duplicate_of"] == "chat-mobile-app-2"  # across formats
    assert rejected["near-77"]["duplicate_of"] == "chat-permissions-3"


def test_pii_is_replaced_by_placeholders(sample_dataset: DatasetRef):
    records = pd.concat(
        [read_split(sample_dataset, split) for split in ("train", "eval")], ignore_index=True
    )
    text = " ".join(m["content"] for ms in records["messages"] for m in ms)
    planted = (  # one per type and place, see PLANTED.md
        "jane.doe@example.com",
        "tom.becker@example.org",  # in a response
        "555-0132",
        "7946 0958",
        "4111 1111 1111 1111",
        "5555-5555-5555-4444",
        "203.0.113.42",
        "198.51.100.7",  # in an assistant turn
        "DE89 3704 0044 0532 0130 00",
        "GB82WEST12345698765432",
    )
    for secret in planted:
        assert secret not in text
    assert "1234 5678 9012 3456" in text  # Luhn-invalid: not a card
    assert sample_dataset.counts["pii_email"] == 2


def test_same_input_same_dataset_id(sample_dataset: DatasetRef, tmp_path: Path):
    again = prepare(PrepareConfig.from_profile("tiny", output=str(tmp_path / "datasets")))
    assert again == sample_dataset
    other_split = prepare(
        PrepareConfig.from_profile("tiny", output=str(tmp_path / "datasets"), seed=99)
    )
    assert other_split.dataset_id != sample_dataset.dataset_id


def test_contract_tolerance_exceeded_names_the_reasons(tmp_path: Path, prefect_harness: None):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(json.dumps({"id": str(i), "prompt": "q"}) for i in range(5)) + "\n")
    with pytest.raises(DataContractError, match="5/5 records .* missing response"):
        prepare(PrepareConfig.from_profile("tiny", sources=[str(bad)], output=str(tmp_path)))


def test_unreadable_source_is_one_clear_error(tmp_path: Path, prefect_harness: None):
    with pytest.raises(SourceUnreadableError, match="source not found"):
        prepare(PrepareConfig.from_profile("tiny", sources=[str(tmp_path / "missing")]))


def test_s3_source_and_output(s3_endpoint: str, prefect_harness: None, tmp_path: Path):
    import s3fs

    options = {"client_kwargs": {"endpoint_url": s3_endpoint}}
    fs = s3fs.S3FileSystem(**options)
    fs.mkdir("landing")
    for path in SAMPLE.glob("*.json*"):
        fs.put(str(path), f"landing/raw/{path.name}")
    local = tmp_path / "local"
    shutil.copytree(SAMPLE, local, ignore=shutil.ignore_patterns("*.csv", "*.py", "*.md"))

    remote = prepare(
        PrepareConfig.from_profile(
            "tiny",
            sources=["s3://landing/raw/"],
            output="s3://landing/datasets",
            storage_options=options,
        )
    )
    from_disk = prepare(
        PrepareConfig.from_profile("tiny", sources=[str(local)], output=str(tmp_path / "out"))
    )
    assert remote.counts == from_disk.counts
    assert remote.dataset_id == from_disk.dataset_id
    assert remote.uri == f"s3://landing/datasets/{remote.dataset_id}"
    assert fs.exists(f"landing/datasets/{remote.dataset_id}/manifest.json")
    assert read_split(remote, "train").equals(read_split(from_disk, "train"))
