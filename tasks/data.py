"""Prefect tasks of data preparation: each works on a batch or a shard (never one task a record)."""

import functools
import json
import operator
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
from prefect import task
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_table_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from llmops import store
from llmops.data import eda, ingest, shards
from llmops.data.contracts import Contract, Deduplication, failing_rows
from llmops.data.errors import DataContractError
from llmops.data.prepare import content_hash, dumps_jsonl, redact_records
from llmops.data.shards import Outcomes, Shard, ShardIndex, ShardSettings, ShardSummary
from llmops.datasets import read_dataset
from llmops.outputs import DatasetRef
from tasks.policy import STORE_RETRIES

SPLITS = ("train", "eval")


@task(**STORE_RETRIES)
def list_source_files(sources: list[str], storage_options: dict[str, Any]) -> list[str]:
    """Every data file behind the sources (files, folders, globs, s3:// URLs), sorted."""
    return ingest.expand_sources(sources, storage_options)


@task(**STORE_RETRIES)
def load_records(
    files: list[str], storage_options: dict[str, Any]
) -> tuple[pd.DataFrame, list[dict], str]:
    """Read and flatten all files at once (a batch that fits in memory; `prepare` reads shards);
    returns (records, rejected at ingest, hash of the raw bytes)."""
    items, rejected = [], []
    for url in files:
        file_items, file_rejected = ingest.read_file(url, storage_options)
        items += file_items
        rejected += file_rejected
    raw = [json.dumps(i["raw"], sort_keys=True, default=str) for i in items] + [
        json.dumps(r) for r in rejected
    ]
    return ingest.flatten(items), rejected, content_hash(raw)


@task
def validate_records(
    records: pd.DataFrame, contract: Contract, ingest_rejected: list[dict]
) -> tuple[pd.DataFrame, list[dict]]:
    """Run the contract (GX) over a batch; quarantine failing rows with the reason; fail the
    run when the failed fraction exceeds the contract's tolerance."""
    failures, summary = failing_rows(records, contract) if len(records) else ({}, {})
    quarantined = ingest.quarantined_rows(records, failures)
    quarantined += ingest.quarantined_at_ingest(ingest_rejected)
    total = len(records) + len(ingest_rejected)
    _hold_to_contract(contract, Counter(q["detail"] for q in quarantined), total, summary)
    return records[~records["row"].isin(failures)], quarantined


@task
def redact_pii(records: pd.DataFrame, mode: str) -> tuple[pd.DataFrame, list[dict], dict[str, int]]:
    """Redact (or drop, or keep) PII in every message of a batch; returns counts by PII type."""
    kept, dropped, counts = redact_records(records, mode)
    return kept, dropped, dict(counts)


@task(**STORE_RETRIES)
def load_dataset(uri: str) -> DatasetRef:
    """The prepared dataset at `uri` (a folder, local or in the store)."""
    return read_dataset(uri)


@task
def load_prepared_dataset(output: str, dataset_id: str) -> DatasetRef | None:
    """The identical dataset prepared before under `output`, if any (re-runs are no-ops)."""
    folder = store.join(output, dataset_id)
    manifest_url = store.join(folder, "manifest.json")
    return read_dataset(folder) if store.exists(manifest_url) else None


@task(**STORE_RETRIES)
def plan_shards(
    files: list[str], storage_options: dict[str, Any], shard_records: int
) -> tuple[list[Shard], str]:
    """Cut the files into shards of at most `shard_records` lines; returns them and the hash of
    the files' names and bytes."""
    return shards.plan_shards(files, storage_options, shard_records)


def shard_task_runner(address: str | None, workers: int) -> TaskRunner:
    """`workers` threads in this process by default; Dask at `address`, or a LocalCluster of
    `workers` processes for "local"."""
    if address is None:
        return ThreadPoolTaskRunner(max_workers=workers)
    from prefect_dask import DaskTaskRunner

    if address == "local":
        # One thread a worker: the shard work is pure Python, so processes are what scale.
        return DaskTaskRunner(cluster_kwargs={"n_workers": workers, "threads_per_worker": 1})
    return DaskTaskRunner(address=address)


# Shard tasks pass scratch URIs and small summaries; hashing their inputs for a cache key
# would only cost time, and a re-run of the same data is caught by the dataset id instead.
@task(cache_policy=NO_CACHE, **STORE_RETRIES)
def prepare_shard(shard: Shard, contract: Contract, settings: ShardSettings) -> ShardSummary:
    """Read, validate (GX), redact and sign one shard; its records go to the scratch folder."""
    return shards.prepare_shard(shard, contract, settings)


