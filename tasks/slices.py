"""Prefect tasks of per-slice evaluation: group the scores already computed, log, publish."""

import time

import pandas as pd
from mlflow.entities import Metric
from prefect import task
from prefect.artifacts import create_table_artifact

from llmops.model import slices
from llmops.model.slices import SliceResult
from llmops.outputs import EvaluationReport
from llmops.records import reference_response
from llmops.tracking import mlflow_client
from tasks.evaluation import ModelScores


@task
def measure_slices(
    records: pd.DataFrame,
    fields: list[str],
    scores: list[ModelScores],
    compared_to: str,
    length_bounds: tuple[int, int],
    confidence: float,
    n_resamples: int,
) -> list[SliceResult]:
    """Each slice's count, every model's means and the CIs of candidate minus `compared_to`,
    from the per-example scores (no generation); slices are the dataset's slice fields plus
    reference-answer length buckets."""
    metadata = records["metadata"].tolist() if "metadata" in records else [None] * len(records)
    references = [reference_response(list(m)) for m in records["messages"]]
    members = slices.slice_members(metadata, references, fields, length_bounds)
    per_example = {s.label: s.per_example for s in scores}
    return slices.slice_results(members, per_example, compared_to, confidence, n_resamples)


@task
def save_slice_metrics(run_id: str, results: list[SliceResult]) -> int:
    """Log every slice's count, means and CIs to the evaluation's MLflow run as
    slice.<field>:<value>.<label|diff_vs_other>.<metric>; returns how many were logged."""
    values: dict[str, float] = {}
    for result in results:
        key = slices.mlflow_key(result.field, result.value)
        values[f"{key}.count"] = result.count
        for label, means in result.means.items():
            values |= {f"{key}.{label}.{m}": v for m, v in means.items()}
        for metric, ci in result.intervals.items():
            prefix = f"{key}.diff_vs_{result.compared_to}.{metric}"
            values |= {prefix: ci.diff, f"{prefix}.ci_low": ci.low, f"{prefix}.ci_high": ci.high}
    save_run_metrics(run_id, values)
    return len(values)


@task
def publish_slice_table(report: EvaluationReport) -> list[dict[str, str]]:
    """Create the Prefect table artifact evaluation-slices: one row per slice and directional
    metric, with each model's mean and the CI of the candidate's gain."""
    rows = []
    for result in report.slices:
        for metric, ci in result.intervals.items():
            row = {"slice": result.name, "n": str(result.count), "metric": metric}
            # A judged metric (win_rate) exists for the candidate and the champion only.
            row |= {
                label: f"{means[metric]:.4f}"
                for label, means in result.means.items()
                if metric in means
            }
            row[f"candidate - {result.compared_to}"] = (
                f"{ci.diff:+.4f} [{ci.low:+.4f}, {ci.high:+.4f}]"
            )
            rows.append(row)
    create_table_artifact(
        table=rows,
        key="evaluation-slices",
        description=f"Per-slice results vs {report.compared_to}: contract slice fields and "
        f"reference-answer length buckets (MLflow run {report.run_id}).",
    )
    return rows


def save_run_metrics(run_id: str, values: dict[str, float]) -> None:
    """Log metrics to an existing MLflow run in batches (without reopening it)."""
    timestamp = int(time.time() * 1000)
    metrics = [Metric(k, float(v), timestamp, 0) for k, v in values.items()]
    mlflow_client().log_batch(run_id, metrics=metrics)
