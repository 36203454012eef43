"""The settings of every built-in flow: one pydantic model per flow, validated from the YAML
profiles in profiles/<flow>/ and rendered by the Prefect UI as the run form.

They live in the library, not beside their flows, because tasks build them too (the training
pipeline hands one stage's output to the next stage's config) and tasks never import flows.
"""

import json
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

from pydantic import Field, field_validator, model_validator

from llmops import store
from llmops.config import FlowConfig, load_profile_data
from llmops.data.dedup import MinHashSettings
from llmops.data.shards import ShardSettings
from llmops.model.cost import CostSettings, TrainingBudget
from llmops.model.gate import GatePolicy
from llmops.model.judge import JudgeSettings
from llmops.model.metrics import METRIC_DIRECTIONS
from llmops.model.train_settings import Launch, LoraSettings, PreferenceSettings, TrainSettings
from llmops.release import Mode, ReleasePlan
from llmops.release_rule import ReleasePolicy
from llmops.serving.guardrails import GuardrailSettings

SAMPLE_DATA = "data/sample"
SAMPLE_CONTRACT = "data_contracts/support_conversations.yaml"
PAIRS_CONTRACT = "data_contracts/preference_pairs.yaml"


class PrepareConfig(FlowConfig):
    """What to read, which contract to hold it to, and how to clean and split it."""

    profile_dir: ClassVar[str] = "prepare"

    sources: list[str] = Field(
        default_factory=lambda: [SAMPLE_DATA],
        min_length=1,
        description="Files, folders, globs or s3:// URLs (JSONL, JSON, CSV, Parquet).",
    )
    output: str = Field(
        "",
        description="Where datasets are written: <output>/<dataset_id>/ (local or s3://; "
        "'' = <store>/datasets).",
    )
    contract: str = Field(SAMPLE_CONTRACT, description="Data contract file (data_contracts/).")
    storage_options: dict[str, Any] = Field(
        default_factory=dict,
        description="fsspec options for remote sources, e.g. {client_kwargs: {endpoint_url: ...}}; "
        "credentials come from the environment (AWS_*), never from here.",
    )
    pii_mode: Literal["redact", "drop", "off"] = Field("redact", description="What to do with PII.")
    near_duplicate_threshold: float = Field(
        0.8, gt=0, le=1, description="MinHash Jaccard threshold."
    )
    num_perm: int = Field(128, ge=16, le=1024, description="MinHash permutations.")
    shingle_size: int = Field(3, ge=1, le=10, description="Shingle length.")
    shingle_unit: Literal["word", "char"] = Field(
        "word", description="Shingle over words or characters."
    )
    eval_fraction: float = Field(
        0.15, gt=0, lt=1, description="Share of records held out for evaluation."
    )
    seed: int = Field(13, description="Split seed (the split is stable for a given seed).")
    eda: bool = Field(
        True, description="Write an EDA report (HTML + PNG plots) into the dataset folder."
    )
    eda_records: int = Field(
        200_000,
        ge=1,
        description="The EDA profile and figures read at most this many records of each split "
        "(the counts stay exact; bounds the report's memory on a large corpus).",
    )
    shard_records: int = Field(
        20_000,
        ge=1,
        description="Lines per shard of a JSONL source (other formats: a shard a file); "
        "memory holds a shard, not the corpus.",
    )
    range_records: int = Field(
        1_000_000,
        ge=1,
        description="Records per hash range in the global deduplication steps, which group "
        "one range at a time (each range reads every shard again): bounds their memory.",
    )
    dask_address: str | None = Field(
        None,
        description="Run the shard tasks on Dask: a scheduler address (tcp://host:8786) or "
        "'local' for a LocalCluster on this host (None: threads in this process).",
    )
    workers: int = Field(
        2,
        ge=1,
        le=256,
        description="Shard tasks at once: threads in this process, or the processes of a "
        "'local' Dask cluster (memory holds about this many shards).",
    )

    def minhash(self) -> MinHashSettings:
        return MinHashSettings(
            self.near_duplicate_threshold, self.num_perm, self.shingle_size, self.shingle_unit
        )

    def shard_settings(self, scratch: str) -> ShardSettings:
        """What each shard is prepared with; shards write to `scratch`."""
        return ShardSettings(
            self.storage_options,
            self.pii_mode,
            self.minhash(),
            self.seed,
            self.eval_fraction,
            scratch,
        )

    def output_url(self) -> str:
        """The dataset root: `output`, else <store>/datasets."""
        return self.output or store.join(self.store_url(), "datasets")

    def recipe(self) -> str:
        """The settings that shape the data (not where it is read from or written to, nor
        whether it is explored)."""
        where = {"sources", "output", "storage_options", "store", "eda"}
        where |= {
            "shard_records",
            "range_records",
            "dask_address",
            "workers",
            "eda_records",
        }  # same data
        return json.dumps(self.model_dump(exclude=where), sort_keys=True)


