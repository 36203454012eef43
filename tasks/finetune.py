"""Prefect tasks of the fine-tuning flow: load the training split, find the run in the store,
train (supervised or DPO, resuming from the store's last complete checkpoint) or reuse a
finished run, log the adapter to MLflow, publish a summary artifact."""

import hashlib
import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import mlflow
from prefect import task
from prefect.artifacts import create_markdown_artifact

from llmops import store
from llmops.home import home_path
from llmops.model.adapters import adapter_sha256
from llmops.model.cost import BudgetExceededError, ComputeCost, CostSettings, TrainingBudget
from llmops.model.loading import (
    BaseModel,
    base_sha256,
    load_tokenizer,
    pick_device,
    resolve_base,
)
from llmops.model.registry import RegisteredAdapter, resolve_alias
from llmops.model.run_store import TrainingRun, read_spent, restore_checkpoint, write_spent
from llmops.model.train_settings import Launch, LoraSettings, PreferenceSettings, TrainSettings
from llmops.outputs import DatasetRef, TrainedAdapter
from llmops.tracking import ensure_experiment, mlflow_client
from tasks.policy import HOST_LOCAL, STORE_RETRIES

# datasets, torch, transformers and peft are imported by the tasks that train: they take
# seconds, and a rerun that finds its finished run trains nothing.
if TYPE_CHECKING:
    from datasets import Dataset, IterableDataset

# Why a run was stopped by its budget, on its MLflow run (removed when the run is resumed).
STOPPED_REASON_TAG = "cost.stopped_reason"


@task(**STORE_RETRIES)
def load_training_records(
    dataset: DatasetRef, method: str = "sft", streaming: bool = False
) -> "Dataset | IterableDataset":
    """The dataset's train split as Arrow records: for SFT its `messages`, memory-mapped from the
    `datasets` cache in the project home (converted once per file) or streamed from the Parquet
    file; for DPO the preference pairs (supervised records among them are left out). An error
    when it holds nothing to train on."""
    import pyarrow.parquet as pq

    from llmops.model.training import load_records_dataset

    # `datasets` refuses remote files offline (HF_HUB_OFFLINE), so a split in the object store
    # is read from a local copy.
    cache = home_path("cache", "datasets")
    split = store.local_file(dataset.split_uri("train"), cache / "splits")
    if method == "dpo":
        if "rejected" not in pq.read_schema(split).names:
            raise ValueError(f"dataset {dataset.dataset_id} has no preference pairs for DPO")
        pairs = load_records_dataset(str(split), cache, columns=("messages", "rejected"))
        records = pairs.filter(
            lambda batch: [r is not None for r in batch["rejected"]], batched=True
        )
        if not len(records):
            what = "preference pairs for DPO" if len(pairs) else "training records"
            raise ValueError(f"dataset {dataset.dataset_id} has no {what}")
        return records
    records = load_records_dataset(str(split), cache, streaming)
    if next(iter(records), None) is None:
        raise ValueError(f"dataset {dataset.dataset_id} has no training records")
    return records


@task(cache_policy=HOST_LOCAL)
def resolve_base_model(ref: str) -> BaseModel:
    """Resolve the base-model reference to a local checkpoint (converted once, then cached)."""
    return resolve_base(ref)


@task
def hash_base_model(ref: str) -> str | None:
    """The hash of the base model's weights (llmops.model.loading.base_sha256): it keys the run,
    and learning it builds no checkpoint, so a host that reuses a finished run loads nothing."""
    return base_sha256(ref)


@task(cache_policy=HOST_LOCAL)
def load_champion_adapter(
    registered_model: str, base_ref: str, base_sha256: str | None
) -> RegisteredAdapter | None:
    """The current champion's adapter (downloaded here), the starting point and reference of a
    DPO run on it; None when there is no champion yet (the base is then the reference)."""
    champion = resolve_alias(registered_model)
    if champion is not None and champion.base_sha256 != base_sha256:
        raise ValueError(
            f"the champion of {registered_model} (v{champion.version}) was trained on "
            f"{champion.base_ref}, not on this run's base {base_ref}"
        )
    return champion


