"""Explanations without Prefect: ranking changes, the listing, the token page, token deltas."""

import re
from pathlib import Path

import torch
from model_support import make_tiny_adapter
from peft import PeftModel

from llmops.model.explain import (
    ExampleChange,
    Neighbour,
    TokenDelta,
    changes_markdown,
    largest_changes,
    render_html,
    token_deltas,
)
from llmops.model.loading import load_model, load_tokenizer
from llmops.records import instruction_to_messages


def test_largest_changes_rank_gains_and_losses_apart() -> None:
    gains = [0.3, -0.1, 0.0, 0.9, -0.7, 0.3, -0.2]
    assert largest_changes(gains, 2) == ([3, 0], [4, 6])
    # An unchanged example is neither; fewer changes than k lists what there is.
    assert largest_changes(gains, 10) == ([3, 0, 5], [4, 6, 1])


def test_the_listing_gives_the_explain_command_of_each_example() -> None:
    change = ExampleChange("r7", -0.25, "Where is | the button?", "x" * 100, "Open it.")
    markdown = changes_markdown(
        "run42", {"Largest losses in rougeL": [change], "Largest gains in rougeL": []}
    )
    assert "| r7 | -0.2500 | Where is \\| the button? |" in markdown
    assert "`llmops explain run42 r7`" in markdown and "x" * 59 + "…" in markdown
    assert "## Largest gains in rougeL\n\nNone." in markdown


def test_the_token_page_escapes_text_and_colours_by_delta() -> None:
    tokens = [TokenDelta("<script>", -1.0, -3.0), TokenDelta(" ok", -2.0, -1.0)]
    neighbour = Neighbour("r1", 0.9, "a <b>prompt</b>", "an answer")
    page = render_html("Explaining r3", ["fact & more"], tokens, [neighbour])
    spans = re.findall(r'<span class="tok" style="background: ([^"]+)"[^>]*>([^<]*)</span>', page)
    assert spans == [("rgba(0, 160, 0, 1.00)", "&lt;script&gt;"), ("rgba(220, 0, 0, 0.50)", " ok")]
    assert "<script>" not in page and "&lt;b&gt;prompt&lt;/b&gt;" in page
    assert "fact &amp; more" in page and "Δ +2.000" in page


def test_token_deltas_are_the_adapters_doing(tmp_path: Path) -> None:
    chat = instruction_to_messages("How do I export?", "Open Settings, then Export.")
    deltas = {}
    for scale in (0.0, 0.5):
        adapter, base = make_tiny_adapter(tmp_path / str(scale), seed=3, scale=scale)
        model = PeftModel.from_pretrained(load_model(base, torch.device("cpu")), str(adapter))
        deltas[scale] = token_deltas(model.eval(), load_tokenizer(base), chat)
    # A zero LoRA B leaves the base unchanged; a perturbed one moves every token's score.
    assert [t.delta for t in deltas[0.0]] == [0.0] * len(deltas[0.0])
    assert all(t.delta != 0 for t in deltas[0.5])
    assert "".join(t.text for t in deltas[0.5]).startswith("Open Settings, then Export.")
