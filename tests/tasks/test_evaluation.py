"""The judge task's failure modes: fail with one line, or skip win_rate when configured."""

import pandas as pd
import pytest
from net_support import free_port
from prefect import flow

from llmops.model.judge import JudgeError, JudgeSettings
from llmops.records import instruction_to_messages
from tasks.evaluation import ModelScores, judge_against_champion

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
