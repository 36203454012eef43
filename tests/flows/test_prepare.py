"""The prepare flow on the bundled sample and on s3:// (moto's S3 server on loopback), with
real Great Expectations and a real Prefect server (the test harness)."""

import io
import json
import os
import random
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

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
        + counts["conflicting_answers_dropped"]
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
    duplicates = {
        r["record_id"]: (r["reason"], r["duplicate_of"])
        for r in rejected.values()
        if r["reason"] != "quarantined"
    }
    assert duplicates == {
        "dup-120": ("exact_duplicate", "disable-public-link-0"),  # across files
        "near-5": ("near_duplicate", "upgrade-plan-3"),
        "near-23": ("near_duplicate", "cancel-subscription-3"),
        "near-61": ("near_duplicate", "invoice-3"),
    }
    # The other planted copies (dup-3, dup-17, dup-42, dup-88, near-140, near-77) lack or add the
    # system message of their original: other examples under the whole-example key (PLANTED.md).
    # The split hashes the prompt, so each falls on its original's side (near-77, with a typo in
    # the prompt, by chance) and none is contaminated.
    counts = sample_dataset.counts
    train, eval_ = read_split(sample_dataset, "train"), read_split(sample_dataset, "eval")
    assert (counts["accepted"], len(train), len(eval_)) == (343, 286, 57)
    assert (counts["contaminated"], counts["conflicting_answers"]) == (0, 0)


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
    assert remote.eda_report == f"{remote.uri}/eda/index.html"
    assert fs.exists(f"landing/datasets/{remote.dataset_id}/eda/lengths.png")
    assert read_split(remote, "train").equals(read_split(from_disk, "train"))


CONTRACT = Path(__file__).resolve().parents[2] / "data_contracts" / "support_conversations.yaml"
# Two answers to one question and 1-3 word variants of whole examples (see the unit tests).
SHARED_PROMPTS = Path(__file__).resolve().parents[1] / "llmops/data/fixtures/shared_prompts.jsonl"


def filler(count: int) -> list[dict]:
    """Distinct valid records (random words, so no two are near duplicates)."""
    rng = random.Random(count)
    words = [f"{a}{b}" for a in ("sync", "tag", "note", "plan", "share") for b in range(40)]
    return [
        {
            "id": f"ok-{i}",
            "prompt": " ".join(rng.choices(words, k=12)) + "?",
            "response": " ".join(rng.choices(words, k=30)) + ".",
        }
        for i in range(count)
    ]


