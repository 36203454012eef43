"""Tasks of the retraining flow: turn why a run started into a training-pipeline config."""

from prefect import task

from llmops.flow_configs import TrainingPipelineConfig


@task
def plan_retraining(
    profile: str,
    new_data: list[str],
    feedback_file: str | None,
    finetune_deployment: str | None,
    store: str | None,
) -> TrainingPipelineConfig:
    """The pipeline config of `profile` on `store`, its sources extended by landed data and
    feedback."""
    config = TrainingPipelineConfig.from_profile(
        profile, finetune_deployment=finetune_deployment, store=store
    )
    extra = [*new_data, *([feedback_file] if feedback_file else [])]
    prepare = config.prepare.model_copy(update={"sources": [*config.prepare.sources, *extra]})
    return config.model_copy(update={"prepare": prepare})
