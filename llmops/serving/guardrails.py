"""Screen requests before generation for malicious use: prompt injection, jailbreaks, attempts to
exfiltrate secrets or other users' data, and abusive content.

    .venv/bin/python benchmarks/bench_guardrails.py   # precision, recall and latency

Two detectors, both offline. Rules (case-insensitive regular expressions) catch the phrasings
that are attacks wherever they appear ("ignore all previous instructions", "print your system
prompt"); embedding similarity (the vendored MiniLM) to a shipped, versioned set of known attack
prompts (attack_prompts/<version>.jsonl) catches the rest, above a cosine threshold. A rule wins
over similarity. Hand-written: the offline libraries for this either download a classifier from
the Hugging Face hub at run time (llm-guard, guardrails-ai's jailbreak validator) or call an LLM
API (rebuff), and we already ship the one model this needs.
"""

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Literal

import numpy as np
from prefect.events import emit_event
from pydantic import BaseModel, ConfigDict, Field

CATEGORIES = ("prompt_injection", "jailbreak", "exfiltration", "abuse")
ABUSE_EVENT = "llmops.abuse.detected"

Encoder = Callable[[Sequence[str]], np.ndarray]


class GuardrailSettings(BaseModel):
    """How a server screens requests before generation."""

    model_config = ConfigDict(extra="forbid")

    policy: Literal["block", "flag", "off"] = Field(
        "flag",
        description="block: refuse with a 400; flag: answer and record; off: no screening",
    )
    # 0.55 from the sweep in benchmarks/bench_guardrails.py: the lowest threshold that keeps
    # false positives on ordinary support questions under 5% (dev split).
    threshold: float = Field(
        0.55, gt=0, le=1, description="cosine similarity to a known attack prompt that flags"
    )
    reference_set: str = Field(
        "v1",
        pattern=r"^v\d+$",
        description="which shipped set of known attack prompts (attack_prompts/<version>.jsonl)",
    )


@dataclass(frozen=True)
class Screening:
    """The verdict on one text: a category, or None for clean; never any of the text itself."""

    category: str | None
    score: float  # the highest cosine similarity to the reference set
    matched: str | None  # "rule:<name>" or the id of the closest reference prompt


@dataclass(frozen=True)
class AttackPrompt:
    id: str
    category: str
    text: str


