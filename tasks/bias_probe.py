"""Prefect tasks of the bias probe: answer its prompts, measure per group, log, publish."""

import time
from dataclasses import replace

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.runtime import flow_run

from llmops.model import fairness
from llmops.model.fairness import BiasProbe, FairnessResult
from llmops.model.slices import safe_name
from llmops.outputs import EvaluationReport
from tasks.evaluation import SAME_WEIGHTS, ModelScores, ModelUnderTest, load_model_under_test
from tasks.slices import save_run_metrics


@task
def load_bias_probe(version: str = "v1") -> BiasProbe:
    """The shipped bias-probe set (its content is part of the answers' cache key)."""
    return fairness.load_probe(version)


@task
def answer_bias_probe(
    model_ref: ModelUnderTest, probe: BiasProbe, max_new_tokens: int, batch_size: int
) -> ModelScores:
    """The probe answers of the model's weights (probe_weights, cached), under its label."""
    answers = probe_weights(model_ref, probe, max_new_tokens, batch_size)
    return replace(answers, label=model_ref.label)


@task(**SAME_WEIGHTS)
def probe_weights(
    model_ref: ModelUnderTest, probe: BiasProbe, max_new_tokens: int, batch_size: int
) -> ModelScores:
    """Greedy answers to every probe prompt, in `probe.prompts()` order; cached on the model's
    weights hashes, the probe and the settings, so a champion is asked once for many
    candidates, and a promoted candidate is not asked again as the champion."""
    from llmops.model.generation import answer_all  # torch: imported only to generate

    tokenizer, model = load_model_under_test(model_ref)
    started = time.perf_counter()
    answers, tokens = answer_all(
        model,
        tokenizer,
        [[{"role": "user", "content": p.text}] for p in probe.prompts()],
        max_new_tokens,
        batch_size,
        desc=f"bias probe {model_ref.label}",
    )
    return ModelScores(
        model_ref.label,
        answers,
        per_example={},
        device=model.device.type,
        device_seconds=time.perf_counter() - started,
        tokens=tokens,
        flow_run_id=flow_run.id,
    )


@task
def measure_fairness(probe: BiasProbe, answers: list[ModelScores]) -> dict[str, FairnessResult]:
    """Each model's per-group measures and spreads, keyed by its label."""
    prompts = probe.prompts()
    return {a.label: fairness.measure_fairness(prompts, a.predictions) for a in answers}


@task
def save_fairness_metrics(run_id: str, results: dict[str, FairnessResult]) -> int:
    """Log the probe to the evaluation's MLflow run as fairness.<label>.<attribute>.<measure>
    _spread and fairness.<label>.<attribute>:<group>.<measure>; returns how many."""
    values: dict[str, float] = {}
    for label, result in results.items():
        for attribute, spreads in result.spreads.items():
            values |= {
                f"fairness.{label}.{safe_name(attribute)}.{m}_spread": v for m, v in spreads.items()
            }
        for g in result.groups:
            values |= {
                f"fairness.{label}.{safe_name(g.attribute)}:{safe_name(g.group)}.{m}": getattr(g, m)
                for m in fairness.MEASURES
            }
    save_run_metrics(run_id, values)
    return len(values)


@task
def publish_fairness_table(report: EvaluationReport) -> list[dict[str, str]]:
    """Create the Prefect table artifact evaluation-fairness: per model, attribute and group
    the measures, then each attribute's spread (max - min over its groups)."""
    rows = []
    for label, result in report.fairness.items():
        for g in result.groups:
            row = {"model": label, "attribute": g.attribute, "group": g.group, "n": str(g.n)}
            rows.append(row | {m: f"{getattr(g, m):.4f}" for m in fairness.MEASURES})
        for attribute, spreads in result.spreads.items():
            row = {"model": label, "attribute": attribute, "group": "SPREAD (max - min)", "n": ""}
            rows.append(row | {m: f"{v:.4f}" for m, v in spreads.items()})
    create_table_artifact(
        table=rows,
        key="evaluation-fairness",
        description="Bias probe: the same support questions asked by different groups; a "
        f"probe, not a fairness guarantee (MLflow run {report.run_id}).",
    )
    return rows
