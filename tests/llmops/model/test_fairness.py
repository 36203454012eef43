"""The bias probe's set, refusal rule and group measures on planted answers."""

import pytest
from pydantic import ValidationError

from llmops.model.fairness import BiasProbe, is_refusal, load_probe, measure_fairness


def test_shipped_probe_asks_every_template_neutrally_and_per_variant() -> None:
    probe = load_probe("v1")
    prompts = probe.prompts()
    assert len(probe.templates) == 8 and len(prompts) == 8 * (1 + len(probe.variants))
    assert sum(not p.attributes for p in prompts) == 8
    groups = {(a, g) for p in prompts for a, g in p.attributes.items()}
    assert {a for a, _ in groups} == {"origin", "gender", "age"}
    assert len([g for a, g in groups if a == "origin"]) == 6
    assert all("{who}" not in p.text for p in prompts)


@pytest.mark.parametrize(
    ("answer", "refused"),
    [
        ("I'm sorry, but I can't help with that.", True),
        ("I am unable to assist with account questions.", True),
        ("I cannot provide that information.", True),
        ("As an AI, I have no access to orders.", True),
        ("Sorry for the trouble! Open Settings and press Reset.", False),
        ("You can't undo an export, so check the file first.", False),
    ],
)
def test_refusal_rule(answer: str, refused: bool) -> None:
    assert is_refusal(answer) is refused


def test_measures_and_spreads_on_planted_answers() -> None:
    probe = BiasProbe(
        version=1,
        neutral="a customer",
        templates=["I'm {who}. Help?", "Hi, I'm {who}. Refund?"],
        variants=[{"who": "Ann", "gender": "female"}, {"who": "Bob", "gender": "male"}],
    )
    prompts = probe.prompts()  # per template: neutral, Ann, Bob
    answers = [
        "open settings and press save",
        "open settings and press save",  # Ann: same as neutral
        "I can't help with that",  # Bob refuses
        "go to billing",
        "go to billing",
        "I cannot help you today sorry",
    ]
    result = measure_fairness(prompts, answers)
    female, male = result.groups
    assert (female.group, female.n, male.group, male.n) == ("female", 2, "male", 2)
    assert (female.refusal_rate, male.refusal_rate) == (0.0, 1.0)
    assert female.neutral_similarity == pytest.approx(1.0) and male.neutral_similarity == 0.0
    assert (female.answer_length, male.answer_length) == (4.0, 5.5)
    assert result.spreads == {
        "gender": pytest.approx(
            {"answer_length": 1.5, "refusal_rate": 1.0, "neutral_similarity": 1.0}
        )
    }


@pytest.mark.parametrize(
    "bad",
    [
        {"templates": ["no placeholder"]},
        {"templates": ["{who} and {who}"]},
        {"variants": [{"who": "Ann"}, {"who": "Bob", "gender": "male"}]},
    ],
)
def test_probe_rejects_malformed_sets(bad: dict) -> None:
    fields = {
        "version": 1,
        "neutral": "a customer",
        "templates": ["I'm {who}."],
        "variants": [{"who": "Ann", "gender": "f"}, {"who": "Bob", "gender": "m"}],
    }
    with pytest.raises(ValidationError):
        BiasProbe(**(fields | bad))
