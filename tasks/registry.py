"""Prefect tasks of promotion and rollback: read an evaluation report, register, gate, move the
aliases under the model's lock, record, announce."""

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import replace

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency
from prefect.events import emit_event
from prefect.exceptions import FlowPauseTimeout, ObjectAlreadyExists
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput

from llmops.governance import audit
from llmops.model import registry
from llmops.model.gate import (
    GateDecision,
    GatePolicy,
    SettledDecision,
    already_champion,
    decide,
    settle,
)
from llmops.outputs import EvaluationReport, PromotionDecision
from llmops.release import ReleasePlan, open_release
from tasks.evaluation import read_evaluation_report, report_uri
from tasks.policy import STORE_RETRIES

# How long an alias change waits for the model's lock before failing (another promotion or
# rollback holds it for seconds, never longer).
LOCK_TIMEOUT_S = 600


class ApprovalInput(RunInput):
    """What the operator answers in the Prefect UI."""

    approve: bool
    comment: str = ""


@contextmanager
def registry_lock(registered_model: str) -> Iterator[None]:
    """One writer per registered model: every alias change (promote, rollback, approval) holds
    this Prefect global concurrency slot while it reads and moves the aliases."""
    name = f"llmops-registry-{registered_model}"
    # Not atomic in Prefect: a concurrent writer may create it between our read and create.
    with get_client(sync_client=True) as client, suppress(ObjectAlreadyExists):
        client.upsert_global_concurrency_limit_by_name(name, 1)
    # strict: a missing limit must fail, not silently run without the lock.
    with concurrency(name, occupy=1, timeout_seconds=LOCK_TIMEOUT_S, strict=True):
        yield


@task(**STORE_RETRIES)
def load_evaluation_report(store_url: str, run_id: str) -> EvaluationReport:
    """The report `evaluate` kept in the store for evaluation run `run_id`."""
    if not run_id:
        raise ValueError("no evaluation run given: run `llmops evaluate` first and pass its run id")
    report = read_evaluation_report(store_url, run_id)
    if report is None:
        raise FileNotFoundError(
            f"no evaluation report for run {run_id} at {report_uri(store_url, run_id)}: "
            "evaluate with the same store"
        )
    return report


@task
def register_candidate(registered_model: str, report: EvaluationReport) -> str:
    """Register the candidate's adapter as a version with reproducibility tags (alias
    challenger); returns the version."""
    tags = {
        "dataset_id": report.dataset_id,
        "dataset_uri": report.dataset_uri,
        "config_fingerprint": report.config_fingerprint or "",
        "code_version": registry.code_version(),
        "evaluation_run_id": report.run_id,
        "training_run_id": report.training_run_id or "",
    }
    return registry.register_adapter(
        registered_model,
        report.adapter_uri,
        report.base_ref,
        report.base_sha256,
        report.training_run_id,
        tags,
    )


@task
def check_already_champion(
    registered_model: str, report: EvaluationReport
) -> PromotionDecision | None:
    """The decision when the evaluated candidate is the champion already (its version's
    weights hashes are the report's: a rerun with nothing changed), else None. Nothing moves,
    so nothing is registered, locked, tagged or audited."""
    version = registry.alias_version(registered_model, registry.CHAMPION)
    if version is None:
        return None
    candidate = (report.base_ref, report.base_sha256, report.adapter_sha256)
    if registry.version_weights(registered_model, version) != candidate:
        return None
    return _decision(registered_model, version, already_champion(version), None, report)


@task
def decide_promotion(policy: GatePolicy, report: EvaluationReport) -> GateDecision:
    """Apply the gate to the candidate's results against what it was compared with."""
    return decide(
        policy,
        report.metrics["candidate"],
        report.intervals[report.compared_to],
        report.compared_to,
        report.slices,
        report.fairness.get("candidate"),
    )


def await_approval(
    decision: GateDecision, summary: str, timeout_s: int, registered_model: str, version: str
) -> GateDecision:
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
    # The Prefect UI names no user (open-source server), so the run that asked is the actor.
    audit.record(f"promotion.{verdict}", note, registered_model, version)
    return replace(decision, passed=answer.approve, reasons=[*decision.reasons, note])


