"""The settings of a training run that its config names: the adapter, the optimisation, DPO's
preferences and how many processes train. Kept apart from llmops/model/training.py so that a
config is read without importing torch, transformers and peft (seconds, and a cached rerun of
the main job trains nothing)."""

from dataclasses import dataclass
from pathlib import Path

# Hardware settings live apart from the experiment (alignment-handbook style): infra/accelerate/.
PROJECT_DIR = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Launch:
    """How many processes train, and the accelerate config (DDP, or FSDP for larger bases)."""

    num_processes: int
    config_file: str  # relative to the project folder, or absolute

    def config_path(self) -> Path:
        path = Path(self.config_file)
        return path if path.is_absolute() else PROJECT_DIR / path


@dataclass(frozen=True)
class LoraSettings:
    """What peft needs to build the adapter."""

    rank: int
    alpha: int
    dropout: float
    target_modules: list[str] | str


@dataclass(frozen=True)
class TrainSettings:
    """Optimisation and bookkeeping settings of one training run."""

    learning_rate: float
    max_steps: int
    batch_size: int
    grad_accum: int
    warmup_ratio: float
    packing: bool
    save_every: int
    log_every: int
    seed: int
    qlora: bool = False
    # Speed settings (docs/finetune.md, "Where the time goes"): the function trained is the same.
    label_logits_only: bool = False
    num_threads: int | None = None
    torch_compile: bool = False
    cpu_bf16: bool = False


@dataclass(frozen=True)
class PreferenceSettings:
    """DPO on preference pairs: how far the policy may move from its reference, and which adapter
    both start from (None: a fresh one, so the reference is the base model)."""

    beta: float
    max_length: int
    start_adapter: Path | None = None
