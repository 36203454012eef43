"""Retraining: what the schedules and event triggers start (prefect.yaml `retrain`).

    llmops retrain --reason manual --new-data data/landing/batch1.jsonl

It exports human feedback to training records, then runs the training pipeline on the
profile's sources plus newly landed data plus that feedback. With `method: dpo` (the trigger
on llmops.preference.recorded) it exports preference pairs instead and preference-tunes the
champion on them. The run is named after why it
started (the triggering event), so the Prefect UI answers "why did this retrain?".
"""

from prefect import flow
from prefect.runtime import flow_run

from flows.training_pipeline import training_pipeline
from llmops.flow_configs import RetrainConfig
from llmops.outputs import PipelineResult
from tasks.feedback import export_feedback, export_preference_pairs
from tasks.retrain import plan_retraining


def retrain_run_name() -> str:
    """`retrain: <reason>` from the run's parameters (a dict when started from an event)."""
    config = flow_run.parameters.get("config", {})
    reason = config.get("reason") if isinstance(config, dict) else config.reason
    return f"retrain: {reason or 'manual'}"


@flow(name="retrain", flow_run_name=retrain_run_name, log_prints=True)
def retrain(config: RetrainConfig) -> PipelineResult:
    """Export feedback, then run the training pipeline on base + new data + feedback records,
    or (method dpo) preference-tune on the feedback pairs."""
    export = export_preference_pairs if config.method == "dpo" else export_feedback
    exported = (
        export(config.inference_log_url(), config.feedback_export_url())
        if config.include_feedback
        else 0
    )
    pipeline_config = plan_retraining(
        config.profile,
        config.new_data,
        config.feedback_export_url() if exported else None,
        config.finetune_deployment,
        config.store,
        config.method,
        config.pairs_contract,
    )
    return training_pipeline(pipeline_config)
