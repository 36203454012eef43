"""Continuous batching on one model: sequences join a running batch between decoding steps and
leave it the step they finish.

The running batch keeps one KV cache, left-padded to its longest row, and an attention mask over
it. A step feeds every row its last token and picks each row's next one; newcomers are prefilled
together, then their caches are padded and stacked onto the running one; finished rows are cut
out and all-padding columns trimmed, so the cache is only ever as long as the longest live row.

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
        width = max(len(r.prompt_ids) for r in rows)
        ids = torch.tensor([[pad] * (width - len(r.prompt_ids)) + r.prompt_ids for r in rows])
        mask = torch.tensor(
            [[0] * (width - len(r.prompt_ids)) + [1] * len(r.prompt_ids) for r in rows]
        )
        cache = DynamicCache(config=self.model.config)
        if not all(type(layer) is DynamicLayer for layer in cache.layers):
            raise ValueError("continuous batching needs full-attention layers; use static")
        logits = self._forward(ids, mask, cache)
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


def _left_pad(tensor: torch.Tensor, length: int) -> torch.Tensor:
    """`tensor` ([rows, time] or [rows, heads, time, dim]) zero-padded on the left of time."""
    missing = length - (tensor.shape[1] if tensor.dim() == 2 else tensor.shape[2])
    if missing == 0:
        return tensor
    return F.pad(tensor, (missing, 0) if tensor.dim() == 2 else (0, 0, missing, 0))
