"""Prefect tasks of the training pipeline: hand one stage's output to the next, summarise."""

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.deployments import run_deployment

from llmops.flow_configs import EvaluateConfig, FinetuneConfig, PromoteConfig
from llmops.model.cost import ComputeCost
from llmops.outputs import (
    DatasetRef,
    EvaluationReport,
    PipelineResult,
    PromotionDecision,
    TrainedAdapter,
)


@task
def configure_finetune(config: FinetuneConfig, dataset: DatasetRef) -> FinetuneConfig:
    """The fine-tuning config pointed at the dataset that preparation just produced."""
    return config.model_copy(update={"dataset": dataset.uri})


@task
def configure_evaluation(
    config: EvaluateConfig, dataset: DatasetRef, trained: TrainedAdapter
) -> EvaluateConfig:
    """The evaluation config pointed at the dataset and the freshly trained adapter."""
    return config.model_copy(
        update={
            "dataset": dataset.uri,
            "adapter": trained.adapter_uri,
            "base_model": trained.base_ref,
            "training_run_id": trained.training_run_id,
            "config_fingerprint": trained.config_fingerprint,
        }
    )


@task
def configure_promotion(config: PromoteConfig, report: EvaluationReport) -> PromoteConfig:
    """The promotion config pointed at the evaluation run."""
    return config.model_copy(update={"evaluation_run_id": report.run_id})


@task
def run_finetune_deployment(deployment: str, config: FinetuneConfig) -> TrainedAdapter:
    """Run fine-tuning as a deployment (e.g. on the GPU pool), wait, return its result.

    The TrainedAdapter comes back through Prefect's persisted results, which the team stack
    keeps in the store (a server-wide default result storage), so the worker may be on another
    host. A run whose worker died is put back in the queue by the stack's automation, never
    ending Crashed, so this wait continues until a worker finishes it.
    """
    flow_run = run_deployment(
        name=deployment, parameters={"config": config.model_dump(mode="json")}, timeout=None
    )
    if flow_run.state is None or not flow_run.state.is_completed():
        raise RuntimeError(f"fine-tuning deployment {deployment} ended in {flow_run.state}")
    return TrainedAdapter.model_validate(flow_run.state.result())


@task
def publish_pipeline_summary(
    dataset: DatasetRef,
    trained: TrainedAdapter,
    report: EvaluationReport,
    decision: PromotionDecision,
) -> PipelineResult:
    """Create the markdown artifact of the whole run; return what each stage made."""
    candidate, base = report.metrics["candidate"], report.metrics["base"]
    rows = "\n".join(
        f"| {m} | {candidate[m]:.4f} | {base[m]:.4f} | {ci.diff:+.4f} "
        f"[{ci.low:+.4f}, {ci.high:+.4f}] |"
        for m, ci in report.intervals["base"].items()
    )
    create_markdown_artifact(
        f"# Training pipeline: {decision.registered_model} v{decision.version} "
        f"{decision.headline}\n\n"
        f"Dataset `{dataset.dataset_id}` ({dataset.uri}), training run "
        f"`{trained.training_run_id}`, evaluation run `{report.run_id}`.\n\n"
        + "\n".join(f"- {r}" for r in decision.reasons)
        + f"\n\n{cost_line(trained, report)}\n"
        + "\n| metric | candidate | base | candidate - base [CI] |\n|---|---|---|---|\n"
        + rows,
        key="training-pipeline-summary",
    )
    return PipelineResult(dataset=dataset, trained=trained, evaluation=report, decision=decision)


def cost_line(trained: TrainedAdapter, report: EvaluationReport) -> str:
    """The pipeline's cost: what this run spent on training and evaluation (a reused training
    or evaluation run spent nothing new: its recorded cost is shown beside)."""
    if trained.cost is None or report.cost is None:
        return "Cost: not recorded (a stage's output predates cost accounting)."
    training, training_note = _spent(trained.cost, trained.reused, "trained")
    evaluation, evaluation_note = _spent(report.cost, report.reused, "evaluated")
    return (
        f"Cost: {training.plus(evaluation).line()} in all; training {training.line()}"
        f"{training_note}, evaluation {evaluation.line()}{evaluation_note}."
    )


def _spent(cost: ComputeCost, reused: bool, done: str) -> tuple[ComputeCost, str]:
    """What this run spent on a stage, and a note of the reused run's own cost."""
    if not reused:
        return cost, ""
    return ComputeCost(currency=cost.currency), f" (reused run; it cost {cost.line()} when {done})"
