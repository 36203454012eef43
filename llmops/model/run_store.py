"""Where a fine-tuning run keeps its state so that any host can resume or reuse it.

A run is keyed by the fingerprint of its config, dataset and base weights. Its durable state
lives in the store under runs/<key>/; the Trainer works in a local scratch folder:

    <store>/runs/<key>/checkpoints/checkpoint-<step>/   mirrored after each save; a marker
                                                       file, written last, says it is complete
    <store>/runs/<key>/adapter/                         the finished adapter
    <store>/runs/<key>/mlflow_run_id                    the MLflow run, reopened on resume
    <store>/runs/<key>/cost.json                        device time and tokens spent so far,
                                                       by every attempt (the budget counts it)
    <store>/runs/<key>/trained.json                     the TrainedAdapter, written last of all

The Trainer writes checkpoint folders in place, so a process killed during a save leaves a
folder that looks like a checkpoint but is not one. Only checkpoints carrying our marker are
ever resumed from: the marker is written after the Trainer's save returned and after every
file reached the store (training.CheckpointMirror writes it).
"""

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from llmops import store
from llmops.model.cost import ComputeCost

COMPLETE_MARKER = "llmops-complete.json"
CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
KEEP_CHECKPOINTS = 2


@dataclass(frozen=True)
class TrainingRun:
    """A run's key, its folder in the store, and the local scratch folder the Trainer uses."""

    key: str
    uri: str
    work_dir: Path

    @property
    def checkpoints_uri(self) -> str:
        return store.join(self.uri, "checkpoints")

    @property
    def adapter_uri(self) -> str:
        return store.join(self.uri, "adapter")

    @property
    def result_uri(self) -> str:
        return store.join(self.uri, "trained.json")

    @property
    def mlflow_run_id_uri(self) -> str:
        return store.join(self.uri, "mlflow_run_id")

    @property
    def spent_uri(self) -> str:
        return store.join(self.uri, "cost.json")

    @property
    def local_checkpoints(self) -> Path:
        return self.work_dir / "checkpoints"

    @property
    def local_adapter(self) -> Path:
        return self.work_dir / "adapter"


def complete_steps(run: TrainingRun) -> list[int]:
    """Steps of the checkpoints in the store that were completely written, oldest first."""
    steps = []
    for name in store.list_names(run.checkpoints_uri):
        match = CHECKPOINT.match(name)
        if match and store.exists(store.join(run.checkpoints_uri, name, COMPLETE_MARKER)):
            steps.append(int(match.group(1)))
    return sorted(steps)


def read_spent(run: TrainingRun) -> ComputeCost:
    """What every attempt of the run has spent so far (nothing, before its first log)."""
    if not store.exists(run.spent_uri):
        return ComputeCost()
    return ComputeCost.model_validate(store.read_json(run.spent_uri))


def write_spent(run: TrainingRun, spent: ComputeCost) -> None:
    """Record what the run has spent so far (all attempts), for the next attempt's budget."""
    store.write_json(run.spent_uri, spent.model_dump(mode="json"))


def restore_checkpoint(run: TrainingRun) -> Path | None:
    """Bring the newest complete checkpoint from the store into a clean local checkpoints
    folder and return it (None when there is none). Local leftovers are discarded: they may
    be half-written by a process that was killed while saving."""
    shutil.rmtree(run.local_checkpoints, ignore_errors=True)
    steps = complete_steps(run)
    if not steps:
        return None
    name = f"checkpoint-{steps[-1]}"
    return store.download_dir(store.join(run.checkpoints_uri, name), run.local_checkpoints / name)
