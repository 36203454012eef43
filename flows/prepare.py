"""Data preparation: ingest -> validate (contract) -> redact PII -> deduplicate -> split and
decontaminate -> explore (an EDA report) -> save a versioned dataset.

    llmops prepare data/sample --output .llmops/datasets --profile cpu
"""

import json
from dataclasses import asdict

from prefect import flow

from llmops.config import repo_path
from llmops.data.contracts import load_contract
from llmops.data.prepare import content_hash, count_outcomes
from llmops.flow_configs import PrepareConfig
from llmops.outputs import DatasetRef
from tasks.data import (
    explore_dataset,
    list_source_files,
    load_prepared_dataset,
    load_records,
    redact_pii,
    remove_duplicates,
    save_dataset,
    save_eda_report,
    split_dataset,
    validate_records,
)


@flow(name="prepare", log_prints=True)
def prepare(config: PrepareConfig) -> DatasetRef:
    """Turn raw support data into a versioned, contract-checked, deduplicated train/eval dataset."""
    contract = load_contract(repo_path(config.contract))
    sources = [repo_path(source) for source in config.sources]
    files = list_source_files(sources, config.storage_options)
    records, ingest_rejected, data_hash = load_records(files, config.storage_options)
    dataset_id = content_hash([data_hash, contract.text, config.recipe()])
    existing = load_prepared_dataset(config.output_url(), dataset_id)
    if existing:
        print(f"dataset {dataset_id} already prepared: {existing.uri}")
        return existing
    valid, quarantined = validate_records(records, contract, ingest_rejected)
    redacted, pii_dropped, pii_counts = redact_pii(valid, config.pii_mode)
    rules = contract.deduplication
    unique, duplicates, conflicts = remove_duplicates(redacted, rules, config.minhash())
    train, eval_, contaminated = split_dataset(
        unique, config.eval_fraction, config.seed, rules.decontamination_key, config.minhash()
    )
    rejected = quarantined + pii_dropped + duplicates + contaminated
    pii_records = int(redacted["pii"].sum()) if "pii" in redacted else 0
    counts = count_outcomes(
        len(records) + len(ingest_rejected),
        len(train) + len(eval_),
        rejected,
        pii_counts,
        pii_records,
        len(conflicts),
    )
    eda_report = (
        save_eda_report(
            config.output_url(),
            dataset_id,
            explore_dataset(train, eval_, rejected, redacted, pii_dropped, contract.slices, counts),
        )
        if config.eda
        else None
    )
    manifest = {
        "dataset_id": dataset_id,
        "counts": counts,
        "contract": {"name": contract.name, "path": config.contract},
        "slices": list(contract.slices),
        "deduplication": {**asdict(rules), "conflicts": conflicts},
        "config": json.loads(config.recipe()),
        "sources": files,
        "eda_report": eda_report,
    }
    return save_dataset(config.output_url(), dataset_id, train, eval_, rejected, manifest)
