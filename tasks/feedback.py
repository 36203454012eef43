"""Feedback tasks: export rated/corrected answers as training data, and the feedback event."""

import json
import posixpath
from typing import Any

import fsspec
from prefect import task
from prefect.events import emit_event

from llmops.home import home_path
from llmops.serving.feedback import feedback_training_records
from llmops.serving.store import InferenceStore


def default_inference_log() -> str:
    """Where the inference log lives unless configured: <home>/inference."""
    return str(home_path("inference"))


@task
def export_feedback(inference_log: str, output_path: str, min_score: float = 1.0) -> dict[str, Any]:
    """Write corrected and highly rated answers as JSON Lines records ({id, messages}) at
    `output_path`, the input format `llmops prepare` ingests; returns the count and path."""
    store = InferenceStore(inference_log)
    records = feedback_training_records(store.read_requests(), store.read_feedback(), min_score)
    lines = "".join(
        json.dumps({"id": r.record_id, "messages": list(r.messages)}, ensure_ascii=False) + "\n"
        for r in records.itertuples(index=False)
    )
    fs, path = fsspec.core.url_to_fs(output_path)
    fs.makedirs(posixpath.dirname(path), exist_ok=True)
    with fs.open(path, "w", encoding="utf-8") as handle:
        handle.write(lines)
    return {"records": len(records), "path": output_path}


def emit_feedback_event(row: dict[str, Any], model_name: str) -> None:
    """Emit `llmops.feedback.received` for one stored feedback, the model version in its resource.

    A plain function, not a task: the server calls it per feedback from its request handler.
    """
    emit_event(
        event="llmops.feedback.received",
        resource={
            "prefect.resource.id": f"llmops.model.{model_name}.{row['model_version']}",
            "llmops.model.name": model_name,
            "llmops.model.version": str(row["model_version"]),
        },
        payload={
            "request_id": row["request_id"],
            "rating": row["rating"],
            "score": row["score"],
            "has_correction": row["correction"] is not None,
        },
    )