class FinetuneConfig(FlowConfig):
    """Settings of one LoRA fine-tuning run."""

    profile_dir: ClassVar[str] = "finetune"

    dataset: str = Field(
        "", description="URI of a prepared dataset (its folder: local path or s3://...)."
    )
    base_model: str = Field(
        "smollm2-135m-instruct",
        description="Base model: smollm2-135m-instruct, tiny-random, a local dir or a hub id.",
    )
    lora_rank: int = Field(16, ge=1, le=512, description="LoRA rank r.")
    lora_alpha: int = Field(32, ge=1, le=1024, description="LoRA scaling alpha.")
    lora_dropout: float = Field(0.05, ge=0.0, lt=1.0, description="Dropout on the LoRA input.")
    target_modules: list[str] | str = Field(
        "all-linear", description="Modules that get adapters: a list of names or 'all-linear'."
    )
    qlora: bool = Field(False, description="4-bit QLoRA (used on CUDA with bitsandbytes only).")
    learning_rate: float = Field(2e-4, gt=0.0, le=1.0, description="Peak learning rate.")
    warmup_ratio: float = Field(0.05, ge=0.0, lt=1.0, description="Share of steps warming up.")
    max_steps: int = Field(100, ge=1, le=1_000_000, description="Optimizer steps to train.")
    batch_size: int = Field(
        8,
        ge=1,
        le=1024,
        description="Examples per batch, over all processes (each takes batch_size / "
        "num_processes).",
    )
    grad_accum: int = Field(1, ge=1, le=1024, description="Gradient accumulation steps.")
    max_seq_len: int = Field(512, ge=16, le=32_768, description="Truncate examples to this.")
    packing: bool = Field(True, description="Padding-free packed batches (else padded).")
    label_logits_only: bool = Field(
        False,
        description="Project onto the vocabulary only where the next token is a label (same "
        "loss; skips the lm_head and softmax on prompt tokens, docs/finetune.md).",
    )
    num_threads: int | None = Field(
        None, ge=1, le=1024, description="torch intra-op threads while training (None: torch's)."
    )
    torch_compile: bool = Field(False, description="torch.compile the model (Trainer's option).")
    cpu_bf16: bool = Field(
        False,
        description="On a CPU with native bf16 (AVX512-BF16, AMX): bf16 base weights and "
        "autocast, LoRA weights in fp32 (changes the numerics; fp32 on other CPUs).",
    )
    data_streaming: bool = Field(
        False,
        description="SFT: stream the train split (a datasets IterableDataset, tokenized as "
        "training reads it) instead of memory-mapping it, for corpora larger than memory.",
    )
    save_every: int = Field(25, ge=1, description="Checkpoint every N steps.")
    log_every: int = Field(5, ge=1, description="Log loss, lr and tokens/s every N steps.")
    seed: int = Field(0, description="Random seed (weights init, data order).")
    method: Literal["sft", "dpo"] = Field(
        "sft",
        description="sft: supervised on the final assistant turns; dpo: preference tuning on "
        "pairs (records with a `rejected` answer) with trl's DPOTrainer.",
    )
    dpo_beta: float = Field(
        0.1, gt=0.0, le=10.0, description="DPO: how strongly the policy is held to its reference."
    )
    dpo_reference: Literal["base", "champion"] = Field(
        "base",
        description="DPO: the reference (and starting point) is the base model, or the current "
        "champion's adapter, so the result is a delta on the champion (base when none yet).",
    )
    registered_model: str = Field(
        "llmops-assistant", description="DPO with dpo_reference=champion: whose champion."
    )
    experiment: str = Field("llmops-finetune", description="MLflow experiment of training runs.")
    num_processes: int = Field(
        1,
        ge=1,
        le=256,
        description="Training processes, one device each: more than 1 launches `accelerate "
        "launch` (DDP) with the same global batch (docs/finetune.md, 'Multi-process training').",
    )
    accelerate_config: str = Field(
        "infra/accelerate/ddp.yaml",
        description="accelerate config of a multi-process run (infra/accelerate/fsdp.yaml "
        "shards larger bases), relative to the project folder.",
    )
    cost: CostSettings = Field(
        default_factory=CostSettings, description="Hourly rate per device kind, currency."
    )
    budget: TrainingBudget = Field(
        default_factory=TrainingBudget,
        description="Stop a run projected to exceed max_cost / max_device_seconds before it "
        "starts (or after warmup_steps), abort one that exceeds it while running.",
    )

    def lora(self) -> LoraSettings:
        """The peft settings."""
        return LoraSettings(self.lora_rank, self.lora_alpha, self.lora_dropout, self.target_modules)

    def train_settings(self) -> TrainSettings:
        """The Trainer settings."""
        return TrainSettings(
            learning_rate=self.learning_rate,
            max_steps=self.max_steps,
            batch_size=self.batch_size,
            grad_accum=self.grad_accum,
            warmup_ratio=self.warmup_ratio,
            packing=self.packing,
            save_every=self.save_every,
            log_every=self.log_every,
            seed=self.seed,
            qlora=self.qlora,
            label_logits_only=self.label_logits_only,
            num_threads=self.num_threads,
            torch_compile=self.torch_compile,
            cpu_bf16=self.cpu_bf16,
        )

    def preference_settings(self, start_adapter: Path | None) -> PreferenceSettings | None:
        """DPO's settings (None for supervised runs), starting from `start_adapter` when the
        reference is the champion."""
        if self.method == "sft":
            return None
        return PreferenceSettings(self.dpo_beta, self.max_seq_len, start_adapter)

    def training_fingerprint(self) -> str:
        """Hash of everything that changes the trained weights (not where the data lives, nor
        the store or MLflow experiment, nor prices and budget): equal fingerprints, data and
        base give equal runs. The champion a DPO run starts from is keyed by its adapter's hash
        (tasks.finetune.plan_training_run); supervised runs leave the DPO fields out, so their
        fingerprints are those of configs without them."""
        where = {"dataset": "", "experiment": "", "store": None}
        dpo = {"method", "dpo_beta", "dpo_reference"} if self.method == "sft" else set()
        # The processes split the same global batch: their number leaves the weights as they are.
        launch = {"num_processes", "accelerate_config"}
        # How fast the same function is trained (not the data order: data_streaming stays in).
        speed = {"label_logits_only", "num_threads", "torch_compile"}
        exclude = {"cost", "budget", "registered_model", *dpo, *launch, *speed}
        return self.model_copy(update=where).fingerprint(exclude=exclude)

    def launch(self) -> Launch | None:
        """How a multi-process run is launched; None trains in this process."""
        if self.num_processes == 1:
            return None
        return Launch(self.num_processes, self.accelerate_config)

    @model_validator(mode="after")
    def _batch_splits_over_processes(self) -> Self:
        if self.batch_size % self.num_processes:
            raise ValueError(
                f"batch_size ({self.batch_size}) is the global batch: it must be a multiple of "
                f"num_processes ({self.num_processes})"
            )
        if self.num_processes > 1 and self.qlora:
            raise ValueError("qlora with num_processes > 1 is not supported (one 4-bit process)")
        return self

    @model_validator(mode="after")
    def _champion_reference_is_dpo(self) -> Self:
        if self.dpo_reference == "champion" and self.method != "dpo":
            raise ValueError("dpo_reference=champion needs method=dpo")
        return self


