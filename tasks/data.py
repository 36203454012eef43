"""Prefect tasks of data preparation: each works on the whole batch (never one task a record)."""

import json
from collections import Counter
from typing import Any

import pandas as pd
from prefect import task
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_table_artifact,
)

from llmops import store
from llmops.data import eda, ingest
from llmops.data.contracts import Contract, Deduplication, failing_rows
from llmops.data.dedup import DedupKey, MinHashSettings
from llmops.data.errors import DataContractError
from llmops.data.prepare import (
    as_records,
    content_hash,
    decontaminate,
    deduplicate,
    dumps_jsonl,
    record_columns,
    redact_records,
    split_records,
)
from llmops.datasets import encode_split, read_dataset
from llmops.outputs import DatasetRef
from tasks.policy import STORE_RETRIES


@task(**STORE_RETRIES)
def list_source_files(sources: list[str], storage_options: dict[str, Any]) -> list[str]:
    """Every data file behind the sources (files, folders, globs, s3:// URLs), sorted."""
    return ingest.expand_sources(sources, storage_options)


@task(**STORE_RETRIES)
def load_records(
    files: list[str], storage_options: dict[str, Any]
) -> tuple[pd.DataFrame, list[dict], str]:
    """Read and flatten all files; returns (records, rejected at ingest, hash of the raw bytes)."""
    items, rejected = [], []
    for url in files:
        file_items, file_rejected = ingest.read_file(url, storage_options)
        items += file_items
        rejected += file_rejected
    raw = [json.dumps(i["raw"], sort_keys=True, default=str) for i in items] + [
        json.dumps(r) for r in rejected
    ]
    return ingest.flatten(items), rejected, content_hash(raw)


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


@task
def validate_records(
    records: pd.DataFrame, contract: Contract, ingest_rejected: list[dict]
) -> tuple[pd.DataFrame, list[dict]]:
    """Run the contract (GX) over all records; quarantine failing rows with the reason; fail the
    run when the failed fraction exceeds the contract's tolerance."""
    failures, summary = failing_rows(records, contract) if len(records) else ({}, {})
    quarantined = [
        {
            "record_id": records.at[row, "record_id"],
            "source": records.at[row, "source"],
            "reason": "quarantined",
            "detail": reason,
        }
        for row, reason in sorted(failures.items())
    ] + [{**r, "reason": "quarantined", "detail": r["reason"]} for r in ingest_rejected]
    total = len(records) + len(ingest_rejected)
    reasons = Counter(q["detail"] for q in quarantined)
    lines = "\n".join(f"| {reason} | {n} |" for reason, n in reasons.most_common())
    create_markdown_artifact(
        f"# Contract `{contract.name}`\n\n{total - len(quarantined)} of {total} records pass; "
        f"{len(quarantined)} quarantined (tolerance {contract.max_failed_fraction:.0%}).\n\n"
        f"| reason | records |\n|---|---|\n{lines}\n\nPer expectation: {summary}",
        key="data-contract-validation",
        description="Data contract validation",
    )
    if total and len(quarantined) / total > contract.max_failed_fraction:
        top = "; ".join(f"{reason} ({n})" for reason, n in reasons.most_common(3))
        raise DataContractError(
            f"{len(quarantined)}/{total} records ({len(quarantined) / total:.1%}) fail contract "
            f"{contract.name}, above its tolerance {contract.max_failed_fraction:.0%}: {top}"
        )
    accepted = records[~records["row"].isin(failures)]
    return accepted, quarantined


@task
def redact_pii(records: pd.DataFrame, mode: str) -> tuple[pd.DataFrame, list[dict], dict[str, int]]:
    """Redact (or drop, or keep) PII in every message; returns counts by PII type."""
    kept, dropped, counts = redact_records(records, mode)
    return kept, dropped, dict(counts)


@task
def remove_duplicates(
    records: pd.DataFrame, rules: Deduplication, settings: MinHashSettings
) -> tuple[pd.DataFrame, list[dict], list[dict]]:
    """Drop exact and MinHash near duplicates of the contract's key; list (or drop, as the
    contract says) conflicting answers; returns (kept, rejected, conflicting answers)."""
    kept, rejected, conflicts = deduplicate(records, rules, settings)
    reasons = Counter(r["reason"] for r in rejected)
    create_markdown_artifact(
        f"# Deduplication on the `{rules.key}` key\n\n{len(kept)} of {len(records)} records "
        f"kept: {reasons['exact_duplicate']} exact and {reasons['near_duplicate']} near "
        f"duplicates dropped; {len(conflicts)} conflicting answers (another answer to a prompt "
        f"already answered), {reasons['conflicting_answer']} of them dropped "
        f"(`conflicting_answers: {rules.conflicting_answers}`). Decontamination keys on the "
        f"`{rules.decontamination_key}`.",
        key="data-deduplication",
        description="Deduplication and conflicting answers",
    )
    if conflicts:
        create_table_artifact(
            conflicts[:200],
            key="dataset-conflicting-answers",
            description="Conflicting answers to review (first 200)",
        )
    return kept, rejected, conflicts


@task
def split_dataset(
    records: pd.DataFrame, eval_fraction: float, seed: int, key: DedupKey, settings: MinHashSettings
) -> tuple[pd.DataFrame, pd.DataFrame, list[dict]]:
    """Seeded train/eval split, then drop train records whose `key` near-duplicates an eval
    record's."""
    train, eval_ = split_records(records, eval_fraction, seed)
    train, contaminated = decontaminate(train, eval_, key, settings)
    return train, eval_, contaminated


@task
def explore_dataset(
    train: pd.DataFrame,
    eval_: pd.DataFrame,
    rejected: list[dict],
    screened: pd.DataFrame,
    pii_dropped: list[dict],
    slices: tuple[str, ...],
    counts: dict[str, int],
) -> dict[str, bytes]:
    """The EDA report's files (index.html, summary.html, PNG figures) by name, from the splits,
    every rejection and the records the PII step screened."""
    pii_found = eda.pii_sources(screened, pii_dropped)
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
    train: pd.DataFrame,
    eval_: pd.DataFrame,
    rejected: list[dict],
    manifest: dict[str, Any],
) -> DatasetRef:
    """Write train/eval Parquet, rejected.jsonl and, last, manifest.json under
    <output>/<dataset_id>/ (a folder without a manifest is never read as a dataset)."""
    folder = store.join(output, dataset_id)
    columns = record_columns(pd.concat([train, eval_]))  # both splits get the same columns
    for name, frame in (("train", train), ("eval", eval_)):
        data = encode_split(as_records(frame, columns))
        store.write_bytes(store.join(folder, f"{name}.parquet"), data)
    store.write_text(store.join(folder, "rejected.jsonl"), dumps_jsonl(rejected))
    store.write_json(store.join(folder, "manifest.json"), manifest)
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
