"""Drift between a reference window (the champion's training data) and live traffic.

Plain functions over DataFrames with `prompt` and `response` text columns: Evidently 0.7 computes
text descriptors with K-S drift tests and embedding drift (a domain classifier's ROC AUC over
all-MiniLM sentence embeddings); `decide_drift` applies our thresholds to its numbers.

Left out on purpose: Evidently's OOV-share and Sentiment descriptors need NLTK corpora
(words, wordnet, vader_lexicon) that no installed package ships, and they call nltk.download()
at run time; monitoring must work with no network, so only offline-safe descriptors are used.
"""

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.core.report import Snapshot
from evidently.descriptors import NonLetterCharacterPercentage, TextLength, WordCount
from evidently.legacy.metrics.data_drift.embedding_drift_methods import model
from evidently.metrics import EmbeddingsDrift, MeanValue, ValueDrift

EMBEDDING = "prompt_embedding"
# Descriptors of the prompt whose distributions are drift-tested.
PROMPT_DESCRIPTORS = ("prompt_length", "prompt_words", "prompt_non_letter_share")


@dataclass(frozen=True)
class DriftThresholds:
    """When a finding counts as drift."""

    embedding_auc: float  # domain-classifier ROC AUC above this is embedding drift (0.5 = none)
    p_value: float  # a descriptor drifts when its K-S p-value is below this
    drifted_share: float  # dataset drift when at least this share of descriptors drifts


@dataclass(frozen=True)
class DriftDecision:
    """The verdict and the numbers behind it."""

    drift_detected: bool
    embedding_auc: float
    drifted_descriptors: list[str]
    reasons: list[str]


def with_embeddings(frame: pd.DataFrame, embeddings: np.ndarray) -> pd.DataFrame:
    """`frame` plus one column per embedding dimension (Evidently wants them as columns)."""
    columns = [f"emb_{i}" for i in range(embeddings.shape[1])]
    vectors = pd.DataFrame(embeddings, columns=columns, index=frame.index)
    return pd.concat([frame[["prompt", "response"]], vectors], axis=1)


def _dataset(frame: pd.DataFrame) -> Dataset:
    embedding_columns = [c for c in frame.columns if c.startswith("emb_")]
    definition = DataDefinition(
        text_columns=["prompt", "response"], embeddings={EMBEDDING: embedding_columns}
    )
    descriptors = [
        TextLength("prompt", alias="prompt_length"),
        WordCount("prompt", alias="prompt_words"),
        NonLetterCharacterPercentage("prompt", alias="prompt_non_letter_share"),
        TextLength("response", alias="response_length"),
    ]
    return Dataset.from_pandas(frame, data_definition=definition, descriptors=descriptors)


def build_drift_report(
    reference: pd.DataFrame, current: pd.DataFrame, thresholds: DriftThresholds
) -> Snapshot:
    """Run the Evidently report: descriptor drift, embedding drift, length summaries."""
    metrics = [
        *(
            ValueDrift(column=c, method="ks", threshold=thresholds.p_value)
            for c in PROMPT_DESCRIPTORS
        ),
        EmbeddingsDrift(
            embeddings_name=EMBEDDING, drift_method=model(threshold=thresholds.embedding_auc)
        ),
        MeanValue(column="prompt_length"),
        MeanValue(column="response_length"),
    ]
    # Evidently's embedding drift adds columns to the frames it is given: hand it copies.
    return Report(metrics).run(
        current_data=_dataset(current.copy()), reference_data=_dataset(reference.copy())
    )


def report_scores(snapshot: Snapshot) -> dict[str, float]:
    """The report's numbers by name: `<descriptor>_p_value`, `embedding_drift_auc`, `mean_<col>`."""
    scores: dict[str, float] = {}
    for metric in snapshot.dict()["metrics"]:
        config: dict[str, Any] = metric["config"]
        kind = config["type"].rsplit(":", 1)[-1]
        if kind == "ValueDrift":
            scores[f"{config['column']}_p_value"] = float(metric["value"])
        elif kind == "EmbeddingsDrift":
            scores["embedding_drift_auc"] = float(metric["value"])
        elif kind == "MeanValue":
            scores[f"mean_{config['column']}"] = float(metric["value"])
    return scores


def decide_drift(scores: dict[str, float], thresholds: DriftThresholds) -> DriftDecision:
    """Drift when the embedding AUC or the share of drifted descriptors passes its threshold."""
    auc = scores["embedding_drift_auc"]
    drifted = [c for c in PROMPT_DESCRIPTORS if scores[f"{c}_p_value"] < thresholds.p_value]
    reasons = []
    if auc > thresholds.embedding_auc:
        reasons.append(f"embedding drift AUC {auc:.3f} > {thresholds.embedding_auc}")
    share = len(drifted) / len(PROMPT_DESCRIPTORS)
    if share >= thresholds.drifted_share:
        reasons.append(
            f"{len(drifted)}/{len(PROMPT_DESCRIPTORS)} prompt descriptors drifted "
            f"(p < {thresholds.p_value}): {', '.join(drifted)}"
        )
    return DriftDecision(bool(reasons), auc, drifted, reasons)


def traffic_summary(requests: pd.DataFrame, feedback: pd.DataFrame) -> dict[str, float]:
    """Latency, response length and feedback rates of the current window."""
    rated = feedback[feedback["request_id"].isin(requests["request_id"])]
    rated = rated.drop_duplicates("request_id", keep="last")
    n = max(len(requests), 1)
    return {
        "requests": float(len(requests)),
        "latency_ms_p50": float(requests["latency_ms"].quantile(0.5)),
        "latency_ms_p95": float(requests["latency_ms"].quantile(0.95)),
        "completion_tokens_mean": float(requests["completion_tokens"].mean()),
        "feedback_rate": len(rated) / n,
        "positive_feedback_share": float((rated["score"] >= 0.5).mean()) if len(rated) else 0.0,
        "correction_rate": float(rated["correction"].notna().sum()) / n,
    }