# High-precision phrasings only: a rule that also fires on a support question ("ignore my
# previous message", "how do I reset my password?") costs more than the similarity misses.
RULES: dict[str, tuple[str, str]] = {
    "ignore-instructions": (
        "prompt_injection",
        r"\b(ignore|disregard|forget|override|discard|skip|drop|abandon|bypass)\b[^.!?\n]{0,40}"
        r"\b(previous|prior|above|earlier|original|initial|system|your|the operator's)\s+"
        r"(instructions|directions|directives|rules|prompts?|guidelines|programming|"
        r"configuration|task)",
    ),
    "instructions-void": (
        "prompt_injection",
        r"\b(instructions|directives|programming|rules)\b[^.!?\n]{0,40}\b(no longer apply|"
        r"(are|is) (cancell?ed|deleted|void|outdated|superseded)|do not count|don't count)",
    ),
    "role-markers": (
        "prompt_injection",
        r"<\|im_start\|>\s*system|</?system>|\[/?INST\]|^\s*(system|assistant)\s*:",
    ),
    "new-instructions": (
        "prompt_injection",
        r"\b(new|updated|real)\s+(instructions|directive|system prompt|rules|task)\s*(:|are\b)|"
        r"\bfollow (mine|my instructions|only my|my commands)\b",
    ),
    "named-jailbreak": (
        "jailbreak",
        r"\b((?-i:DAN)|do anything now|god mode|sudo mode|jailbr(eak|oken)|"
        r"(uncensored|unfiltered|unrestricted)\s+(ai|model|mode|assistant|version|llm|chatbot|"
        r"large language model))\b",
    ),
    "no-restrictions": (
        "jailbreak",
        r"\b(no|without|zero|free of|freed from|liberated from)\s+(any\s+)?(ethical|moral|"
        r"content|safety)?\s*(restrictions|limits|limitations|filters|guidelines|rules|"
        r"censorship|morals|moderation)\b",
    ),
    "disable-safety": (
        "jailbreak",
        r"\b(bypass|disable|switch off|turn off|remove|skip|break)\b[^.!?\n]{0,20}\b(your|the)\s+"
        r"(safety|content|refusal)?\s*(filters?|restrictions|safety (rules|layers|guidelines|"
        r"features)|refusal behaviou?r|rules|policies)",
    ),
    "system-prompt": (
        "exfiltration",
        r"\b(print|show|reveal|repeat|output|paste|quote|disclose|dump|tell me|spell out|"
        r"what (is|are|does))\b[^.!?\n]{0,40}\b(system\s+(prompt|message|instructions)|"
        r"initial\s+prompt|hidden\s+(prompt|rules|instructions))",
    ),
    "secrets": (
        "exfiltration",
        r"\b(your|the (server|company|admin|production|backend)'?s?|stored|configured)\b[^.!?\n]"
        r"{0,30}\b(api\s+keys?|secret(\s+access)?\s+keys?|private\s+keys?|access\s+tokens?|"
        r"credentials|passwords?|connection\s+string)\b|\.env\b|/etc/(passwd|shadow)|"
        r"\b(print|show|echo|value of)\b[^.!?\n]{0,20}\b\w+_(API_KEY|SECRET|TOKEN)\b",
    ),
    "other-users-data": (
        "exfiltration",
        r"\b(all|every|other)\s+(registered\s+)?(users?|customers?|accounts?)('s?)?\b[^.!?\n]"
        r"{0,30}\b(emails?|addresses|phone numbers?|passwords?|data|records|details|history|"
        r"tickets)\b",
    ),
    "threat": (
        "abuse",
        r"\b(i('ll| will| am going to|'m going to| swear i'll)|gonna)\s+([^.!?\n]{0,30}\s)?"
        r"(kill|hurt|shoot|stab|murder|strangle|slit|beat|burn|torch|blow up|smash|break)\s+"
        r"(you|your|him|her|them|everyone|whoever|anyone|people|the next|the \w+ (guy|rep|agent))"
        r"\b|\bkill yourself\b|\bgo die\b|\bend (their|your) life\b",
    ),
    "insult": (
        "abuse",
        r"\byou('re| are)?\s+(an?\s+)?(\w+\s+){0,3}(idiot|moron|scum|trash|garbage|retard\w*|"
        r"waste of|excuse for|pile of)\b|\b(vermin|subhuman|whore|slurs?)\b",
    ),
    "harassment-request": (
        "abuse",
        r"\b(write|compose|draft|send|generate|help me (write|organize|send))\b[^.!?\n]{0,40}"
        r"\b(threat\w*|harass\w*|hateful|death threat|insults?)\b",
    ),
}
COMPILED_RULES = {
    name: (category, re.compile(pattern, re.IGNORECASE | re.MULTILINE))
    for name, (category, pattern) in RULES.items()
}
# A message is embedded whole and, when it has several sentences, sentence by sentence (longer
# sentences in pieces of this many words): an attack sentence in a pasted document is not
# diluted by the text around it.
WINDOW_WORDS = 40


def load_reference_set(version: str) -> list[AttackPrompt]:
    """The shipped known attack prompts of one version (package data)."""
    path = resources.files("llmops.serving") / "attack_prompts" / f"{version}.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    return [AttackPrompt(**json.loads(line)) for line in lines if line.strip()]


def match_rules(text: str) -> tuple[str, str] | None:
    """The first rule that fires on `text`, as (category, rule name)."""
    for name, (category, pattern) in COMPILED_RULES.items():
        if pattern.search(text):
            return category, name
    return None


