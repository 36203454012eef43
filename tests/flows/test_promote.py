"""Gate pass, gate fail (the champion is unchanged) and rollback, through the real flows:
Prefect harness, MLflow on SQLite, tiny model adapters that are really better or worse."""

from pathlib import Path

import pytest
from model_support import make_tiny_adapter, train_tiny_adapter, write_tiny_dataset

from flows.evaluate import evaluate
from flows.promote import promote
from flows.rollback import rollback
from llmops.flow_configs import EvaluateConfig, PromoteConfig, RollbackConfig
from llmops.governance.audit import AuditLog
from llmops.model import registry
from llmops.outputs import PromotionDecision


@pytest.fixture
def dataset(tmp_path: Path, llmops_home: Path, prefect_harness: None) -> Path:
    return write_tiny_dataset(tmp_path / "datasets")


def evaluate_and_promote(dataset: Path, adapter: Path) -> PromotionDecision:
    evaluation = evaluate(
        EvaluateConfig.from_profile(
            "tiny", dataset=str(dataset), adapter=str(adapter), config_fingerprint="cfg123"
        )
    )
    return promote(PromoteConfig.from_profile("tiny", evaluation_run_id=evaluation.run_id))


def test_gate_pass_fail_and_rollback(dataset: Path, tmp_path: Path) -> None:
    from prefect.artifacts import Artifact

    name = PromoteConfig.from_profile("tiny").registered_model

    # 1. The first model must beat the base: a trained adapter does.
    first = evaluate_and_promote(dataset, train_tiny_adapter(tmp_path / "a", dataset, steps=20))
    assert first.verdict == "promoted" and first.compared_to == "base", first.reasons
    assert registry.alias_version(name, registry.CHAMPION) == first.version
    tags = registry.version_tags(name, first.version)
    assert tags["dataset_id"] == "tiny-16-6" and tags["config_fingerprint"] == "cfg123"
    assert tags["dataset_uri"] == str(dataset)
    assert tags["base_ref"] == "tiny-random" and len(tags["base_sha256"]) == 64
    assert tags["code_version"] and tags["gate_decision"] == "promoted"

    # 2. A regression (random noise in the adapter) is rejected; the champion stays.
    bad_adapter, _ = make_tiny_adapter(tmp_path / "bad", seed=3, scale=0.5)
    bad = evaluate_and_promote(dataset, bad_adapter)
    assert bad.verdict == "rejected" and bad.compared_to == "champion"
    assert registry.alias_version(name, registry.CHAMPION) == first.version
    assert registry.alias_version(name, registry.CHALLENGER) == bad.version
    assert registry.version_tags(name, bad.version)["gate_decision"] == "rejected"
    assert "REJECTED" in str(Artifact.get("promotion-decision").data)

    # 3. A better-trained candidate beats the champion and keeps it as previous-champion.
    better = evaluate_and_promote(dataset, train_tiny_adapter(tmp_path / "c", dataset, steps=60))
    assert better.verdict == "promoted", better.reasons
    assert better.previous_champion == first.version
    assert registry.alias_version(name, registry.PREVIOUS_CHAMPION) == first.version

    # 4. Rollback is one command.
    result = rollback(RollbackConfig.from_profile("tiny"))
    assert result == {
        "registered_model": name,
        "rolled_back": better.version,
        "champion": first.version,
    }
    assert registry.alias_version(name, registry.CHAMPION) == first.version

    # 5. Every decision and the rollback are in the audit trail, with the flow run as actor,
    # mirrored to the versions' MLflow tags, and the chain holds.
    trail = AuditLog()
    actions = [(e.action, e.version) for e in trail.entries(name)]
    assert actions == [
        ("promotion.promoted", first.version),
        ("promotion.rejected", bad.version),
        ("promotion.promoted", better.version),
        ("rollback", first.version),
    ]
    assert all(e.actor.startswith("flow-run:") for e in trail.entries(name))
    rejected = trail.entries(name)[1]
    assert registry.version_tags(name, bad.version)[f"audit.{rejected.seq}"].endswith(
        rejected.reason
    )
    assert trail.verify().intact


def test_promote_rejects_a_missing_evaluation_run(dataset: Path) -> None:
    with pytest.raises(ValueError, match="no evaluation run given"):
        promote(PromoteConfig.from_profile("tiny"))


def test_rollback_without_history_is_a_clear_error(dataset: Path) -> None:
    with pytest.raises(LookupError, match="nothing to roll back"):
        rollback(RollbackConfig.from_profile("tiny"))


def test_unanswered_approval_means_reject(dataset: Path, tmp_path: Path) -> None:
    adapter = train_tiny_adapter(tmp_path / "a", dataset, steps=20)
    evaluation = evaluate(
        EvaluateConfig.from_profile("tiny", dataset=str(dataset), adapter=str(adapter))
    )
    config = PromoteConfig.from_profile(
        "tiny", evaluation_run_id=evaluation.run_id, require_approval=True, approval_timeout_s=2
    )
    result = promote(config)
    assert result.verdict == "rejected" and result.reasons[-1] == "no approval in 2s"
    assert registry.alias_version(config.registered_model, registry.CHAMPION) is None
