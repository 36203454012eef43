"""The main job: prepare -> fine-tune -> evaluate -> promote, as subflows of one parent flow.

    llmops run --profile cpu

Each stage's settings live in its own profile (profiles/<flow>/<profile>.yaml);
profiles/training_pipeline/<profile>.yaml only adds what the pipeline overrides. A second run
with unchanged data and config reuses cached stage results instead of training again.
"""

from typing import Any, ClassVar, Self

from prefect import flow
from pydantic import Field, model_validator

from flows.evaluate import EvaluateConfig, evaluate
from flows.finetune import FinetuneConfig, finetune
from flows.prepare import PrepareConfig, prepare
from flows.promote import PromoteConfig, promote
from llmops.config import FlowConfig, load_profile_data
from tasks.pipeline import (
    configure_evaluation,
    configure_finetune,
    configure_promotion,
    publish_pipeline_summary,
    run_finetune_deployment,
)

STAGES: dict[str, type[FlowConfig]] = {
    "prepare": PrepareConfig,
    "finetune": FinetuneConfig,
    "evaluate": EvaluateConfig,
    "promote": PromoteConfig,
}


class TrainingPipelineConfig(FlowConfig):
    """The four stage configs, plus where fine-tuning runs."""

    profile_dir: ClassVar[str] = "training_pipeline"

    prepare: PrepareConfig = Field(description="Data preparation (sources, contract, split).")
    finetune: FinetuneConfig = Field(description="LoRA fine-tuning.")
    evaluate: EvaluateConfig = Field(description="Evaluation against base and champion.")
    promote: PromoteConfig = Field(description="Registration and the promotion gate.")
    finetune_deployment: str | None = Field(
        None,
        description="Run fine-tuning as this deployment (e.g. on a GPU pool) instead of "
        "in-process: 'flow-name/deployment-name'.",
    )

    @classmethod
    def from_profile(cls, profile: str = "cpu", **overrides: Any) -> Self:
        """Compose each stage from profiles/<stage>/<profile>.yaml, then the pipeline
        profile's per-stage keys, then `overrides` (per-stage dicts or top-level fields)."""
        data = load_profile_data(cls.profile_dir, profile)
        for stage, stage_config in STAGES.items():
            keys = {**data.get(stage, {}), **(overrides.pop(stage, None) or {})}
            data[stage] = stage_config.from_profile(profile, **keys)
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(data)

    @model_validator(mode="after")
    def _stages_agree(self) -> Self:
        if self.evaluate.base_model != self.finetune.base_model:
            raise ValueError(
                f"evaluate.base_model {self.evaluate.base_model!r} differs from "
                f"finetune.base_model {self.finetune.base_model!r}"
            )
        if self.evaluate.registered_model != self.promote.registered_model:
            raise ValueError(
                f"evaluate.registered_model {self.evaluate.registered_model!r} differs from "
                f"promote.registered_model {self.promote.registered_model!r}"
            )
        return self


@flow(name="training-pipeline", log_prints=True)
def training_pipeline(config: TrainingPipelineConfig) -> dict[str, Any]:
    """Prepare the data, fine-tune, evaluate, gate/promote; return what happened."""
    manifest = prepare(config.prepare)
    finetune_config = configure_finetune(config.finetune, manifest)
    if config.finetune_deployment:
        trained = run_finetune_deployment(config.finetune_deployment, finetune_config)
    else:
        trained = finetune(finetune_config)
    evaluation = evaluate(configure_evaluation(config.evaluate, manifest, trained))
    decision = promote(configure_promotion(config.promote, evaluation, trained))
    return publish_pipeline_summary(manifest, trained, evaluation, decision)
