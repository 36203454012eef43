"""Builders shared by the model-area tests: a tiny LoRA adapter and a tiny prepared dataset.

Plain functions (not fixtures) so tests in tests/llmops/model and tests/flows can both use them.
"""

import json
from pathlib import Path

import pandas as pd
import torch
from peft import LoraConfig, get_peft_model

from llmops.model.loading import BaseModel, load_model, load_tokenizer, resolve_base
from llmops.records import instruction_to_messages

# A tiny support domain: every answer follows a fixed pattern, so a few LoRA steps can learn it.
_TOPICS = ["password", "invoice", "export", "login", "billing", "backup", "upgrade", "refund"]


def make_tiny_adapter(out: Path, seed: int = 0, scale: float = 0.0) -> tuple[Path, BaseModel]:
    """Save a LoRA adapter on the tiny random model; `scale` perturbs its B matrices so two
    adapters generate differently (0 gives an adapter equal to the base)."""
    base = resolve_base("tiny-random")
    # peft draws the A matrices from the global RNG: seed it here, or the adapter depends on
    # whatever ran before in the session (which tests ran, whether the base was just built).
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = get_peft_model(
            load_model(base, torch.device("cpu")),
            LoraConfig(
                r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"
            ),
        )
    if scale:
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, param in model.named_parameters():
                if "lora_B" in name:
                    param.copy_(torch.randn(param.shape, generator=generator) * scale)
    model.save_pretrained(out)
    return out, base


def tiny_records(n: int, offset: int = 0) -> pd.DataFrame:
    """`n` records in the internal form (record_id, source, messages)."""
    rows = []
    for i in range(offset, offset + n):
        topic = _TOPICS[i % len(_TOPICS)]
        messages = instruction_to_messages(
            f"How do I change my {topic} settings? (ticket {i})",
            f"Open Settings, choose {topic.title()}, then press Save.",
        )
        rows.append({"record_id": f"r{i}", "source": f"sample.jsonl:{i + 1}", "messages": messages})
    return pd.DataFrame(rows)


def write_tiny_dataset(root: Path, n_train: int = 16, n_eval: int = 6) -> Path:
    """A prepared-dataset folder of the shape `flows.prepare` writes; returns the folder."""
    return _write_dataset(
        root, f"tiny-{n_train}-{n_eval}", tiny_records(n_train), tiny_records(n_eval, n_train)
    )


def _write_dataset(
    root: Path, dataset_id: str, train: pd.DataFrame, held_out: pd.DataFrame
) -> Path:
    """Write the two splits and the manifest the way `flows.prepare` does; returns the folder."""
    folder = root / dataset_id
    folder.mkdir(parents=True, exist_ok=True)
    train.to_parquet(folder / "train.parquet")
    held_out.to_parquet(folder / "eval.parquet")
    manifest = {
        "dataset_id": dataset_id,
        "counts": {"train": len(train), "eval": len(held_out)},
        "path": str(folder),
        "splits": {"train": str(folder / "train.parquet"), "eval": str(folder / "eval.parquet")},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


# Planted preferences: every chosen answer names the product, Zephyr Desk; every rejected one
# is the same answer naming the wrong product, AcmeCloud. The prompts never name it, so a model
# can only prefer the chosen answers by learning the flaw.
_ACTIONS = [
    ("reset my password", "Security", "Reset password"),
    ("add a teammate", "Team", "Invite"),
    ("download an invoice", "Billing", "Invoices"),
    ("change the language", "Profile", "Language"),
    ("turn on two-factor login", "Security", "Two-factor"),
    ("export my tickets", "Reports", "Export"),
    ("cancel my plan", "Billing", "Cancel plan"),
    ("rename my workspace", "Settings", "Rename"),
    ("connect my email inbox", "Channels", "Email"),
    ("set office hours", "Settings", "Business hours"),
    ("merge two tickets", "Tickets", "Merge"),
    ("delete a macro", "Automation", "Macros"),
    ("change my avatar", "Profile", "Avatar"),
    ("restore a deleted ticket", "Tickets", "Trash"),
    ("add a custom field", "Settings", "Fields"),
    ("see the audit log", "Security", "Audit log"),
]


def planted_pairs(n: int, offset: int = 0) -> pd.DataFrame:
    """`n` preference-pair records (messages end with the chosen answer, plus `rejected`):
    chosen says Zephyr Desk, rejected says AcmeCloud, otherwise word for word the same."""
    rows = []
    for i in range(offset, offset + n):
        action, menu, item = _ACTIONS[i % len(_ACTIONS)]
        steps = f"open {menu}, choose {item}, then press Save."
        messages = instruction_to_messages(f"How do I {action}?", f"In Zephyr Desk, {steps}")
        rows.append(
            {
                "record_id": f"p{i}",
                "source": f"pairs.jsonl:{i + 1}",
                "messages": messages,
                "rejected": f"In AcmeCloud, {steps}",
            }
        )
    return pd.DataFrame(rows)


def write_pairs_dataset(root: Path, n_train: int = 8, n_eval: int = 4) -> Path:
    """A prepared pair dataset: planted pairs, held-out prompts differ from the train prompts."""
    return _write_dataset(
        root, f"pairs-{n_train}-{n_eval}", planted_pairs(n_train), planted_pairs(n_eval, n_train)
    )


def train_tiny_adapter(out: Path, dataset: Path, steps: int, seed: int = 0) -> Path:
    """A LoRA adapter on the tiny model trained for `steps` full-batch steps on the train split:
    a candidate that really is better than the base (lower eval loss). Plain torch, so these
    tests do not depend on the fine-tuning flow."""
    base = resolve_base("tiny-random")
    tokenizer = load_tokenizer(base)
    torch.manual_seed(seed)
    model = get_peft_model(
        load_model(base, torch.device("cpu")),
        LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM"),
    )
    texts = [
        tokenizer.apply_chat_template(list(m), tokenize=False)
        for m in pd.read_parquet(dataset / "train.parquet")["messages"]
    ]
    tokenizer.padding_side = "right"
    batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(steps):
        optimizer.zero_grad()
        model(**batch, labels=labels).loss.backward()
        optimizer.step()
    model.save_pretrained(out)
    return out
