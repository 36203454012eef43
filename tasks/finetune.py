"""Prefect tasks of the fine-tuning flow: load the training split, plan the run folder, train
(or reuse a finished run), log the adapter to MLflow, publish a summary artifact."""

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from prefect import task
from prefect.artifacts import create_markdown_artifact

from llmops.home import home_path
from llmops.model.loading import BaseModel, load_tokenizer, resolve_base
from llmops.model.training import (
    LoraSettings,
    ThroughputCallback,
    TrainSettings,
    encode_examples,
    train_lora,
)
from llmops.tracking import ensure_experiment, mlflow_client

RESULT_FILE = "result.json"


@task
def load_training_data(dataset: str) -> tuple[str, pd.DataFrame]:
    """Read the train split of a prepared dataset folder (or a train Parquet file); returns
    (dataset_id, records). A bare Parquet file's id is its content hash."""
    path = Path(dataset).expanduser()
    if path.is_dir():
        manifest_file = path / "manifest.json"
        if not manifest_file.exists():
            raise FileNotFoundError(f"{path} is not a prepared dataset (no manifest.json)")
        manifest = json.loads(manifest_file.read_text())
        dataset_id, train_file = manifest["dataset_id"], Path(manifest["splits"]["train"])
    elif path.suffix == ".parquet" and path.is_file():
        dataset_id, train_file = f"parquet-{_sha256(path)[:16]}", path
    else:
        raise FileNotFoundError(
            f"dataset {dataset!r} is neither a prepared dataset folder nor a Parquet file"
        )
    records = pd.read_parquet(train_file)
    if "messages" not in records.columns or records.empty:
        raise ValueError(f"{train_file} has no training records (needs a 'messages' column)")
    return dataset_id, records


@task
def resolve_base_model(ref: str) -> BaseModel:
    """Resolve the base-model reference to a local checkpoint (converted once, then cached)."""
    return resolve_base(ref)


@task
def plan_run_dir(config_fingerprint: str, dataset_id: str, base: BaseModel) -> Path:
    """The run folder <home>/runs/<fingerprint of config + dataset + base weights>: the same
    inputs always land in the same folder, which is what makes resume and reuse possible."""
    key = json.dumps([config_fingerprint, dataset_id, base.ref, base.sha256])
    return home_path("runs", hashlib.sha256(key.encode()).hexdigest()[:16])


@task
def load_finished_run(run_dir: Path) -> dict[str, Any] | None:
    """The result of a run that already finished in `run_dir` (adapter saved), else None."""
    result_file = run_dir / RESULT_FILE
    if not (result_file.exists() and (run_dir / "adapter" / "adapter_config.json").exists()):
        return None
    return {**json.loads(result_file.read_text()), "reused": True}


@task
def start_training_run(
    experiment: str, run_dir: Path, params: dict[str, Any], tags: dict[str, str]
) -> str:
    """The MLflow run of this run folder: created once, reopened when a killed run resumes."""
    id_file = run_dir / "mlflow_run_id"
    client = mlflow_client()
    if id_file.exists():
        return id_file.read_text().strip()
    run = client.create_run(ensure_experiment(experiment), tags=tags, run_name=run_dir.name)
    client.log_batch(
        run.info.run_id, params=[mlflow.entities.Param(k, str(v)) for k, v in params.items()]
    )
    id_file.parent.mkdir(parents=True, exist_ok=True)
    id_file.write_text(run.info.run_id)
    return run.info.run_id


@task
def train_adapter(
    base: BaseModel,
    records: pd.DataFrame,
    max_seq_len: int,
    lora: LoraSettings,
    settings: TrainSettings,
    run_dir: Path,
    run_id: str,
) -> dict[str, Any]:
    """Encode the records and train the LoRA adapter into run_dir/adapter, resuming from the
    last checkpoint; metrics go to MLflow every `log_every` steps."""
    tokenizer = load_tokenizer(base)
    examples, dropped = encode_examples(tokenizer, records["messages"], max_seq_len)
    if not examples:
        raise ValueError(f"no record keeps a response token within max_seq_len={max_seq_len}")
    client = mlflow_client()

    def log_to_mlflow(values: dict[str, float], step: int) -> None:
        metrics = [mlflow.entities.Metric(k, v, 0, step) for k, v in values.items()]
        client.log_batch(run_id, metrics=metrics, synchronous=True)

    metrics = train_lora(
        base, tokenizer, examples, lora, settings, run_dir, [ThroughputCallback(log_to_mlflow)]
    )
    return {**metrics, "examples": len(examples), "dropped_examples": dropped}


@task
def log_adapter(run_id: str, run_dir: Path, metrics: dict[str, Any]) -> dict[str, Any]:
    """Log the adapter folder (not the base model) and the final metrics to the MLflow run,
    end the run, and mark the run folder finished; returns the run's result."""
    adapter_dir = run_dir / "adapter"
    client = mlflow_client()
    client.log_artifacts(run_id, str(adapter_dir), "adapter")
    numbers = {f"final_{k}": float(v) for k, v in metrics.items() if isinstance(v, int | float)}
    for key, value in numbers.items():
        client.log_metric(run_id, key, value)
    client.set_terminated(run_id)
    adapter_bytes = sum(p.stat().st_size for p in adapter_dir.iterdir())
    result = {
        "adapter_dir": str(adapter_dir.resolve()),
        "adapter_bytes": adapter_bytes,
        "run_id": run_id,
        "train_metrics": metrics,
    }
    (run_dir / RESULT_FILE).write_text(json.dumps(result))
    return {**result, "reused": False}


@task
def publish_training_summary(result: dict[str, Any]) -> dict[str, Any]:
    """A markdown artifact saying what was trained (or reused) and where the adapter is."""
    metrics = result["train_metrics"]
    verb = "reused a finished run" if result["reused"] else "trained"
    create_markdown_artifact(
        f"# Fine-tuning: {verb}\n\n"
        f"- dataset `{result['dataset_id']}`, base `{result['base']['ref']}` "
        f"(sha256 `{result['base']['sha256']}`), config `{result['config_fingerprint']}`\n"
        f"- {metrics['global_step']} steps (resumed from step {metrics['resumed_from_step']}), "
        f"train loss {metrics['train_loss']:.4f}, {metrics['tokens_per_second']:.0f} tokens/s\n"
        f"- adapter ({result['adapter_bytes'] / 1e6:.2f} MB): `{result['adapter_dir']}`, "
        f"MLflow run `{result['run_id']}`\n",
        key="finetune-summary",
    )
    return result


def settings_params(lora: LoraSettings, settings: TrainSettings) -> dict[str, Any]:
    """Flat MLflow params of a run's LoRA and training settings."""
    return {**{f"lora_{k}": v for k, v in asdict(lora).items()}, **asdict(settings)}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