def write_jsonl(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def contract_with(tmp_path: Path, deduplication: dict[str, str]) -> str:
    """The bundled contract with another deduplication section."""
    contract = yaml.safe_load(CONTRACT.read_text())
    path = tmp_path / "contract.yaml"
    path.write_text(yaml.safe_dump({**contract, "deduplication": deduplication}))
    return str(path)


def manifest_of(dataset: DatasetRef) -> dict:
    return json.loads((Path(dataset.uri) / "manifest.json").read_text())


def test_the_prompt_key_gives_the_old_outcomes_on_the_sample(tmp_path: Path, prefect_harness: None):
    contract = contract_with(tmp_path, {"key": "prompt", "conflicting_answers": "drop"})
    dataset = prepare(
        PrepareConfig.from_profile("tiny", contract=contract, output=str(tmp_path / "out"))
    )
    counts = dataset.counts
    assert (counts["exact_duplicates"], counts["near_duplicates"]) == (6, 4)  # see PLANTED.md
    assert (counts["accepted"], counts["contaminated"], counts["conflicting_answers"]) == (
        337,
        0,
        0,
    )
    assert manifest_of(dataset)["deduplication"] == {
        "key": "prompt",
        "decontamination_key": "prompt",
        "conflicting_answers": "drop",
        "conflicts": [],
    }


@pytest.mark.parametrize("policy", ["keep", "drop"])
def test_two_answers_to_one_question_are_listed_and_kept_unless_the_contract_drops_them(
    tmp_path: Path, prefect_harness: None, policy: str
):
    write_jsonl(tmp_path / "filler.jsonl", filler(30))
    contract = contract_with(tmp_path, {"key": "example", "conflicting_answers": policy})
    sources = [str(tmp_path / "filler.jsonl"), str(SHARED_PROMPTS)]
    dataset = prepare(
        PrepareConfig.from_profile("tiny", sources=sources, contract=contract, output=str(tmp_path))
    )
    rejected = {r["record_id"]: r for r in rejected_rows(dataset)}
    reasons = {i: (r["reason"], r.get("duplicate_of")) for i, r in rejected.items()}
    duplicates = ("reset-phone-shouted", "export-1", "export-2", "export-3")
    assert {i: reasons[i] for i in duplicates} == {
        "reset-phone-shouted": ("exact_duplicate", "reset-phone"),
        "export-1": ("near_duplicate", "export"),
        "export-2": ("near_duplicate", "export"),
        "export-3": ("near_duplicate", "export"),
    }
    deduplication = manifest_of(dataset)["deduplication"]
    assert deduplication["conflicts"] == [
        {"record_id": i, "source": f"shared_prompts.jsonl:{n}", "conflicts_with": "reset-email"}
        for i, n in (("reset-phone", 2), ("reset-phone-system", 4))
    ]
    counts = dataset.counts
    assert counts["conflicting_answers"] == 2
    kept = set(read_split(dataset, "train")["record_id"]) | set(
        read_split(dataset, "eval")["record_id"]
    )
    if policy == "drop":
        assert rejected["reset-phone"]["reason"] == "conflicting_answer"
        assert rejected["reset-phone-system"]["conflicts_with"] == "reset-email"
        assert counts["conflicting_answers_dropped"] == 2
    else:
        # Both answers stay, on the same side of the split (it hashes the prompt).
        assert {"reset-email", "reset-phone", "reset-phone-system"} <= kept
        assert counts["conflicting_answers_dropped"] == 0
    assert counts["total"] == len(kept) + len(rejected) == 40


def test_broken_files_and_rows_are_quarantined_and_counted(tmp_path: Path, prefect_harness: None):
    landing = tmp_path / "landing"
    landing.mkdir()
    write_jsonl(landing / "good.jsonl", filler(50))
    (landing / "empty.jsonl").write_bytes(b"")
    (landing / "binary.jsonl").write_bytes(bytes(range(256)) * 1024)
    buffer = io.BytesIO()
    pd.DataFrame(filler(5)).to_parquet(buffer)
    (landing / "truncated.parquet").write_bytes(buffer.getvalue()[:-100])
    (landing / "ragged.csv").write_text("id,prompt,response\nc1,q?,a.\nc2,q?,a.,extra\nc3,q?\n")
    (landing / "array.json").write_text(
        json.dumps([{"id": "j1", "prompt": "q2?", "response": "a2."}, 2])
    )
    huge = {
        "id": "huge",
        "messages": [
            {"role": "system", "content": "x" * 50_000_000},  # one 50 MB line
            {"role": "user", "content": "q?"},
            {"role": "assistant", "content": "a."},
        ],
    }
    write_jsonl(landing / "huge.jsonl", [huge])

    dataset = prepare(
        PrepareConfig.from_profile("tiny", sources=[str(landing)], output=str(tmp_path / "out"))
    )
    quarantined = {r["source"]: r["detail"] for r in rejected_rows(dataset)}
    assert quarantined == {
        "empty.jsonl": "empty file (0 bytes)",
        "binary.jsonl": "binary file, not text",
        "truncated.parquet": quarantined["truncated.parquet"],
        "ragged.csv:row2": "ragged CSV row: 4 fields, the header has 3",
        "ragged.csv:row3": "ragged CSV row: 2 fields, the header has 3",
        "array.json:2": "not a JSON object",
        "huge.jsonl:1": "record too long (more than 12000 characters of text in all messages)",
    }
    assert quarantined["truncated.parquet"].startswith("unreadable Parquet: ")
    counts = dataset.counts
    assert (counts["total"], counts["accepted"], counts["quarantined"]) == (59, 52, 7)


@pytest.mark.parametrize("kind", ["fifo", "dangling link"])
def test_an_unreadable_file_in_a_folder_fails_in_one_line(
    tmp_path: Path, prefect_harness: None, kind: str
):
    write_jsonl(tmp_path / "good.jsonl", filler(10))
    if kind == "fifo":
        os.mkfifo(tmp_path / "stuck.jsonl")
    else:
        (tmp_path / "stuck.jsonl").symlink_to(tmp_path / "deleted.jsonl")
    with pytest.raises(SourceUnreadableError, match="cannot read .*stuck.jsonl: ") as raised:
        prepare(PrepareConfig.from_profile("tiny", sources=[str(tmp_path)], output=str(tmp_path)))
    assert "\n" not in str(raised.value)
