"""Evaluate a fine-tuned candidate against the base model and the current champion.

    llmops evaluate --dataset <dataset URI> --adapter <adapter URI, e.g. runs:/<id>/adapter>

Same held-out examples and greedy decoding for every model; metrics with paired bootstrap
confidence intervals, overall and per slice (contract slice fields, answer-length buckets), go
to MLflow (metrics, per-example table, dataset input) and to Prefect table artifacts; with
`bias_probe` on, the candidate and the compared model also answer the bias probe; with a
`judge`, an OpenAI-compatible endpoint picks the better of the candidate's and the champion's
answers (win_rate). The examples the candidate changed most are listed with their `llmops
explain` command. The EvaluationReport it returns is kept in the store, where `promote` reads
it by run id on any host. The same settings, data and models as a finished evaluation (its
fingerprint, an MLflow tag) return that evaluation's report, and so does the candidate's last
evaluation when the champion is the candidate itself (a rerun after its promotion); only its
artifacts are published again.
"""

import pandas as pd
from prefect import flow

from llmops.flow_configs import EvaluateConfig
from llmops.outputs import DatasetRef, EvaluationReport
from tasks.bias_probe import (
    answer_bias_probe,
    load_bias_probe,
    measure_fairness,
    publish_fairness_table,
    save_fairness_metrics,
)
from tasks.data import load_dataset
from tasks.evaluation import (
    EvaluationKey,
    ModelScores,
    ModelUnderTest,
    compare_scores,
    describe_candidate,
    fingerprint_evaluation,
    judge_against_champion,
    load_champion,
    load_eval_records,
    load_finished_evaluation,
    measure_evaluation_cost,
    publish_evaluation_table,
    publish_example_changes,
    save_evaluation_report,
    save_evaluation_run,
    score_model,
    summarize_scores,
)
from tasks.slices import measure_slices, publish_slice_table, save_slice_metrics


@flow(name="evaluate", log_prints=True)
def evaluate(config: EvaluateConfig) -> EvaluationReport:
    """Score candidate, base and champion on the held-out split; log, keep and return it (or
    the report of a finished evaluation of the same settings, data and models)."""
    dataset = load_dataset(config.dataset)
    records = load_eval_records(dataset, config.max_examples)
    candidate_ref = describe_candidate(config.base_model, config.adapter)
    base_ref = ModelUnderTest("base", config.base_model, base_sha256=candidate_ref.base_sha256)
    champion_ref = load_champion(config.registered_model, candidate_ref)
    models = (candidate_ref, base_ref, champion_ref)
    key = fingerprint_evaluation(config, dataset.dataset_id, *models)
    decoding = (records, config.max_new_tokens, config.batch_size)
    candidate = score_model(candidate_ref, *decoding)
    base = score_model(base_ref, *decoding)
    report = load_finished_evaluation(config.experiment, config.store_url(), key)
    if report is None:
        report = compare_and_log(config, key, dataset, records, candidate, base, *models)
    publish_evaluation_table(report)
    publish_example_changes(
        report.run_id, records, candidate, base, config.explain_metrics, config.explain_examples
    )
    publish_slice_table(report)
    if report.fairness:
        publish_fairness_table(report)
    return report


def compare_and_log(
    config: EvaluateConfig,
    key: EvaluationKey,
    dataset: DatasetRef,
    records: pd.DataFrame,
    candidate: ModelScores,
    base: ModelScores,
    candidate_ref: ModelUnderTest,
    base_ref: ModelUnderTest,
    champion_ref: ModelUnderTest | None,
) -> EvaluationReport:
    """An evaluation not done before: intervals, slices, the bias probe and cost, logged to a
    new MLflow run and kept in the store. (Wiring of tasks, like the flow.)"""
    decoding = (records, config.max_new_tokens, config.batch_size)
    bootstrap = (config.confidence, config.n_resamples)
    intervals = {"base": compare_scores(candidate, base, *bootstrap)}
    scores = [candidate, base]
    if champion_ref is not None:
        champion = score_model(champion_ref, *decoding)
        candidate, champion = judge_against_champion(config.judge, records, candidate, champion)
        intervals["champion"] = compare_scores(candidate, champion, *bootstrap)
        scores = [candidate, base, champion]
    compared_ref = champion_ref or base_ref
    slices = measure_slices(
        records, dataset.slices, scores, compared_ref.label, config.slice_length_bounds, *bootstrap
    )
    probe_answers: list[ModelScores] = []
    fairness = {}
    if config.bias_probe:
        probe = load_bias_probe()
        probe_answers = [
            answer_bias_probe(m, probe, config.bias_probe_max_new_tokens, config.batch_size)
            for m in (candidate_ref, compared_ref)
        ]
        fairness = measure_fairness(probe, probe_answers)
    cost = measure_evaluation_cost([*scores, *probe_answers], config.cost)
    run_id = save_evaluation_run(
        config.experiment,
        dataset,
        records,
        scores,
        intervals,
        candidate_ref,
        champion_ref,
        config.training_run_id,
        cost,
        key,
    )
    report = EvaluationReport(
        run_id=run_id,
        dataset_id=dataset.dataset_id,
        dataset_uri=dataset.uri,
        adapter_uri=config.adapter,
        adapter_sha256=candidate_ref.adapter_sha256,
        base_ref=config.base_model,
        base_sha256=candidate_ref.base_sha256,
        training_run_id=config.training_run_id,
        config_fingerprint=config.config_fingerprint,
        champion_version=champion_ref.version if champion_ref else None,
        examples=len(records),
        metrics=summarize_scores(scores),
        intervals=intervals,
        cost=cost,
        slices=slices,
        fairness=fairness,
    )
    save_slice_metrics(run_id, slices)
    save_fairness_metrics(run_id, fairness)
    return save_evaluation_report(config.store_url(), report)
