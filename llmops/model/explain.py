"""Why the fine-tune answers differently: per-token log-probability under the candidate vs the
base, the training examples nearest to a prompt, and the examples an evaluation changed most.

    llmops explain <evaluation run id> <record id>

The token view scores one answer (the reference, or the candidate's own) twice with the same
loaded model, once with the LoRA adapter and once with it disabled, so Δ log p is exactly the
adapter's doing; the scores come from `metrics.response_token_logprobs`, the function behind
the evaluation's eval_loss.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import jinja2
import numpy as np

from llmops.datasets import read_dataset, read_split
from llmops.model.adapters import fetch_adapter
from llmops.model.loading import load_model, load_tokenizer, resolve_base
from llmops.model.metrics import response_token_logprobs
from llmops.outputs import EvaluationReport
from llmops.records import Message, prompt_messages, prompt_text, reference_response, with_answer
from llmops.tracking import mlflow_client

if TYPE_CHECKING:  # imported where a model is loaded: the evaluation flow only lists changes
    from peft import PeftModel
    from transformers import PreTrainedTokenizerBase

AnswerSource = Literal["reference", "candidate"]


@dataclass(frozen=True)
class TokenDelta:
    """One answer token and its log-probability under the candidate and under the base."""

    text: str
    candidate: float
    base: float

    @property
    def delta(self) -> float:
        """Positive: the fine-tune made this token more likely."""
        return self.candidate - self.base


@dataclass(frozen=True)
class Neighbour:
    """A training example near the prompt, by cosine similarity of MiniLM embeddings."""

    record_id: str
    similarity: float
    prompt: str
    answer: str


@dataclass(frozen=True)
class ExampleChange:
    """An evaluated example and how much the candidate gained on it over the base."""

    record_id: str
    gain: float  # signed so that positive is better, whatever the metric's direction
    prompt: str
    candidate: str
    base: str


@dataclass(frozen=True)
class Explanation:
    """One evaluated example explained: its answer's tokens and its nearest training examples."""

    record_id: str
    answer: AnswerSource
    prompt: str
    tokens: list[TokenDelta]
    neighbours: list[Neighbour]
    html: str


def explain_record(
    report: EvaluationReport, record_id: str, answer: AnswerSource, k: int
) -> Explanation:
    """Explain one example of the evaluation `report`: the reference answer or the candidate's
    own (from the run's eval_outputs.json), scored token by token, and its `k` nearest
    training examples."""
    dataset = read_dataset(report.dataset_uri)
    held_out = read_split(dataset, "eval")
    found = held_out[held_out["record_id"].astype(str) == record_id]
    if found.empty:
        raise LookupError(f"record {record_id!r} is not in the eval split of {dataset.dataset_id}")
    messages = list(found["messages"].iloc[0])
    prompt = prompt_messages(messages)
    text = (
        reference_response(messages)
        if answer == "reference"
        else _candidate_answer(report, record_id)
    )

    import torch
    from peft import PeftModel

    base = resolve_base(report.base_ref)
    tokenizer = load_tokenizer(base)
    model = PeftModel.from_pretrained(
        load_model(base, torch.device("cpu")), str(fetch_adapter(report.adapter_uri))
    ).eval()
    tokens = token_deltas(model, tokenizer, with_answer(prompt, text))

    train = read_split(dataset, "train")
    train_messages = [list(m) for m in train["messages"]]
    neighbours = nearest_neighbours(
        prompt_text(prompt),
        train["record_id"].astype(str).tolist(),
        [prompt_text(prompt_messages(m)) for m in train_messages],
        [reference_response(m) for m in train_messages],
        k,
    )
    facts = [
        f"Evaluation run {report.run_id}, dataset {dataset.dataset_id}, record {record_id}",
        f"Candidate: {report.adapter_uri} on {report.base_ref}",
        f"Prompt: {prompt_text(prompt)}",
        f"Scored answer ({answer}): {text}",
    ]
    page = render_html(f"Explaining {record_id}", facts, tokens, neighbours)
    return Explanation(record_id, answer, prompt_text(prompt), tokens, neighbours, page)


