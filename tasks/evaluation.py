"""Prefect tasks of the evaluation flow: load the held-out split, score models, log results."""

import hashlib
import importlib.metadata
import importlib.util
import json
import time
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import INPUTS, TASK_SOURCE, CacheKeyFnPolicy
from prefect.context import TaskRunContext
from prefect.runtime import flow_run
from prefect.utilities.hashing import hash_objects

from llmops import store
from llmops.datasets import read_split
from llmops.flow_configs import EvaluateConfig
from llmops.model import metrics
from llmops.model.adapters import adapter_sha256, fetch_adapter
from llmops.model.cost import ComputeCost, CostSettings
from llmops.model.explain import ExampleChange, changes_markdown, largest_changes
from llmops.model.judge import JudgeError, JudgeSettings, OpenAIJudge, judge_pairs
from llmops.model.loading import base_sha256, load_model, load_tokenizer, resolve_base
from llmops.model.registry import CHAMPION, alias_version, resolve_version, version_weights
from llmops.outputs import DatasetRef, EvaluationReport
from llmops.records import prompt_messages, prompt_text, reference_response
from llmops.tracking import ensure_experiment, mlflow_client
from tasks.policy import HOST_LOCAL, STORE_RETRIES

if TYPE_CHECKING:  # torch, transformers and peft are imported where a model is loaded
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


@dataclass(frozen=True)
class ModelUnderTest:
    """One model to score: a base reference plus an optional adapter, identified by hashes."""

    label: str  # "candidate", "base" or "champion"
    base_ref: str
    adapter_uri: str | None = None
    adapter_sha256: str | None = None  # part of the cache key: same URI, new weights = rescore
    base_sha256: str | None = None
    version: str | None = None  # registry version, for the champion

    def weights(self) -> tuple[str, str | None, str | None]:
        """What the model answers with, whatever its role: the registry's version weights."""
        return (self.base_ref, self.base_sha256, self.adapter_sha256)


@dataclass(frozen=True)
class ModelScores:
    """A model's answers and per-example metric values on the evaluation examples."""

    label: str
    predictions: list[str]
    per_example: dict[str, list[float]]
    device: str  # what the scoring ran on ("cpu", "cuda")
    device_seconds: float  # generation + scoring wall time (one device)
    tokens: int  # prompt + generated tokens
    flow_run_id: str | None  # the flow run that computed it (a cached score is an earlier one's)


def weights_key(context: TaskRunContext, inputs: dict[str, Any]) -> str | None:
    """The cache key part of `model_ref`: its weights' hashes, not its label, URI or version."""
    model: ModelUnderTest = inputs["model_ref"]
    return hash_objects(*model.weights())


# The MLflow run tags holding fingerprint_evaluation's keys: a finished run with the same
# fingerprint is reused; so is one of the same candidate fingerprint when the champion is the
# candidate itself.
FINGERPRINT_TAG = "evaluation_fingerprint"
CANDIDATE_FINGERPRINT_TAG = "candidate_fingerprint"


@dataclass(frozen=True)
class EvaluationKey:
    """What identifies an evaluation: all its inputs, and all but the champion."""

    fingerprint: str
    candidate_fingerprint: str
    # The registry's champion has the candidate's weights (a rerun after the candidate was
    # promoted): comparing it with itself teaches nothing, and `promote` will find it the
    # champion already, so the last evaluation of this candidate serves whatever it was
    # compared with.
    champion_is_candidate: bool


# What a model answers depends on its weights, not on the role it plays: a rerun's champion is
# the candidate the first run promoted, and is not scored again. Persisted for 30 days, so any
# later run of the same weights, records and settings reuses the result.
SAME_WEIGHTS: dict[str, Any] = {
    "cache_policy": INPUTS - "model_ref" + TASK_SOURCE + CacheKeyFnPolicy(cache_key_fn=weights_key),
    "persist_result": True,
    "cache_expiration": timedelta(days=30),
}