@task
def save_decision(
    registered_model: str,
    version: str,
    decision: GateDecision,
    report: EvaluationReport,
    release_plan: ReleasePlan | None = None,
) -> PromotionDecision:
    """Under the model's lock: check the decision against the champion as it is now (an
    evaluation against a champion that has since moved is stale and never passes), then move
    champion (keeping previous-champion) on a pass, or with a `release_plan` start a release of
    it against the champion (superseding one running), and record the decision on the version."""
    with registry_lock(registered_model):
        history = registry.champion_chain(registered_model)
        settled = settle(decision, version, history, report.champion_version)
        if settled.verdict == "promoted" and release_plan and history:
            release = open_release(
                registered_model, version, history[0], **release_plan.model_dump(), supersede=True
            )
            what = f"{release.mode} release against champion v{release.champion_version}"
            settled = replace(settled, verdict="released", reasons=[*settled.reasons, what])
        previous = (
            registry.promote_version(registered_model, version)
            if settled.verdict == "promoted"
            else None
        )
        registry.tag_version(
            registered_model,
            version,
            {
                "gate_decision": settled.verdict,
                "gate_compared_to": settled.compared_to,
                "gate_reasons": "; ".join(settled.reasons),
            },
        )
        reasons = "; ".join(settled.reasons)
        audit.record(f"promotion.{settled.verdict}", reasons, registered_model, version)
    return _decision(registered_model, version, settled, previous, report)


def _decision(
    registered_model: str,
    version: str,
    settled: SettledDecision,
    previous: str | None,
    report: EvaluationReport,
) -> PromotionDecision:
    return PromotionDecision(
        registered_model=registered_model,
        version=version,
        verdict=settled.verdict,
        compared_to=settled.compared_to,
        reasons=settled.reasons,
        previous_champion=previous,
        evaluation_run_id=report.run_id,
    )


def describe_gate(
    registered_model: str, version: str, decision: GateDecision, report: EvaluationReport
) -> str:
    """The gate's decision in markdown, as an operator reads it before approving."""
    verdict = "passes the gate" if decision.passed else "fails the gate"
    return "\n".join(
        [
            f"# {registered_model} v{version} {verdict}",
            "",
            f"Compared with the {decision.compared_to} on dataset `{report.dataset_id}` "
            f"(MLflow evaluation run `{report.run_id}`).",
            "",
            *[f"- {reason}" for reason in decision.reasons],
        ]
    )


@task
def publish_decision(decision: PromotionDecision, report: EvaluationReport) -> str:
    """Create the Prefect markdown artifact explaining the decision; returns its text."""
    lines = [
        f"# {decision.registered_model} v{decision.version}: {decision.headline}",
        "",
        f"Compared with the {decision.compared_to} on dataset `{report.dataset_id}` "
        f"(MLflow evaluation run `{report.run_id}`).",
        "",
        *[f"- {reason}" for reason in decision.reasons],
    ]
    if decision.previous_champion:
        lines += [
            "",
            f"Previous champion v{decision.previous_champion} kept as `previous-champion`: "
            "`llmops rollback` restores it.",
        ]
    markdown = "\n".join(lines)
    create_markdown_artifact(markdown, key="promotion-decision")
    return markdown


@task
def emit_decision_event(decision: PromotionDecision) -> None:
    """Emit llmops.model.promoted / .rejected / .released for automations to react to."""
    emit_event(
        event=f"llmops.model.{decision.verdict}"
        if decision.verdict in ("rejected", "released")
        else "llmops.model.promoted",
        resource={"prefect.resource.id": f"llmops.model.{decision.registered_model}"},
        payload={"version": decision.version, "reasons": decision.reasons},
    )


@task
def rollback_champion(registered_model: str) -> tuple[str, str]:
    """Under the model's lock, move champion back to previous-champion; returns (rolled-back,
    restored) versions."""
    with registry_lock(registered_model):
        rolled_back, restored = registry.rollback(registered_model)
        audit.record(
            "rollback", f"v{rolled_back} replaced by v{restored}", registered_model, restored
        )
    return rolled_back, restored


@task
def publish_rollback(registered_model: str, rolled_back: str, restored: str) -> str:
    """Create the Prefect markdown artifact recording the rollback; returns its text."""
    markdown = (
        f"# {registered_model}: rolled back\n\nv{rolled_back} is no longer champion; "
        f"v{restored} is champion again (`models:/{registered_model}@champion`)."
    )
    create_markdown_artifact(markdown, key="model-rollback")
    return markdown
