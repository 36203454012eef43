"""Monitoring tasks: load the reference and current windows, run Evidently, record the finding."""

import posixpath
import tempfile
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from evidently.core.report import Snapshot
from prefect import task
from prefect.artifacts import create_link_artifact, create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event

from llmops import store
from llmops.datasets import read_dataset, read_split
from llmops.model.registry import CHAMPION, alias_version, version_tags
from llmops.monitoring.drift import (
    DriftDecision,
    DriftThresholds,
    build_drift_report,
    decide_drift,
    report_scores,
    traffic_summary,
    with_embeddings,
)
from llmops.monitoring.embeddings import embed_texts
from llmops.outputs import DatasetRef
from llmops.records import prompt_messages, reference_response
from llmops.serving.store import InferenceStore, Purged
from llmops.tracking import ensure_experiment
from tasks.policy import STORE_RETRIES


def _last_user_turn(messages: list[dict[str, str]]) -> str:
    """What the user asked last: the text that drifts when traffic changes topic."""
    return next(m["content"] for m in reversed(list(messages)) if m["role"] == "user")


@task(**STORE_RETRIES)
def resolve_reference_dataset(
    reference_dataset: str, registered_model: str, store_url: str
) -> DatasetRef:
    """The reference dataset: as configured, else the one the champion was trained on."""
    if reference_dataset:
        return read_dataset(reference_dataset)
    version = alias_version(registered_model, CHAMPION)
    if version is None:
        raise ValueError(f"no reference_dataset given and {registered_model!r} has no champion")
    tags = version_tags(registered_model, version)
    if tags.get("dataset_uri"):
        return read_dataset(tags["dataset_uri"])
    if not tags.get("dataset_id"):
        raise ValueError(
            f"champion version {version} has no dataset_id tag; give reference_dataset"
        )
    # Versions registered before dataset URIs were recorded: the dataset's place in the store.
    return read_dataset(store.join(store_url, "datasets", tags["dataset_id"]))


@task(**STORE_RETRIES)
def load_reference_window(dataset: DatasetRef, max_rows: int, seed: int) -> pd.DataFrame:
    """Prompt/response pairs of the dataset's train and eval splits (sampled to max_rows)."""
    records = pd.concat(
        [read_split(dataset, split) for split in ("train", "eval")], ignore_index=True
    )
    if len(records) > max_rows:
        records = records.sample(max_rows, random_state=seed)
    return pd.DataFrame(
        {
            "prompt": [_last_user_turn(prompt_messages(list(m))) for m in records["messages"]],
            "response": [reference_response(list(m)) for m in records["messages"]],
        }
    )


@task(**STORE_RETRIES)
def purge_expired_traffic(inference_log: str, retention_days: int) -> dict[str, Purged]:
    """Delete inference log and feedback parts older than `retention_days`, and raw-text parts
    past the keep-until date the server gave them; what went, by area."""
    today = datetime.now(UTC).date()
    return InferenceStore(inference_log).purge_expired(retention_days, today)


@task
def publish_retention(purged: dict[str, Purged], retention_days: int) -> None:
    """A markdown artifact counting the parts and records the retention pass deleted."""
    lines = [
        f"## Retention: {sum(p.records for p in purged.values())} records deleted",
        "",
        f"Inference log and feedback are kept {retention_days} days; raw text until the "
        "keep-until date the server gave it.",
        "",
        "| area | parts deleted | records deleted |",
        "|---|---|---|",
        *(f"| {area} | {p.parts} | {p.records} |" for area, p in purged.items()),
    ]
    create_markdown_artifact(
        "\n".join(lines), key="inference-retention", description="Expired inference data deleted"
    )


