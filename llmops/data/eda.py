"""Exploratory analysis of a prepared dataset, written by `prepare` beside it (<dataset>/eda/).

    llmops prepare data/sample --profile tiny      # then open <dataset>/eda/index.html

Plain functions from the prepared splits and the rejected rows to tables, PNG figures
(matplotlib) and two HTML pages: Evidently's data summary of the records' derived columns
(summary.html) and an index page with our tables and the figures (index.html). See
docs/data.md, "Exploring a dataset".
"""

import io
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

import pandas as pd

from llmops.records import prompt_messages, prompt_text, reference_response

# Rejection reasons in the order a record meets them in prepare.
REASONS = ("quarantined", "exact_duplicate", "near_duplicate", "conflicting_answer", "contaminated")
REPORT_FOLDER = "eda"  # under the dataset folder
TOP_VALUES = 10  # values shown per slice field
DPI = 100


@dataclass(frozen=True)
class Exploration:
    """What the report shows, as tables."""

    profile: pd.DataFrame  # one row per accepted record: split, source_file, lengths, turns, ...
    by_source: pd.DataFrame  # one row per source file: records, accepted, with_pii, REASONS
    clusters: pd.DataFrame  # near-duplicate clusters: kept record, size, dropped members
    slice_fields: list[str]  # the `slice.<field>` columns of `profile`


def source_file(source: str) -> str:
    """The file of a record's "file:line" (or "file:rowN") source."""
    return source.rsplit(":", 1)[0]


def writing_system(text: str) -> str:
    """The script most letters of `text` are written in ("Latin", "Cyrillic", "Cjk", ...), read
    from Unicode character names. A cheap stand-in for language detection (no detector is
    installed): it tells English from Russian or Japanese, never English from German."""
    scripts = Counter(unicodedata.name(ch, "?").split(" ")[0] for ch in text if ch.isalpha())
    return scripts.most_common(1)[0][0].title() if scripts else "none"


def pii_sources(screened: pd.DataFrame, pii_dropped: list[dict]) -> list[str]:
    """The sources of records in which the PII step found something: the flagged rows it kept
    (`pii` column; absent with pii_mode=off) and those it dropped (pii_mode=drop)."""
    kept = screened.loc[screened["pii"], "source"].tolist() if "pii" in screened else []
    return kept + [r["source"] for r in pii_dropped]


def explore(
    train: pd.DataFrame,
    eval_: pd.DataFrame,
    rejected: list[dict],
    pii_found: list[str],
    slices: Sequence[str],
) -> Exploration:
    """Tables of the prepared splits and of every rejection. `pii_found` lists the sources of
    records with PII; `slices` are the metadata fields to count values of (all metadata fields
    the records have when empty)."""
    records = pd.concat(
        [train.assign(split="train"), eval_.assign(split="eval")], ignore_index=True
    )
    metadata = records["metadata"] if "metadata" in records else pd.Series([{}] * len(records))
    fields = list(slices) or sorted({key for m in metadata for key in (m or {})})
    profile = _profile(records, metadata.tolist(), fields)
    return Exploration(
        profile=profile,
        by_source=_by_source(profile, rejected, pii_found),
        clusters=_near_duplicate_clusters(rejected),
        slice_fields=[f"slice.{field}" for field in fields],
    )


def _profile(records: pd.DataFrame, metadata: list[dict | None], fields: list[str]) -> pd.DataFrame:
    """Derived columns of each record (no text: the report must not repeat what PII redaction
    kept out of it, and lengths are what the plots need)."""

    def words(text: str) -> int:
        return len(text.split())

    prompts = [prompt_text(prompt_messages(ms)) for ms in records["messages"]]
    profile = pd.DataFrame(
        {
            "split": records["split"],
            "source_file": records["source"].map(source_file),
            "prompt_words": [words(p) for p in prompts],
            "response_words": records["messages"].map(lambda ms: words(reference_response(ms))),
            "turns": records["messages"].map(lambda ms: sum(m["role"] == "user" for m in ms)),
            # The data's own language field where a record has one, else its script.
            "language": [
                (m or {}).get("language") or writing_system(p)
                for m, p in zip(metadata, prompts, strict=True)
            ],
        }
    )
    if "rejected" in records and records["rejected"].map(lambda r: isinstance(r, str)).any():
        profile["rejected_words"] = records["rejected"].map(
            lambda r: words(r) if isinstance(r, str) else None
        )
    for field in fields:
        profile[f"slice.{field}"] = [(m or {}).get(field, "(none)") for m in metadata]
    return profile


