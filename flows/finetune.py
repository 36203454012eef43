"""LoRA fine-tuning of the base model on a prepared dataset: supervised, or DPO on its
preference pairs (method: dpo) against the base or the current champion (dpo_reference).

    llmops finetune <dataset URI> --profile cpu [--method dpo]

The run is keyed by its config, dataset and base weights, and its state lives in the store
(<store>/runs/<key>/, see llmops/model/run_store.py): every checkpoint is mirrored there, so a
run killed on one host resumes on another from the last complete checkpoint, and a finished
run is reused by any host instead of trained again. The adapter alone (megabytes) is logged to
the MLflow training run; the flow returns a TrainedAdapter that names it by URI.
"""

from prefect import flow

from llmops.flow_configs import FinetuneConfig
from llmops.outputs import TrainedAdapter
from tasks.data import load_dataset
from tasks.finetune import (
    hash_base_model,
    load_champion_adapter,
    load_finished_run,
    load_seconds_per_step,
    load_training_records,
    pick_training_device,
    plan_training_run,
    publish_training_summary,
    reference_name,
    resolve_base_model,
    save_trained_adapter,
    settings_params,
    start_training_run,
    train_adapter,
)


# persist_result: when the training pipeline runs this as a deployment on the gpu pool, the
# TrainedAdapter comes back through Prefect's result storage (the store, on the team stack).
@flow(name="finetune", log_prints=True, persist_result=True)
def finetune(config: FinetuneConfig) -> TrainedAdapter:
    """Train a LoRA adapter on the dataset's train split (resuming or reusing a stored run)."""
    dataset = load_dataset(config.dataset)
    base_sha256 = hash_base_model(config.base_model)
    fingerprint = config.training_fingerprint()
    champion = None
    if config.dpo_reference == "champion":
        champion = load_champion_adapter(config.registered_model, config.base_model, base_sha256)
    run = plan_training_run(
        config.store_url(),
        fingerprint,
        dataset.dataset_id,
        config.base_model,
        base_sha256,
        champion,
    )
    trained = load_finished_run(run)
    if trained is None:
        base = resolve_base_model(config.base_model)
        reference = reference_name(config.method, champion)
        records = load_training_records(dataset, config.method, config.data_streaming)
        device = pick_training_device()
        tags = {
            "dataset_id": dataset.dataset_id,
            "base_model": base.ref,
            "base_sha256": str(base.sha256),
            "config_fingerprint": fingerprint,
            "device": device,
            "method": config.method,
            "reference": reference or "",
            "num_processes": str(config.num_processes),
        }
        params = settings_params(config.lora(), config.train_settings())
        mlflow_run_id = start_training_run(config.experiment, run, params, tags)
        seconds_per_step = load_seconds_per_step(
            config.experiment, base.ref, device, config.train_settings(), config.method
        )
        metrics = train_adapter(
            base,
            records,
            config.max_seq_len,
            config.lora(),
            config.train_settings(),
            run,
            mlflow_run_id,
            config.cost,
            config.budget,
            seconds_per_step,
            config.preference_settings(champion.adapter_dir if champion else None),
            config.launch(),
        )
        trained = save_trained_adapter(
            run, mlflow_run_id, metrics, base, fingerprint, dataset, reference
        )
    return publish_training_summary(trained)
