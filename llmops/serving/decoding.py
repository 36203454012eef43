"""Continuous batching on one model: sequences join a running batch between decoding steps and
leave it the step they finish.

The running batch keeps one KV cache, left-padded to its longest row, and an attention mask over
it. A step feeds every row its last token and picks each row's next one; newcomers are prefilled
together, then their caches are padded and stacked onto the running one; finished rows are cut
out and all-padding columns trimmed, so the cache is only ever as long as the longest live row.

Prefix caching: the batch keeps the keys and values of one prompt prefix (the chat template's
system prompt, which every chat request to a model starts with). Newcomers that all start with
at least MIN_SHARED of its tokens get those copied in and prefill only the rest, laid out
[prefix | padding | own tokens]; positions count real tokens, so padding in the middle is
invisible. A miss (a prefill from scratch) stores its longest prompt; the first hit cuts the
entry down to what was shared, so it holds the common prefix, not one caller's question.

Written over transformers' DynamicCache instead of its own continuous batching
(transformers.generation.continuous_batching), which does run on CPU and decodes greedy answers
identical to `generate` here, because one of its managers fixes greedy-or-sampling for all its
requests (`do_sample` is per manager), runs one model with one active adapter on its own thread
(a canary's two adapters on one base would need two managers racing on one module), and owns a
preallocated paged cache sized from free memory, which on a shared 2-core host is guesswork.
Here the serving thread interleaves variants step by step, and memory follows the live rows.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from transformers.cache_utils import DynamicCache, DynamicLayer
from transformers.generation.logits_process import (
    LogitsProcessorList,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from llmops.model.generation import RowText, decode_answer

# Fewer shared tokens than this is a chance match (a chat template's first marker), not a shared
# system prompt: such a join prefills from scratch and replaces the cached prefix.
MIN_SHARED = 8


@dataclass
class Row:
    """One sequence being answered. `owner` is the caller's handle (e.g. its request)."""

    owner: Any
    prompt_ids: list[int]
    max_new_tokens: int
    temperature: float
    stream: RowText | None = None  # for a streamed answer: gets each piece as it is decoded
    tokens: list[int] = field(default_factory=list)  # generated so far, the stop token excluded
    done: bool = False

    def text(self, tokenizer: PreTrainedTokenizerBase) -> str:
        return decode_answer(tokenizer, self.tokens)


