"""What each stage hands the next: small typed records that name their artifacts by URI.

A URI is a store URL (`s3://…`, or a folder when the store is local) or an MLflow URI
(`runs:/<run_id>/adapter`); either resolves on any host that has the store and the tracking
server, so a stage can run on another machine than the one before it. Flows return these, and
deployment results (Prefect persisted results) carry them between hosts.
"""

from pydantic import BaseModel, ConfigDict

from llmops import store
from llmops.model.cost import ComputeCost
from llmops.model.fairness import FairnessResult
from llmops.model.gate import Verdict
from llmops.model.metrics import Interval
from llmops.model.slices import SliceResult


class StageOutput(BaseModel):
    """Base of every stage output: immutable, no unknown fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetRef(StageOutput):
    """A prepared dataset: `uri` is its folder (manifest.json, train/eval Parquet, rejected)."""

    dataset_id: str
    uri: str
    counts: dict[str, int]
    slices: list[str] = []  # metadata fields the contract names as evaluation slices
    eda_report: str | None = None  # the EDA report's index page (None: prepared without one)

    def split_uri(self, split: str) -> str:
        """Where a split's Parquet file lives ("train" or "eval")."""
        return store.join(self.uri, f"{split}.parquet")


class TrainedAdapter(StageOutput):
    """A finished fine-tuning run: the adapter, what it was trained from, and how it went."""

    training_run_id: str  # the MLflow run that holds the adapter and the training curves
    adapter_uri: str  # runs:/<training_run_id>/adapter
    adapter_sha256: str
    adapter_bytes: int
    base_ref: str
    base_sha256: str | None
    config_fingerprint: str
    dataset_id: str
    dataset_uri: str
    run_uri: str  # <store>/runs/<run_key>: checkpoints and the finished adapter
    metrics: dict[str, float]
    reused: bool = False  # True when an earlier run with the same key was found finished
    cost: ComputeCost | None = None  # every attempt of the run (None: recorded before costs)
    reference: str | None = None  # DPO: what it is a delta on ("base", "champion v3"); SFT: None


class EvaluationReport(StageOutput):
    """Candidate vs base (and champion, if there was one) on a dataset's held-out split."""

    run_id: str  # the MLflow evaluation run
    dataset_id: str
    dataset_uri: str
    adapter_uri: str
    adapter_sha256: str
    base_ref: str
    base_sha256: str | None
    training_run_id: str | None
    config_fingerprint: str | None
    champion_version: str | None  # the champion the candidate was compared with, if any
    examples: int
    metrics: dict[str, dict[str, float]]  # model label -> metric -> mean
    intervals: dict[str, dict[str, Interval]]  # "base"/"champion" -> CI of candidate - it
    cost: ComputeCost | None = None  # scoring done by this run (None: recorded before costs)
    slices: list[SliceResult] = []  # per-slice results vs compared_to (empty: before slices)
    fairness: dict[str, FairnessResult] = {}  # model label -> bias probe (empty: not run)
    reused: bool = False  # a finished evaluation returned again: its cost was spent then

    @property
    def compared_to(self) -> str:
        """What the gate compares with: the champion when there was one, else the base."""
        return "champion" if self.champion_version else "base"


class PromotionDecision(StageOutput):
    """What the gate decided about a registered candidate."""

    registered_model: str
    version: str
    verdict: Verdict
    compared_to: str
    reasons: list[str]
    previous_champion: str | None
    evaluation_run_id: str

    @property
    def headline(self) -> str:
        """The verdict as people read it."""
        return {
            "promoted": "PROMOTED to champion",
            "rejected": "REJECTED (champion unchanged)",
            "already_champion": "already champion (unchanged)",
            "released": "PASSED, released to live traffic (the release flow decides)",
        }[self.verdict]

    @property
    def is_champion(self) -> bool:
        """Whether the version is champion after this decision (promoted or already was)."""
        return self.verdict in ("promoted", "already_champion")


class PipelineResult(StageOutput):
    """What one training pipeline run produced, stage by stage."""

    dataset: DatasetRef
    trained: TrainedAdapter
    evaluation: EvaluationReport
    decision: PromotionDecision
