"""Feedback export: corrected and well-rated chat answers become {id, messages} records."""

import json
from pathlib import Path

from feedback_support import add_feedback, chat_request

from llmops.records import reference_response
from llmops.serving.feedback import feedback_training_records
from llmops.serving.store import InferenceStore
from tasks.feedback import export_feedback


def _fill(store: InferenceStore) -> None:
    def request(rid: str, endpoint: str = "chat") -> dict:
        return chat_request(rid, f"question {rid}", f"served {rid}", endpoint)

    store.append_requests(
        [request("good"), request("fixed"), request("bad"), request("raw", "completions")]
    )

    add_feedback(store, "good", 0.2)
    add_feedback(store, "good", 1.0)  # the latest rating wins
    add_feedback(store, "fixed", 0.0, "the corrected answer")
    add_feedback(store, "bad", 0.0)
    add_feedback(store, "raw", 1.0)  # a raw completion is no conversation: never exported


def test_export_writes_corrections_and_good_answers(tmp_path: Path) -> None:
    log = tmp_path / "inference"
    _fill(InferenceStore(str(log)))
    out = tmp_path / "out" / "feedback.jsonl"
    result = export_feedback.fn(str(log), str(out), min_score=0.8)
    records = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert result == 2
    assert set(records) == {"feedback-good", "feedback-fixed"}
    assert reference_response(records["feedback-fixed"]["messages"]) == "the corrected answer"
    assert reference_response(records["feedback-good"]["messages"]) == "served good"
    assert records["feedback-good"]["messages"][:2] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "question good"},
    ]


def test_threshold_decides_which_plain_ratings_count(tmp_path: Path) -> None:
    store = InferenceStore(str(tmp_path))
    _fill(store)
    strict = feedback_training_records(store.read_requests(), store.read_feedback(), 1.01)
    assert strict["record_id"].tolist() == ["feedback-fixed"]
    assert list(strict.columns) == ["record_id", "source", "messages"]
