"""Batched generation with per-row streaming, on the real tiny model and SmolLM2's tokenizer."""

import pytest
import torch
from serving_support import talking_tiny_model
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from llmops.model.generation import BatchTextStreamer, decode_answer, generate_texts
from llmops.model.loading import load_tokenizer, resolve_base

QUESTIONS = ["Where is the export button?", "hi", "How do I reset my password?"]


@pytest.fixture(scope="module")
def talking(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    return talking_tiny_model(tmp_path_factory.mktemp("talking"))


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerBase:
    return load_tokenizer(resolve_base("tiny-random"))


def _prompts(tokenizer: PreTrainedTokenizerBase) -> list[str]:
    return [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": q}], add_generation_prompt=True, tokenize=False
        )
        for q in QUESTIONS
    ]


def _feed(streamer: BatchTextStreamer, steps: list[list[int]]) -> None:
    """Drive the streamer the way `generate` does: prompt ids, one token per row per step, end."""
    streamer.put(torch.zeros((len(steps[0]), 3), dtype=torch.long))
    for step in steps:
        streamer.put(torch.tensor(step))
    streamer.end()


def test_streamed_rows_join_to_the_answer_while_other_rows_are_unchanged(
    talking: tuple[PreTrainedModel, PreTrainedTokenizerBase],
) -> None:
    model, tokenizer = talking
    prompts = _prompts(tokenizer)
    plain = generate_texts(model, tokenizer, prompts, 12)
    forward_passes = 0

    def count_forward(*_: object) -> None:
        nonlocal forward_passes
        forward_passes += 1

    first: list[tuple[int, str]] = []
    third: list[tuple[int, str]] = []
    hook = model.register_forward_hook(count_forward)
    try:
        streamed = generate_texts(
            model,
            tokenizer,
            prompts,
            12,
            streams=[
                lambda piece: first.append((forward_passes, piece)),
                None,
                lambda piece: third.append((forward_passes, piece)),
            ],
        )
    finally:
        hook.remove()
    assert streamed == plain  # streaming changes nothing about the answers
    assert plain[0][0] and plain[0][0] != plain[2][0]  # the model says different things
    for pieces, (text, _, _) in ((first, plain[0]), (third, plain[2])):
        assert "".join(p for _, p in pieces) == text
        # One piece per token, each handed out right after the forward pass that made it.
        passes = [n for n, _ in pieces]
        assert len(pieces) > 1 and passes == sorted(passes) and passes[0] <= 2
        assert passes[-1] > passes[0]


def test_split_multibyte_characters_are_held_back_and_whitespace_is_stripped(
    tokenizer: PreTrainedTokenizerBase,
) -> None:
    ids = tokenizer.encode(" Hi 😀 there é", add_special_tokens=False)
    assert len(ids) == 5  # " Hi", the emoji as two byte-level tokens, " there", " é"
    pieces: list[str] = []
    streamer = BatchTextStreamer(tokenizer, [pieces.append, None])
    _feed(streamer, [[token, token] for token in ids])
    assert pieces == ["Hi", " 😀", " there", " é"]
    assert "".join(pieces) == decode_answer(tokenizer, ids)


def test_a_row_stops_at_its_end_of_sequence_and_the_others_go_on(
    tokenizer: PreTrainedTokenizerBase,
) -> None:
    eos = tokenizer.eos_token_id
    short, long = (tokenizer.encode(t, add_special_tokens=False) for t in ("Yes", "No way"))
    assert len(short) == 1 and len(long) == 2
    done_early: list[str] = []
    ran_out: list[str] = []
    streamer = BatchTextStreamer(tokenizer, [done_early.append, ran_out.append])
    # Row 0 ends after one token; generate then pads it (pad == eos for SmolLM2), and a stray
    # token after the end must not leak out. Row 1 runs into max_new_tokens.
    _feed(streamer, [[short[0], long[0]], [eos, long[1]], [short[0], long[1]]])
    assert done_early == ["Yes"]
    assert ran_out == ["No", " way", " way"]
