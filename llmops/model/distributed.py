"""Multi-process LoRA training: `accelerate launch` runs the same `train_lora` in N processes
(DDP: one device each, gloo on CPU, NCCL on CUDA) and this process follows it.

    accelerate launch --config_file infra/accelerate/ddp.yaml --num_processes 2 \\
        -m llmops.model.distributed <run work dir>/distributed-job.json

`train_lora_processes` writes the job (base, encoded examples, settings, the run) as JSON,
launches that command, and reads the children's output line by line: rank 0 prints its logs,
cost and final metrics as `llmops-event <json>` lines, which it hands to the caller's sinks
(MLflow, the run's cost record) while the rest is passed on as log lines. Only rank 0 runs the
callbacks (tokens/s, the checkpoint mirror, the cost meter and budget) and saves the adapter.

The batch: `settings.batch_size` is the global batch; each process takes batch_size / N of it.
accelerate's sampler gives process i the i-th slice of each global batch of the seeded order,
and the Trainer divides the loss by the label tokens of the whole global batch, so N processes
train on the same examples per step with the same loss as one process (tested at N=2).
"""

import json
import os
import socket
import subprocess
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pydantic
import torch
from datasets import Dataset, concatenate_datasets

from llmops.model.cost import BudgetExceededError, ComputeCost, CostSettings, TrainingBudget
from llmops.model.loading import BaseModel, load_tokenizer
from llmops.model.run_store import TrainingRun
from llmops.model.train_settings import Launch, LoraSettings, PreferenceSettings, TrainSettings
from llmops.model.training import (
    CheckpointMirror,
    CostMeter,
    ThroughputCallback,
    TrainingExamples,
    pick_precision,
    train_lora,
)

EVENT_PREFIX = "llmops-event "
# A child that stopped on its budget exits with this code, after printing a budget_stop event.
BUDGET_EXIT_CODE = 3


class TrainingJob(pydantic.BaseModel):
    """Everything a child process needs to run `train_lora` on its share of the run."""

    model_config = pydantic.ConfigDict(extra="forbid")

    base: BaseModel
    # An Arrow-backed dataset travels as its files, which every process memory-maps; other
    # examples (a list, a streamed dataset) travel inside the job.
    examples: list[dict[str, Any]] = []
    example_files: list[Path] = []
    lora: LoraSettings
    settings: TrainSettings  # batch_size is the global batch
    run: TrainingRun
    resume_from: Path | None = None
    preference: PreferenceSettings | None = None
    cost: CostSettings
    budget: TrainingBudget
    seconds_per_step: float | None = None
    spent_before: ComputeCost


def job_examples(examples: TrainingExamples) -> dict[str, Any]:
    """The TrainingJob fields that carry `examples`: the Arrow files of a dataset read from
    them whole, else the examples themselves."""
    if isinstance(examples, Dataset) and examples.cache_files:
        files = [Path(f["filename"]) for f in examples.cache_files]
        # a dataset whose rows are a selection of its files' rows must travel as rows
        if sum(Dataset.from_file(str(f)).num_rows for f in files) == examples.num_rows:
            return {"example_files": files}
    return {"examples": list(examples)}


def load_job_examples(job: TrainingJob) -> TrainingExamples:
    """The job's examples, memory-mapped from their Arrow files when it names them."""
    if not job.example_files:
        return job.examples
    return concatenate_datasets([Dataset.from_file(str(f)) for f in job.example_files])


def per_process_settings(settings: TrainSettings, num_processes: int) -> TrainSettings:
    """The settings one of `num_processes` processes trains with: its slice of the global batch."""
    if settings.batch_size % num_processes:
        raise ValueError(
            f"batch_size {settings.batch_size} does not split evenly over {num_processes} processes"
        )
    return replace(settings, batch_size=settings.batch_size // num_processes)


def launch_command(launch: Launch, job_file: Path, port: int) -> list[str]:
    """The `accelerate launch` command line that trains `job_file` in `launch.num_processes`."""
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(launch.config_path()),
        "--num_processes",
        str(launch.num_processes),
        "--num_machines",
        "1",
        # a free port per run: two runs (or test sessions) on one host must not share one
        "--main_process_port",
        str(port),
        "-m",
        __name__,
        str(job_file),
    ]


