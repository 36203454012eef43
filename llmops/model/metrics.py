"""Evaluation metrics over generated answers, and paired bootstrap intervals between models.

Every metric is computed per example first (so the bootstrap can resample examples) and
summarised as the mean; eval loss is the mean negative log-likelihood per response token.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from llmops.records import Message, prompt_messages, with_answer

if TYPE_CHECKING:  # imported where used: a cached rerun loads no model
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

# +1: higher is better, -1: lower is better, 0: informational (a gate should not chase it).
METRIC_DIRECTIONS: dict[str, int] = {
    "bleu": 1,
    "rouge1": 1,
    "rouge2": 1,
    "rougeL": 1,
    "exact_match": 1,
    "eval_loss": -1,
    "mean_response_length": 0,
    # A judge's verdict vs the champion per example (1 / 0.5 / 0, llmops/model/judge.py); the
    # champion scores 0.5 against itself, so the paired interval is of win_rate - 0.5.
    "win_rate": 1,
    # Held-out preference pairs (llmops/records.py): log p(chosen) - log p(rejected) given the
    # prompt, summed over each answer's tokens, and whether it is above 0.
    "preference_margin": 1,
    "preference_accuracy": 1,
}
_ROUGE = ("rouge1", "rouge2", "rougeL")


@dataclass(frozen=True)
class Interval:
    """Mean of (candidate - other) over examples, with a bootstrap confidence interval."""

    diff: float
    low: float
    high: float


def text_scores(predictions: Sequence[str], references: Sequence[str]) -> dict[str, list[float]]:
    """Per-example BLEU (sentence, 0-100), ROUGE-1/2/L F1, exact match and length in words."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    # Imported here: rouge_score pulls in nltk (seconds), and a cached rerun scores nothing.
    from rouge_score import rouge_scorer
    from sacrebleu.metrics import BLEU

    # effective_order: short answers have no 4-grams, and plain sentence BLEU would give 0.
    bleu = BLEU(effective_order=True)
    scorer = rouge_scorer.RougeScorer(list(_ROUGE), use_stemmer=True)
    scores: dict[str, list[float]] = {k: [] for k in ("bleu", *_ROUGE, "exact_match")}
    scores["mean_response_length"] = []
    for pred, ref in zip(predictions, references, strict=True):
        scores["bleu"].append(bleu.sentence_score(pred, [ref]).score)
        rouge = scorer.score(ref, pred)
        for key in _ROUGE:
            scores[key].append(rouge[key].fmeasure)
        scores["exact_match"].append(float(_normalize(pred) == _normalize(ref)))
        scores["mean_response_length"].append(float(len(pred.split())))
    return scores


@dataclass(frozen=True)
class TokenLogprobs:
    """The final assistant turn's token ids and each one's log-probability given all before it."""

    token_ids: list[int]
    logprobs: list[float]


def response_token_logprobs(
    model: "PreTrainedModel",
    tokenizer: "PreTrainedTokenizerBase",
    conversations: Sequence[Sequence[Message]],
    batch_size: int = 8,
) -> list[TokenLogprobs]:
    """Per example, the log-probability of every response token under the model.

    Only response tokens (including the end-of-turn token) count, matching the training loss.
    """
    import torch  # here: a cached rerun scores nothing, and torch takes seconds to import

    with torch.inference_mode():
        scored: list[TokenLogprobs] = []
        for start in range(0, len(conversations), batch_size):
            batch = conversations[start : start + batch_size]
            ids, labels = zip(*(_response_labels(tokenizer, c) for c in batch), strict=True)
            width = max(len(x) for x in ids)
            # Right padding with labels -100: padded positions never count, and SmolLM2's pad ==
            # eos, so labels are built here rather than by a collator that would mask eos too.
            input_ids = torch.tensor([x + [tokenizer.pad_token_id] * (width - len(x)) for x in ids])
            mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids])
            target = torch.tensor([y + [-100] * (width - len(y)) for y in labels])
            logits = model(
                input_ids=input_ids.to(model.device), attention_mask=mask.to(model.device)
            ).logits.float()
            # Position t predicts token t+1: shift; log p(token) is minus its cross-entropy.
            shift_logits, shift_target = logits[:, :-1], target[:, 1:].to(model.device)
            token_logprob = -torch.nn.functional.cross_entropy(
                shift_logits.transpose(1, 2), shift_target, ignore_index=-100, reduction="none"
            )
            for row, row_target in zip(token_logprob.cpu(), shift_target.cpu(), strict=True):
                counted = row_target != -100
                scored.append(TokenLogprobs(row_target[counted].tolist(), row[counted].tolist()))
        return scored


