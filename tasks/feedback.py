"""Feedback tasks: export rated/corrected answers as training data, and the feedback event."""

import json
from typing import Any

from prefect import task
from prefect.events import emit_event

from llmops import store
from llmops.serving.feedback import feedback_training_records
from llmops.serving.store import InferenceStore


@task
def export_feedback(inference_log: str, output_url: str, min_score: float = 1.0) -> int:
    """Write corrected and highly rated answers as JSON Lines records ({id, messages}) at
    `output_url`, the input format `llmops prepare` ingests; returns how many."""
    log = InferenceStore(inference_log)
    records = feedback_training_records(log.read_answers(), log.read_feedback(), min_score)
    lines = "".join(
        json.dumps({"id": r.record_id, "messages": list(r.messages)}, ensure_ascii=False) + "\n"
        for r in records.itertuples(index=False)
    )
    store.write_text(output_url, lines)
    return len(records)


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