@task(cache_policy=NO_CACHE)
def check_contract(summaries: list[ShardSummary], contract: Contract) -> int:
    """Sum the shards' contract results; fail the run when the failed fraction exceeds the
    contract's tolerance; returns the number quarantined."""
    reasons: Counter = Counter()
    for kind in ("contract_failures", "ingest_failures"):  # the whole-batch order of reasons
        for summary in summaries:
            reasons.update(getattr(summary, kind))
    expectations: Counter = Counter()
    for summary in summaries:
        expectations.update(summary.expectations)
    total = sum(s.items + s.ingest_rejected for s in summaries)
    _hold_to_contract(contract, reasons, total, dict(expectations))
    return sum(reasons.values())


def _hold_to_contract(
    contract: Contract, reasons: Counter, total: int, expectations: dict[str, int]
) -> None:
    """Publish the contract result; fail above the contract's tolerance, naming the reasons."""
    quarantined = sum(reasons.values())
    lines = "\n".join(f"| {reason} | {n} |" for reason, n in reasons.most_common())
    create_markdown_artifact(
        f"# Contract `{contract.name}`\n\n{total - quarantined} of {total} records pass; "
        f"{quarantined} quarantined (tolerance {contract.max_failed_fraction:.0%}).\n\n"
        f"| reason | records |\n|---|---|\n{lines}\n\nPer expectation: {expectations}",
        key="data-contract-validation",
        description="Data contract validation",
    )
    if total and quarantined / total > contract.max_failed_fraction:
        top = "; ".join(f"{reason} ({n})" for reason, n in reasons.most_common(3))
        raise DataContractError(
            f"{quarantined}/{total} records ({quarantined / total:.1%}) fail contract "
            f"{contract.name}, above its tolerance {contract.max_failed_fraction:.0%}: {top}"
        )


@task(cache_policy=NO_CACHE)
def index_shards(summaries: list[ShardSummary], range_records: int) -> ShardIndex:
    """Where each shard's records are, and the hash ranges the grouping steps take them in."""
    return ShardIndex.of(summaries, range_records)


@task(cache_policy=NO_CACHE)
def find_exact_duplicates(index: ShardIndex) -> Outcomes:
    """Records whose normalized key repeats an earlier record's, across all shards."""
    return shards.exact_duplicates(index)


@task(cache_policy=NO_CACHE)
def bucket_band(
    index: ShardIndex, column: str, excluded: list[Outcomes], cross: bool
) -> np.ndarray:
    """Candidate pairs of one band (column `band_k` or `dband_k`), leaving out the records
    already rejected; train x eval pairs when `cross`."""
    gone = np.concatenate([o.position for o in excluded])
    return shards.band_candidates(index, column, gone, cross)


@task(cache_policy=NO_CACHE)
def split_candidates(candidates: list[np.ndarray], workers: int) -> list[np.ndarray]:
    """Every band's candidate pairs, each once, in 4 x `workers` runs: a confirm task each,
    enough to keep the workers busy, and as many at 10M records as at 10k (a task costs tens
    of ms of Prefect's time whatever it does)."""
    return shards.split_pairs(candidates, 4 * workers)


# A run of candidate pairs confirmed exactly; the library function is the whole task.
confirm_pairs = task(shards.confirm_candidates, name="confirm_pairs", cache_policy=NO_CACHE)


@task(cache_policy=NO_CACHE)
def resolve_near_duplicates(confirmed: list[np.ndarray]) -> Outcomes:
    """Near duplicates in the global order: each names the first kept record it matches."""
    return shards.near_duplicates(np.concatenate([c.reshape(-1, 2) for c in confirmed]))


@task(cache_policy=NO_CACHE)
def find_conflicting_answers(index: ShardIndex, exact: Outcomes, near: Outcomes) -> Outcomes:
    """Other answers to an already answered prompt: among the records left after exact and
    near duplicates, plus the exact-key repeats with another answer."""
    left = shards.conflicting_answers(index, np.concatenate([exact.position, near.position]))
    return left + exact.where(exact.reason == shards.CONFLICT)


@task(cache_policy=NO_CACHE)
def find_contamination(confirmed: list[np.ndarray]) -> Outcomes:
    """Train records whose decontamination key near-duplicates an eval record's."""
    return shards.cross_matches(np.concatenate([c.reshape(-1, 2) for c in confirmed]))


