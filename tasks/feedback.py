"""Feedback tasks: export rated/corrected answers as training data or preference pairs, and the
feedback events."""

import json
from typing import Any

from prefect import task
from prefect.events import emit_event

from llmops import store
from llmops.serving.feedback import (
    feedback_preference_pairs,
    feedback_training_records,
    preference_signal,
)
from llmops.serving.store import InferenceStore


@task
def export_feedback(inference_log: str, output_url: str, min_score: float = 1.0) -> int:
    """Write corrected and highly rated answers as JSON Lines records ({id, messages}) at
    `output_url`, the input format `llmops prepare` ingests; returns how many."""
    log = InferenceStore(inference_log)
    records = feedback_training_records(log.read_answers(), log.read_feedback(), min_score)
    rows = [
        {"id": r.record_id, "messages": list(r.messages)} for r in records.itertuples(index=False)
    ]
    return _save_jsonl(output_url, rows)


@task
def export_preference_pairs(
    inference_log: str, output_url: str, min_score: float = 1.0, max_rejected_score: float = 0.0
) -> int:
    """Write preference pairs ({id, messages, chosen, rejected}) from corrections and from up-
    vs down-rated answers to one prompt as JSON Lines at `output_url`; returns how many."""
    log = InferenceStore(inference_log)
    pairs = feedback_preference_pairs(
        log.read_answers(), log.read_feedback(), min_score, max_rejected_score
    )
    return _save_jsonl(output_url, pairs)


def _save_jsonl(output_url: str, rows: list[dict]) -> int:
    store.write_text(output_url, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return len(rows)


def emit_feedback_event(row: dict[str, Any], model_name: str) -> None:
    """Emit `llmops.feedback.received` for one stored feedback, the model version in its
    resource, and `llmops.preference.recorded` too when it is a preference signal (a correction
    or a thumbs up/down; counted by the dpo retrain trigger).

    A plain function, not a task: the server calls it per feedback from its request handler.
    """
    resource = {
        "prefect.resource.id": f"llmops.model.{model_name}.{row['model_version']}",
        "llmops.model.name": model_name,
        "llmops.model.version": str(row["model_version"]),
    }
    emit_event(
        event="llmops.feedback.received",
        resource=resource,
        payload={
            "request_id": row["request_id"],
            "rating": row["rating"],
            "score": row["score"],
            "has_correction": row["correction"] is not None,
        },
    )
    signal = preference_signal(row["correction"], row["score"])
    if signal:
        emit_event(
            event="llmops.preference.recorded",
            resource=resource,
            payload={"request_id": row["request_id"], "signal": signal},
        )