class RunningBatch:
    """The rows decoding together on one model; `join` adds rows, `step` decodes one token."""

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
        self.model, self.tokenizer = model, tokenizer
        config = model.generation_config
        eos = config.eos_token_id if config.eos_token_id is not None else []
        # The ids `generate` stops at, plus the tokenizer's: answers end where they do there.
        self.stop_ids = {*(eos if isinstance(eos, list) else [eos]), tokenizer.eos_token_id}
        self.top_k, self.top_p = config.top_k, config.top_p  # what sampled `generate` applies
        self.rows: list[Row] = []
        self.prefix_ids: list[int] = []  # the cached prompt prefix (see the module docstring)
        self.prefix_kv: list[tuple[torch.Tensor, torch.Tensor]] = []  # per layer [1, heads, P, dim]
        self.cache: DynamicCache | None = None
        self.mask = torch.zeros(0, 0, dtype=torch.long)  # [rows, cached positions]: 1 = real
        self.next_ids = torch.zeros(0, dtype=torch.long)  # [rows]: the token each row feeds next

    def __len__(self) -> int:
        return len(self.rows)

    @torch.inference_mode()
    def join(self, rows: Sequence[Row]) -> list[Row]:
        """Prefill `rows` together and add them; returns those already finished (first token a
        stop token, or max_new_tokens 1), which are not added."""
        pad = self.tokenizer.pad_token_id
        cache = DynamicCache(config=self.model.config)
        if not all(type(layer) is DynamicLayer for layer in cache.layers):
            raise ValueError("continuous batching needs full-attention layers; use static")
        shared = self._shared_prefix(rows)
        if shared:
            for layer, (keys, values) in zip(cache.layers, self.prefix_kv, strict=True):
                layer.update(
                    keys[..., :shared, :].expand(len(rows), -1, -1, -1),
                    values[..., :shared, :].expand(len(rows), -1, -1, -1),
                )
        own = [r.prompt_ids[shared:] for r in rows]
        width = max(len(o) for o in own)
        ids = torch.tensor([[pad] * (width - len(o)) + o for o in own])
        mask = torch.tensor([[1] * shared + [0] * (width - len(o)) + [1] * len(o) for o in own])
        logits = self._forward(ids, mask, cache)
        self._keep_prefix(rows, cache, shared)
        if self.cache is None:
            self.cache, self.mask = cache, mask
        else:
            self._stack(cache, mask)
        self.rows += rows
        self.next_ids = torch.cat([self.next_ids, self._pick(rows, logits)])
        return self._drop_finished()

    @torch.inference_mode()
    def step(self) -> list[Row]:
        """Decode one token for every row; returns the rows that finished (and left)."""
        self.mask = F.pad(self.mask, (0, 1), value=1)
        logits = self._forward(self.next_ids[:, None], self.mask, self.cache)
        self.next_ids = self._pick(self.rows, logits)
        return self._drop_finished()

    def evict(self, rows: Sequence[Row]) -> None:
        """Take `rows` out unfinished (their callers went away)."""
        for row in rows:
            row.done = True
        self._drop_finished()

    def _shared_prefix(self, rows: Sequence[Row]) -> int:
        """How many leading tokens of the cached prefix every row starts with (each row keeps
        at least one token to feed, whose logits give its first answer token); 0 below
        MIN_SHARED."""
        shared = min(
            min(_common_start(self.prefix_ids, r.prompt_ids), len(r.prompt_ids) - 1) for r in rows
        )
        return shared if shared >= MIN_SHARED else 0

    def _keep_prefix(self, rows: Sequence[Row], cache: DynamicCache, shared: int) -> None:
        """After a prefill: cut the entry to what a hit shared; on a miss store the longest
        prompt (all real columns: the others are padded to its width)."""
        if shared:
            if shared < len(self.prefix_ids):
                self.prefix_ids = self.prefix_ids[:shared]
                self.prefix_kv = [
                    (k[..., :shared, :], v[..., :shared, :]) for k, v in self.prefix_kv
                ]
            return
        longest = max(range(len(rows)), key=lambda i: len(rows[i].prompt_ids))
        self.prefix_ids = list(rows[longest].prompt_ids)
        # Cloned: a slice would keep the whole newcomers' cache alive after they leave.
        self.prefix_kv = [
            (layer.keys[longest : longest + 1].clone(), layer.values[longest : longest + 1].clone())
            for layer in cache.layers
        ]

    def _forward(self, ids: torch.Tensor, mask: torch.Tensor, cache: DynamicCache) -> torch.Tensor:
        """The next-token logits [rows, vocab] after feeding `ids` [rows, new] on `cache`."""
        # Left padding shifts positions: a row's position counts only its real tokens.
        positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, -ids.shape[1] :]
        out = self.model(
            input_ids=ids.to(self.model.device),
            attention_mask=mask.to(self.model.device),
            position_ids=positions.to(self.model.device),
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        return out.logits[:, -1, :].float().cpu()

    def _pick(self, rows: Sequence[Row], logits: torch.Tensor) -> torch.Tensor:
        """Each row's next token (greedy at temperature 0, else sampled like `generate`), taken
        into the row: appended and streamed, or the end of its answer."""
        picked = logits.argmax(-1)
        for index, row in enumerate(rows):
            if row.temperature > 0:
                warp = LogitsProcessorList([TemperatureLogitsWarper(row.temperature)])
                if self.top_k:
                    warp.append(TopKLogitsWarper(self.top_k))
                if self.top_p is not None and self.top_p < 1.0:
                    warp.append(TopPLogitsWarper(self.top_p))
                scores = warp(None, logits[index : index + 1])
                picked[index] = torch.multinomial(scores.softmax(-1), 1)[0, 0]
            self._take(row, int(picked[index]))
        return picked

    def _take(self, row: Row, token: int) -> None:
        if token in self.stop_ids:
            row.done = True
        else:
            row.tokens.append(token)
            if row.stream is not None:
                row.stream.add(self.tokenizer, token)
            row.done = len(row.tokens) >= row.max_new_tokens
        if row.done and row.stream is not None:
            row.stream.finish(self.tokenizer)

    def _stack(self, cache: DynamicCache, mask: torch.Tensor) -> None:
        """Put the newcomers' cache under the running one, both left-padded to one length."""
        length = max(self.mask.shape[1], mask.shape[1])
        for mine, theirs in zip(self.cache.layers, cache.layers, strict=True):
            mine.keys = torch.cat([_left_pad(mine.keys, length), _left_pad(theirs.keys, length)])
            mine.values = torch.cat(
                [_left_pad(mine.values, length), _left_pad(theirs.values, length)]
            )
        self.mask = torch.cat([_left_pad(self.mask, length), _left_pad(mask, length)])

    def _drop_finished(self) -> list[Row]:
        finished = [row for row in self.rows if row.done]
        if not finished:
            return []
        keep = [i for i, row in enumerate(self.rows) if not row.done]
        self.rows = [self.rows[i] for i in keep]
        if not keep:
            self.cache, self.mask = None, self.mask[:0, :0]
            self.next_ids = self.next_ids[:0]
            return finished
        index = torch.tensor(keep)
        # Columns that are padding in every remaining row hold nothing: cut them off the front.
        first = int(self.mask[keep].any(0).nonzero()[0])
        self.mask, self.next_ids = self.mask[index, first:], self.next_ids[index]
        for layer in self.cache.layers:
            layer.keys = layer.keys[index.to(layer.keys.device), :, first:]
            layer.values = layer.values[index.to(layer.values.device), :, first:]
        return finished


def _common_start(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens `a` and `b` share."""
    pairs = zip(a, b, strict=False)  # up to the shorter one
    return next((i for i, (x, y) in enumerate(pairs) if x != y), min(len(a), len(b)))


def _left_pad(tensor: torch.Tensor, length: int) -> torch.Tensor:
    """`tensor` ([rows, time] or [rows, heads, time, dim]) zero-padded on the left of time."""
    missing = length - (tensor.shape[1] if tensor.dim() == 2 else tensor.shape[2])
    if missing == 0:
        return tensor
    return F.pad(tensor, (missing, 0) if tensor.dim() == 2 else (0, 0, missing, 0))
