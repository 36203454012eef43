"""LoRA fine-tuning of the base model on a prepared dataset.

    llmops finetune <prepared dataset folder> --profile cpu

Checkpoints go to <home>/runs/<fingerprint>/ every `save_every` steps; a killed run started
again with the same config and data resumes from its last checkpoint, and a finished one is
reused instead of trained again. The artifact is the adapter alone (megabytes), logged to the
MLflow training run.
"""

from typing import Any, ClassVar

from prefect import flow
from pydantic import Field

from llmops.config import FlowConfig
from llmops.model.training import LoraSettings, TrainSettings
from tasks.finetune import (
    load_finished_run,
    load_training_data,
    log_adapter,
    plan_run_dir,
    publish_training_summary,
    resolve_base_model,
    settings_params,
    start_training_run,
    train_adapter,
)


class FinetuneConfig(FlowConfig):
    """Settings of one LoRA fine-tuning run."""

    profile_dir: ClassVar[str] = "finetune"

    dataset: str = Field("", description="Prepared dataset folder (or its train Parquet file).")
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
    batch_size: int = Field(8, ge=1, le=1024, description="Examples per device batch.")
    grad_accum: int = Field(1, ge=1, le=1024, description="Gradient accumulation steps.")
    max_seq_len: int = Field(512, ge=16, le=32_768, description="Truncate examples to this.")
    packing: bool = Field(True, description="Padding-free packed batches (else padded).")
    save_every: int = Field(25, ge=1, description="Checkpoint every N steps.")
    log_every: int = Field(5, ge=1, description="Log loss, lr and tokens/s every N steps.")
    seed: int = Field(0, description="Random seed (weights init, data order).")
    experiment: str = Field("llmops-finetune", description="MLflow experiment of training runs.")

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
        )

    def training_fingerprint(self) -> str:
        """Hash of everything that changes the trained weights (not where the data lives, nor
        the MLflow experiment): two runs with equal fingerprints, data and base are the same."""
        return self.model_copy(update={"dataset": "", "experiment": ""}).fingerprint()


# persist_result: the training pipeline reads this result back when it runs fine-tuning as a
# deployment on the gpu pool (run_deployment), and Prefect keeps no flow results by default.
@flow(name="finetune", log_prints=True, persist_result=True)
def finetune(config: FinetuneConfig) -> dict[str, Any]:
    """Train a LoRA adapter on the dataset's train split (resuming or reusing a run folder)."""
    dataset_id, records = load_training_data(config.dataset)
    base = resolve_base_model(config.base_model)
    fingerprint = config.training_fingerprint()
    run_dir = plan_run_dir(fingerprint, dataset_id, base)
    result = load_finished_run(run_dir)
    if result is None:
        tags = {"dataset_id": dataset_id, "base_model": base.ref, "base_sha256": str(base.sha256)}
        params = settings_params(config.lora(), config.train_settings())
        run_id = start_training_run(
            config.experiment, run_dir, params, {**tags, "config_fingerprint": fingerprint}
        )
        metrics = train_adapter(
            base,
            records,
            config.max_seq_len,
            config.lora(),
            config.train_settings(),
            run_dir,
            run_id,
        )
        result = log_adapter(run_id, run_dir, metrics)
    identity = {"dataset_id": dataset_id, "config_fingerprint": fingerprint}
    return publish_training_summary(
        {**result, **identity, "base": {"ref": base.ref, "path": base.path, "sha256": base.sha256}}
    )