def train_lora_processes(
    job: TrainingJob,
    launch: Launch,
    on_log: Callable[[dict[str, float], int], None],
    on_cost: Callable[[ComputeCost, int], None],
    echo: Callable[[str], None],
) -> dict[str, Any]:
    """Train `job` in `launch.num_processes` processes; stream rank 0's logs to `on_log`, its
    cost to `on_cost` and every other output line to `echo`; return its metrics (train_lora's
    plus the checkpoint mirror's). Raises BudgetExceededError when the budget stopped it."""
    per_process_settings(job.settings, launch.num_processes)  # fail here, not in N children
    job.run.work_dir.mkdir(parents=True, exist_ok=True)
    job_file = job.run.work_dir / "distributed-job.json"
    job_file.write_text(job.model_dump_json())
    # No progress bars: their carriage-return updates would each become a log line.
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TQDM_DISABLE": "1"}
    result: dict[str, Any] | None = None
    stop: BudgetExceededError | None = None
    tail: deque[str] = deque(maxlen=30)
    with subprocess.Popen(
        launch_command(launch, job_file, _free_port()),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    ) as children:
        assert children.stdout is not None
        for line in children.stdout:
            if not line.startswith(EVENT_PREFIX):
                tail.append(line.rstrip())
                echo(line.rstrip())
                continue
            kind, body = next(iter(json.loads(line[len(EVENT_PREFIX) :]).items()))
            if kind == "log":
                on_log(body["values"], body["step"])
            elif kind == "cost":
                on_cost(ComputeCost.model_validate(body["spent"]), body["step"])
            elif kind == "budget_stop":
                spent = ComputeCost.model_validate(body["spent"])
                stop = BudgetExceededError(body["reason"], spent, body["step"])
            elif kind == "result":
                result = body
    if stop is not None:
        raise stop
    if children.returncode != 0 or result is None:
        last = "\n".join(tail)
        raise RuntimeError(
            f"accelerate launch ({launch.num_processes} processes) exited with "
            f"{children.returncode}; its last lines:\n{last}"
        )
    return result


def _free_port() -> int:
    """A TCP port free on this host now (for the processes' rendezvous)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _emit(kind: str, body: Any) -> None:
    """One event line for the parent; a single write, so lines of other ranks never split it."""
    sys.stdout.write(EVENT_PREFIX + json.dumps({kind: body}) + "\n")
    sys.stdout.flush()


def _run_child(job: TrainingJob) -> None:
    """One process's share of the run: rank 0 reports, mirrors checkpoints and saves."""
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ["LOCAL_RANK"])
    # Each process trains on its own device; the Trainer and DDP place the replicas there.
    device = torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    mirror = CheckpointMirror(job.run)
    callbacks = []
    if rank == 0:

        def report_cost(spent: ComputeCost, step: int) -> None:
            _emit("cost", {"spent": spent.model_dump(mode="json"), "step": step})

        meter = CostMeter(job.cost, job.budget, job.seconds_per_step, job.spent_before, report_cost)
        log = ThroughputCallback(
            lambda values, step: _emit("log", {"values": values, "step": step})
        )
        callbacks = [log, mirror, meter]
    try:
        metrics = train_lora(
            job.base,
            load_tokenizer(job.base),
            load_job_examples(job),
            job.lora,
            per_process_settings(job.settings, world),
            job.run.local_checkpoints,
            job.run.local_adapter,
            job.resume_from,
            callbacks,
            pick_precision(device, job.settings.cpu_bf16),
            job.preference,
        )
    except BudgetExceededError as stopped:
        # Rank 0 alone meters the budget; the launcher then ends the other ranks.
        spent = stopped.spent.model_dump(mode="json")
        _emit("budget_stop", {"reason": stopped.reason, "spent": spent, "step": stopped.step})
        sys.exit(BUDGET_EXIT_CODE)
    if rank == 0:
        _emit("result", {**metrics, **mirror.metrics()})


if __name__ == "__main__":
    _run_child(TrainingJob.model_validate_json(Path(sys.argv[1]).read_text()))