@task(**STORE_RETRIES)
def load_eval_records(dataset: DatasetRef, max_examples: int | None) -> pd.DataFrame:
    """The first `max_examples` records of the dataset's held-out split (all when None)."""
    records = read_split(dataset, "eval")
    if records.empty:
        raise ValueError(f"the eval split of {dataset.dataset_id} is empty: nothing to evaluate")
    return records.head(max_examples).reset_index(drop=True)


@task(**STORE_RETRIES)
def describe_candidate(base_ref: str, adapter_uri: str) -> ModelUnderTest:
    """The fine-tuned candidate, identified by its adapter's weights hash."""
    if not adapter_uri:
        raise ValueError("no candidate adapter given: pass its URI (e.g. runs:/<id>/adapter)")
    return ModelUnderTest(
        "candidate",
        base_ref,
        adapter_uri,
        adapter_sha256(fetch_adapter(adapter_uri)),
        base_sha256=base_sha256(base_ref),
    )


@task(cache_policy=HOST_LOCAL)
def load_champion(registered_model: str, candidate: ModelUnderTest) -> ModelUnderTest | None:
    """The registry's current champion, or None when there is none yet. Its adapter is
    downloaded, unless its version's weights hashes are the candidate's (a rerun after the
    candidate was promoted): then the candidate's copy is the champion's."""
    version = alias_version(registered_model, CHAMPION)
    if version is None:
        return None
    if version_weights(registered_model, version) == candidate.weights():
        return replace(candidate, label="champion", version=version)
    champion = resolve_version(registered_model, version)
    return ModelUnderTest(
        "champion",
        champion.base_ref,
        str(champion.adapter_dir),
        adapter_sha256(champion.adapter_dir),
        champion.base_sha256,
        champion.version,
    )


# The code an evaluation's results also depend on: how answers are generated, scored, judged
# and explained, and the model libraries generating them. Read as files and package metadata,
# so that fingerprinting a rerun imports none of them (torch would cost seconds).
SCORING_MODULES = (
    "tasks.evaluation",
    "llmops.model.generation",
    "llmops.model.metrics",
    "llmops.model.judge",
    "llmops.model.explain",
    "llmops.model.loading",
)
SCORING_LIBRARIES = ("torch", "transformers", "peft")


def scoring_code_version() -> dict[str, str]:
    """A sha256 of each scoring module's source file and the model libraries' versions."""
    sources = {
        name: hashlib.sha256(Path(importlib.util.find_spec(name).origin).read_bytes()).hexdigest()
        for name in SCORING_MODULES
    }
    return sources | {name: importlib.metadata.version(name) for name in SCORING_LIBRARIES}


@task
def fingerprint_evaluation(
    config: EvaluateConfig,
    dataset_id: str,
    candidate: ModelUnderTest,
    base: ModelUnderTest,
    champion: ModelUnderTest | None,
) -> EvaluationKey:
    """What an evaluation's results depend on: its settings, the dataset, every compared
    model's weights and registry version (None: no champion), and the scoring code's version
    (a changed metric must not reuse the old results); and the same without the champion."""
    ids = [
        m and (m.label, m.base_ref, m.base_sha256, m.adapter_sha256, m.version)
        for m in (candidate, base, champion)
    ]
    common = (config.model_dump(mode="json"), dataset_id, scoring_code_version())
    fingerprint, candidate_fingerprint = hash_objects(*common, ids), hash_objects(*common, ids[:2])
    if fingerprint is None or candidate_fingerprint is None:  # these inputs are plain JSON
        raise ValueError("cannot fingerprint the evaluation's inputs")
    champion_is_candidate = champion is not None and champion.weights() == candidate.weights()
    return EvaluationKey(fingerprint, candidate_fingerprint, champion_is_candidate)


