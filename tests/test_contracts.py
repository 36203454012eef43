"""Contract tests: every prefect.yaml entrypoint imports as a Prefect flow, its parameters
validate against the flow's config, every profile of every flow loads, and prefect.yaml is
what deployments/render.py renders from the profiles."""

import importlib
import uuid
from pathlib import Path

import pytest
import yaml
from prefect import Flow

from llmops.config import PROFILE_NAMES, PROFILES_DIR, flow_config_class
from llmops.flow_configs import FinetuneConfig

ROOT = Path(__file__).resolve().parent.parent
DEPLOYMENTS = yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]


@pytest.mark.parametrize("deployment", DEPLOYMENTS, ids=lambda d: d["name"])
def test_entrypoint_is_a_flow_and_parameters_validate(deployment: dict):
    path, flow_name = deployment["entrypoint"].split(":")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    assert isinstance(getattr(module, flow_name), Flow)
    flow_config_class(module).model_validate(deployment["parameters"]["config"])
    assert deployment["work_pool"]["name"] in {"cpu", "gpu"}
    assert deployment["description"]


@pytest.mark.parametrize("flow_dir", sorted(p.name for p in PROFILES_DIR.iterdir() if p.is_dir()))
def test_every_profile_loads(flow_dir: str):
    config = flow_config_class(importlib.import_module(f"flows.{flow_dir}"))
    for profile in PROFILE_NAMES:
        config.from_profile(profile)


def test_prefect_yaml_is_rendered_from_the_profiles():
    render = importlib.import_module("deployments.render").render
    assert (ROOT / "prefect.yaml").read_text() == render(), "run deployments/render.py"


def test_the_gpu_job_asks_for_one_gpu_per_training_process():
    finetune = next(d for d in DEPLOYMENTS if d["name"] == "finetune-gpu")
    processes = FinetuneConfig.from_profile("gpu").num_processes
    assert finetune["work_pool"]["job_variables"] == {"num_processes": processes}
    template = yaml.safe_load((ROOT / "infra/kubernetes/gpu-job-template.yaml").read_text())
    assert template["variables"]["properties"]["num_processes"]["default"] == 1
    container = template["job_manifest"]["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"] == {"nvidia.com/gpu": "{{ num_processes }}"}


def test_finetune_runs_alone_on_the_gpu_pool():
    finetune = next(d for d in DEPLOYMENTS if d["entrypoint"].endswith(":finetune"))
    assert (finetune["work_pool"]["name"], finetune["concurrency_limit"]) == ("gpu", 1)
    retrain = next(d for d in DEPLOYMENTS if d["name"] == "retrain")
    assert retrain["parameters"]["config"]["finetune_deployment"] == "finetune/finetune-gpu"
    assert {t["expect"][0] for t in retrain["triggers"]} == {
        "llmops.drift.detected",
        "llmops.dataset.landed",
        "llmops.feedback.received",
        "llmops.preference.recorded",
    }
    # Each trigger tells the run why it started; new data travels with its event.
    for trigger in retrain["triggers"]:
        config = trigger["parameters"]["config"]
        assert config["reason"] == "{{ event.event }}"
        retrain_config = importlib.import_module("flows.retrain").RetrainConfig
        retrain_config.model_validate(config)
    landed = next(t for t in retrain["triggers"] if t["expect"] == ["llmops.dataset.landed"])
    assert landed["parameters"]["config"]["new_data"] == "{{ event.payload.path }}"
    # Preference signals start a DPO retrain; every other trigger keeps the profile's method.
    methods = {t["expect"][0]: t["parameters"]["config"].get("method") for t in retrain["triggers"]}
    assert methods.pop("llmops.preference.recorded") == "dpo" and set(methods.values()) == {None}


def test_schedules_run_by_themselves_only_on_the_gpu_profile():
    render = importlib.import_module("deployments.render").render

    def active(profile: str | None) -> set[bool]:
        deployments = yaml.safe_load(render(profile))["deployments"]
        return {s["active"] for d in deployments for s in d.get("schedules", [])}

    assert active(None) == active("cpu") == active("tiny") == {False}
    assert active("gpu") == {True}


def test_every_flow_is_a_deployment():
    deployed = {d["entrypoint"].split(":")[0] for d in DEPLOYMENTS}
    flows = {f"flows/{p.name}" for p in (ROOT / "flows").glob("*.py") if p.stem != "__init__"}
    assert flows <= deployed, f"no deployment for {sorted(flows - deployed)}"


def test_automations_validate_as_prefect_automations():
    from prefect.automations import Automation

    from llmops.stack import BLOCK_REFERENCE

    def with_block_ids(spec: dict) -> dict:
        """Block references as `llmops up` resolves them, to a stand-in id."""
        actions = [
            {**a, "block_document_id": str(uuid.uuid4())}
            if BLOCK_REFERENCE.match(str(a.get("block_document_id", "")))
            else a
            for a in spec["actions"]
        ]
        return {**spec, "actions": actions}

    specs = yaml.safe_load((ROOT / "deployments" / "automations.yaml").read_text())["automations"]
    names = [Automation.model_validate(with_block_ids(spec)).name for spec in specs]
    assert names == ["llmops-requeue-lost-finetune", "llmops-abuse-alert"]


def test_compose_file_is_the_team_topology():
    """No Docker engine here: the compose file is checked for the team stack's shape."""
    services = yaml.safe_load((ROOT / "infra" / "docker-compose.yml").read_text())["services"]
    assert {"postgres", "minio", "prefect", "mlflow", "worker-cpu"} <= set(services)
    prefect_db = services["prefect"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]
    assert prefect_db.startswith("postgresql+asyncpg://")
    mlflow = services["mlflow"]["command"]
    assert "--backend-store-uri postgresql" in mlflow and "--artifacts-destination s3://" in mlflow
    worker = services["worker-cpu"]["environment"]
    assert {"PREFECT_API_URL", "MLFLOW_TRACKING_URI", "LLMOPS_STORE"} <= set(worker)


def test_release_watch_evaluates_every_interval_and_after_feedback():
    from llmops.flow_configs import ReleaseConfig

    watch = next(d for d in DEPLOYMENTS if d["name"] == "release-watch")
    config = ReleaseConfig.model_validate(watch["parameters"]["config"])
    assert watch["entrypoint"] == "flows/release.py:release" and watch["concurrency_limit"] == 1
    assert [s["interval"] for s in watch["schedules"]] == [config.evaluation_interval_s]
    (trigger,) = watch["triggers"]
    assert trigger["expect"] == ["llmops.feedback.received"]
    ReleaseConfig.model_validate(trigger["parameters"]["config"])
    gpu = yaml.safe_load(importlib.import_module("deployments.render").render("gpu"))
    gpu_watch = next(d for d in gpu["deployments"] if d["name"] == "release-watch")
    assert gpu_watch["schedules"] == [{"interval": 60, "active": True}]


def test_the_gpu_profile_promotes_via_release():
    from llmops.flow_configs import PromoteConfig

    assert PromoteConfig.from_profile("gpu").release_plan() is not None
    assert PromoteConfig.from_profile("cpu").release_plan() is None
