"""Compare live traffic with the champion's training data and report drift (Evidently 0.7).

    llmops monitor --profile cpu [--reference-dataset <prepared dataset folder>]

Text descriptors with K-S tests and embedding drift on all-MiniLM sentence embeddings; the
report goes to <home>/monitoring/ (HTML + JSON), MLflow and a Prefect artifact. Drift emits
`llmops.drift.detected`; the run itself succeeds either way.
"""

from typing import Any, ClassVar

from prefect import flow
from pydantic import Field

from llmops.config import FlowConfig
from llmops.monitoring.drift import DriftThresholds
from tasks.feedback import default_inference_log
from tasks.monitoring import (
    check_window_sizes,
    compare_windows,
    drift_result,
    embed_window,
    emit_drift_event,
    load_reference_window,
    load_traffic_window,
    publish_drift_finding,
    resolve_reference_dataset,
    save_drift_report,
    save_monitoring_run,
    select_text_columns,
    summarize_traffic,
)


class MonitorConfig(FlowConfig):
    """Which windows to compare and when a difference counts as drift."""

    profile_dir: ClassVar[str] = "monitor"

    registered_model: str = Field("llmops-assistant", description="MLflow registered model.")
    reference_dataset: str = Field(
        "", description="Prepared dataset folder ('' = the one the champion was trained on)."
    )
    inference_log: str = Field(
        "", description="Folder or s3:// prefix of the inference log ('' = <home>/inference)."
    )
    current_rows: int = Field(500, ge=10, le=100_000, description="Most recent requests compared.")
    reference_rows: int = Field(1000, ge=10, le=100_000, description="Reference sample size.")
    min_rows: int = Field(30, ge=10, le=10_000, description="Smallest window worth testing.")
    embedding_auc_threshold: float = Field(
        0.55, gt=0.5, lt=1.0, description="Domain-classifier ROC AUC above which embeddings drift."
    )
    p_value: float = Field(
        0.05, gt=0.0, lt=0.5, description="K-S p-value below which a descriptor drifts."
    )
    drifted_share: float = Field(
        0.5, gt=0.0, le=1.0, description="Share of drifted descriptors that makes dataset drift."
    )
    seed: int = Field(0, description="Seed of the reference sample.")
    experiment: str = Field("llmops-monitoring", description="MLflow experiment of monitor runs.")


@flow(name="monitor", log_prints=True)
def monitor(config: MonitorConfig) -> dict[str, Any]:
    """Load both windows, run the Evidently report, record and announce the finding."""
    thresholds = DriftThresholds(
        config.embedding_auc_threshold, config.p_value, config.drifted_share
    )
    dataset = resolve_reference_dataset(config.reference_dataset, config.registered_model)
    reference = load_reference_window(dataset, config.reference_rows, config.seed)
    requests, feedback = load_traffic_window(
        config.inference_log or default_inference_log(), config.current_rows
    )
    check_window_sizes(reference, requests, config.min_rows)
    current = select_text_columns(requests)
    snapshot, scores, decision = compare_windows(
        embed_window(reference), embed_window(current), thresholds
    )
    summary = summarize_traffic(requests, feedback)
    report_paths = save_drift_report(snapshot)
    run_id = save_monitoring_run(
        config.experiment, config.registered_model, dataset, scores, summary, decision, report_paths
    )
    publish_drift_finding(decision, scores, summary, report_paths[0], run_id)
    emitted = emit_drift_event(decision, config.registered_model, run_id, report_paths[0])
    return drift_result(decision, run_id, report_paths, emitted)
