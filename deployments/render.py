"""Render prefect.yaml from the flow profiles, so deployment parameters never drift from them.

    .venv/bin/python deployments/render.py        # rewrites prefect.yaml
    .venv/bin/prefect --no-prompt deploy --all    # against a running Prefect server

tests/test_contracts.py fails when the committed prefect.yaml differs from this output.
`llmops up --profile tiny` deploys a rendering with every deployment on one profile instead.
Flows scaffolded by `llmops new-flow` are listed in deployments/authored.yaml.
"""

import argparse
from pathlib import Path
from typing import Any

import yaml

from llmops.config import load_profile_data

ROOT = Path(__file__).resolve().parent.parent
AUTHORED = ROOT / "deployments" / "authored.yaml"
STAGES = ("prepare", "finetune", "evaluate", "promote")

GPU_FINETUNE = "finetune/finetune-gpu"
# Schedules run by themselves only for real runs; on the laptop and in tests they are declared
# but paused, so an operator turns them on in the UI (or deploys with the gpu profile).
SCHEDULES_ACTIVE = {"gpu": True}


def retrain_trigger(
    profile: str,
    name: str,
    event: str,
    new_data: str | None = None,
    method: str | None = None,
    **rule: Any,
) -> dict[str, Any]:
    """A deployment trigger on `event` that passes why (and which new data, and a training
    method other than the profile's) into the run."""
    config = {
        **load_profile_data("retrain", profile),
        "finetune_deployment": GPU_FINETUNE,
        "reason": "{{ event.event }}",
        # A plain string: Prefect renders templates in mapping values, not inside lists.
        "new_data": new_data or [],
        **({"method": method} if method else {}),
    }
    return event_trigger(config, name, event, **rule)


def event_trigger(config: dict[str, Any], name: str, event: str, **rule: Any) -> dict[str, Any]:
    """A deployment trigger on `event` (from any llmops resource) running with `config`."""
    return {
        "name": name,  # what the Automations page shows
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
        "file": "serve",
        "flow": "serve",
        "name": "serve-champion",
        "pool": "cpu",
        "concurrency_limit": 1,
        "description": "Serve the champion over an OpenAI-compatible REST API until cancelled; "
        "follows the champion alias (hot swap). API key from a Prefect Secret block or "
        "LLMOPS_API_KEY on the worker.",
    },
    {
        "file": "monitor",
        "flow": "monitor",
        "name": "drift-check-hourly",
        "pool": "cpu",
        "schedules": [{"cron": "0 * * * *", "timezone": "UTC"}],
        "description": "Hourly Evidently drift check of live traffic against the champion's data; "
        "emits llmops.drift.detected.",
    },
    {
        "file": "watch",
        "flow": "watch",
        "name": "watch-landing",
        "pool": "cpu",
        "concurrency_limit": 1,
        "schedules": [{"interval": 60}],
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
        "file": "release",
        "flow": "release",
        "name": "release-watch",
        "pool": "cpu",
        "concurrency_limit": 1,
        # Every evaluation_interval_s of the profile: a guard breach stops the canary within one.
        "schedules": [{"interval": "evaluation_interval_s"}],
        "triggers": [
            {
                "name": "evaluate the release after 10 feedbacks (llmops.feedback.received)",
                "event": "llmops.feedback.received",
                "threshold": 10,
                "within": 600,
            },
        ],
        "description": "Watch a live release of the challenger (llmops release start): each run "
        "checks the guards on errors and latency (a breach rolls it back at once) and decides on "
        "positive feedback or a spent budget; emits llmops.release.decided.",
    },
    {
        "file": "retrain",
        "flow": "retrain",
        "name": "retrain",
        "pool": "cpu",
        "concurrency_limit": 1,
        "finetune_deployment": GPU_FINETUNE,
        "schedules": [{"cron": "0 3 * * *", "timezone": "UTC"}],
        "triggers": [
            {
                "name": "retrain on new data (llmops.dataset.landed)",
                "event": "llmops.dataset.landed",
                "new_data": "{{ event.payload.path }}",
            },
            {"name": "retrain on drift (llmops.drift.detected)", "event": "llmops.drift.detected"},
            {
                "name": "retrain after 50 feedbacks within an hour (llmops.feedback.received)",
                "event": "llmops.feedback.received",
                "threshold": 50,
                "within": 3600,
            },
            {
                "name": "preference-tune after 20 preference signals within a day "
                "(llmops.preference.recorded)",
                "event": "llmops.preference.recorded",
                "threshold": 20,
                "within": 86400,
                "method": "dpo",
            },
        ],
        "description": "Retraining: exports feedback, then runs the training pipeline on base "
        "data + newly landed data + feedback; nightly, on new data, on drift, or after 50 "
        "feedbacks within an hour. After 20 corrections or thumbs up/down within a day it "
        "exports preference pairs instead and DPO-tunes the champion on them. The run is named "
        "after why it started.",
    },
]


