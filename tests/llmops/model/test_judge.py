"""The judge's protocol without a model: prompts in both orders, verdict parsing, scoring."""

import pytest
from net_support import free_port

from llmops.model.gate import GatePolicy, decide
from llmops.model.judge import (
    JudgeError,
    JudgeSettings,
    OpenAIJudge,
    judge_pairs,
    pair_score,
    parse_verdict,
)
from llmops.model.metrics import Interval
from llmops.records import Message


class ScriptedJudge:
    """Replies by a rule over the two answers as shown; keeps every request."""

    def __init__(self, rule) -> None:
        self.rule = rule
        self.asked: list[list[Message]] = []

    def ask(self, messages: list[Message]) -> str:
        self.asked.append(messages)
        shown = messages[-1]["content"]
        a = shown.split("Answer A:\n")[1].split("\n\nAnswer B:")[0]
        b = shown.split("Answer B:\n")[1].split("\n\nWhich answer")[0]
        return self.rule(a, b)


CONVERSATIONS = [[{"role": "user", "content": f"question {i}?"}] for i in range(4)]
CANDIDATE = ["Open Settings, press Save.", "Press Save.", "same", "I cannot help."]
CHAMPION = ["No idea.", "Press Save now.", "same", "Open Settings, press Save."]


def test_verdicts_are_read_from_the_first_word_that_names_one() -> None:
    assert parse_verdict("A") == "A"
    assert parse_verdict(" b.") == "B"
    assert parse_verdict("Tie - both fine") == "TIE"
    assert parse_verdict("Answer B is better than A") == "B"
    assert parse_verdict("ABBA") is None and parse_verdict("") is None


def test_an_example_is_won_only_when_both_orders_agree() -> None:
    assert pair_score("A", "B") == 1.0  # candidate first: A; swapped: B is the candidate
    assert pair_score("B", "A") == 0.0
    assert pair_score("A", "A") == 0.5  # position bias: always the first answer
    assert pair_score("TIE", "TIE") == pair_score(None, "B") == 0.5


def test_each_example_is_asked_in_both_orders_and_scored() -> None:
    def prefers_save(a: str, b: str) -> str:  # a consistent judge: "Save" answers are better
        return "TIE" if ("Save" in a) == ("Save" in b) else ("A" if "Save" in a else "B")

    judge = ScriptedJudge(prefers_save)
    judged = judge_pairs(judge, CONVERSATIONS, CANDIDATE, CHAMPION)
    assert judged.wins == [1.0, 0.5, 0.5, 0.0]
    assert (judged.agreed, judged.disagreed, judged.unparsed) == (4, 0, 0)
    assert len(judge.asked) == 8
    for i, (first, swapped) in enumerate(zip(judge.asked[::2], judge.asked[1::2], strict=True)):
        assert first[-1]["content"].index(CANDIDATE[i]) < first[-1]["content"].index("Answer B")
        assert swapped[-1]["content"].index(CHAMPION[i]) < swapped[-1]["content"].index("Answer B")
        assert f"question {i}?" in first[-1]["content"]


def test_a_judge_that_always_picks_the_first_answer_wins_nothing() -> None:
    judged = judge_pairs(ScriptedJudge(lambda a, b: "A"), CONVERSATIONS, CANDIDATE, CHAMPION)
    assert judged.wins == [0.5] * 4 and judged.disagreed == 4


def test_an_unreachable_judge_is_one_clear_line() -> None:
    settings = JudgeSettings(
        base_url=f"http://127.0.0.1:{free_port()}/v1", model="m", retries=0, timeout_s=5
    )
    with pytest.raises(JudgeError, match=r"^judge http://127.0.0.1:\d+/v1 failed: Connection"):
        OpenAIJudge(settings).ask([{"role": "user", "content": "hi"}])


def test_a_missing_api_key_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JUDGE_TEST_KEY", raising=False)
    settings = JudgeSettings(base_url="http://x/v1", model="m", api_key_env="JUDGE_TEST_KEY")
    with pytest.raises(JudgeError, match=r"\$JUDGE_TEST_KEY is not set"):
        OpenAIJudge(settings)


def test_the_gate_reads_win_rate_as_wins_more_than_half() -> None:
    # Intervals of win_rate are of win_rate - 0.5 (the champion scores 0.5 against itself).
    policy = GatePolicy(primary_metric="win_rate", guard_metrics={})
    wins = decide(policy, {"win_rate": 0.7}, {"win_rate": Interval(0.2, 0.05, 0.35)}, "champion")
    assert wins.passed and "win_rate improves by +0.2000 over champion" in wins.reasons[0]
    coin = decide(policy, {"win_rate": 0.55}, {"win_rate": Interval(0.05, -0.1, 0.2)}, "champion")
    assert not coin.passed and "could be noise" in coin.reasons[0]
    # As a guard: losing more than 0.1 below an even split rejects a rougeL gain.
    guarded = GatePolicy(primary_metric="rougeL", guard_metrics={"win_rate": 0.1})
    intervals = {"rougeL": Interval(0.1, 0.05, 0.15), "win_rate": Interval(-0.2, -0.3, -0.1)}
    lost = decide(guarded, {"rougeL": 0.4, "win_rate": 0.3}, intervals, "champion")
    assert not lost.passed and "guard win_rate regresses by 0.2000" in lost.reasons[1]
