"""Data preparation: ingest -> validate (contract) -> redact PII -> deduplicate -> split and
decontaminate -> explore (an EDA report) -> save a versioned dataset, shard by shard.

    llmops prepare data/sample --output .llmops/datasets --profile cpu
    llmops prepare big/*.jsonl --dask-address local          # the same flow on a Dask cluster

One code path: the shard tasks run on threads in this process, or on Dask (`dask_address`),
with the same result (docs/data.md, "Sharded and distributed").
"""

import json
from dataclasses import asdict

from prefect import flow, unmapped

from llmops import store
from llmops.config import repo_path
from llmops.data.contracts import load_contract, parse_contract
from llmops.data.prepare import content_hash, count_outcomes
from llmops.data.shards import Shard, shard_totals
from llmops.flow_configs import PrepareConfig
from llmops.outputs import DatasetRef
from tasks.data import (
    bucket_band,
    check_contract,
    confirm_pairs,
    explore_dataset,
    find_conflicting_answers,
    find_contamination,
    find_exact_duplicates,
    index_shards,
    list_rejections,
    list_source_files,
    load_prepared_dataset,
    plan_shards,
    prepare_shard,
    resolve_near_duplicates,
    save_dataset,
    save_eda_report,
    save_splits,
    shard_task_runner,
    split_candidates,
)


@flow(name="prepare", log_prints=True)
def prepare(config: PrepareConfig) -> DatasetRef:
    """Turn raw support data into a versioned, contract-checked, deduplicated train/eval dataset."""
    # Great Expectations checks the contract in prepare_shards: a dataset already prepared
    # from it (a rerun) needs no GX at all.
    contract = parse_contract(repo_path(config.contract))
    sources = [repo_path(source) for source in config.sources]
    files = list_source_files(sources, config.storage_options)
    shards, data_hash = plan_shards(files, config.storage_options, config.shard_records)
    dataset_id = content_hash([data_hash, contract.text, config.recipe()])
    existing = load_prepared_dataset(config.output_url(), dataset_id)
    if existing:
        print(f"dataset {dataset_id} already prepared: {existing.uri}")
        return existing
    runner = shard_task_runner(config.dask_address, config.workers)
    return prepare_shards.with_options(task_runner=runner)(config, files, shards, dataset_id)


@flow(name="prepare-shards", log_prints=True)
def prepare_shards(
    config: PrepareConfig, files: list[str], shards: list[Shard], dataset_id: str
) -> DatasetRef:
    """Prepare the planned shards in parallel, deduplicate across them and save the dataset."""
    contract = load_contract(repo_path(config.contract))
    rules, settings = contract.deduplication, config.minhash()
    output = config.output_url()
    scratch = store.join(output, ".scratch", dataset_id)
    summaries = prepare_shard.map(
        shards, unmapped(contract), unmapped(config.shard_settings(scratch))
    ).result()
    check_contract(summaries, contract)
    band_columns = [f"band_{b}" for b in range(settings.num_bands)]
    index = index_shards(summaries, config.range_records)

    exact = find_exact_duplicates.submit(index)
    candidates = bucket_band.map(unmapped(index), band_columns, unmapped([exact]), unmapped(False))
    pairs = split_candidates(candidates, config.workers)
    confirmed = confirm_pairs.map(unmapped(index), pairs, unmapped("key"), unmapped(settings))
    near = resolve_near_duplicates.submit(confirmed)
    conflicts = find_conflicting_answers.submit(index, exact, near)
    deduplicated = [exact, near] + ([conflicts] if rules.conflicting_answers == "drop" else [])

    cross_columns = [f"d{column}" for column in band_columns]
    cross = bucket_band.map(unmapped(index), cross_columns, unmapped(deduplicated), unmapped(True))
    pairs = split_candidates(cross, config.workers)
    matches = confirm_pairs.map(unmapped(index), pairs, unmapped("dkey"), unmapped(settings))
    contaminated = find_contamination.submit(matches)

    rejected, conflict_list = list_rejections(
        summaries, deduplicated, contaminated, conflicts, rules
    )
    train, eval_ = save_splits(output, dataset_id, summaries, [*deduplicated, contaminated])
    total, pii, pii_records = shard_totals(summaries)
    counts = count_outcomes(total, train + eval_, rejected, pii, pii_records, len(conflict_list))
    eda_report = (
        save_eda_report(
            output,
            dataset_id,
            explore_dataset(
                output, dataset_id, rejected, summaries, contract.slices, counts, config.eda_records
            ),
        )
        if config.eda
        else None
    )
    manifest = {
        "dataset_id": dataset_id,
        "counts": counts,
        "contract": {"name": contract.name, "path": config.contract},
        "slices": list(contract.slices),
        "deduplication": {**asdict(rules), "conflicts": conflict_list},
        "config": json.loads(config.recipe()),
        "sources": files,
        "eda_report": eda_report,
    }
    return save_dataset(output, dataset_id, rejected, manifest, scratch)