def _candidate_answer(report: EvaluationReport, record_id: str) -> str:
    """What the candidate answered, from the per-example table the evaluation logged."""
    client = mlflow_client()
    experiment = client.get_run(report.run_id).info.experiment_id
    table = client.load_table(experiment, "eval_outputs.json", run_ids=[report.run_id])
    row = table[table["record_id"].astype(str) == record_id]
    if row.empty:
        raise LookupError(f"record {record_id!r} is not in the outputs of run {report.run_id}")
    return str(row["candidate_answer"].iloc[0])


def token_deltas(
    model: "PeftModel", tokenizer: "PreTrainedTokenizerBase", conversation: Sequence[Message]
) -> list[TokenDelta]:
    """Every token of the conversation's final assistant turn, scored with the adapter on and
    off."""
    [tuned] = response_token_logprobs(model, tokenizer, [conversation])
    with model.disable_adapter():
        [base] = response_token_logprobs(model, tokenizer, [conversation])
    return [
        TokenDelta(tokenizer.decode([token]), c, b)
        for token, c, b in zip(tuned.token_ids, tuned.logprobs, base.logprobs, strict=True)
    ]


def nearest_neighbours(
    prompt: str,
    record_ids: Sequence[str],
    prompts: Sequence[str],
    answers: Sequence[str],
    k: int,
) -> list[Neighbour]:
    """The `k` training examples whose prompts are most similar to `prompt`, closest first."""
    # Imported here: sentence_transformers takes seconds, and evaluation never needs it.
    from llmops.monitoring.embeddings import embed_texts

    vectors = embed_texts([prompt, *prompts])
    similarity = vectors[1:] @ vectors[0]  # embeddings are unit length: dot = cosine
    closest = np.argsort(-similarity, kind="stable")[:k]
    return [Neighbour(record_ids[i], float(similarity[i]), prompts[i], answers[i]) for i in closest]


def largest_changes(gains: Sequence[float], k: int) -> tuple[list[int], list[int]]:
    """Indices of the `k` largest gains (best first) and the `k` largest losses (worst first);
    an unchanged example is neither."""
    values = np.asarray(gains, float)
    # Stable sorts: equal changes keep the evaluation's order.
    wins = [int(i) for i in np.argsort(-values, kind="stable") if values[i] > 0][:k]
    losses = [int(i) for i in np.argsort(values, kind="stable") if values[i] < 0][:k]
    return wins, losses


def changes_markdown(run_id: str, sections: dict[str, list[ExampleChange]]) -> str:
    """A markdown listing per section (title -> examples) with the command explaining each."""
    lines = [f"# Examples the candidate changed most (evaluation run `{run_id}`)", ""]
    for title, changes in sections.items():
        lines += [f"## {title}", ""]
        if not changes:
            lines += ["None.", ""]
            continue
        lines += [
            "| record | gain | prompt | candidate | base | explain |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {_cell(c.record_id)} | {c.gain:+.4f} | {_cell(c.prompt)} | {_cell(c.candidate)} "
            f"| {_cell(c.base)} | `llmops explain {run_id} {c.record_id}` |"
            for c in changes
        ]
        lines.append("")
    return "\n".join(lines)


def shorten(text: str, width: int = 80) -> str:
    """One line of at most `width` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _cell(text: str) -> str:
    return shorten(text, 60).replace("|", "\\|")


# Tokens and training text are model and user content: autoescape keeps a token such as
# "<script>" text, not markup. Only the span colours are computed here.
_PAGE = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).resolve().parents[1] / "templates"),
    autoescape=True,
).get_template("explain.html.j2")


def render_html(
    title: str, facts: Sequence[str], tokens: Sequence[TokenDelta], neighbours: Sequence[Neighbour]
) -> str:
    """The colour-coded token view and the neighbours as one HTML page."""
    scale = max((abs(t.delta) for t in tokens), default=0.0) or 1.0
    shown = [
        {
            "text": t.text,
            "candidate": t.candidate,
            "base": t.base,
            "delta": t.delta,
            "colour": _colour(t.delta / scale),
        }
        for t in tokens
    ]
    return _PAGE.render(title=title, facts=facts, tokens=shown, neighbours=neighbours, scale=scale)


def _colour(strength: float) -> str:
    """Green for a positive change, red for a negative one, opacity by size (-1..1)."""
    rgb = "0, 160, 0" if strength > 0 else "220, 0, 0"
    return f"rgba({rgb}, {min(abs(strength), 1.0):.2f})"