def _by_source(profile: pd.DataFrame, rejected: list[dict], pii_found: list[str]) -> pd.DataFrame:
    """Outcome counts per source file; `records` = accepted + every rejection reason, and
    `with_pii` counts records of that file in which PII was found (kept redacted or dropped)."""
    rows = Counter((source_file(r["source"]), r["reason"]) for r in rejected)
    accepted = Counter(profile["source_file"])
    pii = Counter(source_file(s) for s in pii_found)
    files = sorted(set(accepted) | {f for f, _ in rows} | set(pii))
    table = pd.DataFrame(
        {
            "source_file": files,
            "accepted": [accepted[f] for f in files],
            "with_pii": [pii[f] for f in files],
            **{reason: [rows[(f, reason)] for f in files] for reason in REASONS},
        }
    )
    table.insert(1, "records", table["accepted"] + table[list(REASONS)].sum(axis=1))
    return table


def _near_duplicate_clusters(rejected: list[dict]) -> pd.DataFrame:
    """Each kept record with near duplicates: its cluster's size (itself + the dropped ones)."""
    members: dict[str, list[str]] = {}
    for r in rejected:
        if r["reason"] == "near_duplicate":
            members.setdefault(r["duplicate_of"], []).append(r["record_id"])
    table = pd.DataFrame(
        {
            "kept": list(members),
            "size": [1 + len(m) for m in members.values()],
            "dropped": [", ".join(m) for m in members.values()],
        },
        columns=["kept", "size", "dropped"],
    )
    return table.sort_values(["size", "kept"], ascending=[False, True], ignore_index=True)


def plot_figures(exploration: Exploration) -> dict[str, bytes]:
    """The report's figures as PNG bytes by file name (slices.png only when there are slices)."""
    profile = exploration.profile
    figures = {
        "lengths.png": _length_histograms(profile),
        "turns.png": _bars(
            profile["turns"].value_counts().sort_index(), "user turns per conversation", "turns"
        ),
        "languages.png": _bars(
            profile["language"].value_counts(), "language mix", "language (metadata) or script"
        ),
        "sources.png": _source_outcomes(exploration.by_source),
        "clusters.png": _bars(
            exploration.clusters["size"].value_counts().sort_index(),
            "near-duplicate clusters",
            "cluster size (kept + dropped records)",
            unit="clusters",
        ),
    }
    if exploration.slice_fields:
        figures["slices.png"] = _top_values(profile, exploration.slice_fields)
    return {name: _png(figure) for name, figure in sorted(figures.items())}


def _figure(width: float, height: float, columns: int = 1, **options):
    # Figure objects rather than pyplot: no global state, no GUI backend inside task threads.
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    return figure, figure.subplots(1, columns, squeeze=False, **options)[0]


def _length_histograms(profile: pd.DataFrame):
    from matplotlib.ticker import MaxNLocator

    columns = [c for c in ("prompt_words", "response_words", "rejected_words") if c in profile]
    figure, axes = _figure(4.5 * len(columns), 3.5, len(columns))
    for ax, column in zip(axes, columns, strict=True):
        by_split = [profile.loc[profile["split"] == s, column].dropna() for s in ("train", "eval")]
        ax.hist(by_split, bins=20, stacked=True, label=["train", "eval"])
        ax.set(title=column.replace("_", " "), xlabel="words", ylabel="records")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend()
    return figure