@task
def load_traffic_window(inference_log: str, max_rows: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The most recent `max_rows` chat requests of the inference log, and all feedback."""
    store = InferenceStore(inference_log)
    requests = store.read_answers()
    requests = requests[requests["endpoint"] == "chat"].tail(max_rows).reset_index(drop=True)
    return requests, store.read_feedback()


@task
def check_window_sizes(reference: pd.DataFrame, requests: pd.DataFrame, min_rows: int) -> None:
    """Fail clearly when either window is too small for a meaningful drift test."""
    for name, frame in (("reference", reference), ("current", requests)):
        if len(frame) < min_rows:
            raise ValueError(
                f"the {name} window has {len(frame)} rows; drift needs at least {min_rows}"
            )


@task
def embed_window(frame: pd.DataFrame) -> pd.DataFrame:
    """Prompt/response frame plus sentence-embedding columns of the prompts."""
    return with_embeddings(frame, embed_texts(frame["prompt"].tolist()))


@task(cache_policy=NO_CACHE)
def compare_windows(
    reference: pd.DataFrame, current: pd.DataFrame, thresholds: DriftThresholds
) -> tuple[Snapshot, dict[str, float], DriftDecision]:
    """Run the Evidently report and decide whether the current window drifted."""
    snapshot = build_drift_report(reference, current, thresholds)
    scores = report_scores(snapshot)
    return snapshot, scores, decide_drift(scores, thresholds)


@task
def summarize_traffic(requests: pd.DataFrame, feedback: pd.DataFrame) -> dict[str, float]:
    """Latency, response length and feedback rates of the current window."""
    return traffic_summary(requests, feedback)


@task(cache_policy=NO_CACHE)
def save_drift_report(snapshot: Snapshot, store_url: str) -> tuple[str, str]:
    """Write the report as HTML and JSON to <store>/monitoring/; returns both URIs."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    uris = []
    with tempfile.TemporaryDirectory() as scratch:
        for suffix, save in (("html", snapshot.save_html), ("json", snapshot.save_json)):
            local = Path(scratch) / f"drift-{stamp}.{suffix}"
            save(str(local))
            uri = store.join(store_url, "monitoring", local.name)
            store.write_bytes(uri, local.read_bytes())
            uris.append(uri)
    return uris[0], uris[1]


@task
def save_monitoring_run(
    experiment: str,
    registered_model: str,
    reference_dataset: DatasetRef,
    scores: dict[str, float],
    summary: dict[str, float],
    decision: DriftDecision,
    report_paths: tuple[str, str],
) -> str:
    """Log scores, traffic summary and the report to an MLflow run; returns its id."""
    experiment_id = ensure_experiment(experiment)
    version = alias_version(registered_model, CHAMPION) or ""
    with mlflow.start_run(experiment_id=experiment_id, run_name="drift-monitor") as run:
        mlflow.set_tags(
            {
                "registered_model": registered_model,
                "champion_version": version,
                "reference_dataset": reference_dataset.uri,
                "drift_detected": str(decision.drift_detected).lower(),
            }
        )
        mlflow.log_metrics({**scores, **{f"traffic.{k}": v for k, v in summary.items()}})
        mlflow.log_metric("drift_detected", float(decision.drift_detected))
        for uri in report_paths:
            mlflow.log_text(store.read_text(uri), f"evidently/{posixpath.basename(uri)}")
    return run.info.run_id


@task
def publish_drift_finding(
    decision: DriftDecision,
    scores: dict[str, float],
    summary: dict[str, float],
    report_html: str,
    run_id: str,
) -> None:
    """A markdown artifact with the verdict and numbers, and a link to the Evidently report."""
    verdict = "**Drift detected**" if decision.drift_detected else "No drift"
    lines = [f"## {verdict}", "", *(f"- {r}" for r in decision.reasons), ""]
    lines += ["| measure | value |", "|---|---|"]
    lines += [f"| {k} | {v:.4g} |" for k, v in {**scores, **summary}.items()]
    lines += ["", f"MLflow run: `{run_id}`", f"Report: `{report_html}`"]
    create_markdown_artifact("\n".join(lines), key="drift-finding", description=verdict)
    create_link_artifact(
        store.browser_url(report_html), link_text="Evidently drift report", key="drift-report"
    )


@task
def emit_drift_event(
    decision: DriftDecision, registered_model: str, run_id: str, report_html: str
) -> bool:
    """Emit `llmops.drift.detected` when drift was found; returns whether it emitted."""
    if not decision.drift_detected:
        return False
    version = alias_version(registered_model, CHAMPION) or "none"
    emit_event(
        event="llmops.drift.detected",
        resource={
            "prefect.resource.id": f"llmops.model.{registered_model}.{version}",
            "llmops.model.name": registered_model,
            "llmops.model.version": version,
        },
        payload={
            "reason": "; ".join(decision.reasons),
            "embedding_auc": decision.embedding_auc,
            "drifted_descriptors": decision.drifted_descriptors,
            "mlflow_run_id": run_id,
            "report": report_html,
        },
    )
    return True


def drift_result(
    decision: DriftDecision,
    run_id: str,
    report_paths: tuple[str, str],
    emitted: bool,
    purged: dict[str, Purged],
) -> dict[str, Any]:
    """What the monitor flow returns."""
    return {
        "drift_detected": decision.drift_detected,
        "reasons": decision.reasons,
        "embedding_auc": decision.embedding_auc,
        "drifted_descriptors": decision.drifted_descriptors,
        "run_id": run_id,
        "report_html": report_paths[0],
        "report_json": report_paths[1],
        "event_emitted": emitted,
        "retention": {area: asdict(p) for area, p in purged.items()},
    }


@task
def select_text_columns(requests: pd.DataFrame) -> pd.DataFrame:
    """The prompt/response frame of logged chat requests."""
    return pd.DataFrame(
        {
            "prompt": [_last_user_turn(m) for m in requests["messages"]],
            "response": requests["response"].fillna("").tolist(),
        }
    )
