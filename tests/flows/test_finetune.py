"""The fine-tuning flow on the tiny model, with real Prefect and MLflow on SQLite in a temp dir:
adapter-only artifact, metrics logged, resume after a kill, reuse on rerun."""

from pathlib import Path

import pytest
from model_support import write_tiny_dataset
from transformers import TrainerCallback

import tasks.finetune
from flows.finetune import finetune
from llmops.flow_configs import FinetuneConfig
from llmops.model.loading import resolve_base
from llmops.tracking import mlflow_client

pytestmark = pytest.mark.usefixtures("prefect_harness")


class Killed(RuntimeError):
    """Stands in for the process being killed mid-training."""


class KillAt(TrainerCallback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
        if state.global_step == self.step:
            raise Killed(f"killed at step {self.step}")


def tiny_config(dataset: Path, **overrides: object) -> FinetuneConfig:
    return FinetuneConfig.from_profile("tiny", dataset=str(dataset), **overrides)


def test_finetune_logs_an_adapter_only_artifact_and_metrics(
    llmops_home: Path, tmp_path: Path
) -> None:
    dataset = write_tiny_dataset(tmp_path)
    result = finetune(tiny_config(dataset))

    assert result.dataset_id == "tiny-16-6" and result.base_ref == "tiny-random"
    assert result.metrics["global_step"] == 6 and not result.reused
    assert result.adapter_uri == f"runs:/{result.training_run_id}/adapter"
    client = mlflow_client()
    artifacts = {
        a.path: a.file_size for a in client.list_artifacts(result.training_run_id, "adapter")
    }
    assert set(artifacts) == {
        "adapter/adapter_config.json",
        "adapter/adapter_model.safetensors",
        "adapter/README.md",
    }
    base_path = Path(resolve_base("tiny-random").path)
    base_bytes = sum(p.stat().st_size for p in base_path.glob("*.safetensors"))
    assert sum(artifacts.values()) < 0.1 * base_bytes  # the adapter, never the base weights
    for metric in ("loss", "learning_rate", "tokens_per_second"):
        history = client.get_metric_history(result.training_run_id, metric)
        assert [m.step for m in history] == [1, 2, 3, 4, 5, 6], metric
    run = client.get_run(result.training_run_id)
    assert run.data.tags["dataset_id"] == "tiny-16-6"
    assert run.data.tags["base_sha256"] == result.base_sha256
    assert run.data.tags["config_fingerprint"] == result.config_fingerprint
    assert run.info.status == "FINISHED"
    # The run's state is in the store (the project home by default): three checkpoints
    # mirrored (every 2 of 6 steps), the two newest kept, the adapter and the record.
    assert result.run_uri.startswith(str(llmops_home / "runs"))
    assert result.metrics["checkpoint_saves"] == 3
    checkpoints = Path(result.run_uri) / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["checkpoint-4", "checkpoint-6"]
    assert (Path(result.run_uri) / "adapter" / "adapter_config.json").exists()

    again = finetune(tiny_config(dataset))
    assert again.reused and again.model_copy(update={"reused": False}) == result


def test_a_killed_run_resumes_from_its_last_checkpoint(
    llmops_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = write_tiny_dataset(tmp_path)
    train_lora = tasks.finetune.train_lora

    def killed_at_5(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        return train_lora(*args[:-1], [*args[-1], KillAt(5)], **kwargs)

    monkeypatch.setattr(tasks.finetune, "train_lora", killed_at_5)
    with pytest.raises(Killed):
        finetune(tiny_config(dataset))
    monkeypatch.setattr(tasks.finetune, "train_lora", train_lora)

    result = finetune(tiny_config(dataset))
    assert result.metrics["resumed_from_step"] == 4
    assert result.metrics["global_step"] == 6
    # the same MLflow run carries on: one loss point per step, none lost, none twice
    history = mlflow_client().get_metric_history(result.training_run_id, "loss")
    assert sorted({m.step for m in history}) == [1, 2, 3, 4, 5, 6]


def test_bad_dataset_is_a_clear_error(llmops_home: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a prepared dataset"):
        finetune(tiny_config(tmp_path))
