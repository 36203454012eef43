"""Register an evaluated candidate and promote it to champion if it passes the gate.

    llmops promote --evaluation-run <MLflow run id of `llmops evaluate`>

Pass: `champion` moves to the new version and the old one stays as `previous-champion`.
Fail: the champion stays; the reasons are tagged on the version and shown as an artifact.
A candidate that is the champion already (same weights) changes nothing: only the decision's
artifact and event are published.
Every alias change holds the registered model's lock (a Prefect global concurrency limit), and
the champion is read again inside it, so concurrent promotions and rollbacks never lose one.
"""

from prefect import flow

from llmops.flow_configs import PromoteConfig
from llmops.outputs import PromotionDecision
from tasks.registry import (
    await_approval,
    check_already_champion,
    decide_promotion,
    describe_gate,
    emit_decision_event,
    load_evaluation_report,
    publish_decision,
    register_candidate,
    save_decision,
)


@flow(name="promote", log_prints=True)
def promote(config: PromoteConfig) -> PromotionDecision:
    """Register the candidate, gate it, move aliases or record the rejection, announce it."""
    report = load_evaluation_report(config.store_url(), config.evaluation_run_id)
    decision = check_already_champion(config.registered_model, report)
    if decision is None:
        version = register_candidate(config.registered_model, report)
        gate = decide_promotion(config.gate, report)
        if config.require_approval and gate.passed:
            summary = describe_gate(config.registered_model, version, gate, report)
            gate = await_approval(
                gate, summary, config.approval_timeout_s, config.registered_model, version
            )
        plan = config.release_plan()
        decision = save_decision(config.registered_model, version, gate, report, plan)
    print(publish_decision(decision, report))
    emit_decision_event(decision)
    return decision
