"""Render prefect.yaml from the flow profiles, so deployment parameters never drift from them.

    .venv/bin/python deployments/render.py        # rewrites prefect.yaml
    .venv/bin/prefect --no-prompt deploy --all    # against a running Prefect server

tests/test_contracts.py fails when the committed prefect.yaml differs from this output.
"""

from pathlib import Path
from typing import Any

import yaml

from llmops.config import load_profile_data

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("prepare", "finetune", "evaluate", "promote")

GPU_FINETUNE = "finetune/finetune-gpu"


def retrain_trigger(event: str, new_data: str | None = None, **rule: Any) -> dict[str, Any]:
    """A deployment trigger on `event` that passes why (and which new data) into the run."""
    config = {
        **load_profile_data("retrain", "cpu"),
        "finetune_deployment": GPU_FINETUNE,
        "reason": "{{ event.event }}",
        # A plain string: Prefect renders templates in mapping values, not inside lists.
        "new_data": new_data or [],
    }
    return {
        "type": "event",
        "enabled": True,
        "expect": [event],
        "match": {"prefect.resource.id": "llmops.*"},
        **rule,
        "parameters": {"config": config},
    }


# (flow file, flow name, deployment name, work pool, profile, description, extra settings)
DEPLOYMENTS: list[dict[str, Any]] = [
    {
        "file": "prepare",
        "flow": "prepare",
        "name": "prepare",
        "pool": "cpu",
        "description": "Ingest, validate against the data contract, redact PII, deduplicate, split "
        "and version a dataset.",
    },
    {
        "file": "finetune",
        "flow": "finetune",
        "name": "finetune-gpu",
        "pool": "gpu",
        "profile": "gpu",
        "concurrency_limit": 1,
        "description": "LoRA fine-tuning on the GPU pool; never two at once.",
    },
    {
        "file": "evaluate",
        "flow": "evaluate",
        "name": "evaluate",
        "pool": "cpu",
        "description": "Candidate vs base vs champion on the held-out split, logged to MLflow.",
    },
    {
        "file": "promote",
        "flow": "promote",
        "name": "promote",
        "pool": "cpu",
        "concurrency_limit": 1,
        "description": "Register the candidate and apply the promotion gate (never a regression).",
    },
    {
        "file": "rollback",
        "flow": "rollback",
        "name": "rollback",
        "pool": "cpu",
        "concurrency_limit": 1,
        "description": "Move the champion alias back to the previous champion.",
    },
    {
        "file": "monitor",
        "flow": "monitor",
        "name": "drift-check-hourly",
        "pool": "cpu",
        "schedules": [{"cron": "0 * * * *", "timezone": "UTC", "active": False}],
        "description": "Hourly Evidently drift check of live traffic against the champion's data; "
        "emits llmops.drift.detected.",
    },
    {
        "file": "watch",
        "flow": "watch",
        "name": "watch-landing",
        "pool": "cpu",
        "concurrency_limit": 1,
        "schedules": [{"interval": 60, "active": False}],
        "description": "Every minute: announce new files in the landing zone as "
        "llmops.dataset.landed events.",
    },
    {
        "file": "training_pipeline",
        "flow": "training_pipeline",
        "name": "training-pipeline",
        "pool": "cpu",
        "concurrency_limit": 1,
        "finetune_deployment": GPU_FINETUNE,
        "description": "The training pipeline on the profile's data (prepare -> fine-tune on the "
        "GPU pool -> evaluate -> promote), run by hand.",
    },
    {
        "file": "retrain",
        "flow": "retrain",
        "name": "retrain",
        "pool": "cpu",
        "concurrency_limit": 1,
        "finetune_deployment": GPU_FINETUNE,
        "schedules": [{"cron": "0 3 * * *", "timezone": "UTC", "active": False}],
        "triggers": [
            retrain_trigger("llmops.dataset.landed", new_data="{{ event.payload.path }}"),
            retrain_trigger("llmops.drift.detected"),
            retrain_trigger(
                "llmops.feedback.received", threshold=50, within=3600, posture="Reactive"
            ),
        ],
        "description": "Retraining: exports feedback, then runs the training pipeline on base "
        "data + newly landed data + feedback; nightly, on new data, on drift, or after 50 "
        "feedbacks within an hour. The run is named after why it started.",
    },
]


def parameters(spec: dict[str, Any]) -> dict[str, Any]:
    """The deployment's `config` parameter, read from the profiles."""
    profile = spec.get("profile", "cpu")
    if spec["file"] == "retrain":
        config = load_profile_data("retrain", profile)
        return {"config": {**config, "reason": "schedule", "finetune_deployment": GPU_FINETUNE}}
    if spec["file"] != "training_pipeline":
        return {"config": load_profile_data(spec["file"], profile)}
    stage_profile = {s: load_profile_data(s, profile) for s in STAGES}
    pipeline = load_profile_data("training_pipeline", profile)
    config = {s: {**stage_profile[s], **pipeline.get(s, {})} for s in STAGES}
    config["finetune_deployment"] = spec["finetune_deployment"]
    return {"config": config}


def render() -> str:
    """prefect.yaml as text."""
    deployments = []
    for spec in DEPLOYMENTS:
        entry = {
            "name": spec["name"],
            "description": spec["description"],
            "entrypoint": f"flows/{spec['file']}.py:{spec['flow']}",
            "tags": ["llmops", spec["file"].replace("_", "-")],
            "parameters": parameters(spec),
            "work_pool": {"name": spec["pool"]},
        }
        for key in ("concurrency_limit", "schedules", "triggers"):
            if key in spec:
                entry[key] = spec[key]
        deployments.append(entry)
    document = {
        "name": "llmops",
        "prefect-version": "3.8.8",
        # Workers run the code from a checkout of this repository on their host.
        "pull": [
            {
                "prefect.deployments.steps.set_working_directory": {
                    "directory": "{{ $LLMOPS_PROJECT_DIR }}"
                }
            }
        ],
        "deployments": deployments,
    }
    header = "# Generated by deployments/render.py from profiles/: edit those, then re-render.\n"
    return header + yaml.safe_dump(document, sort_keys=False, width=100)


if __name__ == "__main__":
    (ROOT / "prefect.yaml").write_text(render())
