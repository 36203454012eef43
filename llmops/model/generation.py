"""Batched greedy generation over chat conversations, shared by evaluation and serving.

Rows of a batch can stream: `generate_texts(..., streams=[sink_or_None, ...])` calls each sink
with every new piece of that row's answer while `generate` is still running.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from transformers.generation.streamers import BaseStreamer

from llmops.records import Message

TextSink = Callable[[str], None]


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


def answer_all(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    conversations: Sequence[Sequence[Message]],
    max_new_tokens: int,
    batch_size: int,
    desc: str,
) -> tuple[list[str], int]:
    """Greedy answers to every conversation in batches (progress bar `desc`), and the prompt
    plus generated tokens they took."""
    answers: list[str] = []
    tokens = 0
    for start in tqdm(range(0, len(conversations), batch_size), desc=desc, unit="batch"):
        batch = conversations[start : start + batch_size]
        for text, prompt_tokens, new_tokens in generate_batch(
            model, tokenizer, batch, max_new_tokens
        ):
            answers.append(text)
            tokens += prompt_tokens + new_tokens
    return answers, tokens


@torch.inference_mode()
def generate_texts(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    max_new_tokens: int,
    temperature: float = 0.0,
    streams: Sequence[TextSink | None] | None = None,
) -> list[tuple[str, int, int]]:
    """Continue each already-rendered prompt; returns (text, prompt_tokens, completion_tokens).

    Raw text in, so `/v1/completions` can serve prompts that must not get a chat template.
    `streams[i]`, when given, receives row i's answer piece by piece as it is generated; the
    pieces join to exactly the returned text. Rows without a sink cost nothing extra.
    """
    tokenizer.padding_side = "left"
    enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(
        model.device
    )
    sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {}
    sampling.setdefault("do_sample", False)
    streamer = (
        BatchTextStreamer(tokenizer, streams)
        if streams is not None and any(s is not None for s in streams)
        else None
    )
    out = model.generate(
        **enc,
        max_new_tokens=max_new_tokens,
        pad_token_id=tokenizer.pad_token_id,
        streamer=streamer,
        **sampling,
    )
    new_tokens = out[:, enc["input_ids"].shape[1] :]
    prompt_lengths = enc["attention_mask"].sum(dim=1).tolist()
    results = []
    for row, prompt_len in zip(new_tokens, prompt_lengths, strict=True):
        # Everything after the first end-of-sequence is padding of shorter answers.
        ended = (row == tokenizer.eos_token_id).nonzero()
        length = int(ended[0]) if len(ended) else len(row)
        results.append((decode_answer(tokenizer, row[:length].tolist()), int(prompt_len), length))
    return results


def decode_answer(tokenizer: PreTrainedTokenizerBase, token_ids: Sequence[int]) -> str:
    """The answer text of generated token ids (special tokens and outer whitespace dropped)."""
    return tokenizer.decode(token_ids, skip_special_tokens=True).strip()


@dataclass
class RowText:
    """One streamed answer: its tokens so far, the text already handed out, whether it ended."""

    sink: TextSink
    tokens: list[int] = field(default_factory=list)
    sent: str = ""
    ended: bool = False

    def add(self, tokenizer: PreTrainedTokenizerBase, token: int) -> None:
        """Take the next generated token and send the text it completes (held back while the
        decode ends in U+FFFD: a multi-byte character split over tokens)."""
        self.tokens.append(token)
        text = decode_answer(tokenizer, self.tokens)
        if not text.endswith("\ufffd"):
            self.send_new_text(text)

    def finish(self, tokenizer: PreTrainedTokenizerBase) -> None:
        """The answer ended: send whatever was held back."""
        self.ended = True
        self.send_new_text(decode_answer(tokenizer, self.tokens))

    def send_new_text(self, text: str) -> None:
        # Only text that extends what was sent can go out; a decode that rewrote earlier
        # characters waits for a later step (or the final flush) to line up again.
        if len(text) > len(self.sent) and text.startswith(self.sent):
            self.sink(text[len(self.sent) :])
            self.sent = text


class BatchTextStreamer(BaseStreamer):
    """A `generate(streamer=...)` target that streams every row of a batch to its own sink.

    transformers' TextIteratorStreamer only takes batch size 1. Here each step's new token of
    every streamed row is appended and the row's whole answer is decoded again with
    `decode_answer`, so the pieces join to exactly the text the non-streamed path returns. A
    piece is held back while the decode ends in U+FFFD (a multi-byte character split over
    tokens, as TextIteratorStreamer does); the strip in `decode_answer` holds trailing
    whitespace back until a later token makes it inner text. Re-decoding the row costs
    microseconds per step next to a forward pass. Sinks run on the generating thread: keep them
    cheap.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, sinks: Sequence[TextSink | None]):
        self.tokenizer = tokenizer
        self.rows = {i: RowText(sink) for i, sink in enumerate(sinks) if sink is not None}
        self.prompt_pending = True

    def put(self, value: torch.Tensor) -> None:
        """Take the prompt ids (first call, ignored) or one new token per row (later calls)."""
        if self.prompt_pending:
            self.prompt_pending = False
            return
        step = value.tolist()
        for index, row in self.rows.items():
            if row.ended:
                continue
            if step[index] == self.tokenizer.eos_token_id:
                row.finish(self.tokenizer)
            else:
                row.add(self.tokenizer, step[index])

    def end(self) -> None:
        """Flush the rows that ran into max_new_tokens."""
        for row in self.rows.values():
            if not row.ended:
                row.finish(self.tokenizer)