@task(cache_policy=NO_CACHE)
def list_rejections(
    summaries: list[ShardSummary],
    deduplicated: list[Outcomes],
    contaminated: Outcomes,
    conflicts: Outcomes,
    rules: Deduplication,
) -> tuple[list[dict], list[dict]]:
    """Every rejected row in the whole-batch order (quarantined, PII drops, duplicates,
    contaminated) and the conflicting answers; publishes the deduplication summary."""
    duplicates = shards.rejection_rows(summaries, functools.reduce(operator.add, deduplicated))
    listed = shards.conflict_rows(summaries, conflicts)
    seen = sum(s.kept for s in summaries)
    reasons = Counter(r["reason"] for r in duplicates)
    create_markdown_artifact(
        f"# Deduplication on the `{rules.key}` key\n\n{seen - len(duplicates)} of {seen} "
        f"records kept: {reasons['exact_duplicate']} exact and {reasons['near_duplicate']} near "
        f"duplicates dropped; {len(listed)} conflicting answers (another answer to a prompt "
        f"already answered), {reasons['conflicting_answer']} of them dropped "
        f"(`conflicting_answers: {rules.conflicting_answers}`). Decontamination keys on the "
        f"`{rules.decontamination_key}`.",
        key="data-deduplication",
        description="Deduplication and conflicting answers",
    )
    if listed:
        create_table_artifact(
            listed[:200],
            key="dataset-conflicting-answers",
            description="Conflicting answers to review (first 200)",
        )
    rejected = shards.quarantined_rows(summaries) + duplicates
    return rejected + shards.rejection_rows(summaries, contaminated), listed


@task(**STORE_RETRIES)
def save_splits(
    output: str, dataset_id: str, summaries: list[ShardSummary], rejected: list[Outcomes]
) -> tuple[int, int]:
    """Stream the surviving records of every shard into <output>/<dataset_id>/{train,eval}
    .parquet; returns their sizes."""
    gone = functools.reduce(operator.add, rejected)
    train, eval_, _ = shards.write_splits(summaries, gone, store.join(output, dataset_id))
    return train, eval_


@task(cache_policy=NO_CACHE)
def explore_dataset(
    output: str,
    dataset_id: str,
    rejected: list[dict],
    summaries: list[ShardSummary],
    slices: tuple[str, ...],
    counts: dict[str, int],
    limit: int,
) -> dict[str, bytes]:
    """The EDA report's files (index.html, summary.html, PNG figures) by name, from the first
    `limit` records of each saved split, every rejection and the sources with PII."""
    folder = store.join(output, dataset_id)
    train, eval_ = (
        shards.read_saved_split(store.join(folder, f"{n}.parquet"), limit) for n in SPLITS
    )
    pii_found = [source for s in summaries for source in s.pii_sources]
    return eda.render_report(eda.explore(train, eval_, rejected, pii_found, slices), counts)


@task(**STORE_RETRIES)
def save_eda_report(output: str, dataset_id: str, files: dict[str, bytes]) -> str:
    """Write the EDA report under <output>/<dataset_id>/eda/ (before the manifest, which names
    it); returns its index page's path within the dataset folder."""
    for name, data in files.items():
        store.write_bytes(store.join(output, dataset_id, eda.REPORT_FOLDER, name), data)
    return f"{eda.REPORT_FOLDER}/index.html"


@task(**STORE_RETRIES)
def save_dataset(
    output: str,
    dataset_id: str,
    rejected: list[dict],
    manifest: dict[str, Any],
    scratch: str,
) -> DatasetRef:
    """Write rejected.jsonl and, last, manifest.json beside the saved splits (a folder without
    a manifest is never read as a dataset); removes the shards' scratch folder."""
    folder = store.join(output, dataset_id)
    store.write_text(store.join(folder, "rejected.jsonl"), dumps_jsonl(rejected))
    store.write_json(store.join(folder, "manifest.json"), manifest)
    store.remove(scratch)
    dataset = read_dataset(folder)
    _publish(dataset, rejected)
    return dataset


def _publish(dataset: DatasetRef, rejected: list[dict]) -> None:
    exploration = ""
    if dataset.eda_report:
        link = store.browser_url(dataset.eda_report)
        exploration = f"\n\nExploration (EDA report): [{dataset.eda_report}]({link})"
        create_link_artifact(link, link_text="Dataset exploration (EDA)", key="dataset-eda")
    rows = "\n".join(f"| {k} | {v} |" for k, v in dataset.counts.items())
    create_markdown_artifact(
        f"# Dataset `{dataset.dataset_id}`\n\nWritten to `{dataset.uri}`.\n\n"
        f"| count | records |\n|---|---|\n{rows}\n\n"
        "total = accepted + quarantined + exact + near duplicates + contaminated "
        f"+ conflicting answers dropped.{exploration}",
        key="dataset-manifest",
        description="Prepared dataset counts",
    )
    if rejected:
        create_table_artifact(
            rejected[:200], key="dataset-rejected", description="Rejected records (first 200)"
        )