@task(**STORE_RETRIES)
def load_finished_evaluation(
    experiment: str, store_url: str, key: EvaluationKey
) -> EvaluationReport | None:
    """The report of a finished evaluation with this fingerprint (its MLflow run's tag), or,
    when the champion is the candidate, of the candidate's last evaluation; else None: a rerun
    with nothing changed reuses it rather than logging the same results again."""
    searches = [(FINGERPRINT_TAG, key.fingerprint, "same evaluation as")]
    if key.champion_is_candidate:
        searches.append(
            (
                CANDIDATE_FINGERPRINT_TAG,
                key.candidate_fingerprint,
                "the candidate is the champion already; its last evaluation is",
            )
        )
    experiment_id = ensure_experiment(experiment)
    for tag, value, found in searches:
        runs = mlflow_client().search_runs(
            [experiment_id],
            filter_string=f"tags.{tag} = '{value}' and attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"],
        )
        reports = (read_evaluation_report(store_url, r.info.run_id) for r in runs)
        report = next((r for r in reports if r is not None), None)
        if report is not None:
            get_run_logger().info("%s finished run %s: reusing it", found, report.run_id)
            return report.model_copy(update={"reused": True})
    return None


@task
def score_model(
    model_ref: ModelUnderTest, records: pd.DataFrame, max_new_tokens: int, batch_size: int
) -> ModelScores:
    """The scores of the model's weights (score_weights, cached), under the model's label."""
    scores = score_weights(model_ref, records, max_new_tokens, batch_size)
    return replace(scores, label=model_ref.label)


@task(**SAME_WEIGHTS)
def score_weights(
    model_ref: ModelUnderTest, records: pd.DataFrame, max_new_tokens: int, batch_size: int
) -> ModelScores:
    """Generate greedily for every record and score answers against references, plus the
    response-token loss and, when every record is a preference pair, the preference margin;
    cached on the model's weights hashes, the records and the settings."""
    from llmops.model.generation import answer_all

    tokenizer, model = load_model_under_test(model_ref)
    conversations = [list(m) for m in records["messages"]]
    started = time.perf_counter()
    predictions, tokens = answer_all(
        model,
        tokenizer,
        [prompt_messages(c) for c in conversations],
        max_new_tokens,
        batch_size,
        desc=f"generate {model_ref.label}",
    )
    per_example = metrics.text_scores(predictions, [reference_response(c) for c in conversations])
    # One scoring pass of the references serves eval_loss and, on pairs, the chosen side.
    references = metrics.response_token_logprobs(model, tokenizer, conversations, batch_size)
    per_example["eval_loss"] = metrics.mean_nll(references)
    if "rejected" in records and records["rejected"].notna().all():  # a preference eval split
        rejected = metrics.rejected_conversations(conversations, records["rejected"].tolist())
        per_example |= metrics.preference_margins(
            references, metrics.response_token_logprobs(model, tokenizer, rejected, batch_size)
        )
    return ModelScores(
        model_ref.label,
        predictions,
        per_example,
        device=model.device.type,
        device_seconds=time.perf_counter() - started,
        tokens=tokens,
        flow_run_id=flow_run.id,
    )


def load_model_under_test(
    model_ref: ModelUnderTest,
) -> tuple["PreTrainedTokenizerBase", "PreTrainedModel"]:
    """The model's tokenizer and weights (its base, plus its adapter when it has one), in eval
    mode."""
    from peft import PeftModel

    base = resolve_base(model_ref.base_ref)
    tokenizer, model = load_tokenizer(base), load_model(base)
    if model_ref.adapter_uri:
        model = PeftModel.from_pretrained(model, str(fetch_adapter(model_ref.adapter_uri)))
    return tokenizer, model.eval()


@task
def compare_scores(
    candidate: ModelScores, other: ModelScores, confidence: float, n_resamples: int
) -> dict[str, metrics.Interval]:
    """Paired bootstrap CIs of candidate minus `other`, per metric."""
    return metrics.compare(candidate.per_example, other.per_example, confidence, n_resamples)


