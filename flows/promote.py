"""Register an evaluated candidate and promote it to champion if it passes the gate.

    llmops promote --evaluation-run <MLflow run id of `llmops evaluate`>

Pass: `champion` moves to the new version and the old one stays as `previous-champion`.
Fail: the champion stays; the reasons are tagged on the version and shown as an artifact.
"""

from typing import Any, ClassVar

from prefect import flow
from pydantic import Field

from llmops.config import FlowConfig
from llmops.model.gate import GatePolicy
from tasks.registry import (
    await_approval,
    decide_promotion,
    emit_decision_event,
    load_evaluation,
    publish_decision,
    register_candidate,
    save_decision,
)


class PromoteConfig(FlowConfig):
    """Which evaluation to act on, the registered model, and the gate policy."""

    profile_dir: ClassVar[str] = "promote"

    evaluation_run_id: str = Field("", description="MLflow run id written by `llmops evaluate`.")
    registered_model: str = Field(
        "llmops-assistant", min_length=1, description="MLflow registered model name."
    )
    config_fingerprint: str | None = Field(
        None, description="Hash of the training config, recorded on the version."
    )
    gate: GatePolicy = Field(default_factory=GatePolicy, description="The promotion gate.")
    require_approval: bool = Field(
        False, description="Pause for an operator's approval in the Prefect UI after a pass."
    )
    approval_timeout_s: int = Field(
        3600, ge=1, le=7 * 24 * 3600, description="Seconds to wait for approval; then reject."
    )


@flow(name="promote", log_prints=True)
def promote(config: PromoteConfig) -> dict[str, Any]:
    """Register the candidate, gate it, move aliases or record the rejection, announce it."""
    outcome = load_evaluation(config.evaluation_run_id)
    version = register_candidate(config.registered_model, outcome, config.config_fingerprint)
    decision = decide_promotion(config.gate, outcome, config.registered_model, version)
    if config.require_approval and decision.passed:
        summary = publish_decision(config.registered_model, version, decision, outcome, None)
        decision = await_approval(decision, summary, config.approval_timeout_s)
    previous = save_decision(config.registered_model, version, decision)
    report = publish_decision(config.registered_model, version, decision, outcome, previous)
    emit_decision_event(config.registered_model, version, decision)
    print(report)
    return {
        "registered_model": config.registered_model,
        "version": version,
        "promoted": decision.passed,
        "compared_to": decision.compared_to,
        "reasons": decision.reasons,
        "previous_champion": previous,
    }