def response_nll(
    model: "PreTrainedModel",
    tokenizer: "PreTrainedTokenizerBase",
    conversations: Sequence[Sequence[Message]],
    batch_size: int = 8,
) -> list[float]:
    """Per-example mean negative log-likelihood of the final assistant turn given the prompt."""
    return mean_nll(response_token_logprobs(model, tokenizer, conversations, batch_size))


def mean_nll(scored: Sequence[TokenLogprobs]) -> list[float]:
    """Per example, the mean negative log-probability of its response tokens (eval_loss)."""
    return [-float(np.mean(s.logprobs)) if s.logprobs else 0.0 for s in scored]


def rejected_conversations(
    conversations: Sequence[Sequence[Message]], rejected: Sequence[str]
) -> list[list[Message]]:
    """Each pair's prompt turns followed by its rejected answer (the conversations end with the
    chosen one)."""
    return [
        with_answer(prompt_messages(list(c)), r)
        for c, r in zip(conversations, rejected, strict=True)
    ]


def preference_scores(
    model: "PreTrainedModel",
    tokenizer: "PreTrainedTokenizerBase",
    conversations: Sequence[Sequence[Message]],
    rejected: Sequence[str],
    batch_size: int = 8,
) -> dict[str, list[float]]:
    """Per pair, the preference metrics (`preference_margins`) of the conversations' final
    assistant turns (the chosen answers) against the `rejected` answers under the model."""
    return preference_margins(
        response_token_logprobs(model, tokenizer, conversations, batch_size),
        response_token_logprobs(
            model, tokenizer, rejected_conversations(conversations, rejected), batch_size
        ),
    )


def preference_margins(
    chosen: Sequence[TokenLogprobs], rejected: Sequence[TokenLogprobs]
) -> dict[str, list[float]]:
    """Per pair, `preference_margin`: the chosen answer's summed token log-probability minus the
    rejected answer's, both given the same prompt turns; `preference_accuracy`: 1.0 when the
    margin is above 0."""
    margins = [sum(c.logprobs) - sum(r.logprobs) for c, r in zip(chosen, rejected, strict=True)]
    return {
        "preference_margin": margins,
        "preference_accuracy": [float(m > 0) for m in margins],
    }


def summarize(per_example: dict[str, list[float]]) -> dict[str, float]:
    """Mean of each metric, plus perplexity = exp(eval_loss) when eval loss is present."""
    summary = {k: float(np.mean(v)) for k, v in per_example.items()}
    if "eval_loss" in summary:
        summary["perplexity"] = math.exp(min(summary["eval_loss"], 50.0))
    return summary


def paired_bootstrap(
    candidate: Sequence[float],
    other: Sequence[float],
    confidence: float = 0.95,
    n_resamples: int = 1000,
    seed: int = 0,
) -> Interval:
    """Bootstrap CI of mean(candidate - other), resampling the same examples for both."""
    a, b = np.asarray(candidate, float), np.asarray(other, float)
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"need two equal, non-empty score lists, got {a.size} and {b.size}")
    diff = float(np.mean(a - b))
    if a.size == 1 or np.allclose(a - b, a[0] - b[0]):
        return Interval(diff, diff, diff)  # no spread: every resample gives the same mean
    from scipy.stats import bootstrap  # here: scipy.stats takes a second, a reused evaluation none

    # Percentile method: BCa is undefined for the many ties exact match produces.
    result = bootstrap(
        (a, b),
        lambda x, y, axis: np.mean(x - y, axis=axis),
        paired=True,
        confidence_level=confidence,
        n_resamples=n_resamples,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return Interval(
        diff, float(result.confidence_interval.low), float(result.confidence_interval.high)
    )


def compare(
    candidate: dict[str, list[float]],
    other: dict[str, list[float]],
    confidence: float = 0.95,
    n_resamples: int = 1000,
) -> dict[str, Interval]:
    """Paired bootstrap intervals for every metric both models were scored on."""
    return {
        k: paired_bootstrap(candidate[k], other[k], confidence, n_resamples)
        for k in candidate
        if k in other
    }


def _response_labels(
    tokenizer: "PreTrainedTokenizerBase", messages: Sequence[Message]
) -> tuple[list[int], list[int]]:
    """Token ids of the whole conversation and labels that are -100 over the prompt."""
    prompt = tokenizer.apply_chat_template(
        prompt_messages(list(messages)), add_generation_prompt=True, tokenize=False
    )
    full = tokenizer.apply_chat_template(list(messages), tokenize=False)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    full_ids = tokenizer(full, add_special_tokens=False)["input_ids"]
    if full_ids[: len(prompt_ids)] != prompt_ids:
        raise ValueError("the chat template does not render the prompt as a prefix of the chat")
    return full_ids, [-100] * len(prompt_ids) + full_ids[len(prompt_ids) :]


def _normalize(text: str) -> str:
    return " ".join(text.lower().split())
