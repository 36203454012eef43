"""Compare live traffic with the champion's training data and report drift (Evidently 0.7).

    llmops monitor --profile cpu [--reference-dataset <prepared dataset folder>]

Text descriptors with K-S tests and embedding drift on all-MiniLM sentence embeddings; the
report goes to <home>/monitoring/ (HTML + JSON), MLflow and a Prefect artifact. Drift emits
`llmops.drift.detected`; the run itself succeeds either way. First it deletes inference data
older than `retention_days` (and raw text past its keep-until date), counted in an artifact.
"""

from typing import Any

from prefect import flow

from llmops.flow_configs import MonitorConfig
from llmops.monitoring.drift import DriftThresholds
from tasks.monitoring import (
    check_window_sizes,
    compare_windows,
    drift_result,
    embed_window,
    emit_drift_event,
    load_reference_window,
    load_traffic_window,
    publish_drift_finding,
    publish_retention,
    purge_expired_traffic,
    resolve_reference_dataset,
    save_drift_report,
    save_monitoring_run,
    select_text_columns,
    summarize_traffic,
)


@flow(name="monitor", log_prints=True)
def monitor(config: MonitorConfig) -> dict[str, Any]:
    """Load both windows, run the Evidently report, record and announce the finding."""
    # First, so expired traffic is gone even when the drift check below finds too little left.
    purged = purge_expired_traffic(config.inference_log_url(), config.retention_days)
    publish_retention(purged, config.retention_days)
    thresholds = DriftThresholds(
        config.embedding_auc_threshold, config.p_value, config.drifted_share
    )
    dataset = resolve_reference_dataset(
        config.reference_dataset, config.registered_model, config.store_url()
    )
    reference = load_reference_window(dataset, config.reference_rows, config.seed)
    requests, feedback = load_traffic_window(config.inference_log_url(), config.current_rows)
    check_window_sizes(reference, requests, config.min_rows)
    current = select_text_columns(requests)
    snapshot, scores, decision = compare_windows(
        embed_window(reference), embed_window(current), thresholds
    )
    summary = summarize_traffic(requests, feedback)
    report_paths = save_drift_report(snapshot, config.store_url())
    run_id = save_monitoring_run(
        config.experiment, config.registered_model, dataset, scores, summary, decision, report_paths
    )
    publish_drift_finding(decision, scores, summary, report_paths[0], run_id)
    emitted = emit_drift_event(decision, config.registered_model, run_id, report_paths[0])
    return drift_result(decision, run_id, report_paths, emitted, purged)