def _top_values(profile: pd.DataFrame, fields: list[str]):
    figure, axes = _figure(4.5 * len(fields), 3.8, len(fields))
    for ax, field in zip(axes, fields, strict=True):
        top = profile[field].value_counts().head(TOP_VALUES).iloc[::-1]
        ax.barh(top.index, top.values)
        ax.set(title=f"top {field.removeprefix('slice.')}", xlabel="records")
    return figure


def _source_outcomes(by_source: pd.DataFrame):
    figure, (outcome, pii) = _figure(
        9, 2.5 + 0.4 * len(by_source), 2, width_ratios=[3, 1], sharey=True
    )
    table = by_source.set_index("source_file").iloc[::-1]
    left = pd.Series(0, index=table.index)
    for column in ("accepted", *REASONS):
        outcome.barh(table.index, table[column], left=left, label=column.replace("_", " "))
        left += table[column]
    outcome.set(title="outcome by source file", xlabel="records")
    figure.legend(*outcome.get_legend_handles_labels(), loc="outside lower center", ncols=3)
    pii.barh(table.index, table["with_pii"], color="black")
    pii.set(title="records with PII", xlabel="records")
    return figure


def _bars(counts: pd.Series, title: str, xlabel: str, unit: str = "records"):
    from matplotlib.ticker import MaxNLocator

    figure, (ax,) = _figure(4.5, 3.5)
    ax.bar(counts.index.astype(str), counts.values)
    ax.set(title=title, xlabel=xlabel, ylabel=unit)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    if counts.empty:
        ax.text(0.5, 0.5, "none", ha="center", va="center", transform=ax.transAxes)
    return figure


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def summary_html(exploration: Exploration) -> str:
    """Evidently's data summary of the derived columns: train as current, eval as reference, so
    each column's distribution on the held-out split sits beside the training one."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataSummaryPreset

    profile = exploration.profile
    numerical = [c for c in profile if c.endswith("_words") or c == "turns"]
    definition = DataDefinition(
        numerical_columns=numerical,
        categorical_columns=[c for c in profile if c not in numerical and c != "split"],
    )

    def dataset(split: str) -> Dataset:
        frame = profile[profile["split"] == split].drop(columns="split")
        return Dataset.from_pandas(frame.reset_index(drop=True), data_definition=definition)

    train, eval_ = (profile["split"] == s for s in ("train", "eval"))
    reference = dataset("eval") if eval_.any() and train.any() else None
    current = dataset("train") if train.any() else dataset("eval")
    snapshot = Report([DataSummaryPreset()]).run(current_data=current, reference_data=reference)
    return snapshot.get_html_str(as_iframe=False)


def index_html(exploration: Exploration, counts: dict[str, int], figures: list[str]) -> str:
    """The index page: the manifest's counts, our tables, the figures and a link to the
    Evidently summary."""
    # A jinja2 template rather than Evidently alone: its reports hold metrics over one frame,
    # not our per-file outcome table, the cluster list or our own PNGs.
    import jinja2

    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    template = environment.from_string(
        resources.files("llmops").joinpath("templates/eda.html.j2").read_text()
    )
    profile = exploration.profile
    return template.render(
        counts=counts,
        splits=profile["split"].value_counts().to_dict(),
        by_source=exploration.by_source.to_dict("records"),
        columns=list(exploration.by_source.columns),
        clusters=exploration.clusters.to_dict("records"),
        languages=profile["language"].value_counts().to_dict(),
        slices={
            field.removeprefix("slice."): profile[field].value_counts().head(TOP_VALUES).to_dict()
            for field in exploration.slice_fields
        },
        figures=figures,
    )


def render_report(exploration: Exploration, counts: dict[str, int]) -> dict[str, bytes]:
    """Every file of the report by name: index.html, summary.html and the PNG figures."""
    figures = plot_figures(exploration)
    return {
        "index.html": index_html(exploration, counts, sorted(figures)).encode(),
        "summary.html": summary_html(exploration).encode(),
        **figures,
    }
