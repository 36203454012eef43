"""The fine-tuning flow with num_processes: 2 (accelerate launch, DDP over gloo on CPU) trains
the adapter one process trains on the same global batch, streams its metrics to MLflow and
mirrors its checkpoints from rank 0."""

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from model_support import _write_dataset, tiny_records
from safetensors.torch import load_file

from flows.finetune import finetune
from llmops.flow_configs import FinetuneConfig
from llmops.model.loading import load_tokenizer, resolve_base
from llmops.model.training import ThroughputCallback, encode_examples, train_lora
from llmops.records import instruction_to_messages
from llmops.tracking import mlflow_client

pytestmark = pytest.mark.usefixtures("prefect_harness")


def varied_records() -> pd.DataFrame:
    """Answers of 1 to ~75 words: the two halves of a global batch then hold different label
    counts, so a loss averaged per process (not over the global batch) would differ from one
    process's, which is what this test must catch."""
    varied = [
        {
            "record_id": f"v{i}",
            "source": "varied",
            "messages": instruction_to_messages(f"question {i}", " ".join(["word"] * (1 + 9 * i))),
        }
        for i in range(8)
    ]
    return pd.concat([tiny_records(8), pd.DataFrame(varied)], ignore_index=True)


def test_two_gloo_processes_train_what_one_process_trains(
    llmops_home: Path, tmp_path: Path
) -> None:
    dataset = _write_dataset(tmp_path, "varied-16", varied_records(), tiny_records(2, 100))
    # tiny profile: 6 steps of a global batch of 4, LoRA dropout 0, a checkpoint every 2 steps
    config = FinetuneConfig.from_profile("tiny", dataset=str(dataset), num_processes=2)
    result = finetune(config)

    base = resolve_base("tiny-random")
    examples, dropped = encode_examples(
        load_tokenizer(base), varied_records()["messages"], config.max_seq_len
    )
    assert dropped == 0
    one: dict[int, float] = {}
    # One thread, like each DDP child (torchrun's default): on a busy host the OpenMP threads
    # of a multi-threaded run wait for each other; the numbers do not depend on it.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train_lora(
            base,
            load_tokenizer(base),
            examples,
            config.lora(),
            config.train_settings(),
            tmp_path / "one" / "checkpoints",
            tmp_path / "one" / "adapter",
            callbacks=[
                ThroughputCallback(
                    lambda v, step: one.update({step: v["loss"]}) if "loss" in v else None
                )
            ],
        )
    finally:
        torch.set_num_threads(threads)

    # the same loss at every step (streamed from rank 0 to MLflow), and the same adapter
    client = mlflow_client()
    two = {m.step: m.value for m in client.get_metric_history(result.training_run_id, "loss")}
    assert sorted(two) == [1, 2, 3, 4, 5, 6]
    assert two == pytest.approx(one, abs=1e-4)
    trained_one = load_file(tmp_path / "one" / "adapter" / "adapter_model.safetensors")
    trained_two = load_file(Path(result.run_uri) / "adapter" / "adapter_model.safetensors")
    assert trained_one.keys() == trained_two.keys() and len(trained_one) > 0
    assert max((trained_one[k] - trained_two[k]).abs().max().item() for k in trained_one) < 1e-3
    # LoRA's B matrices start at zero: they moved, so these are not two untrained adapters
    assert max(trained_two[k].abs().max().item() for k in trained_two if "lora_B" in k) > 1e-3

    # the Arrow-backed examples reached the processes as their files (memory-mapped there)
    job_file = llmops_home / "work" / "runs" / Path(result.run_uri).name / "distributed-job.json"
    job = json.loads(job_file.read_text())
    assert len(job["example_files"]) >= 1 and job["examples"] == []
    # rank 0 alone mirrored the checkpoints; the cost counts both processes' device time
    assert result.metrics["checkpoint_saves"] == 3 and result.metrics["global_step"] == 6
    checkpoints = Path(result.run_uri) / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["checkpoint-4", "checkpoint-6"]
    run = client.get_run(result.training_run_id)
    assert run.data.tags["num_processes"] == "2" and run.info.status == "FINISHED"
    assert result.cost is not None and result.cost.tokens == result.metrics["tokens_seen"] > 0
    assert result.metrics["train_seconds"] < result.cost.device_seconds
