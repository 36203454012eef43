"""The evaluation flow end to end on the tiny model: real Prefect, real MLflow on SQLite."""

import json
import re
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import torch
from model_support import make_tiny_adapter, write_tiny_dataset
from peft import PeftModel
from serving_support import TALKING_SEED, register_talking_champion, serving_in_process
from typer.testing import CliRunner

from flows.evaluate import evaluate
from llmops import store
from llmops.cli import app
from llmops.flow_configs import EvaluateConfig
from llmops.model import registry
from llmops.model.judge import JudgeSettings
from llmops.model.loading import load_model, load_tokenizer, resolve_base
from llmops.model.metrics import response_nll
from llmops.outputs import EvaluationReport
from llmops.records import prompt_messages, reference_response


@pytest.fixture
def config(tmp_path: Path, llmops_home: Path, prefect_harness: None) -> EvaluateConfig:
    adapter_dir, _ = make_tiny_adapter(tmp_path / "candidate", seed=1, scale=0.5)
    return EvaluateConfig.from_profile(
        "tiny", dataset=str(write_tiny_dataset(tmp_path / "datasets")), adapter=str(adapter_dir)
    )


def test_evaluate_logs_metrics_table_and_dataset(config: EvaluateConfig) -> None:
    from prefect.artifacts import Artifact

    result = evaluate(config)
    assert result.dataset_id == "tiny-16-6" and result.examples == 6
    assert result.champion_version is None and set(result.intervals) == {"base"}
    assert set(result.metrics) == {"candidate", "base"}
    for metric in ("bleu", "rouge1", "rouge2", "rougeL", "exact_match", "eval_loss", "perplexity"):
        assert metric in result.metrics["candidate"]
    ci = result.intervals["base"]["rougeL"]
    assert ci.low <= ci.diff <= ci.high
    # The report is kept in the store, where promote reads it back exactly.
    kept = store.read_json(
        store.join(config.store_url(), "evaluations", result.run_id, "report.json")
    )
    assert EvaluationReport.model_validate(kept) == result

    run = mlflow.get_run(result.run_id)
    assert run.data.tags["dataset_id"] == "tiny-16-6"
    assert "diff_vs_base.eval_loss.ci_low" in run.data.metrics
    assert run.data.metrics["candidate.eval_loss"] == pytest.approx(
        result.metrics["candidate"]["eval_loss"]
    )
    assert [d.dataset.name for d in run.inputs.dataset_inputs] == ["tiny-16-6"]
    table = json.loads(
        Path(
            mlflow.artifacts.download_artifacts(
                run_id=run.info.run_id, artifact_path="eval_outputs.json"
            )
        ).read_text()
    )
    assert len(table["data"]) == 6 and "candidate_answer" in table["columns"]

    artifact = Artifact.get("evaluation-summary")
    assert artifact is not None and "rougeL" in str(artifact.data)


def test_evaluate_logs_its_cost_and_a_cached_score_costs_nothing(
    tmp_path: Path, llmops_home: Path, prefect_harness: None
) -> None:
    # An adapter no other test scores, so the first run computes both scores itself.
    adapter_dir, _ = make_tiny_adapter(tmp_path / "priced", seed=11, scale=0.3)
    config = EvaluateConfig.from_profile(
        "tiny",
        dataset=str(write_tiny_dataset(tmp_path / "datasets")),
        adapter=str(adapter_dir),
        max_examples=2,
        cost={"device_hourly_rate": {"cpu": 1.8}},
    )
    result = evaluate(config)
    cost = result.cost
    assert cost is not None and cost.device_seconds > 0
    assert cost.estimated == pytest.approx(cost.device_seconds * 1.8 / 3600)
    # Prompt + generated tokens of 2 examples for candidate and base, up to 8 new tokens each.
    tokenizer = load_tokenizer(resolve_base("tiny-random"))
    records = pd.read_parquet(Path(config.dataset) / "eval.parquet").head(2)
    prompts = [
        tokenizer.apply_chat_template(
            prompt_messages(list(m)), add_generation_prompt=True, tokenize=False
        )
        for m in records["messages"]
    ]
    prompt_tokens = sum(
        len(ids) for ids in tokenizer(prompts, add_special_tokens=False)["input_ids"]
    )
    assert 2 * prompt_tokens < cost.tokens <= 2 * (prompt_tokens + 2 * 8)
    logged = mlflow.get_run(result.run_id).data.metrics
    assert {k: logged[k] for k in cost.metrics()} == pytest.approx(cost.metrics())

    # Another bootstrap is a new evaluation (the same one would be reused), and both scores
    # come from Prefect's cache: nothing new spent.
    again = evaluate(config.model_copy(update={"n_resamples": 300}))
    assert again.run_id != result.run_id
    assert again.metrics == result.metrics
    assert again.cost is not None and again.cost.device_seconds == again.cost.tokens == 0


def test_evaluate_compares_with_the_champion(config: EvaluateConfig, tmp_path: Path) -> None:
    champion_dir, base = make_tiny_adapter(tmp_path / "champion", seed=2, scale=0.5)
    version = registry.register_adapter(
        config.registered_model, str(champion_dir), base.ref, base.sha256, None, {}
    )
    registry.promote_version(config.registered_model, version)

    result = evaluate(config)
    assert result.champion_version == version
    assert set(result.intervals) == {"base", "champion"}
    assert set(result.metrics) == {"candidate", "base", "champion"}