class EvaluateConfig(FlowConfig):
    """Settings of one evaluation: what to compare, on how many examples, how to decode."""

    profile_dir: ClassVar[str] = "evaluate"

    dataset: str = Field("", description="URI of a prepared dataset (its folder).")
    adapter: str = Field(
        "",
        description="URI of the candidate's LoRA adapter: runs:/<id>/adapter, s3://..., a folder.",
    )
    base_model: str = Field(
        "smollm2-135m-instruct", description="Base model ref the candidate was trained on."
    )
    registered_model: str = Field(
        "llmops-assistant", description="MLflow registered model whose champion is compared."
    )
    training_run_id: str | None = Field(None, description="MLflow run that trained the candidate.")
    config_fingerprint: str | None = Field(
        None, description="Hash of the candidate's training config (recorded on its version)."
    )
    max_examples: int | None = Field(
        None, ge=1, description="Evaluate the first N held-out examples (None: all)."
    )
    max_new_tokens: int = Field(64, ge=1, le=2048, description="Generation budget per answer.")
    batch_size: int = Field(8, ge=1, le=256, description="Examples per generate/loss batch.")
    confidence: float = Field(0.95, gt=0.5, lt=1.0, description="Bootstrap confidence level.")
    n_resamples: int = Field(1000, ge=100, le=100_000, description="Bootstrap resamples.")
    experiment: str = Field("llmops-evaluation", description="MLflow experiment of eval runs.")
    cost: CostSettings = Field(
        default_factory=CostSettings, description="Hourly rate per device kind, currency."
    )
    slice_length_bounds: tuple[int, int] = Field(
        (20, 60),
        description="Reference-answer words where the medium and the long length slices start.",
    )
    bias_probe: bool = Field(
        False, description="Ask the bias probe's templated prompts (candidate and compared model)."
    )
    bias_probe_max_new_tokens: int = Field(
        48, ge=1, le=2048, description="Generation budget per bias-probe answer."
    )
    judge: JudgeSettings | None = Field(
        None,
        description="An OpenAI-compatible endpoint that judges candidate vs champion answers "
        "(win_rate); None: no judge.",
    )
    explain_metrics: list[str] = Field(
        default_factory=lambda: ["rougeL", "eval_loss"],
        description="Metrics whose largest per-example gains and losses over the base are "
        "listed with their `llmops explain` command (artifact evaluation-examples).",
    )
    explain_examples: int = Field(
        5, ge=0, le=100, description="How many gains and how many losses are listed per metric."
    )

    @field_validator("slice_length_bounds")
    @classmethod
    def _ascending(cls, bounds: tuple[int, int]) -> tuple[int, int]:
        if not 0 < bounds[0] < bounds[1]:
            raise ValueError(f"slice_length_bounds must be 0 < short end < long start: {bounds}")
        return bounds

    @field_validator("explain_metrics")
    @classmethod
    def _per_example_directional(cls, names: list[str]) -> list[str]:
        # win_rate exists only against a champion; the listing compares with the base.
        wrong = [n for n in names if METRIC_DIRECTIONS.get(n, 0) == 0 or n == "win_rate"]
        if wrong:
            raise ValueError(
                f"explain_metrics must be directional metrics with a base, not {wrong}"
            )
        return names


