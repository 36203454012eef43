"""Evaluation tasks: the judge's failure modes (fail with one line, or skip win_rate when
configured), and the preference metrics a model's scores get on pairs."""

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from model_support import planted_pairs, tiny_records
from net_support import free_port
from prefect import flow

from llmops.flow_configs import EvaluateConfig
from llmops.model.judge import JudgeError, JudgeSettings
from llmops.records import instruction_to_messages
from tasks import evaluation
from tasks.evaluation import (
    ModelScores,
    ModelUnderTest,
    fingerprint_evaluation,
    judge_against_champion,
    score_weights,
)

RECORDS = pd.DataFrame({"messages": [instruction_to_messages("Where?", "Here.")]})


def _scores(label: str) -> ModelScores:
    return ModelScores(label, ["an answer"], {"rougeL": [0.5]}, "cpu", 0.1, 3, None)


@flow
def _judge(settings: JudgeSettings) -> tuple[ModelScores, ModelScores]:
    return judge_against_champion(settings, RECORDS, _scores("candidate"), _scores("champion"))


@pytest.mark.parametrize("on_error", ["fail", "skip"])
def test_an_unreachable_judge_fails_or_is_skipped(on_error: str, prefect_harness: None) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    settings = JudgeSettings(base_url=url, model="m", retries=0, on_error=on_error)
    if on_error == "fail":
        with pytest.raises(JudgeError, match=f"judge {url} failed"):
            _judge(settings)
    else:
        candidate, champion = _judge(settings)
        assert "win_rate" not in candidate.per_example | champion.per_example


def test_preference_pairs_add_the_preference_metrics_to_a_models_scores() -> None:
    pairs = planted_pairs(2)
    base = ModelUnderTest("base", "tiny-random")
    scores = score_weights.fn(base, pairs, max_new_tokens=2, batch_size=4)
    assert len(scores.per_example["preference_margin"]) == 2
    assert scores.per_example["preference_accuracy"] == [
        float(m > 0) for m in scores.per_example["preference_margin"]
    ]
    # A split that mixes supervised records with pairs: no margin (it would not be per example).
    mixed = pd.concat([pairs, tiny_records(1)], ignore_index=True)
    mixed_scores = score_weights.fn(base, mixed, max_new_tokens=2, batch_size=4)
    assert "preference_margin" not in mixed_scores.per_example
    assert len(mixed_scores.per_example["eval_loss"]) == 3


def test_the_evaluation_fingerprint_changes_with_the_scoring_code(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = EvaluateConfig.from_profile("tiny")
    candidate = ModelUnderTest("candidate", "tiny-random", "a", "a1", "b")
    models = [candidate, ModelUnderTest("base", "tiny-random", base_sha256="b"), None]
    key = fingerprint_evaluation.fn(config, "d1", *models)
    before = key.fingerprint
    assert fingerprint_evaluation.fn(config, "d1", *models) == key
    assert fingerprint_evaluation.fn(config, "d2", *models).fingerprint != before
    assert not key.champion_is_candidate
    # The candidate promoted: the champion is version 3 with its weights; another champion.
    promoted = fingerprint_evaluation.fn(
        config, "d1", *models[:2], replace(candidate, label="champion", version="3")
    )
    assert promoted.champion_is_candidate and promoted.fingerprint != before
    assert promoted.candidate_fingerprint == key.candidate_fingerprint
    other = replace(candidate, label="champion", adapter_sha256="a0", version="2")
    assert not fingerprint_evaluation.fn(config, "d1", *models[:2], other).champion_is_candidate
    # Another version of a scoring module (a copy with one more line) or of transformers.
    changed = tmp_path / "metrics.py"
    changed.write_text(Path(evaluation.metrics.__file__).read_text() + "\n# changed\n")
    real_find_spec = evaluation.importlib.util.find_spec
    monkeypatch.setattr(
        evaluation.importlib.util,
        "find_spec",
        lambda name: (
            SimpleNamespace(origin=str(changed))
            if name == "llmops.model.metrics"
            else real_find_spec(name)
        ),
    )
    edited = fingerprint_evaluation.fn(config, "d1", *models).fingerprint
    assert edited != before
    real_version = evaluation.importlib.metadata.version
    monkeypatch.setattr(
        evaluation.importlib.metadata,
        "version",
        lambda name: "0.0.1" if name == "transformers" else real_version(name),
    )
    assert fingerprint_evaluation.fn(config, "d1", *models).fingerprint not in (before, edited)
