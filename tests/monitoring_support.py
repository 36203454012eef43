"""Text windows for the drift tests: support questions (the reference domain) and a shifted set.

Plain functions so tests/llmops/monitoring and tests/flows/test_monitor.py share them.
"""

import random

import pandas as pd

_FEATURES = [
    "password",
    "invoice",
    "export",
    "login",
    "billing plan",
    "backup",
    "two-factor",
    "API token",
    "team seat",
    "workspace",
    "CSV import",
    "notification",
]
_ASKS = [
    "How do I change my {f}?",
    "Where can I find the {f} settings?",
    "My {f} stopped working after the update, what should I do?",
    "Can an admin reset the {f} for a user?",
    "Is there a way to export the {f} history?",
    "Why does the {f} page show an error?",
    "How long does a {f} change take to apply?",
]
_ANSWERS = [
    "Open Settings, choose {f}, then press Save.",
    "Go to Admin > {f} and follow the steps shown.",
    "Sign out and in again; if the {f} still fails, contact support.",
]
# Another topic in another language: what a clearly shifted window looks like.
_SHIFTED = [
    "¿Cuánto tiempo hay que hornear el pan de {f}?",
    "¿Qué vino combina con la sopa de {f}?",
    "¿Se puede congelar la tarta de {f} durante un mes?",
    "Receta rápida de {f} al horno, por favor",
]
_FOODS = ["calabaza", "manzana", "queso", "tomate", "chocolate", "pollo", "lentejas", "setas"]


def support_window(n: int, seed: int) -> pd.DataFrame:
    """`n` prompt/response pairs from the support domain."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        feature = rng.choice(_FEATURES)
        rows.append(
            {
                "prompt": rng.choice(_ASKS).format(f=feature),
                "response": rng.choice(_ANSWERS).format(f=feature),
            }
        )
    return pd.DataFrame(rows)


def shifted_window(n: int, seed: int) -> pd.DataFrame:
    """`n` pairs on cooking, in Spanish."""
    rng = random.Random(seed)
    rows = [
        {"prompt": rng.choice(_SHIFTED).format(f=rng.choice(_FOODS)), "response": "No lo sé."}
        for _ in range(n)
    ]
    return pd.DataFrame(rows)
