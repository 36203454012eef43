"""The model being served and its hot swap when the registry alias moves, and, while a release of
the challenger runs (llmops/release.py), the challenger beside it.

The slot is only touched from the single generation thread (see batching.py), so a swap always
happens between two batches: a batch in flight finishes on the model it started with.
"""

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from peft import PeftModel
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from llmops.model.generation import TextSink, generate_texts
from llmops.model.loading import load_model, load_tokenizer, resolve_base
from llmops.model.registry import RegisteredAdapter, alias_version, resolve_alias, resolve_version
from llmops.release import Release, read_release

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"


class NoChampionError(RuntimeError):
    """The registry has no version behind the alias yet."""


@dataclass(frozen=True)
class LoadedModel:
    """A ready-to-generate model and where it came from."""

    name: str
    version: str
    base_ref: str
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    adapter: str | None = None  # the adapter to activate in a multi-adapter model; None: merged


def load_registered_model(model_name: str, alias: str) -> LoadedModel:
    """Load base + LoRA adapter of the version behind `alias`, merged for faster decoding."""
    adapter = resolve_alias(model_name, alias)
    if adapter is None:
        raise NoChampionError(f"registered model {model_name!r} has no {alias!r} alias yet")
    return _load_merged(adapter)


def _load_merged(adapter: RegisteredAdapter) -> LoadedModel:
    base = resolve_base(adapter.base_ref)
    model = load_model(base)
    # Merging removes the LoRA indirection from every forward pass; the registry keeps the adapter.
    merged = PeftModel.from_pretrained(model, str(adapter.adapter_dir)).merge_and_unload()
    merged.eval()
    return LoadedModel(
        adapter.name, adapter.version, adapter.base_ref, merged, load_tokenizer(base)
    )


def load_release_pair(
    model_name: str, champion_version: str, challenger_version: str
) -> tuple[LoadedModel, LoadedModel]:
    """Champion and challenger of a release. On a shared base, one base model in memory holds
    both adapters (peft multi-adapter, the active one switched per batch); on different bases,
    two merged models."""
    champion = resolve_version(model_name, champion_version)
    challenger = resolve_version(model_name, challenger_version)
    if champion.base_ref != challenger.base_ref:
        return _load_merged(champion), _load_merged(challenger)
    base = resolve_base(champion.base_ref)
    model = PeftModel.from_pretrained(
        load_model(base), str(champion.adapter_dir), adapter_name=CHAMPION
    )
    model.load_adapter(str(challenger.adapter_dir), adapter_name=CHALLENGER)
    model.eval()
    tokenizer = load_tokenizer(base)
    return (
        LoadedModel(model_name, champion.version, champion.base_ref, model, tokenizer, CHAMPION),
        LoadedModel(
            model_name, challenger.version, challenger.base_ref, model, tokenizer, CHALLENGER
        ),
    )


class ModelSlot:
    """Holds the served model; `refresh` reloads it when the alias points at another version,
    and loads or drops the challenger when a release starts or ends."""

    def __init__(
        self,
        model_name: str,
        alias: str,
        refresh_seconds: float,
        load: Callable[[str, str], LoadedModel] = load_registered_model,
        current_version: Callable[[str, str], str | None] = alias_version,
        current_release: Callable[[str], Release | None] = read_release,
        load_pair: Callable[[str, str, str], tuple[LoadedModel, LoadedModel]] = load_release_pair,
    ) -> None:
        self.model_name, self.alias, self.refresh_seconds = model_name, alias, refresh_seconds
        self._load, self._current_version = load, current_version
        self._current_release, self._load_pair = current_release, load_pair
        self.loaded = load(model_name, alias)
        self.challenger: LoadedModel | None = None
        self.release: Release | None = None
        self._checked_at = time.monotonic()
        self.refresh(force=True)  # a release may be running already

    @property
    def version(self) -> str:
        return self.loaded.version

    def refresh(self, force: bool = False) -> bool:
        """Follow the alias and the release (checked at most every refresh_seconds): swap to the
        alias's version if it moved, load the challenger when a release of it runs against this
        champion, drop it when the release ends. True when the models changed."""
        if not force and time.monotonic() - self._checked_at < self.refresh_seconds:
            return False
        self._checked_at = time.monotonic()
        version = self._current_version(self.model_name, self.alias)
        if version is None:
            return False
        release = self._current_release(self.model_name) if self.alias == CHAMPION else None
        running = (
            release is not None
            and release.running
            and release.champion_version == version
            and release.version != version
        )
        wanted = release.version if running else None
        serving = self.challenger.version if self.challenger else None
        if version == self.loaded.version and wanted == serving:
            self.release = release if running else None  # a changed share applies at once
            return False
        # Load fully before swapping: a failed load keeps serving what was served.
        if wanted is None:
            self.loaded, self.challenger = self._load(self.model_name, self.alias), None
        else:
            self.loaded, self.challenger = self._load_pair(self.model_name, version, wanted)
        self.release = release if running else None
        log.info(
            "now serving %s version %s%s",
            self.model_name,
            self.loaded.version,
            f" with challenger version {wanted} ({release.mode})" if running else "",
        )
        return True

    def route(self, user: str) -> str:
        """Which variant answers `user`: in a canary release the challenger for a sticky `share`
        of users (a hash of the user and the release), else the champion (shadow mode included:
        there the challenger only sees copies)."""
        release = self.release
        if self.challenger is None or release is None or release.mode != "canary":
            return CHAMPION
        digest = hashlib.sha256(f"{release.version}:{user}".encode()).digest()
        return CHALLENGER if int.from_bytes(digest[:8], "big") / 2**64 < release.share else CHAMPION

    @property
    def shadowing(self) -> bool:
        """Whether every request is to be copied to the challenger (shadow release running)."""
        return (
            self.challenger is not None
            and self.release is not None
            and (self.release.mode == "shadow")
        )

    def serves(self, variant: str) -> bool:
        return variant == CHAMPION or (variant == CHALLENGER and self.challenger is not None)

    def variant(self, name: str = CHAMPION) -> LoadedModel:
        """The loaded model of a variant (the champion when no challenger is loaded)."""
        return self.challenger if name == CHALLENGER and self.challenger else self.loaded

    def render_chat(self, messages: Sequence[dict[str, str]], variant: str = CHAMPION) -> str:
        """The prompt text the chat template makes of a conversation."""
        return self.variant(variant).tokenizer.apply_chat_template(
            list(messages), add_generation_prompt=True, tokenize=False
        )

    def count_tokens(self, text: str, variant: str = CHAMPION) -> int:
        """Prompt length in tokens, as the model sees it."""
        return len(self.variant(variant).tokenizer(text, add_special_tokens=False)["input_ids"])

    def generate(
        self,
        prompts: Sequence[str],
        max_new_tokens: int,
        temperature: float,
        streams: Sequence[TextSink | None] | None = None,
        variant: str = CHAMPION,
    ) -> list[tuple[str, int, int]]:
        """One batched generate call over rendered prompts; `streams` as in generate_texts."""
        loaded = self.variant(variant)
        if loaded.adapter is not None:
            loaded.model.set_adapter(loaded.adapter)  # on the one generation thread: no race
        return generate_texts(
            loaded.model, loaded.tokenizer, prompts, max_new_tokens, temperature, streams
        )