@task
def judge_against_champion(
    settings: JudgeSettings | None,
    records: pd.DataFrame,
    candidate: ModelScores,
    champion: ModelScores,
) -> tuple[ModelScores, ModelScores]:
    """Both scores with `win_rate` added: the judge's verdict per example for the candidate and
    0.5 for the champion (a tie with itself), so their paired CI is of win_rate - 0.5; both
    unchanged when no judge is set, or when it fails and `on_error` is skip."""
    if settings is None:
        return candidate, champion
    conversations = [prompt_messages(list(m)) for m in records["messages"]]
    try:
        judge = OpenAIJudge(settings)
        judged = judge_pairs(judge, conversations, candidate.predictions, champion.predictions)
    except JudgeError as error:
        if settings.on_error == "fail":
            raise
        get_run_logger().warning("win_rate skipped (judge on_error: skip): %s", error)
        return candidate, champion
    get_run_logger().info(
        "judge %s: win_rate %.3f over %d examples (%d agreed in both orders, %d disagreed, "
        "%d unparsed replies)",
        settings.model,
        sum(judged.wins) / len(judged.wins),
        len(judged.wins),
        judged.agreed,
        judged.disagreed,
        judged.unparsed,
    )
    ties = [0.5] * len(judged.wins)
    return (
        replace(candidate, per_example=candidate.per_example | {"win_rate": judged.wins}),
        replace(champion, per_example=champion.per_example | {"win_rate": ties}),
    )


@task
def measure_evaluation_cost(scores: list[ModelScores], settings: CostSettings) -> ComputeCost:
    """What this evaluation spent: the scores computed in this flow run, priced per device (a
    score reused from Prefect's cache was paid for by an earlier run)."""
    total = ComputeCost(currency=settings.currency)
    for s in scores:
        if s.flow_run_id == flow_run.id:
            cost = ComputeCost.measured(s.device, 1, s.device_seconds, s.tokens, settings)
            total = total.plus(cost)
    return total


@task
def summarize_scores(scores: list[ModelScores]) -> dict[str, dict[str, float]]:
    """Each model's mean metrics (plus perplexity), keyed by its label."""
    return {s.label: metrics.summarize(s.per_example) for s in scores}


@task
def save_evaluation_run(
    experiment: str,
    dataset: DatasetRef,
    records: pd.DataFrame,
    scores: list[ModelScores],
    intervals: dict[str, dict[str, metrics.Interval]],
    candidate: ModelUnderTest,
    champion: ModelUnderTest | None,
    training_run_id: str | None,
    cost: ComputeCost,
    key: EvaluationKey,
) -> str:
    """Log metrics, CIs, cost, the per-example outputs table and the dataset input to a new
    MLflow run (for people browsing MLflow), tagged with the evaluation's fingerprints;
    returns its id."""
    mlflow_client()
    table = _outputs_table(records, scores)
    with mlflow.start_run(experiment_id=ensure_experiment(experiment)) as run:
        mlflow.set_tags(
            {
                "dataset_id": dataset.dataset_id,
                "dataset_uri": dataset.uri,
                "base_ref": candidate.base_ref,
                "adapter_uri": candidate.adapter_uri or "",
                "adapter_sha256": candidate.adapter_sha256 or "",
                "champion_version": champion.version if champion else "",
                "training_run_id": training_run_id or "",
                FINGERPRINT_TAG: key.fingerprint,
                CANDIDATE_FINGERPRINT_TAG: key.candidate_fingerprint,
            }
        )
        mlflow_dataset = mlflow.data.from_pandas(
            table[["record_id", "prompt", "reference"]],
            source=dataset.uri,
            name=dataset.dataset_id,
            targets="reference",
        )
        eda = {"eda_report": dataset.eda_report} if dataset.eda_report else None
        mlflow.log_input(mlflow_dataset, context="evaluation", tags=eda)
        for s in scores:
            mlflow.log_metrics(
                {f"{s.label}.{k}": v for k, v in metrics.summarize(s.per_example).items()}
            )
        for other, by_metric in intervals.items():
            for name, ci in by_metric.items():
                prefix = f"diff_vs_{other}.{name}"
                mlflow.log_metrics(
                    {prefix: ci.diff, f"{prefix}.ci_low": ci.low, f"{prefix}.ci_high": ci.high}
                )
        mlflow.log_metrics(cost.metrics())
        mlflow.log_table(table, artifact_file="eval_outputs.json")
        return run.info.run_id