class PromoteConfig(FlowConfig):
    """Which evaluation to act on, the registered model, and the gate policy."""

    profile_dir: ClassVar[str] = "promote"

    evaluation_run_id: str = Field("", description="MLflow run id written by `llmops evaluate`.")
    registered_model: str = Field(
        "llmops-assistant", min_length=1, description="MLflow registered model name."
    )
    gate: GatePolicy = Field(default_factory=GatePolicy, description="The promotion gate.")
    require_approval: bool = Field(
        False, description="Pause for an operator's approval in the Prefect UI after a pass."
    )
    approval_timeout_s: int = Field(
        3600, ge=1, le=7 * 24 * 3600, description="Seconds to wait for approval; then reject."
    )
    rollout: Literal["at_once", "release"] = Field(
        "at_once",
        description="After a pass: make it champion at once, or start a live release of it "
        "(the release flow then promotes or rejects it on live evidence).",
    )
    release_mode: Mode = Field("canary", description="With rollout=release: canary or shadow.")
    release_share: float = Field(
        0.2, gt=0.0, le=1.0, description="With rollout=release: the canary's share of users."
    )

    def release_plan(self) -> ReleasePlan | None:
        """The release a pass starts, or None to promote at once."""
        if self.rollout == "at_once":
            return None
        return ReleasePlan(mode=self.release_mode, share=self.release_share)