@task(cache_policy=HOST_LOCAL)
def plan_training_run(
    store_url: str,
    config_fingerprint: str,
    dataset_id: str,
    base_ref: str,
    base_sha256: str | None,
    start_adapter: RegisteredAdapter | None = None,
) -> TrainingRun:
    """The run keyed by config + dataset + base weights (+ the weights of the adapter a DPO run
    starts from): the same inputs always land in the same store folder, which is what lets any
    host resume or reuse it, and a new champion means a new run."""
    inputs: list[str | None] = [config_fingerprint, dataset_id, base_ref, base_sha256]
    if start_adapter is not None:
        inputs.append(adapter_sha256(start_adapter.adapter_dir))
    key = json.dumps(inputs)
    run_key = hashlib.sha256(key.encode()).hexdigest()[:16]
    return TrainingRun(
        key=run_key,
        uri=store.join(store_url, "runs", run_key),
        work_dir=home_path("work", "runs", run_key),
    )


@task(cache_policy=HOST_LOCAL)
def load_finished_run(run: TrainingRun) -> TrainedAdapter | None:
    """The result of a run that already finished (on any host), else None."""
    if not store.exists(run.result_uri):
        return None
    finished = TrainedAdapter.model_validate(store.read_json(run.result_uri))
    return finished.model_copy(update={"reused": True})


@task(cache_policy=HOST_LOCAL)
def pick_training_device() -> str:
    """The kind of device this host trains on ("cuda" or "cpu"): it prices the run."""
    return pick_device().type


@task
def start_training_run(
    experiment: str, run: TrainingRun, params: dict[str, Any], tags: dict[str, str]
) -> str:
    """The MLflow run of this training run: created once, reopened when a killed or
    budget-stopped run resumes (on this host or another)."""
    client = mlflow_client()
    if store.exists(run.mlflow_run_id_uri):
        run_id = store.read_text(run.mlflow_run_id_uri).strip()
        reopened = client.get_run(run_id)
        if STOPPED_REASON_TAG in reopened.data.tags:
            client.delete_tag(run_id, STOPPED_REASON_TAG)
        client.update_run(run_id, status="RUNNING")
        for key, value in tags.items():  # the device may differ from the first attempt's
            client.set_tag(run_id, key, value)
        return run_id
    created = client.create_run(ensure_experiment(experiment), tags=tags, run_name=run.key)
    client.log_batch(
        created.info.run_id,
        params=[mlflow.entities.Param(k, str(v)) for k, v in params.items()],
    )
    store.write_text(run.mlflow_run_id_uri, created.info.run_id)
    return created.info.run_id


@task(**STORE_RETRIES)
def load_seconds_per_step(
    experiment: str, base_ref: str, device: str, settings: TrainSettings, method: str = "sft"
) -> float | None:
    """Seconds per optimizer step of the newest finished training run with the same method,
    base model, device and batch shape (the budget's projection), or None when there is none."""
    client = mlflow_client()
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    runs = client.search_runs(
        [found.experiment_id],
        filter_string=(
            f"attributes.status = 'FINISHED' and tags.base_model = '{base_ref}' "
            f"and tags.method = '{method}' "
            f"and tags.device = '{device}' and params.batch_size = '{settings.batch_size}' "
            f"and params.grad_accum = '{settings.grad_accum}' "
            "and metrics.final_seconds_per_step > 0"
        ),
        order_by=["attributes.end_time DESC"],
        max_results=1,
    )
    return runs[0].data.metrics["final_seconds_per_step"] if runs else None


