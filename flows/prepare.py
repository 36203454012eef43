"""Data preparation: ingest -> validate (contract) -> redact PII -> deduplicate -> split and
decontaminate -> save a versioned dataset.

    llmops prepare data/sample --output .llmops/datasets --profile cpu
"""

import json
from typing import Any, ClassVar, Literal

from prefect import flow
from pydantic import Field

from llmops.config import FlowConfig, repo_path
from llmops.data.contracts import load_contract
from llmops.data.dedup import MinHashSettings
from llmops.data.prepare import content_hash, count_outcomes
from llmops.home import project_home
from tasks.data import (
    list_source_files,
    load_existing_manifest,
    load_records,
    redact_pii,
    remove_duplicates,
    save_dataset,
    split_dataset,
    validate_records,
)

SAMPLE_DATA = "data/sample"
SAMPLE_CONTRACT = "data_contracts/support_conversations.yaml"


class PrepareConfig(FlowConfig):
    """What to read, which contract to hold it to, and how to clean and split it."""

    profile_dir: ClassVar[str] = "prepare"

    sources: list[str] = Field(
        default_factory=lambda: [SAMPLE_DATA],
        min_length=1,
        description="Files, folders, globs or s3:// URLs (JSONL, JSON, CSV, Parquet).",
    )
    output: str = Field(
        default_factory=lambda: str(project_home() / "datasets"),
        description="Where datasets are written: <output>/<dataset_id>/ (local or s3://).",
    )
    contract: str = Field(SAMPLE_CONTRACT, description="Data contract file (data_contracts/).")
    storage_options: dict[str, Any] = Field(
        default_factory=dict,
        description="fsspec options for remote sources, e.g. {client_kwargs: {endpoint_url: ...}}; "
        "credentials come from the environment (AWS_*), never from here.",
    )
    pii_mode: Literal["redact", "drop", "off"] = Field("redact", description="What to do with PII.")
    near_duplicate_threshold: float = Field(
        0.8, gt=0, le=1, description="MinHash Jaccard threshold."
    )
    num_perm: int = Field(128, ge=16, le=1024, description="MinHash permutations.")
    shingle_size: int = Field(3, ge=1, le=10, description="Shingle length.")
    shingle_unit: Literal["word", "char"] = Field(
        "word", description="Shingle over words or characters."
    )
    eval_fraction: float = Field(
        0.15, gt=0, lt=1, description="Share of records held out for evaluation."
    )
    seed: int = Field(13, description="Split seed (the split is stable for a given seed).")

    def minhash(self) -> MinHashSettings:
        return MinHashSettings(
            self.near_duplicate_threshold, self.num_perm, self.shingle_size, self.shingle_unit
        )

    def recipe(self) -> str:
        """The settings that shape the data (not where it is read from or written to)."""
        return json.dumps(
            self.model_dump(exclude={"sources", "output", "storage_options"}), sort_keys=True
        )


@flow(name="prepare", log_prints=True)
def prepare(config: PrepareConfig) -> dict[str, Any]:
    """Turn raw support data into a versioned, contract-checked, deduplicated train/eval dataset."""
    contract = load_contract(repo_path(config.contract))
    sources = [repo_path(source) for source in config.sources]
    files = list_source_files(sources, config.storage_options)
    records, ingest_rejected, data_hash = load_records(files, config.storage_options)
    dataset_id = content_hash([data_hash, contract.text, config.recipe()])
    existing = load_existing_manifest(config.output, dataset_id, config.storage_options)
    if existing:
        print(f"dataset {dataset_id} already prepared: {existing['path']}")
        return existing
    valid, quarantined = validate_records(records, contract, ingest_rejected)
    redacted, pii_dropped, pii_counts = redact_pii(valid, config.pii_mode)
    unique, duplicates = remove_duplicates(redacted, config.minhash())
    train, eval_, contaminated = split_dataset(
        unique, config.eval_fraction, config.seed, config.minhash()
    )
    rejected = quarantined + pii_dropped + duplicates + contaminated
    pii_records = int(redacted["pii"].sum()) if "pii" in redacted else 0
    manifest = {
        "dataset_id": dataset_id,
        "counts": count_outcomes(
            len(records) + len(ingest_rejected),
            len(train) + len(eval_),
            rejected,
            pii_counts,
            pii_records,
        ),
        "contract": {"name": contract.name, "path": config.contract},
        "config": json.loads(config.recipe()),
        "sources": files,
    }
    return save_dataset(
        config.output, dataset_id, train, eval_, rejected, manifest, config.storage_options
    )
