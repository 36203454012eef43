"""The drift core on real embeddings and real Evidently reports, no Prefect."""

import numpy as np
import pandas as pd
import pytest
from monitoring_support import shifted_window, support_window

from llmops.monitoring.drift import (
    PROMPT_DESCRIPTORS,
    DriftThresholds,
    build_drift_report,
    decide_drift,
    report_scores,
    traffic_summary,
    with_embeddings,
)
from llmops.monitoring.embeddings import embed_texts

THRESHOLDS = DriftThresholds(embedding_auc=0.55, p_value=0.05, drifted_share=0.5)


def _embedded(frame: pd.DataFrame) -> pd.DataFrame:
    return with_embeddings(frame, embed_texts(frame["prompt"].tolist()))


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return _embedded(support_window(150, seed=1))


def test_embeddings_are_normalized_sentence_vectors() -> None:
    vectors = embed_texts(["How do I reset my password?", "How can I change my password?", "Pan"])
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # Paraphrases sit closer than an unrelated word.
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]


def test_same_distribution_is_not_drift(reference: pd.DataFrame) -> None:
    snapshot = build_drift_report(reference, _embedded(support_window(150, seed=2)), THRESHOLDS)
    scores = report_scores(snapshot)
    decision = decide_drift(scores, THRESHOLDS)
    assert not decision.drift_detected, decision.reasons
    assert scores["embedding_drift_auc"] < 0.55
    assert set(scores) >= {f"{c}_p_value" for c in PROMPT_DESCRIPTORS}
    assert scores["mean_prompt_length"] > 10


def test_other_topic_and_language_is_drift(reference: pd.DataFrame) -> None:
    snapshot = build_drift_report(reference, _embedded(shifted_window(150, seed=3)), THRESHOLDS)
    decision = decide_drift(report_scores(snapshot), THRESHOLDS)
    assert decision.drift_detected
    assert decision.embedding_auc > 0.9
    assert any("embedding drift" in r for r in decision.reasons)
    assert "<html" in snapshot.get_html_str(as_iframe=False).lower()


def test_decide_drift_thresholds() -> None:
    calm = {"embedding_drift_auc": 0.5, **{f"{c}_p_value": 0.5 for c in PROMPT_DESCRIPTORS}}
    assert not decide_drift(calm, THRESHOLDS).drift_detected
    two_drifted = {**calm, "prompt_length_p_value": 0.01, "prompt_words_p_value": 0.001}
    decision = decide_drift(two_drifted, THRESHOLDS)
    assert decision.drift_detected
    assert decision.drifted_descriptors == ["prompt_length", "prompt_words"]
    one_drifted = {**calm, "prompt_length_p_value": 0.01}
    assert not decide_drift(one_drifted, THRESHOLDS).drift_detected


def test_traffic_summary_counts_feedback_of_the_window_only() -> None:
    requests = pd.DataFrame(
        {
            "request_id": ["a", "b", "c", "d"],
            "latency_ms": [10.0, 20.0, 30.0, 40.0],
            "completion_tokens": [4, 6, 8, 10],
        }
    )
    feedback = pd.DataFrame(
        {
            "request_id": ["a", "a", "b", "zz"],
            "score": [0.0, 1.0, 0.0, 1.0],
            "correction": [None, None, "fixed", None],
        }
    )
    summary = traffic_summary(requests, feedback)
    assert summary["requests"] == 4
    assert summary["feedback_rate"] == 0.5  # a (latest wins) and b; zz is outside the window
    assert summary["positive_feedback_share"] == 0.5
    assert summary["correction_rate"] == 0.25
    assert summary["latency_ms_p50"] == 25.0
