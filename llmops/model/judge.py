"""A judge model's pairwise preference between two answers: the `win_rate` metric.

Any OpenAI-compatible chat endpoint judges (a hosted model, or a local `llmops serve`). Each
example is asked twice, candidate first and champion first, because judges favour one
position; an example scores 1 when both orders prefer the candidate, 0 when both prefer the
champion, and 0.5 otherwise (a tie, the orders disagreeing, or a reply that names neither).
"""

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from llmops.records import Message

Verdict = Literal["A", "B", "TIE"]

_INSTRUCTIONS = (
    "You are an impartial judge of a customer-support assistant. Compare two answers to the "
    "same conversation for correctness, helpfulness and clarity. Reply with exactly one word: "
    "A if answer A is better, B if answer B is better, TIE if they are equally good."
)
_VERDICT = re.compile(r"\b(A|B|TIE)\b")


class JudgeSettings(BaseModel):
    """Which endpoint judges, and what to do when it cannot be reached."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = Field(
        ..., min_length=1, description="OpenAI-compatible API root, e.g. http://host:8000/v1."
    )
    model: str = Field(..., min_length=1, description="Model name the endpoint serves.")
    api_key_env: str | None = Field(
        None, description="Environment variable holding the API key (None: no key sent)."
    )
    max_tokens: int = Field(8, ge=1, le=256, description="Tokens the judge may reply with.")
    timeout_s: float = Field(60.0, gt=0, description="Seconds per judge request.")
    retries: int = Field(
        2, ge=0, le=10, description="Retries of a failed request (connection, 429, 5xx)."
    )
    on_error: Literal["fail", "skip"] = Field(
        "fail",
        description="A judge that fails: fail the evaluation, or skip win_rate with a warning.",
    )


class JudgeError(RuntimeError):
    """The judge could not be asked (unreachable, refused, misconfigured): one line."""


class Judge(Protocol):
    """Something that answers a chat request with text."""

    def ask(self, messages: list[Message]) -> str: ...


@dataclass(frozen=True)
class JudgedPairs:
    """Per-example wins of answer set A over B, and how the verdicts were spread."""

    wins: list[float]  # 1 / 0.5 / 0 per example
    agreed: int  # both orders named the same answer
    disagreed: int  # the orders named different answers (position bias)
    unparsed: int  # replies that named neither answer (either order)


class OpenAIJudge:
    """A judge behind an OpenAI-compatible chat completions endpoint (greedy decoding)."""

    def __init__(self, settings: JudgeSettings) -> None:
        # Imported here: every CLI start imports JudgeError (a one-line error), not the SDK.
        import openai

        api_key = "unused"  # the client insists on a key; a keyless local server ignores it
        if settings.api_key_env:
            api_key = os.environ.get(settings.api_key_env, "")
            if not api_key:
                raise JudgeError(f"judge API key: ${settings.api_key_env} is not set")
        # The SDK's own retry policy (exponential backoff on connection errors, 408/429/5xx).
        self._client = openai.OpenAI(
            base_url=settings.base_url,
            api_key=api_key,
            timeout=settings.timeout_s,
            max_retries=settings.retries,
        )
        self._settings = settings
        self._errors = openai.OpenAIError

    def ask(self, messages: list[Message]) -> str:
        try:
            reply = self._client.chat.completions.create(
                model=self._settings.model,
                messages=messages,  # type: ignore[arg-type]
                max_tokens=self._settings.max_tokens,
                temperature=0.0,
            )
        except self._errors as error:
            detail = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise JudgeError(f"judge {self._settings.base_url} failed: {detail}") from error
        return reply.choices[0].message.content or ""


def judge_prompt(conversation: Sequence[Message], answer_a: str, answer_b: str) -> list[Message]:
    """The chat request asking which of two answers to `conversation` is better."""
    shown = "\n".join(f"{m['role']}: {m['content']}" for m in conversation)
    return [
        {"role": "system", "content": _INSTRUCTIONS},
        {
            "role": "user",
            "content": f"Conversation:\n{shown}\n\nAnswer A:\n{answer_a}\n\n"
            f"Answer B:\n{answer_b}\n\nWhich answer is better: A, B or TIE?",
        },
    ]


def parse_verdict(reply: str) -> Verdict | None:
    """The first A, B or TIE the reply names as a word, or None."""
    found = _VERDICT.search(reply.upper())
    return found.group(1) if found else None  # type: ignore[return-value]


def pair_score(a_first: Verdict | None, b_first: Verdict | None) -> float:
    """1 when A wins in both orders, 0 when B does, else 0.5. `b_first` is the verdict with
    the answers swapped, so there "A" names the B answer."""
    a_wins = (a_first == "A") + (b_first == "B")
    b_wins = (a_first == "B") + (b_first == "A")
    if a_wins == 2:
        return 1.0
    if b_wins == 2:
        return 0.0
    return 0.5


def judge_pairs(
    judge: Judge,
    conversations: Sequence[Sequence[Message]],
    answers_a: Sequence[str],
    answers_b: Sequence[str],
) -> JudgedPairs:
    """Ask the judge about every example in both orders; A's wins per example."""
    wins: list[float] = []
    agreed = disagreed = unparsed = 0
    for conversation, a, b in zip(conversations, answers_a, answers_b, strict=True):
        a_first = parse_verdict(judge.ask(judge_prompt(conversation, a, b)))
        b_first = parse_verdict(judge.ask(judge_prompt(conversation, b, a)))
        wins.append(pair_score(a_first, b_first))
        if a_first is None or b_first is None:
            unparsed += 1
        elif wins[-1] == 0.5 and (a_first, b_first) != ("TIE", "TIE"):
            disagreed += 1
        else:
            agreed += 1
    return JudgedPairs(wins, agreed, disagreed, unparsed)
