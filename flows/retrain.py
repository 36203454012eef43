"""Retraining: what the schedules and event triggers start (prefect.yaml `retrain`).

    llmops retrain --reason manual --new-data data/landing/batch1.jsonl

It exports human feedback to training records, then runs the training pipeline on the
profile's sources plus newly landed data plus that feedback. The run is named after why it
started (the triggering event), so the Prefect UI answers "why did this retrain?".
"""

from typing import Any, ClassVar

from prefect import flow
from prefect.runtime import flow_run
from pydantic import Field, field_validator

from flows.training_pipeline import training_pipeline
from llmops.config import FlowConfig
from llmops.home import home_path
from tasks.feedback import default_inference_log, export_feedback
from tasks.retrain import plan_retraining


class RetrainConfig(FlowConfig):
    """Why this run started, which new data it brings, and the pipeline profile to use."""

    profile_dir: ClassVar[str] = "retrain"

    reason: str = Field("manual", description="Why it runs: an event name, 'schedule', 'manual'.")
    # A string too: an event trigger passes the one landed path, and the server checks it
    # against this schema before any validator of ours runs.
    new_data: list[str] | str = Field(
        default_factory=list, description="Newly landed file(s) or prefixes to add to the sources."
    )
    profile: str = Field("cpu", description="Profile of the training pipeline's stages.")
    include_feedback: bool = Field(True, description="Add exported human feedback as data.")
    finetune_deployment: str | None = Field(
        None, description="Hand fine-tuning to this deployment (e.g. finetune/finetune-gpu)."
    )

    @field_validator("new_data", mode="after")
    @classmethod
    def _one_path_is_a_list(cls, value: list[str] | str) -> list[str]:
        """An event trigger passes one landed path as a string."""
        return [value] if isinstance(value, str) else value


def retrain_run_name() -> str:
    """`retrain: <reason>` from the run's parameters (a dict when started from an event)."""
    config = flow_run.parameters.get("config", {})
    reason = config.get("reason") if isinstance(config, dict) else config.reason
    return f"retrain: {reason or 'manual'}"


@flow(name="retrain", flow_run_name=retrain_run_name, log_prints=True)
def retrain(config: RetrainConfig) -> dict[str, Any]:
    """Export feedback, then run the training pipeline on base + new data + feedback."""
    feedback = (
        export_feedback(default_inference_log(), str(home_path("feedback", "export.jsonl")))
        if config.include_feedback
        else None
    )
    pipeline_config = plan_retraining(
        config.profile,
        config.new_data,
        feedback["path"] if feedback and feedback["records"] else None,
        config.finetune_deployment,
    )
    return training_pipeline(pipeline_config)
