"""Multi-process training settings: the global batch split over the processes, the launch
command, and the config rules (the 2-process run itself: tests/flows/test_finetune_processes.py)."""

from pathlib import Path

import pytest
from datasets import Dataset
from pydantic import ValidationError

from llmops.flow_configs import FinetuneConfig
from llmops.model.cost import ComputeCost, CostSettings, TrainingBudget
from llmops.model.distributed import (
    Launch,
    TrainingJob,
    job_examples,
    launch_command,
    load_job_examples,
    per_process_settings,
)
from llmops.model.loading import BaseModel
from llmops.model.run_store import TrainingRun

SETTINGS = FinetuneConfig.from_profile("tiny", batch_size=8).train_settings()


def test_each_process_takes_its_share_of_the_global_batch() -> None:
    assert per_process_settings(SETTINGS, 4).batch_size == 2
    assert per_process_settings(SETTINGS, 1) == SETTINGS
    with pytest.raises(ValueError, match="batch_size 8 does not split evenly over 3 processes"):
        per_process_settings(SETTINGS, 3)


def test_the_launch_command_names_the_processes_config_and_job() -> None:
    command = launch_command(Launch(2, "infra/accelerate/ddp.yaml"), Path("/tmp/job.json"), 29611)
    config = command[command.index("--config_file") + 1]
    assert Path(config).is_file() and config.endswith("infra/accelerate/ddp.yaml")
    assert command[command.index("--num_processes") + 1] == "2"
    assert command[command.index("--main_process_port") + 1] == "29611"
    assert command[-3:] == ["-m", "llmops.model.distributed", "/tmp/job.json"]


def test_the_config_launches_processes_only_when_asked_and_splits_the_batch() -> None:
    assert FinetuneConfig.from_profile("tiny").launch() is None
    config = FinetuneConfig.from_profile("tiny", num_processes=2)
    assert config.launch() == Launch(2, "infra/accelerate/ddp.yaml")
    # the same weights whatever the number of processes: a run may resume with another number
    assert (
        config.training_fingerprint() == FinetuneConfig.from_profile("tiny").training_fingerprint()
    )
    with pytest.raises(ValidationError, match=r"batch_size \(4\) is the global batch"):
        FinetuneConfig.from_profile("tiny", num_processes=3)
    with pytest.raises(ValidationError, match="qlora with num_processes > 1"):
        FinetuneConfig.from_profile("tiny", num_processes=2, qlora=True)


def test_an_arrow_dataset_travels_as_its_files_and_other_examples_as_rows(tmp_path: Path) -> None:
    rows = [{"input_ids": [1, 2, i], "labels": [-100, 2, i]} for i in range(5)]
    Dataset.from_list(rows).save_to_disk(tmp_path / "saved")
    on_disk = Dataset.load_from_disk(tmp_path / "saved")
    carried = job_examples(on_disk)
    assert list(carried) == ["example_files"] and carried["example_files"][0].suffix == ".arrow"
    # a selection of the file's rows, and rows held in memory, travel as rows
    assert job_examples(on_disk.select([0, 2])) == {"examples": [rows[0], rows[2]]}
    assert job_examples(Dataset.from_list(rows)) == {"examples": rows}
    assert job_examples(rows) == {"examples": rows}

    job = TrainingJob(
        base=BaseModel("tiny-random", "tiny-random", None),
        **carried,
        lora=FinetuneConfig.from_profile("tiny").lora(),
        settings=SETTINGS,
        run=TrainingRun(key="k", uri=str(tmp_path / "store"), work_dir=tmp_path / "work"),
        cost=CostSettings(),
        budget=TrainingBudget(),
        spent_before=ComputeCost(),
    )
    again = TrainingJob.model_validate_json(job.model_dump_json())  # what a child reads
    assert list(load_job_examples(again)) == rows