@task(**STORE_RETRIES)
def save_evaluation_report(store_url: str, report: EvaluationReport) -> EvaluationReport:
    """Keep the report in the store (evaluations/<run_id>/report.json), where `promote` on any
    host reads it by run id."""
    store.write_json(report_uri(store_url, report.run_id), report.model_dump(mode="json"))
    return report


def report_uri(store_url: str, run_id: str) -> str:
    """Where the report of evaluation run `run_id` is kept."""
    return store.join(store_url, "evaluations", run_id, "report.json")


def read_evaluation_report(store_url: str, run_id: str) -> EvaluationReport | None:
    """The report kept for evaluation run `run_id`, or None when there is none (yet)."""
    uri = report_uri(store_url, run_id)
    if not store.exists(uri):
        return None
    return EvaluationReport.model_validate(store.read_json(uri))


@task
def publish_evaluation_table(report: EvaluationReport) -> list[dict[str, str]]:
    """Create the Prefect table artifact: one row per metric, every model, CIs of the gain."""
    rows = []
    for name in report.metrics["candidate"]:
        row = {"metric": name} | {
            m: f"{v[name]:.4f}" for m, v in report.metrics.items() if name in v
        }
        for other, by_metric in report.intervals.items():
            if name in by_metric:
                ci = by_metric[name]
                row[f"candidate - {other}"] = f"{ci.diff:+.4f} [{ci.low:+.4f}, {ci.high:+.4f}]"
        rows.append(row)
    spent = f" Cost: {report.cost.line()}." if report.cost is not None else ""
    create_table_artifact(
        table=rows,
        key="evaluation-summary",
        description="Candidate vs base vs champion on the held-out split "
        f"(MLflow run {report.run_id}).{spent}",
    )
    return rows


def _outputs_table(records: pd.DataFrame, scores: list[ModelScores]) -> pd.DataFrame:
    """One row per example: prompt, reference, and each model's answer and ROUGE-L."""
    table = pd.DataFrame(
        {
            "record_id": records["record_id"].astype(str),
            "prompt": [json.dumps(prompt_messages(list(m))) for m in records["messages"]],
            "reference": [reference_response(list(m)) for m in records["messages"]],
        }
    )
    for s in scores:
        table[f"{s.label}_answer"] = s.predictions
        table[f"{s.label}_rougeL"] = s.per_example["rougeL"]
    candidate = next(s for s in scores if s.label == "candidate")
    if "win_rate" in candidate.per_example:  # the judge's verdicts, when there was a judge
        table["candidate_win_rate"] = candidate.per_example["win_rate"]
    return table


@task
def publish_example_changes(
    run_id: str,
    records: pd.DataFrame,
    candidate: ModelScores,
    base: ModelScores,
    metric_names: list[str],
    k: int,
) -> str:
    """Create the markdown artifact evaluation-examples: per metric, the `k` examples the
    candidate gained and lost most on over the base, each with its `llmops explain` command."""
    ids = records["record_id"].astype(str).tolist()
    prompts = [prompt_text(prompt_messages(list(m))) for m in records["messages"]]
    sections: dict[str, list[ExampleChange]] = {}
    for name in metric_names:
        sign = metrics.METRIC_DIRECTIONS[name]
        pairs = zip(candidate.per_example[name], base.per_example[name], strict=True)
        gains = [sign * (c - b) for c, b in pairs]
        wins, losses = largest_changes(gains, k)
        for title, picked in ((f"gains in {name}", wins), (f"losses in {name}", losses)):
            sections[f"Largest {title} (candidate vs base)"] = [
                ExampleChange(
                    ids[i], gains[i], prompts[i], candidate.predictions[i], base.predictions[i]
                )
                for i in picked
            ]
    markdown = changes_markdown(run_id, sections)
    create_markdown_artifact(
        markdown,
        key="evaluation-examples",
        description=f"Examples to explain (MLflow run {run_id}).",
    )
    return markdown
