"""Evaluation tasks: the judge's failure modes (fail with one line, or skip win_rate when
configured), and the preference metrics a model's scores get on pairs."""

import pandas as pd
import pytest
from model_support import planted_pairs, tiny_records
from net_support import free_port
from prefect import flow

from llmops.model.judge import JudgeError, JudgeSettings
from llmops.records import instruction_to_messages
from tasks.evaluation import ModelScores, ModelUnderTest, judge_against_champion, score_weights

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