def authored_deployments() -> list[dict[str, Any]]:
    """Deployments of flows scaffolded by `llmops new-flow` (same keys as DEPLOYMENTS)."""
    return (yaml.safe_load(AUTHORED.read_text()) or []) if AUTHORED.exists() else []


def deployment_profile(spec: dict[str, Any], profile: str | None) -> str:
    """The profile a deployment's parameters come from: its own (cpu unless it says, e.g. gpu
    for fine-tuning), or `profile` for every deployment when one is given."""
    return profile or spec.get("profile", "cpu")


def parameters(spec: dict[str, Any], profile: str) -> dict[str, Any]:
    """The deployment's `config` parameter, read from the profiles."""
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


def triggers(spec: dict[str, Any], profile: str) -> list[dict[str, Any]]:
    """Event triggers: retrain's pass why (and which data) into the run; others run with the
    deployment's parameters."""
    rendered = []
    for rule in spec["triggers"]:
        window = {"posture": "Reactive"} if "threshold" in rule else {}
        if spec["file"] == "retrain":
            rendered.append(retrain_trigger(profile, **rule, **window))
        else:
            config = parameters(spec, profile)["config"]
            rendered.append(event_trigger(config, **rule, **window))
    return rendered


def schedules(spec: dict[str, Any], profile: str, active: bool) -> list[dict[str, Any]]:
    """The deployment's schedules; an interval named as a config field is read from the
    profile, so the schedule and the config never disagree."""
    config = parameters(spec, profile)["config"]
    rendered = []
    for schedule in spec["schedules"]:
        interval = schedule.get("interval")
        if isinstance(interval, str):
            schedule = {**schedule, "interval": config[interval]}
        rendered.append({**schedule, "active": active})
    return rendered


def render(profile: str | None = None) -> str:
    """prefect.yaml as text; with `profile`, every deployment takes its parameters from it."""
    deployments = []
    for spec in [*DEPLOYMENTS, *authored_deployments()]:
        chosen = deployment_profile(spec, profile)
        entry = {
            "name": spec["name"],
            "description": spec["description"],
            "entrypoint": f"flows/{spec['file']}.py:{spec['flow']}",
            "tags": ["llmops", spec["file"].replace("_", "-")],
            "parameters": parameters(spec, chosen),
            "work_pool": {"name": spec["pool"]},
        }
        if "concurrency_limit" in spec:
            entry["concurrency_limit"] = spec["concurrency_limit"]
        if spec["file"] == "finetune":
            # GPUs the job asks for (infra/kubernetes/gpu-job-template.yaml): one per process.
            processes = entry["parameters"]["config"].get("num_processes", 1)
            entry["work_pool"]["job_variables"] = {"num_processes": processes}
        if "schedules" in spec:
            active = SCHEDULES_ACTIVE.get(chosen, False)
            entry["schedules"] = schedules(spec, chosen, active)
        if "triggers" in spec:
            entry["triggers"] = triggers(spec, chosen)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", help="put every deployment on this profile (e.g. tiny)")
    parser.add_argument("--output", type=Path, default=ROOT / "prefect.yaml")
    arguments = parser.parse_args()
    arguments.output.write_text(render(arguments.profile))


if __name__ == "__main__":
    main()
