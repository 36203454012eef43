"""Metrics and paired bootstrap, on hand-checked inputs and the tiny model."""

import math

import pytest
import torch
from model_support import planted_pairs

from llmops.model.loading import load_model, load_tokenizer, resolve_base
from llmops.model.metrics import (
    compare,
    paired_bootstrap,
    preference_scores,
    response_nll,
    response_token_logprobs,
    summarize,
    text_scores,
)
from llmops.records import instruction_to_messages


def test_text_scores_perfect_and_disjoint() -> None:
    scores = text_scores(
        ["Open Settings then Save", "no idea"], ["open settings then save", "Press Save now"]
    )
    assert scores["exact_match"] == [1.0, 0.0]
    assert scores["rouge1"][0] == pytest.approx(1.0)
    assert scores["rouge1"][1] == 0.0
    assert scores["bleu"][1] < 10 < scores["bleu"][0]
    assert scores["mean_response_length"] == [4.0, 2.0]


def test_text_scores_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="2 predictions for 1 references"):
        text_scores(["a", "b"], ["a"])


def test_summarize_adds_perplexity() -> None:
    summary = summarize({"eval_loss": [1.0, 3.0], "rougeL": [0.5, 1.0]})
    assert summary == {"eval_loss": 2.0, "rougeL": 0.75, "perplexity": pytest.approx(math.e**2)}


def test_paired_bootstrap_separates_signal_from_noise() -> None:
    better = paired_bootstrap([0.9, 0.8, 0.95, 0.85] * 10, [0.5, 0.4, 0.6, 0.45] * 10)
    assert 0.3 < better.low <= better.diff <= better.high < 0.5
    noisy = paired_bootstrap([1.0, 0.0] * 10, [0.0, 1.0] * 10)
    assert noisy.low < 0 < noisy.high and noisy.diff == 0
    constant = paired_bootstrap([1.0, 1.0], [0.0, 0.0])
    assert (constant.low, constant.diff, constant.high) == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="equal, non-empty"):
        paired_bootstrap([1.0], [1.0, 2.0])


def test_compare_uses_shared_metrics_only() -> None:
    out = compare({"bleu": [1.0, 2.0], "extra": [1.0, 1.0]}, {"bleu": [0.0, 0.0]})
    assert set(out) == {"bleu"}


def test_response_nll_counts_only_response_tokens() -> None:
    base = resolve_base("tiny-random")
    model, tokenizer = load_model(base, torch.device("cpu")), load_tokenizer(base)
    same_answer = [
        instruction_to_messages("short?", "Press Save."),
        instruction_to_messages("a much longer question " * 5, "Press Save."),
    ]
    losses = response_nll(model, tokenizer, same_answer, batch_size=2)
    # A random model gives roughly uniform loss ~ ln(vocab); batching/padding must not change it.
    assert all(5 < x < 15 for x in losses)
    assert losses == pytest.approx(
        response_nll(model, tokenizer, same_answer, batch_size=1), rel=1e-4
    )


def test_response_token_logprobs_score_exactly_the_answer_tokens() -> None:
    base = resolve_base("tiny-random")
    model, tokenizer = load_model(base, torch.device("cpu")), load_tokenizer(base)
    chats = [instruction_to_messages("short?", "Press Save."), instruction_to_messages("q", "No.")]
    scored = response_token_logprobs(model, tokenizer, chats, batch_size=2)
    for chat, tokens in zip(chats, scored, strict=True):
        prompt = tokenizer.apply_chat_template(
            chat[:-1], add_generation_prompt=True, tokenize=False
        )
        full = tokenizer.apply_chat_template(chat, tokenize=False)
        # The answer's tokens and the template's end-of-turn tokens, one log-probability each.
        assert (
            tokens.token_ids
            == tokenizer(full[len(prompt) :], add_special_tokens=False)["input_ids"]
        )
        assert len(tokens.logprobs) == len(tokens.token_ids) and max(tokens.logprobs) < 0
    assert response_nll(model, tokenizer, chats) == pytest.approx(
        [-sum(s.logprobs) / len(s.logprobs) for s in scored]
    )


def test_preference_scores_are_summed_log_probability_differences() -> None:
    base = resolve_base("tiny-random")
    model, tokenizer = load_model(base, torch.device("cpu")), load_tokenizer(base)
    pairs = planted_pairs(3)
    chats = [list(m) for m in pairs["messages"]]
    rejected = pairs["rejected"].tolist()
    scores = preference_scores(model, tokenizer, chats, rejected, batch_size=4)

    rejected_chats = [
        [*c[:-1], {"role": "assistant", "content": r}] for c, r in zip(chats, rejected, strict=True)
    ]
    chosen_sums = [sum(s.logprobs) for s in response_token_logprobs(model, tokenizer, chats, 1)]
    rejected_sums = [
        sum(s.logprobs) for s in response_token_logprobs(model, tokenizer, rejected_chats, 1)
    ]
    expected = [c - r for c, r in zip(chosen_sums, rejected_sums, strict=True)]
    assert scores["preference_margin"] == pytest.approx(expected, rel=1e-4)
    assert scores["preference_accuracy"] == [float(m > 0) for m in expected]
    # An answer against itself: no margin, and not counted as preferred.
    same = preference_scores(model, tokenizer, chats, [c[-1]["content"] for c in chats])
    assert same == {"preference_margin": [0.0] * 3, "preference_accuracy": [0.0] * 3}
