"""The main job on the tiny profile, end to end: real Prefect (test harness), real MLflow on
SQLite, the tiny random model; a second run with unchanged data and config is cached."""

import json
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


def test_pipeline_runs_end_to_end_and_caches(
    sources: Path, llmops_home: Path, prefect_harness: None
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

    second = training_pipeline(config)
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


def test_pipeline_config_rejects_disagreeing_stages() -> None:
    from llmops.flow_configs import TrainingPipelineConfig

    with pytest.raises(ValueError, match="registered_model"):
        TrainingPipelineConfig.from_profile("tiny", promote={"registered_model": "other"})
