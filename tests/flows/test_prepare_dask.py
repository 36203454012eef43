"""Sharded prepare: on a LocalCluster with 2 Dask workers it gives what the single-process run
gives, and both give what the whole-batch functions (the pre-shard pipeline) give, on planted
data cut into several shards: exact and near duplicates across shards and files, a near-dup
cluster of 3, conflicting answers, contract failures and PII."""

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml

from flows.prepare import prepare
from llmops.data import ingest
from llmops.data.contracts import failing_rows, load_contract
from llmops.data.prepare import decontaminate, deduplicate, redact_records, split_records
from llmops.datasets import read_split
from llmops.flow_configs import PrepareConfig
from llmops.outputs import DatasetRef

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = ROOT / "data_contracts" / "support_conversations.yaml"
SHARED_PROMPTS = ROOT / "tests/llmops/data/fixtures/shared_prompts.jsonl"
ANSWER = (
    "Open Settings, choose Sync and turn on background sync for every notebook you keep on "
    "this device; changes then upload within a minute of each edit, even offline."
)


def planted(tmp_path: Path) -> list[str]:
    """Three files, 51 records: near-dup and exact copies in other files than their originals."""
    first = [
        {
            "id": f"ok-{i}",
            "prompt": f"Question {i} about notebook {i * 7} and tag {i}?",
            "response": f"Answer {i}: open notebook {i * 7}, then tag {i} is under Tags.",
        }
        for i in range(20)
    ]
    first += [
        {"id": "sync", "prompt": "How do I keep my notes synced on my tablet?", "response": ANSWER},
        {"id": "pii", "prompt": "Mail me at jane.doe@example.com please", "response": "Done."},
        {"id": "bad-no-response", "prompt": "Anyone there?"},
    ]
    second = [
        {
            "id": "sync-copy",
            "prompt": "HOW do I keep my notes synced on my tablet",
            "response": ANSWER,
        },
        {
            "id": "sync-near-1",
            "prompt": "How do I keep my notes synced on my tablet?",
            "response": ANSWER.replace("a minute", "one minute"),
        },
        {
            "id": "sync-near-2",
            "prompt": "How do I keep all my notes synced on my tablet?",
            "response": ANSWER,
        },
        {"id": "card", "prompt": "Charge 4111 1111 1111 1111 again", "response": "Refunded."},
        {"id": "bad-empty", "prompt": "  ", "response": "?"},
    ] + [
        {
            "id": f"more-{i}",
            "prompt": f"Can I rename folder {i} to {i * 3}?",
            "response": f"Yes: right-click folder {i} and pick Rename, then type {i * 3}.",
        }
        for i in range(13)
    ]
    for name, rows in (("a.jsonl", first), ("b.jsonl", second)):
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return [str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl"), str(SHARED_PROMPTS)]


def outcome(dataset: DatasetRef) -> dict:
    """Everything that must match: kept ids per split, each rejection, counts, conflicts."""
    rows = [
        json.loads(line) for line in (Path(dataset.uri) / "rejected.jsonl").read_text().splitlines()
    ]
    manifest = json.loads((Path(dataset.uri) / "manifest.json").read_text())
    return {
        "train": read_split(dataset, "train")["record_id"].tolist(),
        "eval": read_split(dataset, "eval")["record_id"].tolist(),
        "rejected": rows,
        "counts": dataset.counts,
        "conflicts": manifest["deduplication"]["conflicts"],
    }


def contract_dropping_conflicts(tmp_path: Path) -> str:
    contract = yaml.safe_load(CONTRACT.read_text())
    contract["deduplication"]["conflicting_answers"] = "drop"
    path = tmp_path / "contract.yaml"
    path.write_text(yaml.safe_dump(contract))
    return str(path)


@pytest.fixture
def dask_scheduler() -> Iterator[str]:
    """A LocalCluster with 2 workers, reached by its TCP address as a remote one would be. Its
    workers are threads of this process: worker processes would import Prefect and Great
    Expectations again, about a minute on 2 busy cores (`dask_address: local` does that)."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, protocol="tcp", dashboard_address=None
    ) as cluster:
        yield cluster.scheduler_address


def test_dask_and_single_process_give_the_same_dataset(
    tmp_path: Path, prefect_harness: None, dask_scheduler: str
):
    sources = planted(tmp_path)
    config = PrepareConfig.from_profile(
        "tiny",
        sources=sources,
        contract=contract_dropping_conflicts(tmp_path),
        shard_records=14,
        eda=False,
    )
    alone = prepare(config.model_copy(update={"output": str(tmp_path / "alone")}))
    on_dask = prepare(
        config.model_copy(update={"output": str(tmp_path / "dask"), "dask_address": dask_scheduler})
    )
    assert outcome(on_dask) == outcome(alone)
    assert on_dask.dataset_id == alone.dataset_id
    result = outcome(alone)
    reasons = {
        r["record_id"]: (
            r["reason"],
            r.get("duplicate_of") or r.get("conflicts_with") or r.get("detail"),
        )
        for r in result["rejected"]
    }
    assert reasons == {
        "bad-no-response": ("quarantined", "missing response (no final assistant turn with text)"),
        "bad-empty": ("quarantined", "empty prompt"),
        "sync-copy": ("exact_duplicate", "sync"),  # another file and shard
        "sync-near-1": ("near_duplicate", "sync"),  # a cluster of 3 across shards
        "sync-near-2": ("near_duplicate", "sync"),
        "reset-phone-shouted": ("exact_duplicate", "reset-phone"),
        "export-1": ("near_duplicate", "export"),
        "export-2": ("near_duplicate", "export"),
        "export-3": ("near_duplicate", "export"),
        "reset-phone": ("conflicting_answer", "reset-email"),
        "reset-phone-system": ("conflicting_answer", "reset-email"),
    }
    counts = result["counts"]
    assert (counts["total"], counts["accepted"], counts["pii_redacted"]) == (51, 40, 2)
    assert counts["total"] == counts["accepted"] + len(result["rejected"])


def whole_batch(sources: list[str], config: PrepareConfig) -> dict:
    """The pre-shard pipeline: every file in one frame, then the whole-batch functions."""
    contract = load_contract(config.contract)
    items, ingest_rejected = [], []
    for url in ingest.expand_sources(sources, {}):
        file_items, file_rejected = ingest.read_file(url, {})
        items += file_items
        ingest_rejected += file_rejected
    records = ingest.flatten(items)
    failures, _ = failing_rows(records, contract)
    quarantined = ingest.quarantined_rows(records, failures)
    quarantined += ingest.quarantined_at_ingest(ingest_rejected)
    redacted, dropped, _ = redact_records(records[~records["row"].isin(failures)], config.pii_mode)
    rules, settings = contract.deduplication, config.minhash()
    unique, duplicates, conflicts = deduplicate(redacted, rules, settings)
    train, eval_ = split_records(unique, config.eval_fraction, config.seed)
    train, contaminated = decontaminate(train, eval_, rules.decontamination_key, settings)
    return {
        "train": train["record_id"].tolist(),
        "eval": eval_["record_id"].tolist(),
        "rejected": quarantined + dropped + duplicates + contaminated,
        "conflicts": conflicts,
    }


def test_shards_give_the_whole_batch_result_on_the_sample(tmp_path: Path, prefect_harness: None):
    sources = [str(ROOT / "data" / "sample"), str(SHARED_PROMPTS)]
    config = PrepareConfig.from_profile(
        "tiny", sources=sources, output=str(tmp_path), shard_records=50, eda=False
    )
    sharded = outcome(prepare(config))
    expected = whole_batch(
        sources, config.model_copy(update={"contract": str(ROOT / config.contract)})
    )
    assert {k: sharded[k] for k in expected} == expected
    assert pd.Series([r["reason"] for r in sharded["rejected"]]).value_counts().to_dict() == {
        "quarantined": 20,
        "near_duplicate": 6,
        "exact_duplicate": 2,
    }
