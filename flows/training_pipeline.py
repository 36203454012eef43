"""The main job: prepare -> fine-tune -> evaluate -> promote, as subflows of one parent flow.

    llmops run --profile cpu

Each stage's settings live in its own profile (profiles/<flow>/<profile>.yaml);
profiles/training_pipeline/<profile>.yaml only adds what the pipeline overrides. Stages hand
each other typed outputs that name artifacts by URI (llmops/outputs.py), so fine-tuning can run
as a deployment on a GPU host that shares no disk with this one. A second run with unchanged
data and config reuses the stored dataset and the finished fine-tuning run.
"""

from prefect import flow

from flows.evaluate import evaluate
from flows.finetune import finetune
from flows.prepare import prepare
from flows.promote import promote
from llmops.flow_configs import TrainingPipelineConfig
from llmops.outputs import PipelineResult
from tasks.pipeline import (
    configure_evaluation,
    configure_finetune,
    configure_promotion,
    publish_pipeline_summary,
    run_finetune_deployment,
)


@flow(name="training-pipeline", log_prints=True)
def training_pipeline(config: TrainingPipelineConfig) -> PipelineResult:
    """Prepare the data, fine-tune, evaluate, gate/promote; return what each stage made."""
    dataset = prepare(config.prepare)
    finetune_config = configure_finetune(config.finetune, dataset)
    if config.finetune_deployment:
        trained = run_finetune_deployment(config.finetune_deployment, finetune_config)
    else:
        trained = finetune(finetune_config)
    report = evaluate(configure_evaluation(config.evaluate, dataset, trained))
    decision = promote(configure_promotion(config.promote, report))
    return publish_pipeline_summary(dataset, trained, report, decision)
