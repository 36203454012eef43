"""Checkpoints mirrored to the store: a process killed (kill -9) *inside* a checkpoint save
resumes, on a fresh host, from the previous complete checkpoint, to exactly the adapter an
uninterrupted run makes. The tiny model trains in a subprocess that kills itself mid-save."""

import os
import subprocess
import sys
from pathlib import Path

from safetensors.torch import load_file

from llmops import store
from llmops.model.run_store import COMPLETE_MARKER, TrainingRun, complete_steps, restore_checkpoint

ROOT = Path(__file__).resolve().parents[3]

# Trains the tiny model for 6 steps (a checkpoint every 2) with its checkpoints mirrored to the
# store; with a kill step, SIGKILLs itself after the checkpoint's weights are written and before
# its optimizer state is: inside the Trainer's save.
TRAIN = """
import os, signal, sys
from pathlib import Path
from transformers import Trainer
from llmops.model.loading import load_tokenizer, resolve_base
from llmops.model.run_store import TrainingRun, restore_checkpoint
from llmops.model.training import (
    CheckpointMirror, LoraSettings, TrainSettings, encode_examples, train_lora,
)
sys.path.append("tests")  # after llmops is imported: tests/llmops/ would shadow it
from model_support import tiny_records

store_uri, work_dir, kill_at = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
original = Trainer._save_optimizer_and_scheduler

def save(self, output_dir):
    if self.state.global_step == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    original(self, output_dir)

Trainer._save_optimizer_and_scheduler = save
run = TrainingRun("k", store_uri, work_dir)
base = resolve_base("tiny-random")
tokenizer = load_tokenizer(base)
examples, _ = encode_examples(tokenizer, [list(m) for m in tiny_records(12)["messages"]], 256)
settings = TrainSettings(1e-3, 6, 4, 1, 0.0, True, 2, 1, 0)
lora = LoraSettings(4, 8, 0.0, "all-linear")
resume = restore_checkpoint(run)
metrics = train_lora(base, tokenizer, examples, lora, settings, run.local_checkpoints,
                     run.local_adapter, resume, [CheckpointMirror(run)])
print(metrics["resumed_from_step"])
"""


def train(store_uri: str, work_dir: Path, kill_at: int = 0) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-P", "-c", TRAIN, store_uri, str(work_dir), str(kill_at)],
        cwd=ROOT,
        env=os.environ,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_kill_inside_a_checkpoint_save_resumes_from_the_previous_complete_one(tmp_path: Path):
    reference = train(str(tmp_path / "reference-store"), tmp_path / "reference-work")
    assert reference.returncode == 0, reference.stderr[-2000:]

    store_uri = str(tmp_path / "store")
    killed = train(store_uri, tmp_path / "host-a", kill_at=4)
    assert killed.returncode == -9, killed.stderr[-2000:]
    # The killed save left a checkpoint folder on the host, with weights but no optimizer.
    half = tmp_path / "host-a" / "checkpoints" / "checkpoint-4"
    assert (half / "adapter_model.safetensors").exists()
    assert not (half / "optimizer.pt").exists()
    run = TrainingRun("k", store_uri, tmp_path / "host-b")
    assert complete_steps(run) == [2]  # checkpoint-4 never reached the store as complete

    resumed = train(store_uri, tmp_path / "host-b")  # a fresh host: only the store is shared
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert int(resumed.stdout.split()[-1]) == 2
    weights = load_file(tmp_path / "host-b" / "adapter" / "adapter_model.safetensors")
    expected = load_file(tmp_path / "reference-work" / "adapter" / "adapter_model.safetensors")
    assert weights.keys() == expected.keys()
    assert max((weights[k] - expected[k]).abs().max().item() for k in weights) == 0.0
    assert complete_steps(run) == [4, 6]  # older ones pruned, the two newest kept


def test_a_half_written_local_checkpoint_is_never_resumed_from(tmp_path: Path):
    run = TrainingRun("r", str(tmp_path / "store"), tmp_path / "work")
    complete = store.join(run.checkpoints_uri, "checkpoint-2")
    store.write_text(store.join(complete, "adapter_model.safetensors"), "weights")
    store.write_json(store.join(complete, COMPLETE_MARKER), {"step": 2})
    store.write_text(store.join(run.checkpoints_uri, "checkpoint-4", "partial"), "half an upload")
    (run.local_checkpoints / "checkpoint-6").mkdir(parents=True)  # killed mid-save, locally

    restored = restore_checkpoint(run)
    assert restored == run.local_checkpoints / "checkpoint-2"
    assert sorted(p.name for p in run.local_checkpoints.iterdir()) == ["checkpoint-2"]
    assert (restored / "adapter_model.safetensors").read_text() == "weights"
