"""The fine-tuning flow on the tiny model, with real Prefect and MLflow on SQLite in a temp dir:
adapter-only artifact, metrics and cost logged, resume after a kill, reuse on rerun, the
training budget."""

import json
from pathlib import Path

import pandas as pd
import pytest
from model_support import make_tiny_adapter, tiny_records, write_pairs_dataset, write_tiny_dataset
from transformers import TrainerCallback

import llmops.model.training
import tasks.finetune
from flows.finetune import finetune
from llmops.flow_configs import FinetuneConfig
from llmops.model.adapters import adapter_sha256
from llmops.model.cost import BudgetExceededError
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
    assert run.data.tags["device"] == "cpu" and "cost.stopped_reason" not in run.data.tags
    # Cost: the training loop's wall time on one CPU, its non-padding tokens, the cpu rate.
    cost = result.cost
    assert cost is not None and cost.currency == "USD"
    assert 0 < cost.device_seconds <= result.metrics["train_seconds"]
    assert cost.tokens == result.metrics["tokens_seen"] > 0
    rate = tiny_config(dataset).cost.device_hourly_rate["cpu"]
    assert cost.estimated == pytest.approx(cost.device_seconds * rate / 3600)
    assert {k: run.data.metrics[k] for k in cost.metrics()} == pytest.approx(cost.metrics())
    assert run.data.metrics["final_seconds_per_step"] > 0
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
    train_lora = llmops.model.training.train_lora

    def killed_at_5(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        return train_lora(*args[:-1], [*args[-1], KillAt(5)], **kwargs)

    monkeypatch.setattr(llmops.model.training, "train_lora", killed_at_5)
    with pytest.raises(Killed):
        finetune(tiny_config(dataset))
    monkeypatch.setattr(llmops.model.training, "train_lora", train_lora)

    result = finetune(tiny_config(dataset))
    assert result.metrics["resumed_from_step"] == 4
    assert result.metrics["global_step"] == 6
    # the same MLflow run carries on: one loss point per step, none lost, none twice
    history = mlflow_client().get_metric_history(result.training_run_id, "loss")
    assert sorted({m.step for m in history}) == [1, 2, 3, 4, 5, 6]


def test_bad_dataset_is_a_clear_error(llmops_home: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a prepared dataset"):
        finetune(tiny_config(tmp_path))


def test_a_budget_the_measured_throughput_cannot_meet_stops_before_training(
    llmops_home: Path, tmp_path: Path
) -> None:
    from prefect.artifacts import Artifact

    dataset = write_tiny_dataset(tmp_path)
    finetune(tiny_config(dataset, max_steps=2))  # a finished run: its seconds per step
    budget = {"max_device_seconds": 0.001}
    with pytest.raises(BudgetExceededError) as stopped:
        finetune(tiny_config(dataset, seed=1, budget=budget))
    reason = str(stopped.value)
    assert reason.startswith("budget: projected ")
    assert "s/step from an earlier finished run" in reason
    assert reason.endswith("exceeds max_device_seconds 0.001; stopped at step 0 of 6")

    client = mlflow_client()
    [run] = client.search_runs(
        [client.get_experiment_by_name("llmops-finetune").experiment_id],
        filter_string="tags.`cost.stopped_reason` != ''",
    )
    assert run.info.status == "KILLED"
    assert run.data.tags["cost.stopped_reason"] == reason
    assert client.get_metric_history(run.info.run_id, "loss") == []  # not one step trained
    artifact = Artifact.get("finetune-budget-stop")
    assert artifact is not None and reason in str(artifact.data)


def test_a_run_over_its_budget_is_aborted_and_its_resume_counts_the_spend(
    llmops_home: Path, tmp_path: Path
) -> None:
    dataset = write_tiny_dataset(tmp_path)
    # No earlier run and a warm-up longer than the run: only the check while running applies.
    budget = {"max_device_seconds": 1e-6, "warmup_steps": 100}
    with pytest.raises(
        BudgetExceededError, match="over max_device_seconds 1e-06; aborted at step 1 of 2"
    ):
        finetune(tiny_config(dataset, max_steps=2, budget=budget))
    client = mlflow_client()
    [run] = client.search_runs([client.get_experiment_by_name("llmops-finetune").experiment_id])
    assert (
        run.info.status == "KILLED" and "aborted at step 1" in run.data.tags["cost.stopped_reason"]
    )
    stopped_spent = run.data.metrics["cost.device_seconds"]
    assert stopped_spent > 1e-6

    # Without the budget (it is no part of the run's key) the same run carries on, and its cost
    # includes what the stopped attempt spent.
    result = finetune(tiny_config(dataset, max_steps=2))
    assert result.training_run_id == run.info.run_id and result.cost is not None
    assert result.cost.device_seconds > stopped_spent
    reopened = client.get_run(result.training_run_id)
    assert reopened.info.status == "FINISHED" and "cost.stopped_reason" not in reopened.data.tags


def test_dpo_learns_the_pairs_logs_its_rewards_and_resumes_to_the_same_adapter(
    llmops_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = write_pairs_dataset(tmp_path)
    # No warm-up: the first step already moves the policy, so the second one logs a margin.
    config = tiny_config(
        dataset, method="dpo", max_steps=2, batch_size=2, save_every=1, warmup_ratio=0.0
    )
    result = finetune(config)

    assert result.reference == "base" and result.metrics["global_step"] == 2
    assert result.metrics["examples"] == 8 and result.metrics["dropped_examples"] == 0
    # The policy starts equal to its reference (margin 0) and moves towards the chosen answers.
    assert result.metrics["reward_margin"] > 0 and result.metrics["reward_accuracy"] > 0.5
    client = mlflow_client()
    run = client.get_run(result.training_run_id)
    assert run.data.tags["method"] == "dpo" and run.data.tags["reference"] == "base"
    margins = client.get_metric_history(result.training_run_id, "rewards/margins")
    assert [m.step for m in margins] == [1, 2] and margins[0].value == 0.0
    assert run.data.metrics["final_reward_margin"] == result.metrics["reward_margin"]
    artifacts = {a.path for a in client.list_artifacts(result.training_run_id, "adapter")}
    assert artifacts == {  # the trained adapter alone, not DPO's frozen reference copy
        "adapter/adapter_config.json",
        "adapter/adapter_model.safetensors",
        "adapter/README.md",
    }

    # A fresh home: the same run killed after its step-1 checkpoint, then resumed.
    monkeypatch.setenv("LLMOPS_HOME", str(tmp_path / "second-home"))
    train_lora = llmops.model.training.train_lora

    def killed_at_2(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        return train_lora(*args[:-1], [*args[-1], KillAt(2)], **kwargs)

    monkeypatch.setattr(llmops.model.training, "train_lora", killed_at_2)
    with pytest.raises(Killed):
        finetune(config)
    monkeypatch.setattr(llmops.model.training, "train_lora", train_lora)
    resumed = finetune(config)
    assert resumed.metrics["resumed_from_step"] == 1 and resumed.metrics["global_step"] == 2
    assert resumed.run_uri != result.run_uri
    assert resumed.adapter_sha256 == result.adapter_sha256  # bit-identical weights


def test_dpo_against_the_champion_starts_from_its_adapter(
    llmops_home: Path, tmp_path: Path
) -> None:
    from llmops.model import registry

    adapter, base = make_tiny_adapter(tmp_path / "champion", seed=3, scale=0.05)
    version = registry.register_adapter("dpo-model", str(adapter), base.ref, base.sha256, None, {})
    registry.set_alias("dpo-model", registry.CHAMPION, version)
    dataset = write_pairs_dataset(tmp_path)
    config = tiny_config(
        dataset,
        method="dpo",
        dpo_reference="champion",
        registered_model="dpo-model",
        max_steps=1,
        batch_size=2,
        save_every=1,
        warmup_ratio=0.0,
    )
    result = finetune(config)

    assert result.reference == f"champion v{version}"
    run = mlflow_client().get_run(result.training_run_id)
    assert run.data.tags["reference"] == f"champion v{version}"
    # Trained from the champion's adapter (its rank and modules, not the profile's), so it
    # serves like any other adapter; the weights moved from the champion's.
    trained = Path(result.run_uri) / "adapter"
    saved = json.loads((trained / "adapter_config.json").read_text())
    assert saved["r"] == 4 and sorted(saved["target_modules"]) == ["q_proj", "v_proj"]
    assert result.adapter_sha256 != adapter_sha256(adapter)
    # The champion's weights are part of the run's key: a new champion is a new run.
    base = ("tiny-random", resolve_base("tiny-random").sha256)
    champion = tasks.finetune.load_champion_adapter.fn("dpo-model", *base)
    keys = {
        tasks.finetune.plan_training_run.fn("s", "f", "d", *base, start).key
        for start in (None, champion)
    }
    assert len(keys) == 2


def test_dpo_needs_pairs_and_a_champion_reference_needs_dpo(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from llmops.datasets import read_dataset

    plain = read_dataset(str(write_tiny_dataset(tmp_path)))
    with pytest.raises(ValueError, match="no preference pairs"):
        tasks.finetune.load_training_records.fn(plain, "dpo")
    # A split mixing pairs with supervised records (no rejected answer): DPO takes the pairs.
    mixed = read_dataset(str(write_pairs_dataset(tmp_path / "mixed", n_train=3)))
    train = Path(mixed.split_uri("train"))
    rows = pd.concat([pd.read_parquet(train), tiny_records(2)], ignore_index=True)
    rows.iloc[[1, 3, 0, 4, 2]].to_parquet(train)
    pairs = tasks.finetune.load_training_records.fn(mixed, "dpo")
    assert pairs.column_names == ["messages", "rejected"] and None not in pairs["rejected"]
    assert len(pairs) == 3
    with pytest.raises(ValidationError, match="needs method=dpo"):
        tiny_config(tmp_path, dpo_reference="champion")
    # A supervised run's fingerprint ignores the DPO settings (runs made before DPO stay reusable).
    sft = tiny_config(tmp_path)
    assert (
        sft.training_fingerprint()
        == sft.model_copy(update={"dpo_beta": 0.5}).training_fingerprint()
    )