class RollbackConfig(FlowConfig):
    """Which registered model to roll back."""

    profile_dir: ClassVar[str] = "rollback"

    registered_model: str = Field(
        "llmops-assistant", min_length=1, description="MLflow registered model name."
    )


class TrainingPipelineConfig(FlowConfig):
    """The four stage configs, plus where fine-tuning runs."""

    profile_dir: ClassVar[str] = "training_pipeline"

    prepare: PrepareConfig = Field(description="Data preparation (sources, contract, split).")
    finetune: FinetuneConfig = Field(description="LoRA fine-tuning.")
    evaluate: EvaluateConfig = Field(description="Evaluation against base and champion.")
    promote: PromoteConfig = Field(description="Registration and the promotion gate.")
    finetune_deployment: str | None = Field(
        None,
        description="Run fine-tuning as this deployment (e.g. on a GPU pool) instead of "
        "in-process: 'flow-name/deployment-name'.",
    )

    @classmethod
    def from_profile(cls, profile: str = "cpu", **overrides: Any) -> Self:
        """Compose each stage from profiles/<stage>/<profile>.yaml, then the pipeline
        profile's per-stage keys, then `overrides` (per-stage dicts or top-level fields)."""
        data = load_profile_data(cls.profile_dir, profile)
        for stage, stage_config in _stage_configs().items():
            keys = {**data.get(stage, {}), **(overrides.pop(stage, None) or {})}
            data[stage] = stage_config.from_profile(profile, **keys)
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(data)

    @model_validator(mode="after")
    def _store_reaches_every_stage(self) -> Self:
        """A store set on the pipeline is every stage's store, unless a stage names its own."""
        if self.store:
            for stage in _stage_configs():
                config = getattr(self, stage)
                if config.store is None:
                    object.__setattr__(self, stage, config.model_copy(update={"store": self.store}))
        return self

    @model_validator(mode="after")
    def _stages_agree(self) -> Self:
        if self.evaluate.base_model != self.finetune.base_model:
            raise ValueError(
                f"evaluate.base_model {self.evaluate.base_model!r} differs from "
                f"finetune.base_model {self.finetune.base_model!r}"
            )
        if self.evaluate.registered_model != self.promote.registered_model:
            raise ValueError(
                f"evaluate.registered_model {self.evaluate.registered_model!r} differs from "
                f"promote.registered_model {self.promote.registered_model!r}"
            )
        return self


class InferenceLogConfig(FlowConfig):
    """Settings of flows that write or read the inference log (serve, monitor)."""

    inference_log: str = Field(
        "", description="Folder or s3:// prefix of the inference log ('' = <store>/inference)."
    )

    def inference_log_url(self) -> str:
        """The inference log: as configured, else <store>/inference (where serve writes it)."""
        return self.inference_log or store.join(self.store_url(), "inference")


