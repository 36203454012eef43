"""Prefect tasks of the training pipeline: hand one stage's outputs to the next, summarise."""

from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.deployments import run_deployment

from flows.evaluate import EvaluateConfig
from flows.finetune import FinetuneConfig
from flows.promote import PromoteConfig


@task
def configure_finetune(config: FinetuneConfig, manifest: dict[str, Any]) -> FinetuneConfig:
    """The fine-tuning config pointed at the dataset that preparation just produced."""
    return config.model_copy(update={"dataset": str(manifest["path"])})


@task
def configure_evaluation(
    config: EvaluateConfig, manifest: dict[str, Any], trained: dict[str, Any]
) -> EvaluateConfig:
    """The evaluation config pointed at the dataset and the freshly trained adapter."""
    return config.model_copy(
        update={
            "dataset": str(manifest["path"]),
            "adapter_dir": str(trained["adapter_dir"]),
            "base_model": trained["base"]["ref"],
            "training_run_id": trained.get("run_id"),
        }
    )


@task
def configure_promotion(
    config: PromoteConfig, evaluation: dict[str, Any], trained: dict[str, Any]
) -> PromoteConfig:
    """The promotion config pointed at the evaluation run, with the training config's hash."""
    return config.model_copy(
        update={
            "evaluation_run_id": evaluation["run_id"],
            "config_fingerprint": trained.get("config_fingerprint"),
        }
    )


@task
def run_finetune_deployment(deployment: str, config: FinetuneConfig) -> dict[str, Any]:
    """Run fine-tuning as a deployment (e.g. on the GPU pool), wait, return its result.

    The result comes back through Prefect's persisted results, so the worker and this process
    must share result storage (see deployments/).
    """
    flow_run = run_deployment(
        name=deployment, parameters={"config": config.model_dump(mode="json")}, timeout=None
    )
    if flow_run.state is None or not flow_run.state.is_completed():
        raise RuntimeError(f"fine-tuning deployment {deployment} ended in {flow_run.state}")
    return flow_run.state.result()


@task
def publish_pipeline_summary(
    manifest: dict[str, Any],
    trained: dict[str, Any],
    evaluation: dict[str, Any],
    decision: dict[str, Any],
) -> dict[str, Any]:
    """Create the markdown artifact of the whole run; return the summary it shows."""
    candidate, base = evaluation["metrics"]["candidate"], evaluation["metrics"]["base"]
    versus_base = evaluation["intervals"]["base"]
    summary = {
        "dataset_id": manifest["dataset_id"],
        "training_run_id": trained.get("run_id"),
        "evaluation_run_id": evaluation["run_id"],
        "registered_model": decision["registered_model"],
        "version": decision["version"],
        "promoted": decision["promoted"],
        "compared_to": decision["compared_to"],
        "reasons": decision["reasons"],
        "candidate": candidate,
        "base": base,
        "candidate_minus_base": versus_base,
    }
    rows = "\n".join(
        f"| {m} | {candidate[m]:.4f} | {base[m]:.4f} | {ci['diff']:+.4f} "
        f"[{ci['low']:+.4f}, {ci['high']:+.4f}] |"
        for m, ci in versus_base.items()
    )
    verdict = "promoted to champion" if decision["promoted"] else "rejected"
    create_markdown_artifact(
        f"# Training pipeline: {decision['registered_model']} v{decision['version']} {verdict}\n\n"
        f"Dataset `{manifest['dataset_id']}`, training run `{trained.get('run_id')}`, "
        f"evaluation run `{evaluation['run_id']}`.\n\n"
        + "\n".join(f"- {r}" for r in decision["reasons"])
        + "\n\n| metric | candidate | base | candidate - base [CI] |\n|---|---|---|---|\n"
        + rows,
        key="training-pipeline-summary",
    )
    return summary