def test_evaluate_rejects_a_folder_that_is_not_a_dataset(
    config: EvaluateConfig, tmp_path: Path
) -> None:
    bad = config.model_copy(update={"dataset": str(tmp_path)})
    with pytest.raises(FileNotFoundError, match="not a prepared dataset"):
        evaluate(bad)


def _listed(markdown: str, section: str) -> list[str]:
    """The record ids a section of the evaluation-examples listing names, in order."""
    body = markdown.split(f"## {section}\n")[1].split("\n## ")[0]
    return re.findall(r"`llmops explain \S+ (\S+)`", body)


def test_the_examples_changed_most_are_listed_and_explained(
    config: EvaluateConfig, llmops_home: Path, tmp_path: Path
) -> None:
    from prefect.artifacts import Artifact

    result = evaluate(config)
    markdown = Artifact.get("evaluation-examples").data
    # Expected from scratch: eval loss of each example under the candidate and the base.
    base = resolve_base("tiny-random")
    tokenizer = load_tokenizer(base)
    tuned = PeftModel.from_pretrained(load_model(base, torch.device("cpu")), config.adapter)
    records = pd.read_parquet(Path(config.dataset) / "eval.parquet")
    chats = [list(m) for m in records["messages"]]
    candidate_loss = response_nll(tuned.eval(), tokenizer, chats)
    with tuned.disable_adapter():
        gains = [
            b - c
            for b, c in zip(response_nll(tuned, tokenizer, chats), candidate_loss, strict=True)
        ]
    ids = records["record_id"].tolist()
    by_gain = sorted(range(len(ids)), key=lambda i: -gains[i])
    assert (
        _listed(markdown, "Largest gains in eval_loss (candidate vs base)")
        == [ids[i] for i in by_gain if gains[i] > 0][:5]
    )
    assert (
        _listed(markdown, "Largest losses in eval_loss (candidate vs base)")
        == [ids[i] for i in reversed(by_gain) if gains[i] < 0][:5]
    )

    record = ids[by_gain[0]]
    page = tmp_path / "explained.html"
    shown = CliRunner().invoke(app, ["explain", result.run_id, record, "--output", str(page)])
    assert shown.exit_code == 0, shown.output
    chat = chats[by_gain[0]]
    prompt = tokenizer.apply_chat_template(chat[:-1], add_generation_prompt=True, tokenize=False)
    full = tokenizer.apply_chat_template(chat, tokenize=False)
    answer_tokens = tokenizer(full[len(prompt) :], add_special_tokens=False)["input_ids"]
    assert page.read_text().count('<span class="tok"') == len(answer_tokens)
    assert reference_response(chat) in page.read_text()
    # Planted: the train split's tickets about the same topic (every 8th record) come first.
    topic = int(record.removeprefix("r")) % 8
    neighbours = re.findall(r"^  (r\d+) +cosine", shown.output, flags=re.MULTILINE)
    assert len(neighbours) == 5 and set(neighbours[:2]) == {f"r{topic}", f"r{topic + 8}"}
    assert f"{len(answer_tokens)} tokens" in shown.output and "tokens changed most:" in shown.output

    mine = CliRunner().invoke(app, ["explain", result.run_id, record, "--answer", "candidate"])
    assert mine.exit_code == 0, mine.output
    assert (llmops_home / "explain" / result.run_id / f"{record}.html").exists()


@pytest.mark.slow
def test_a_judge_compares_candidate_and_champion_answers_in_both_orders(
    config: EvaluateConfig, llmops_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.artifacts import Artifact

    from llmops.serving.store import InferenceStore

    # The champion also judges: the serving app answers with it on loopback. The tiny model is
    # a poor judge (its verdicts are mostly not A, B or TIE); this test is about the plumbing.
    register_talking_champion(config.registered_model, tmp_path, TALKING_SEED, 1.0)
    monkeypatch.setenv("TEST_JUDGE_KEY", "judge-key")
    log = llmops_home / "judge-inference"
    with serving_in_process(config.registered_model, log, "judge-key") as url:
        judge = JudgeSettings(
            base_url=f"{url}/v1", model=config.registered_model, api_key_env="TEST_JUDGE_KEY"
        )
        result = evaluate(config.model_copy(update={"judge": judge}))

    win_rate = result.metrics["candidate"]["win_rate"]
    ci = result.intervals["champion"]["win_rate"]
    assert 0 <= win_rate <= 1 and result.metrics["champion"]["win_rate"] == 0.5
    assert ci.diff == pytest.approx(win_rate - 0.5) and ci.low <= ci.diff <= ci.high
    assert "win_rate" not in result.intervals["base"]
    logged = mlflow.get_run(result.run_id).data.metrics
    assert logged["candidate.win_rate"] == pytest.approx(win_rate)
    assert logged["diff_vs_champion.win_rate.ci_low"] == pytest.approx(ci.low)
    assert "win_rate" in str(Artifact.get("evaluation-summary").data)

    run = mlflow.get_run(result.run_id)
    outputs = mlflow.MlflowClient().load_table(
        run.info.experiment_id, "eval_outputs.json", run_ids=[result.run_id]
    )
    asked = [m[-1]["content"] for m in InferenceStore(str(log)).read_requests()["messages"]]
    assert len(asked) == 2 * result.examples
    for i, row in outputs.iterrows():
        first, swapped = asked[2 * i], asked[2 * i + 1]
        a, b = row["candidate_answer"], row["champion_answer"]
        assert f"Answer A:\n{a}\n\nAnswer B:\n{b}\n" in first
        assert f"Answer A:\n{b}\n\nAnswer B:\n{a}\n" in swapped
    assert outputs["candidate_win_rate"].mean() == pytest.approx(win_rate)