class RetrainConfig(InferenceLogConfig):
    """Why this run started, which new data it brings, and the pipeline profile to use."""

    profile_dir: ClassVar[str] = "retrain"

    reason: str = Field("manual", description="Why it runs: an event name, 'schedule', 'manual'.")
    # A string too: an event trigger passes the one landed path, and the server checks it
    # against this schema before any validator of ours runs.
    new_data: list[str] | str = Field(
        default_factory=list, description="Newly landed file(s) or prefixes to add to the sources."
    )
    profile: str = Field("cpu", description="Profile of the training pipeline's stages.")
    include_feedback: bool = Field(True, description="Add exported human feedback as data.")
    finetune_deployment: str | None = Field(
        None, description="Hand fine-tuning to this deployment (e.g. finetune/finetune-gpu)."
    )
    method: Literal["sft", "dpo"] = Field(
        "sft",
        description="sft: the profile's data + landed data + feedback as training records; "
        "dpo: preference-tune the champion on feedback pairs (+ landed pair files) alone.",
    )
    pairs_contract: str = Field(
        PAIRS_CONTRACT, description="dpo: the data contract the preference pairs are held to."
    )

    @field_validator("new_data", mode="after")
    @classmethod
    def _one_path_is_a_list(cls, value: list[str] | str) -> list[str]:
        """An event trigger passes one landed path as a string."""
        return [value] if isinstance(value, str) else value

    def feedback_export_url(self) -> str:
        """Where exported feedback goes (read by prepare, on any host): training records, or
        preference pairs for dpo."""
        name = "pairs.jsonl" if self.method == "dpo" else "export.jsonl"
        return store.join(self.store_url(), "feedback", name)


class ServeConfig(InferenceLogConfig):
    """Where to listen, which model to serve, and the limits every request must respect."""

    profile_dir: ClassVar[str] = "serve"

    registered_model: str = Field("llmops-assistant", description="MLflow registered model.")
    alias: str = Field("champion", description="Registry alias whose version is served.")
    host: str = Field("127.0.0.1", description="Interface to bind (0.0.0.0 to expose).")
    port: int = Field(8000, ge=1, le=65535, description="TCP port.")
    require_api_key: bool = Field(True, description="Reject requests without the API key.")
    api_key_env: str = Field("LLMOPS_API_KEY", description="Environment variable with the key.")
    api_key_secret_block: str | None = Field(
        None, description="Prefect Secret block holding the key (wins over the environment)."
    )
    keys_secret_block: str | None = Field(
        None,
        description="Prefect Secret block holding the keys of `llmops keys` (team stack); "
        "default: <home>/keys.json.",
    )
    keys_refresh_seconds: float = Field(
        5.0, gt=0.0, le=3600.0, description="How often keys are re-read (a revoked key's grace)."
    )
    guardrails: GuardrailSettings = Field(
        default_factory=GuardrailSettings,
        description="Screening of prompts for injection, jailbreaks, exfiltration and abuse.",
    )
    max_body_bytes: int = Field(65_536, ge=1024, le=16_777_216, description="Request size cap.")
    max_tokens_limit: int = Field(512, ge=1, le=8192, description="Largest max_tokens accepted.")
    default_max_tokens: int = Field(128, ge=1, le=8192, description="max_tokens when not sent.")
    max_prompt_tokens: int = Field(1024, ge=16, le=32_768, description="Longest prompt accepted.")
    batching: Literal["continuous", "static"] = Field(
        "continuous",
        description="continuous: requests join and leave the running batch between decoding "
        "steps; static: a batch is taken and generated to its end (batch_window_ms applies).",
    )
    max_batch: int = Field(
        16, ge=1, le=256, description="Most requests decoding together (per generate call)."
    )
    batch_window_ms: float = Field(
        10.0,
        ge=0.0,
        le=1000.0,
        description="static batching: how long a batch waits to fill after its first request.",
    )
    refresh_seconds: float = Field(
        5.0, ge=0.0, le=3600.0, description="How often the alias is checked for a new version."
    )
    log_prompts: bool = Field(
        False, description="Write prompts to the server log (PII-redacted, like the inference log)."
    )
    raw_text_retention_days: int = Field(
        0,
        ge=0,
        le=90,
        description="Also keep unredacted requests and feedback under <inference_log>/raw/ for "
        "this many days (0 = never written; the monitor flow deletes them when due).",
    )

    @model_validator(mode="after")
    def _default_within_limit(self) -> "ServeConfig":
        if self.default_max_tokens > self.max_tokens_limit:
            raise ValueError("default_max_tokens must not exceed max_tokens_limit")
        return self


