"""Tasks of the retraining flow: turn why a run started into a training-pipeline config."""

from prefect import task

from llmops.flow_configs import PAIRS_CONTRACT, TrainingPipelineConfig


@task
def plan_retraining(
    profile: str,
    new_data: list[str],
    feedback_file: str | None,
    finetune_deployment: str | None,
    store: str | None,
    method: str = "sft",
    pairs_contract: str = PAIRS_CONTRACT,
) -> TrainingPipelineConfig:
    """The pipeline config of `profile` on `store`: for sft its sources extended by landed data
    and feedback records; for dpo the feedback pairs and landed pair files alone, under
    `pairs_contract`, preference-tuned on the champion and gated on the preference margin."""
    config = TrainingPipelineConfig.from_profile(
        profile, finetune_deployment=finetune_deployment, store=store
    )
    extra = [*new_data, *([feedback_file] if feedback_file else [])]
    if method == "sft":
        prepare = config.prepare.model_copy(update={"sources": [*config.prepare.sources, *extra]})
        return config.model_copy(update={"prepare": prepare})
    if not extra:
        raise ValueError("a dpo retrain needs preference pairs: none were exported or landed")
    # Pairs from live feedback judge the answers the champion gave, so the result is a delta
    # on the champion (trained from the base when there is none yet), and it must show that it
    # prefers the chosen answers more: the margin, not ROUGE against the chosen text.
    stages = config.model_dump()
    stages["prepare"] |= {"sources": extra, "contract": pairs_contract}
    stages["finetune"] |= {
        "method": "dpo",
        "dpo_reference": "champion",
        "registered_model": config.promote.registered_model,
    }
    stages["promote"]["gate"]["primary_metric"] = "preference_margin"
    return TrainingPipelineConfig.model_validate(stages)
