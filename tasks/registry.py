"""Prefect tasks of promotion and rollback: read an evaluation, register, gate, record, announce."""

from dataclasses import dataclass, replace

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.events import emit_event
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput

from llmops.model import registry
from llmops.model.gate import GateDecision, GatePolicy, decide
from llmops.model.loading import resolve_base
from llmops.model.metrics import Interval
from llmops.tracking import mlflow_client


@dataclass(frozen=True)
class EvaluationOutcome:
    """What an evaluation run recorded about one candidate."""

    run_id: str
    dataset_id: str
    adapter_dir: str
    base_ref: str
    training_run_id: str | None
    champion_version: str | None  # the champion it was compared with, if any
    candidate: dict[str, float]
    intervals: dict[str, Interval]  # candidate minus champion, or minus base without one

    @property
    def compared_to(self) -> str:
        return "champion" if self.champion_version else "base"


class ApprovalInput(RunInput):
    """What the operator answers in the Prefect UI."""

    approve: bool
    comment: str = ""


@task
def load_evaluation(run_id: str) -> EvaluationOutcome:
    """Read an evaluation run's tags, candidate metrics and CIs against its reference model."""
    if not run_id:
        raise ValueError("no evaluation run given: run `llmops evaluate` first and pass its run id")
    run = mlflow_client().get_run(run_id)
    tags, logged = run.data.tags, run.data.metrics
    if "adapter_dir" not in tags:
        raise ValueError(f"MLflow run {run_id} is not an evaluation run (no adapter_dir tag)")
    reference = "champion" if tags.get("champion_version") else "base"
    prefix = f"diff_vs_{reference}."
    intervals = {
        key.removeprefix(prefix): Interval(
            logged[key], logged[f"{key}.ci_low"], logged[f"{key}.ci_high"]
        )
        for key in logged
        if key.startswith(prefix) and not key.endswith((".ci_low", ".ci_high"))
    }
    return EvaluationOutcome(
        run_id=run_id,
        dataset_id=tags["dataset_id"],
        adapter_dir=tags["adapter_dir"],
        base_ref=tags["base_ref"],
        training_run_id=tags.get("training_run_id") or None,
        champion_version=tags.get("champion_version") or None,
        candidate={
            k.removeprefix("candidate."): v for k, v in logged.items() if k.startswith("candidate.")
        },
        intervals=intervals,
    )


@task
def register_candidate(
    registered_model: str, outcome: EvaluationOutcome, config_fingerprint: str | None
) -> str:
    """Register the candidate's adapter as a version with reproducibility tags (alias
    challenger); returns the version."""
    tags = {
        "dataset_id": outcome.dataset_id,
        "config_fingerprint": config_fingerprint or "",
        "code_version": registry.code_version(),
        "evaluation_run_id": outcome.run_id,
        "training_run_id": outcome.training_run_id or "",
    }
    return registry.register_adapter(
        registered_model,
        outcome.adapter_dir,
        resolve_base(outcome.base_ref),
        outcome.training_run_id,
        tags,
    )


@task
def decide_promotion(
    policy: GatePolicy, outcome: EvaluationOutcome, registered_model: str, version: str
) -> GateDecision:
    """Apply the gate; a stale evaluation (the champion moved since) never passes."""
    champion = registry.alias_version(registered_model, registry.CHAMPION)
    if champion == version:
        return GateDecision(True, "champion", [f"version {version} is already the champion"])
    if champion != outcome.champion_version:
        return GateDecision(
            False,
            outcome.compared_to,
            [
                f"the champion is now {champion}, but the evaluation compared with "
                f"{outcome.champion_version}: evaluate again"
            ],
        )
    return decide(policy, outcome.candidate, outcome.intervals, outcome.compared_to)


def await_approval(decision: GateDecision, summary: str, timeout_s: int) -> GateDecision:
    """Pause the flow run until an operator approves or rejects in the Prefect UI; a timeout
    rejects. (Not a task: only a flow run can be paused.)"""
    create_markdown_artifact(summary, key="promotion-approval-request")
    try:
        answer = pause_flow_run(
            wait_for_input=ApprovalInput, timeout=timeout_s, poll_interval=min(10, timeout_s)
        )
    except FlowPauseTimeout:
        return replace(
            decision, passed=False, reasons=[*decision.reasons, f"no approval in {timeout_s}s"]
        )
    verdict = "approved" if answer.approve else "rejected"
    note = f"operator {verdict}" + (f": {answer.comment}" if answer.comment else "")
    return replace(decision, passed=answer.approve, reasons=[*decision.reasons, note])


@task
def save_decision(registered_model: str, version: str, decision: GateDecision) -> str | None:
    """Record the decision on the version; on a pass move champion (keeping
    previous-champion). Returns the champion it replaced."""
    registry.tag_version(
        registered_model,
        version,
        {
            "gate_decision": "passed" if decision.passed else "rejected",
            "gate_compared_to": decision.compared_to,
            "gate_reasons": "; ".join(decision.reasons),
        },
    )
    return registry.promote_version(registered_model, version) if decision.passed else None


@task
def publish_decision(
    registered_model: str,
    version: str,
    decision: GateDecision,
    outcome: EvaluationOutcome,
    previous: str | None,
) -> str:
    """Create the Prefect markdown artifact explaining the decision; returns its text."""
    if not decision.passed:
        verdict = "REJECTED (champion unchanged)"
    elif previous is None and decision.compared_to == "champion":
        verdict = "already champion (unchanged)"
    else:
        verdict = "PROMOTED to champion"
    lines = [
        f"# {registered_model} v{version}: {verdict}",
        "",
        f"Compared with the {decision.compared_to} on dataset `{outcome.dataset_id}` "
        f"(MLflow evaluation run `{outcome.run_id}`).",
        "",
        *[f"- {reason}" for reason in decision.reasons],
    ]
    if previous:
        lines += [
            "",
            f"Previous champion v{previous} kept as `previous-champion`: "
            "`llmops rollback` restores it.",
        ]
    markdown = "\n".join(lines)
    create_markdown_artifact(markdown, key="promotion-decision")
    return markdown


@task
def emit_decision_event(registered_model: str, version: str, decision: GateDecision) -> None:
    """Emit llmops.model.promoted / llmops.model.rejected for automations to react to."""
    emit_event(
        event="llmops.model.promoted" if decision.passed else "llmops.model.rejected",
        resource={"prefect.resource.id": f"llmops.model.{registered_model}"},
        payload={"version": version, "reasons": decision.reasons},
    )


@task
def rollback_champion(registered_model: str) -> tuple[str, str]:
    """Move champion back to previous-champion; returns (rolled-back, restored) versions."""
    return registry.rollback(registered_model)


@task
def publish_rollback(registered_model: str, rolled_back: str, restored: str) -> str:
    """Create the Prefect markdown artifact recording the rollback; returns its text."""
    markdown = (
        f"# {registered_model}: rolled back\n\nv{rolled_back} is no longer champion; "
        f"v{restored} is champion again (`models:/{registered_model}@champion`)."
    )
    create_markdown_artifact(markdown, key="model-rollback")
    return markdown
