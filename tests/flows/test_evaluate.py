"""The evaluation flow end to end on the tiny model: real Prefect, real MLflow on SQLite."""

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from model_support import make_tiny_adapter, write_tiny_dataset

from flows.evaluate import evaluate
from llmops import store
from llmops.flow_configs import EvaluateConfig
from llmops.model import registry
from llmops.model.loading import load_tokenizer, resolve_base
from llmops.outputs import EvaluationReport
from llmops.records import prompt_messages


@pytest.fixture
def config(tmp_path: Path, llmops_home: Path, prefect_harness: None) -> EvaluateConfig:
    adapter_dir, _ = make_tiny_adapter(tmp_path / "candidate", seed=1, scale=0.5)
    return EvaluateConfig.from_profile(
        "tiny", dataset=str(write_tiny_dataset(tmp_path / "datasets")), adapter=str(adapter_dir)
    )


def test_evaluate_logs_metrics_table_and_dataset(config: EvaluateConfig) -> None:
    from prefect.artifacts import Artifact

    result = evaluate(config)
    assert result.dataset_id == "tiny-16-6" and result.examples == 6
    assert result.champion_version is None and set(result.intervals) == {"base"}
    assert set(result.metrics) == {"candidate", "base"}
    for metric in ("bleu", "rouge1", "rouge2", "rougeL", "exact_match", "eval_loss", "perplexity"):
        assert metric in result.metrics["candidate"]
    ci = result.intervals["base"]["rougeL"]
    assert ci.low <= ci.diff <= ci.high
    # The report is kept in the store, where promote reads it back exactly.
    kept = store.read_json(
        store.join(config.store_url(), "evaluations", result.run_id, "report.json")
    )
    assert EvaluationReport.model_validate(kept) == result

    run = mlflow.get_run(result.run_id)
    assert run.data.tags["dataset_id"] == "tiny-16-6"
    assert "diff_vs_base.eval_loss.ci_low" in run.data.metrics
    assert run.data.metrics["candidate.eval_loss"] == pytest.approx(
        result.metrics["candidate"]["eval_loss"]
    )
    assert [d.dataset.name for d in run.inputs.dataset_inputs] == ["tiny-16-6"]
    table = json.loads(
        Path(
            mlflow.artifacts.download_artifacts(
                run_id=run.info.run_id, artifact_path="eval_outputs.json"
            )
        ).read_text()
    )
    assert len(table["data"]) == 6 and "candidate_answer" in table["columns"]

    artifact = Artifact.get("evaluation-summary")
    assert artifact is not None and "rougeL" in str(artifact.data)


def test_evaluate_logs_its_cost_and_a_cached_score_costs_nothing(
    tmp_path: Path, llmops_home: Path, prefect_harness: None
) -> None:
    # An adapter no other test scores, so the first run computes both scores itself.
    adapter_dir, _ = make_tiny_adapter(tmp_path / "priced", seed=11, scale=0.3)
    config = EvaluateConfig.from_profile(
        "tiny",
        dataset=str(write_tiny_dataset(tmp_path / "datasets")),
        adapter=str(adapter_dir),
        max_examples=2,
        cost={"device_hourly_rate": {"cpu": 1.8}},
    )
    result = evaluate(config)
    cost = result.cost
    assert cost is not None and cost.device_seconds > 0
    assert cost.estimated == pytest.approx(cost.device_seconds * 1.8 / 3600)
    # Prompt + generated tokens of 2 examples for candidate and base, up to 8 new tokens each.
    tokenizer = load_tokenizer(resolve_base("tiny-random"))
    records = pd.read_parquet(Path(config.dataset) / "eval.parquet").head(2)
    prompts = [
        tokenizer.apply_chat_template(
            prompt_messages(list(m)), add_generation_prompt=True, tokenize=False
        )
        for m in records["messages"]
    ]
    prompt_tokens = sum(
        len(ids) for ids in tokenizer(prompts, add_special_tokens=False)["input_ids"]
    )
    assert 2 * prompt_tokens < cost.tokens <= 2 * (prompt_tokens + 2 * 8)
    logged = mlflow.get_run(result.run_id).data.metrics
    assert {k: logged[k] for k in cost.metrics()} == pytest.approx(cost.metrics())

    again = evaluate(config)  # both scores come from Prefect's cache: nothing new spent
    assert again.metrics == result.metrics
    assert again.cost is not None and again.cost.device_seconds == again.cost.tokens == 0


def test_evaluate_compares_with_the_champion(config: EvaluateConfig, tmp_path: Path) -> None:
    champion_dir, base = make_tiny_adapter(tmp_path / "champion", seed=2, scale=0.5)
    version = registry.register_adapter(
        config.registered_model, str(champion_dir), base.ref, base.sha256, None, {}
    )
    registry.promote_version(config.registered_model, version)

    result = evaluate(config)
    assert result.champion_version == version
    assert set(result.intervals) == {"base", "champion"}
    assert set(result.metrics) == {"candidate", "base", "champion"}


def test_evaluate_rejects_a_folder_that_is_not_a_dataset(
    config: EvaluateConfig, tmp_path: Path
) -> None:
    bad = config.model_copy(update={"dataset": str(tmp_path)})
    with pytest.raises(FileNotFoundError, match="not a prepared dataset"):
        evaluate(bad)
