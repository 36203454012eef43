"""Turning human feedback into training records and preference pairs (plain functions over
the inference log)."""

import hashlib

import pandas as pd

from llmops.data.dedup import normalize, normalized_prompt
from llmops.records import RECORD_COLUMNS, with_answer


def feedback_training_records(
    requests: pd.DataFrame, feedback: pd.DataFrame, min_score: float
) -> pd.DataFrame:
    """Records (record_id, source, messages) from chat requests people corrected or rated well.

    The latest feedback per request wins. A correction replaces the served answer; without
    one, an answer scored at least `min_score` is kept as it was served; anything else is left
    out. Raw completions (no chat turns) are skipped: our records are conversations.
    """
    rows = []
    for row in rated_chats(requests, feedback).itertuples(index=False):
        if _corrected(row):
            answer = row.correction
        elif pd.notna(row.score) and row.score >= min_score:
            answer = row.response
        else:
            continue
        prompt = [dict(m) for m in row.messages]
        rows.append(
            {
                "record_id": f"feedback-{row.request_id}",
                "source": f"feedback:{row.request_id}",
                "messages": with_answer(prompt, answer),
            }
        )
    return pd.DataFrame(rows, columns=list(RECORD_COLUMNS))


def feedback_preference_pairs(
    requests: pd.DataFrame, feedback: pd.DataFrame, min_score: float, max_rejected_score: float
) -> list[dict]:
    """Preference pairs {id, messages (the prompt turns), chosen, rejected} from feedback.

    The latest feedback per request wins, and only chat requests count. A correction beats the
    answer it corrected. Among requests asking the same (normalized) prompt, every answer scored
    at least `min_score` beats every answer scored at most `max_rejected_score`; a corrected
    answer is never the chosen one there (someone found it wanting). Two answers equal up to
    case, spacing and punctuation make no pair. Ids hash the request ids, so exporting the same
    log again gives the same ids.
    """
    if max_rejected_score >= min_score:
        raise ValueError(
            f"max_rejected_score {max_rejected_score} must be below min_score {min_score}"
        )
    chats = rated_chats(requests, feedback)
    pairs = [
        _pair([row.request_id], row.messages, row.correction, row.response)
        for row in chats.itertuples(index=False)
        if _corrected(row)
    ]
    scored = chats[chats["score"].notna()]
    groups: dict[str, list] = {}
    for row in scored.itertuples(index=False):
        groups.setdefault(_prompt_key(row.messages), []).append(row)
    for rows in groups.values():
        chosen = [r for r in rows if r.score >= min_score and not _corrected(r)]
        rejected = [r for r in rows if r.score <= max_rejected_score]
        seen: set[tuple[str, str]] = set()
        for up in chosen:
            for down in rejected:
                texts = (normalize(up.response), normalize(down.response))
                if texts not in seen:
                    seen.add(texts)
                    pairs.append(
                        _pair(
                            [up.request_id, down.request_id],
                            up.messages,
                            up.response,
                            down.response,
                        )
                    )
    return [p for p in pairs if normalize(p["chosen"]) != normalize(p["rejected"])]


def preference_signal(correction: str | None, score: float | None) -> str | None:
    """What makes one feedback a preference signal: "correction" (it pairs with the answer it
    corrects), "rating" for a thumbs up or down (score 1 or 0, what the default pairs export
    counts as chosen or rejected), else None (a lukewarm score pairs with nothing)."""
    if _has_text(correction):
        return "correction"
    return "rating" if score in (0.0, 1.0) else None


def rated_chats(requests: pd.DataFrame, feedback: pd.DataFrame) -> pd.DataFrame:
    """Chat requests joined with their latest feedback, in feedback order."""
    latest = feedback.drop_duplicates("request_id", keep="last")
    chats = requests[requests["endpoint"] == "chat"].drop_duplicates("request_id", keep="last")
    return latest.merge(chats, on="request_id", suffixes=("_feedback", ""))


def _corrected(row) -> bool:
    return _has_text(row.correction)


def _has_text(correction: str | None) -> bool:
    return isinstance(correction, str) and bool(correction.strip())


def _prompt_key(messages: list[dict]) -> str:
    """The prompt as dedup compares it (a request's messages are the turns before the answer)."""
    return normalized_prompt([*messages, {"role": "assistant", "content": ""}])


def _pair(request_ids: list[str], messages: list[dict], chosen: str, rejected: str) -> dict:
    digest = hashlib.sha256("\0".join(request_ids).encode()).hexdigest()[:16]
    return {
        "id": f"pair-{digest}",
        "messages": [dict(m) for m in messages],
        "chosen": chosen,
        "rejected": rejected,
    }
