"""Retraining plans: supervised retrains add landed data and feedback records to the profile's
sources; a dpo retrain preference-tunes the champion on the feedback pairs alone."""

from pathlib import Path

import pytest

from llmops.flow_configs import RetrainConfig, TrainingPipelineConfig
from tasks.retrain import plan_retraining


def test_a_dpo_retrain_tunes_the_champion_on_the_pairs_alone(tmp_path: Path):
    config = RetrainConfig.from_profile("tiny", method="dpo", store=str(tmp_path))
    pairs = config.feedback_export_url()
    assert pairs == str(tmp_path / "feedback" / "pairs.jsonl")
    plan = plan_retraining.fn(
        "tiny", ["landed-pairs.jsonl"], pairs, None, config.store, "dpo", config.pairs_contract
    )
    profile = TrainingPipelineConfig.from_profile("tiny", store=str(tmp_path))
    assert plan.prepare.sources == ["landed-pairs.jsonl", pairs]  # not the profile's SFT data
    assert plan.prepare.contract == "data_contracts/preference_pairs.yaml"
    assert (plan.finetune.method, plan.finetune.dpo_reference) == ("dpo", "champion")
    assert plan.finetune.registered_model == plan.promote.registered_model
    assert plan.promote.gate.primary_metric == "preference_margin"
    # Everything else is the profile's, on the retrain's store.
    assert plan.finetune.max_steps == profile.finetune.max_steps
    assert plan.promote.gate.guard_metrics == profile.promote.gate.guard_metrics
    assert plan.evaluate.store == str(tmp_path)


def test_a_supervised_retrain_adds_landed_data_and_feedback_records(tmp_path: Path):
    config = RetrainConfig.from_profile("tiny", store=str(tmp_path))
    records = config.feedback_export_url()
    assert records == str(tmp_path / "feedback" / "export.jsonl")
    plan = plan_retraining.fn("tiny", ["landed.jsonl"], records, None, config.store)
    profile = TrainingPipelineConfig.from_profile("tiny", store=str(tmp_path))
    assert plan.prepare.sources == [*profile.prepare.sources, "landed.jsonl", records]
    assert plan.finetune.method == "sft" and plan.promote.gate == profile.promote.gate


def test_a_dpo_retrain_without_pairs_is_a_clear_error(tmp_path: Path):
    with pytest.raises(ValueError, match="needs preference pairs"):
        plan_retraining.fn("tiny", [], None, None, str(tmp_path), "dpo")