@task(cache_policy=HOST_LOCAL)
def train_adapter(
    base: BaseModel,
    records: "Dataset | IterableDataset",
    max_seq_len: int,
    lora: LoraSettings,
    settings: TrainSettings,
    run: TrainingRun,
    mlflow_run_id: str,
    cost: CostSettings,
    budget: TrainingBudget,
    seconds_per_step: float | None,
    preference: PreferenceSettings | None = None,
    launch: Launch | None = None,
) -> dict[str, float]:
    """Encode the records and train the LoRA adapter (DPO on the pairs when `preference` is
    given; in `launch.num_processes` processes when given), resuming from the store's newest
    complete checkpoint and mirroring every new one there; metrics (DPO: its rewards too) and
    the cost so far go to MLflow every `log_every` steps. A run stopped by its budget is
    recorded as such (MLflow tag `cost.stopped_reason`, status KILLED, a Prefect artifact) and
    raises BudgetExceededError."""
    from datasets import Dataset

    from llmops.model.distributed import TrainingJob, job_examples, train_lora_processes
    from llmops.model.training import (
        CheckpointMirror,
        CostMeter,
        ThroughputCallback,
        encode_dataset,
        preference_examples,
        train_lora,
    )

    tokenizer = load_tokenizer(base)
    if preference is None:
        examples = encode_dataset(tokenizer, records, max_seq_len)
        if next(iter(examples), None) is None:
            raise ValueError(f"no record keeps a response token within max_seq_len={max_seq_len}")
    else:
        examples = preference_examples(records)
    client = mlflow_client()

    def log_to_mlflow(values: dict[str, float], step: int) -> None:
        metrics = [mlflow.entities.Metric(k, v, 0, step) for k, v in values.items()]
        client.log_batch(mlflow_run_id, metrics=metrics, synchronous=True)

    def record_spent(spent: ComputeCost, step: int) -> None:
        log_to_mlflow(spent.metrics(), step)
        write_spent(run, spent)

    resume_from = restore_checkpoint(run)
    mirror = CheckpointMirror(run)
    spent_before = read_spent(run)
    meter = CostMeter(cost, budget, seconds_per_step, spent_before, record_spent)
    try:
        if launch is not None:
            job = TrainingJob(
                base=base,
                **job_examples(examples),
                lora=lora,
                settings=settings,
                run=run,
                resume_from=resume_from,
                preference=preference,
                cost=cost,
                budget=budget,
                seconds_per_step=seconds_per_step,
                spent_before=spent_before,
            )
            # print: the flow logs prints, so the children's output lands in the run's log
            metrics = train_lora_processes(job, launch, log_to_mlflow, record_spent, print)
        else:
            metrics = train_lora(
                base,
                tokenizer,
                examples,
                lora,
                settings,
                run.local_checkpoints,
                run.local_adapter,
                resume_from,
                [ThroughputCallback(log_to_mlflow), mirror, meter],
                preference=preference,
            )
    except BudgetExceededError as stop:
        record_spent(stop.spent, stop.step)
        _record_budget_stop(run, mlflow_run_id, stop)
        raise
    steps_run = metrics["global_step"] - metrics["resumed_from_step"]
    return {
        **metrics,
        **mirror.metrics(),
        "seconds_per_step": metrics["train_seconds"] / steps_run if steps_run else 0.0,
        # a streamed split is not counted up front
        **(
            {"dropped_examples": float(len(records) - metrics["examples"])}
            if isinstance(records, Dataset)
            else {}
        ),
    }