class MonitorConfig(InferenceLogConfig):
    """Which windows to compare and when a difference counts as drift."""

    profile_dir: ClassVar[str] = "monitor"

    registered_model: str = Field("llmops-assistant", description="MLflow registered model.")
    reference_dataset: str = Field(
        "", description="URI of a prepared dataset ('' = the one the champion was trained on)."
    )
    current_rows: int = Field(500, ge=10, le=100_000, description="Most recent requests compared.")
    reference_rows: int = Field(1000, ge=10, le=100_000, description="Reference sample size.")
    min_rows: int = Field(30, ge=10, le=10_000, description="Smallest window worth testing.")
    embedding_auc_threshold: float = Field(
        0.55, gt=0.5, lt=1.0, description="Domain-classifier ROC AUC above which embeddings drift."
    )
    p_value: float = Field(
        0.05, gt=0.0, lt=0.5, description="K-S p-value below which a descriptor drifts."
    )
    drifted_share: float = Field(
        0.5, gt=0.0, le=1.0, description="Share of drifted descriptors that makes dataset drift."
    )
    seed: int = Field(0, description="Seed of the reference sample.")
    experiment: str = Field("llmops-monitoring", description="MLflow experiment of monitor runs.")
    retention_days: int = Field(
        30,
        ge=1,
        le=3650,
        description="Delete inference log and feedback parts older than this many days (raw "
        "parts go at the keep-until date the server gave them).",
    )


class ReleaseConfig(InferenceLogConfig):
    """Which model's release to watch, how to start one, and the rule that ends it."""

    profile_dir: ClassVar[str] = "release"

    registered_model: str = Field("llmops-assistant", description="MLflow registered model.")
    mode: Mode = Field("canary", description="canary: a share of users; shadow: copies of all.")
    share: float = Field(0.2, gt=0.0, le=1.0, description="Canary: the share of users served.")
    rule: ReleasePolicy = Field(
        default_factory=ReleasePolicy, description="Guards, the quality rule and the budgets."
    )
    evaluation_interval_s: int = Field(
        60, ge=1, le=3600, description="Seconds between evaluations (the deployment's schedule)."
    )


class WatchConfig(FlowConfig):
    """Where new data lands and where the watcher remembers what it has seen."""

    profile_dir: ClassVar[str] = "watch"

    landing: str = Field("data/landing", description="Folder or s3:// prefix to watch.")
    storage_options: dict[str, Any] = Field(
        default_factory=dict, description="fsspec options (endpoint); credentials from env."
    )
    state_file: str = Field(
        "",
        description="JSON file of announced files, path -> ETag or content hash "
        "('' = <store>/watch/seen.json).",
    )

    def state_file_url(self) -> str:
        """Where the watcher remembers what it announced."""
        return self.state_file or store.join(self.store_url(), "watch", "seen.json")


def _stage_configs() -> dict[str, type[FlowConfig]]:
    """The training pipeline's stages and their configs, in run order."""
    return {
        "prepare": PrepareConfig,
        "finetune": FinetuneConfig,
        "evaluate": EvaluateConfig,
        "promote": PromoteConfig,
    }
