"""The main job on the tiny profile, end to end: real Prefect (test harness), real MLflow on
SQLite, the tiny random model; a second run with unchanged data and config is cached."""

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmops.model import registry
from llmops.tracking import mlflow_client


@pytest.fixture
def sources(tmp_path: Path) -> Path:
    """A small instruction-format JSONL file in a fixed answer style the tiny model can learn."""
    from model_support import tiny_records

    path = tmp_path / "support.jsonl"
    rows = [
        {"prompt": m[0]["content"], "response": m[1]["content"]}
        for m in tiny_records(60)["messages"]
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


@pytest.fixture
def model_loads() -> Iterator[list[str]]:
    """What llmops.model.loading logs while the test runs: every build or load of model
    weights says so there (its own handler: Prefect reconfigures the root logger)."""
    seen: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    logger, handler = logging.getLogger("llmops.model.loading"), Collect()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield seen
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_pipeline_runs_end_to_end_and_caches(
    sources: Path, llmops_home: Path, prefect_harness: None, model_loads: list[str]
) -> None:
    from flows.training_pipeline import training_pipeline
    from llmops.flow_configs import TrainingPipelineConfig

    config = TrainingPipelineConfig.from_profile("tiny", prepare={"sources": [str(sources)]})
    first = training_pipeline(config)
    name = config.promote.registered_model
    decision = first.decision
    assert first.trained.dataset_id == first.evaluation.dataset_id == first.dataset.dataset_id
    assert first.evaluation.training_run_id == first.trained.training_run_id
    assert decision.evaluation_run_id == first.evaluation.run_id
    assert decision.registered_model == name and decision.compared_to == "base"
    tags = registry.version_tags(name, decision.version)
    assert tags["dataset_id"] == first.dataset.dataset_id
    assert tags["dataset_uri"] == first.dataset.uri
    assert tags["training_run_id"] == first.trained.training_run_id
    assert tags["gate_decision"] == decision.verdict
    assert set(first.evaluation.intervals["base"]) >= {"bleu", "rougeL", "eval_loss"}

    from prefect.artifacts import Artifact

    assert first.trained.cost is not None and first.evaluation.cost is not None
    summary = str(Artifact.get("training-pipeline-summary").data)
    assert f"training {first.trained.cost.line()}, evaluation" in summary

    model_loads.clear()
    tags_before = registry.version_tags(name, decision.version)
    second = training_pipeline(config)
    # Every stage's inputs unchanged: no model is built or loaded, nothing is scored or logged
    # again. The first evaluation is reused, also when the first run promoted the candidate (the
    # champion is then the candidate itself: comparing it with itself would teach nothing).
    assert model_loads == []
    assert second.evaluation == first.evaluation.model_copy(update={"reused": True})
    assert "when evaluated)" in str(Artifact.get("training-pipeline-summary").data)
    # Same data and config: no retraining, the same registered version.
    assert second.dataset == first.dataset
    assert second.trained.reused
    assert second.trained.cost == first.trained.cost  # the recorded cost; nothing new spent
    assert "(reused run; it cost" in str(Artifact.get("training-pipeline-summary").data)
    assert second.trained.training_run_id == first.trained.training_run_id
    assert second.decision.version == decision.version
    if decision.verdict == "promoted":
        assert second.decision.verdict == "already_champion"
    assert len(mlflow_client().search_model_versions(f"name='{name}'")) == 1
    if decision.verdict == "promoted":
        # Already the champion: nothing registered, tagged or audited, but the decision shown.
        assert registry.version_tags(name, decision.version) == tags_before
        assert "already champion" in str(Artifact.get("promotion-decision").data)

    # The same evaluation again (same settings, data and models): its finished run and report
    # are reused, and no MLflow run is added.
    from flows.evaluate import evaluate
    from tasks.pipeline import configure_evaluation

    experiment = mlflow_client().get_experiment_by_name(config.evaluate.experiment)
    runs = len(mlflow_client().search_runs([experiment.experiment_id]))
    again = evaluate(configure_evaluation.fn(config.evaluate, second.dataset, second.trained))
    assert again == second.evaluation
    assert len(mlflow_client().search_runs([experiment.experiment_id])) == runs

    # A changed evaluation setting re-runs what depends on it, and only that: the candidate and
    # the base are scored again (two model loads), the dataset and training run are reused.
    model_loads.clear()
    shorter = config.model_copy(
        update={"evaluate": config.evaluate.model_copy(update={"max_new_tokens": 4})}
    )
    third = training_pipeline(shorter)
    assert [m.split(" (")[0] for m in model_loads] == ["loading base model tiny-random"] * 2
    assert third.dataset == first.dataset and third.trained.reused
    assert third.evaluation.cost is not None and third.evaluation.cost.tokens > 0


def test_pipeline_config_rejects_disagreeing_stages() -> None:
    from llmops.flow_configs import TrainingPipelineConfig

    with pytest.raises(ValueError, match="registered_model"):
        TrainingPipelineConfig.from_profile("tiny", promote={"registered_model": "other"})


def test_main_job_imports_no_model_library(llmops_home: Path) -> None:
    """What `llmops run` imports before its flow runs loads no torch, transformers, peft or
    datasets (seconds of start-up): a rerun that finds every result cached needs none."""
    code = (
        "import sys, llmops.cli, flows.training_pipeline\n"
        "from llmops.flow_configs import TrainingPipelineConfig\n"
        "TrainingPipelineConfig.from_profile('cpu')\n"
        "print(sorted({'torch', 'transformers', 'peft', 'datasets'} & set(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    assert done.stdout.strip() == "[]"