@task
def save_trained_adapter(
    run: TrainingRun,
    mlflow_run_id: str,
    metrics: dict[str, float],
    base: BaseModel,
    config_fingerprint: str,
    dataset: DatasetRef,
    reference: str | None = None,
) -> TrainedAdapter:
    """Log the adapter (not the base model) and the final metrics and cost (all attempts) to
    the MLflow run, end it, and store the adapter and its record under the run's key, the
    record last: from then on any host reuses this run instead of training again."""
    client = mlflow_client()
    client.log_artifacts(mlflow_run_id, str(run.local_adapter), "adapter")
    for key, value in metrics.items():
        client.log_metric(mlflow_run_id, f"final_{key}", float(value))
    cost = read_spent(run)
    step = int(metrics["global_step"])
    for key, value in cost.metrics().items():
        client.log_metric(mlflow_run_id, key, value, step=step)
    client.set_terminated(mlflow_run_id)
    store.upload_dir(run.local_adapter, run.adapter_uri)
    trained = TrainedAdapter(
        training_run_id=mlflow_run_id,
        adapter_uri=f"runs:/{mlflow_run_id}/adapter",
        adapter_sha256=adapter_sha256(run.local_adapter),
        adapter_bytes=sum(f.stat().st_size for f in run.local_adapter.iterdir()),
        base_ref=base.ref,
        base_sha256=base.sha256,
        config_fingerprint=config_fingerprint,
        dataset_id=dataset.dataset_id,
        dataset_uri=dataset.uri,
        run_uri=run.uri,
        metrics=metrics,
        cost=cost,
        reference=reference,
    )
    store.write_json(run.result_uri, trained.model_dump(mode="json"))
    return trained


@task
def publish_training_summary(trained: TrainedAdapter) -> TrainedAdapter:
    """A markdown artifact saying what was trained (or reused) and where the adapter is."""
    metrics = trained.metrics
    verb = "reused a finished run" if trained.reused else "trained"
    if trained.reference is not None:
        verb += f" (DPO against the {trained.reference})"
    cost = (
        f"- cost: {trained.cost.line()}"
        + (" (recorded by the run; nothing new spent)" if trained.reused else "")
        + "\n"
        if trained.cost is not None
        else ""
    )
    upload = (
        f"- {metrics['checkpoint_saves']:.0f} checkpoints mirrored to the store, "
        f"{metrics['checkpoint_upload_seconds']:.2f} s and "
        f"{metrics['checkpoint_upload_bytes'] / 1e6:.2f} MB per save\n"
        if "checkpoint_saves" in metrics
        else ""
    )
    create_markdown_artifact(
        f"# Fine-tuning: {verb}\n\n"
        f"- dataset `{trained.dataset_id}`, base `{trained.base_ref}` "
        f"(sha256 `{trained.base_sha256}`), config `{trained.config_fingerprint}`\n"
        f"- {metrics['global_step']:.0f} steps (resumed from step "
        f"{metrics['resumed_from_step']:.0f}), train loss {metrics['train_loss']:.4f}, "
        f"{metrics['tokens_per_second']:.0f} tokens/s\n"
        f"{upload}"
        f"{cost}"
        f"- adapter ({trained.adapter_bytes / 1e6:.2f} MB): `{trained.adapter_uri}`, "
        f"run folder `{trained.run_uri}`\n",
        key="finetune-summary",
    )
    return trained


def _record_budget_stop(run: TrainingRun, mlflow_run_id: str, stop: BudgetExceededError) -> None:
    """Say why the budget stopped the run: MLflow tag and status KILLED, a Prefect artifact."""
    client = mlflow_client()
    client.set_tag(mlflow_run_id, STOPPED_REASON_TAG, stop.reason)
    client.set_terminated(mlflow_run_id, status="KILLED")
    create_markdown_artifact(
        f"# Fine-tuning stopped by its budget\n\n{stop.reason}\n\n"
        f"- spent so far (every attempt): {stop.spent.line()}\n"
        f"- MLflow run `{mlflow_run_id}` (status KILLED, tag `{STOPPED_REASON_TAG}`), "
        f"run folder `{run.uri}`\n"
        "- the same command with a larger `budget` resumes from the newest checkpoint and "
        "counts what was already spent\n",
        key="finetune-budget-stop",
    )


def reference_name(method: str, champion: RegisteredAdapter | None) -> str | None:
    """What a DPO run is a delta on ("base" or "champion v<N>"); None for supervised runs."""
    if method != "dpo":
        return None
    return f"champion v{champion.version}" if champion else "base"


def settings_params(lora: LoraSettings, settings: TrainSettings) -> dict[str, Any]:
    """Flat MLflow params of a run's LoRA and training settings."""
    return {**{f"lora_{k}": v for k, v in asdict(lora).items()}, **asdict(settings)}
