"""Batched greedy generation over chat conversations, shared by evaluation and serving."""

from collections.abc import Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from llmops.records import Message


@torch.inference_mode()
def generate_batch(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    conversations: Sequence[Sequence[Message]],
    max_new_tokens: int,
    temperature: float = 0.0,
) -> list[tuple[str, int, int]]:
    """Answer each conversation; returns (text, prompt_tokens, completion_tokens) per input.

    One left-padded batch, so all rows share a single `generate` call. temperature 0 is greedy.
    """
    prompts = [
        tokenizer.apply_chat_template(list(c), add_generation_prompt=True, tokenize=False)
        for c in conversations
    ]
    return generate_texts(model, tokenizer, prompts, max_new_tokens, temperature)


@torch.inference_mode()
def generate_texts(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    max_new_tokens: int,
    temperature: float = 0.0,
) -> list[tuple[str, int, int]]:
    """Continue each already-rendered prompt; returns (text, prompt_tokens, completion_tokens).

    Raw text in, so `/v1/completions` can serve prompts that must not get a chat template.
    """
    tokenizer.padding_side = "left"
    enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(
        model.device
    )
    sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {}
    sampling.setdefault("do_sample", False)
    out = model.generate(
        **enc,
        max_new_tokens=max_new_tokens,
        pad_token_id=tokenizer.pad_token_id,
        **sampling,
    )
    new_tokens = out[:, enc["input_ids"].shape[1] :]
    prompt_lengths = enc["attention_mask"].sum(dim=1).tolist()
    results = []
    for row, prompt_len in zip(new_tokens, prompt_lengths, strict=True):
        # Everything after the first end-of-sequence is padding of shorter answers.
        ended = (row == tokenizer.eos_token_id).nonzero()
        length = int(ended[0]) if len(ended) else len(row)
        text = tokenizer.decode(row[:length], skip_special_tokens=True).strip()
        results.append((text, int(prompt_len), length))
    return results