def split_windows(text: str) -> list[str]:
    """The text, then its sentences (cut at WINDOW_WORDS words) when it has more than one."""
    sentences = [s for s in re.split(r"(?<=[.!?])\s+|\n+", text.strip()) if s.strip()]
    pieces = [
        " ".join(words[i : i + WINDOW_WORDS])
        for words in (sentence.split() for sentence in sentences)
        for i in range(0, len(words), WINDOW_WORDS)
    ]
    return [text, *pieces] if len(pieces) > 1 else [text]


class Guardrail:
    """Built once per server: loads the reference set and embeds it once.

    The reference set holds known attack prompts and a few ordinary support questions: a text is
    flagged when its nearest reference is an attack at or above the threshold. Without the
    ordinary ones, MiniLM puts "how do I reset my password?" at 0.72 from an attack about
    another customer's reset link; with them, the nearest neighbour is the ordinary question.
    """

    def __init__(self, settings: GuardrailSettings, encode: Encoder | None = None) -> None:
        if encode is None:
            # Imported here: sentence-transformers takes seconds to import, and the settings
            # above are read by every command that loads a serve profile.
            from llmops.monitoring.embeddings import embed_texts as encode
        self.settings = settings
        self.encode = encode
        self.references = load_reference_set(settings.reference_set)
        self.reference_embeddings = encode([r.text for r in self.references])
        self.is_attack = np.array([r.category != "benign" for r in self.references])

    def screen(self, texts: list[str]) -> list[Screening]:
        """One verdict per text; every window of every text goes through one encode call."""
        windows = [split_windows(text) for text in texts]
        flat = [w for ws in windows for w in ws]
        # Normalized embeddings: the dot product is the cosine similarity. Shape (windows, refs).
        similarity = self.encode(flat) @ self.reference_embeddings.T if flat else None
        screenings, start = [], 0
        for text, ws in zip(texts, windows, strict=True):
            rows = similarity[start : start + len(ws)]
            start += len(ws)
            attack = np.where(self.is_attack, rows, -1.0)
            ordinary = np.where(self.is_attack, -1.0, rows)
            # Per window, the closest attack, and whether it beats the closest ordinary question.
            nearest = attack.argmax(axis=1)
            best = attack.max(axis=1)
            fires = (best >= self.settings.threshold) & (best > ordinary.max(axis=1))
            window = int(np.argmax(np.where(fires, best, -1.0)))
            reference = self.references[int(nearest[window])]
            score = float(best.max())
            if rule := match_rules(text):
                screenings.append(Screening(rule[0], score, f"rule:{rule[1]}"))
            elif fires.any():
                screenings.append(Screening(reference.category, score, reference.id))
            else:
                screenings.append(Screening(None, score, None))
        return screenings


def guardrail_action(policy: str, screening: Screening) -> Literal["blocked", "flagged"] | None:
    """What the server does with a screened request under its policy (None: nothing)."""
    if screening.category is None or policy == "off":
        return None
    return "blocked" if policy == "block" else "flagged"


def blocked_error(screening: Screening) -> dict:
    """The 400 body for a blocked request, in OpenAI's error shape."""
    category = (screening.category or "").replace("_", " ")
    return {
        "error": {
            "message": f"The request was blocked by the guardrail: it looks like {category}.",
            "type": "invalid_request_error",
            "param": "messages",
            "code": f"guardrail_{screening.category}",
        }
    }


def emit_abuse_event(
    category: str, key_name: str | None, action: str, model_name: str, version: str | None
) -> None:
    """Emit `llmops.abuse.detected` for one flagged or blocked request: who and what kind, never
    the prompt text."""
    resource = {
        "prefect.resource.id": f"llmops.model.{model_name}"
        + (f".{version}" if version is not None else ""),
        "llmops.model.name": model_name,
    }
    if version is not None:
        resource["llmops.model.version"] = str(version)
    emit_event(
        event=ABUSE_EVENT,
        resource=resource,
        payload={"category": category, "action": action, "key_name": key_name},
    )
