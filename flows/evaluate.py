"""Evaluate a fine-tuned candidate against the base model and the current champion.

    llmops evaluate --dataset <prepared dataset folder> --adapter <adapter folder>

Same held-out examples and greedy decoding for every model; metrics with paired bootstrap
confidence intervals go to MLflow (metrics, per-example table, dataset input) and to a
Prefect table artifact.
"""

from typing import Any, ClassVar

from prefect import flow
from pydantic import Field

from llmops.config import FlowConfig
from tasks.evaluation import (
    ModelUnderTest,
    compare_scores,
    describe_candidate,
    interval_dict,
    load_champion,
    load_eval_split,
    publish_evaluation_table,
    save_evaluation_run,
    score_model,
    summarize_scores,
)


class EvaluateConfig(FlowConfig):
    """Settings of one evaluation: what to compare, on how many examples, how to decode."""

    profile_dir: ClassVar[str] = "evaluate"

    dataset: str = Field("", description="Prepared dataset folder (holds manifest.json).")
    adapter_dir: str = Field("", description="The candidate's LoRA adapter folder.")
    base_model: str = Field(
        "smollm2-135m-instruct", description="Base model ref the candidate was trained on."
    )
    registered_model: str = Field(
        "llmops-assistant", description="MLflow registered model whose champion is compared."
    )
    training_run_id: str | None = Field(None, description="MLflow run that trained the candidate.")
    max_examples: int | None = Field(
        None, ge=1, description="Evaluate the first N held-out examples (None: all)."
    )
    max_new_tokens: int = Field(64, ge=1, le=2048, description="Generation budget per answer.")
    batch_size: int = Field(8, ge=1, le=256, description="Examples per generate/loss batch.")
    confidence: float = Field(0.95, gt=0.5, lt=1.0, description="Bootstrap confidence level.")
    n_resamples: int = Field(1000, ge=100, le=100_000, description="Bootstrap resamples.")
    experiment: str = Field("llmops-evaluation", description="MLflow experiment of eval runs.")


@flow(name="evaluate", log_prints=True)
def evaluate(config: EvaluateConfig) -> dict[str, Any]:
    """Score candidate, base and champion on the held-out split; log and return the results."""
    dataset_id, records = load_eval_split(config.dataset, config.max_examples)
    candidate_ref = describe_candidate(config.base_model, config.adapter_dir)
    champion_ref = load_champion(config.registered_model)
    decoding = (records, config.max_new_tokens, config.batch_size)
    candidate = score_model(candidate_ref, *decoding)
    base = score_model(ModelUnderTest("base", config.base_model), *decoding)
    bootstrap = (config.confidence, config.n_resamples)
    intervals = {"base": compare_scores(candidate, base, *bootstrap)}
    scores = [candidate, base]
    if champion_ref is not None:
        champion = score_model(champion_ref, *decoding)
        intervals["champion"] = compare_scores(candidate, champion, *bootstrap)
        scores.append(champion)
    summaries = summarize_scores(scores)
    run_id = save_evaluation_run(
        config.experiment,
        config.dataset,
        dataset_id,
        records,
        scores,
        intervals,
        candidate_ref,
        champion_ref,
        config.training_run_id,
    )
    publish_evaluation_table(summaries, intervals, run_id)
    return {
        "dataset_id": dataset_id,
        "run_id": run_id,
        "examples": len(records),
        "champion_version": champion_ref.version if champion_ref else None,
        "metrics": summaries,
        "intervals": {other: interval_dict(by_metric) for other, by_metric in intervals.items()},
    }
