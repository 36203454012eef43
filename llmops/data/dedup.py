"""Exact and near-duplicate detection over a record's key: the whole example (system message,
every turn and the answer) or the prompt alone, as the data contract says.

Near duplicates use MinHash + LSH from `rensa` (Rust) over the whole key to find candidates,
then confirm each candidate exactly: the Jaccard of the two shingle sets reaches the threshold,
and so does the word-level similarity of each part of the key (system, prompt, answer). The
part check is what keeps a paraphrased question with the same canned answer, or another answer
to the same question, from passing as a near duplicate when the shared part is long.
"""

import re
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Literal

from rensa import RMinHash, RMinHashLSH

WORD = re.compile(r"\w+")

DedupKey = Literal["example", "prompt"]
Key = tuple[str, ...]  # a record's key text in parts; the whole key is the parts joined


@dataclass(frozen=True)
class MinHashSettings:
    threshold: float = 0.8
    num_perm: int = 128
    shingle_size: int = 3
    shingle_unit: str = "word"  # "word" or "char"
    seed: int = 42

    @property
    def num_bands(self) -> int:
        # Banding tuned so the S-curve's midpoint sits a bit below the threshold (recall first;
        # candidates are verified afterwards).
        for bands in (64, 32, 16, 8, 4):
            rows = self.num_perm // bands
            if self.num_perm % bands == 0 and (1 / bands) ** (1 / rows) >= self.threshold - 0.15:
                return bands
        return 4


def render(messages: list[dict]) -> str:
    """Messages as "role: content" lines (the role is part of what is compared)."""
    return "\n".join(f"{m['role']}: {m['content']}" for m in messages)


def record_key(messages: list[dict], key: DedupKey, rejected: str | None = None) -> Key:
    """What a record is compared on. "example": (system message, turns before the answer, the
    answer), plus a preference pair's rejected answer. "prompt": the turns before the answer
    alone, without the system message, which is house instructions shared by many records
    rather than part of the customer's question.

    Two pairs with one prompt and one chosen answer but different rejected answers teach two
    preferences, so they are not copies: the rejected answer is a part of its own, which the
    near-duplicate check compares on its own too."""
    system = [m for m in messages[:-1] if m["role"] == "system"]
    turns = [m for m in messages[:-1] if m["role"] != "system"]
    if key == "prompt":
        return (render(turns),)
    pair = (f"rejected: {rejected}",) if rejected is not None else ()
    return (render(system), render(turns), render(messages[-1:]), *pair)


def key_text(key: Key) -> str:
    """The whole key as one text."""
    return "\n".join(part for part in key if part)


def normalized_prompt(messages: list[dict]) -> str:
    """The prompt key in normalized form: what two records share when they ask the same."""
    return normalize(key_text(record_key(messages, "prompt")))


def normalize(text: str) -> str:
    """Case-, whitespace- and punctuation-insensitive form used for exact duplicates."""
    return " ".join(WORD.findall(text.casefold()))


def shingles(text: str, settings: MinHashSettings) -> list[str]:
    """Word or character n-grams of the normalized text (the whole text when shorter)."""
    if settings.shingle_unit == "char":
        norm = normalize(text)
        n = settings.shingle_size
        return [norm[i : i + n] for i in range(max(1, len(norm) - n + 1))]
    words = normalize(text).split()
    n = settings.shingle_size
    return [" ".join(words[i : i + n]) for i in range(max(1, len(words) - n + 1))]


def minhashes(shingle_sets: list[set[str]], settings: MinHashSettings) -> list[RMinHash]:
    """One MinHash per shingle set."""
    result = []
    for shingle_set in shingle_sets:
        mh = RMinHash(num_perm=settings.num_perm, seed=settings.seed)
        mh.update(list(shingle_set))
        result.append(mh)
    return result


def jaccard(a: set[str], b: set[str]) -> float:
    """Exact Jaccard similarity of two sets."""
    return len(a & b) / len(a | b) if a or b else 1.0


def word_similarity(a: str, b: str) -> float:
    """Similarity of two texts' normalized word sequences (difflib ratio, 1.0 when both are
    empty). Shingle Jaccard of a short text drops to 0 after one edited word; this does not."""
    matcher = SequenceMatcher(None, normalize(a).split(), normalize(b).split(), autojunk=False)
    return matcher.ratio()


def is_near_duplicate(a: Key, b: Key, a_shingles: set[str], b_shingles: set[str], t: float) -> bool:
    """The exact check of a MinHash candidate: the whole key's Jaccard reaches `t`, and so does
    the word similarity of each part (a single-part key has nothing more to check)."""
    if len(a) != len(b):  # a preference pair and a supervised record are never copies
        return False
    if jaccard(a_shingles, b_shingles) < t:
        return False
    return len(a) == 1 or all(word_similarity(x, y) >= t for x, y in zip(a, b, strict=True))


def exact_duplicates(texts: list[str]) -> dict[int, int]:
    """Map each duplicate's index to the index of the first identical text."""
    first: dict[str, int] = {}
    duplicates = {}
    for i, text in enumerate(texts):
        key = normalize(text)
        if key in first:
            duplicates[i] = first[key]
        else:
            first[key] = i
    return duplicates


def conflicting_answers(prompts: list[str], answers: list[str]) -> dict[int, int]:
    """Map each record whose (normalized) answer differs from that of the first record with
    the same (normalized) prompt to that first record."""
    first: dict[str, int] = {}
    conflicts = {}
    for i, prompt in enumerate(prompts):
        j = first.setdefault(prompt, i)
        if answers[i] != answers[j]:
            conflicts[i] = j
    return conflicts


def near_duplicates(keys: list[Key], settings: MinHashSettings) -> dict[int, int]:
    """Map each near duplicate's index to the earliest kept key it matches.

    Keys are visited in order and only kept ones enter the index, so each cluster keeps its
    first member: deterministic for a given input order.
    """
    sets, hashes = _signatures(keys, settings)
    lsh = _index(settings)
    duplicates = {}
    for i, mh in enumerate(hashes):
        matches = [
            j
            for j in lsh.query(mh)
            if is_near_duplicate(keys[i], keys[j], sets[i], sets[j], settings.threshold)
        ]
        if matches:
            duplicates[i] = min(matches)
        else:
            lsh.insert(i, mh)
    return duplicates


def cross_matches(
    queries: list[Key], corpus: list[Key], settings: MinHashSettings
) -> dict[int, int]:
    """Map each query index to a corpus index it near-duplicates (used for contamination)."""
    corpus_sets, corpus_hashes = _signatures(corpus, settings)
    query_sets, query_hashes = _signatures(queries, settings)
    lsh = _index(settings)
    for j, mh in enumerate(corpus_hashes):
        lsh.insert(j, mh)
    matches = {}
    for i, mh in enumerate(query_hashes):
        hits = [
            j
            for j in lsh.query(mh)
            if is_near_duplicate(
                queries[i], corpus[j], query_sets[i], corpus_sets[j], settings.threshold
            )
        ]
        if hits:
            matches[i] = min(hits)
    return matches


def _signatures(keys: list[Key], settings: MinHashSettings) -> tuple[list[set[str]], list]:
    sets = [set(shingles(key_text(key), settings)) for key in keys]
    return sets, minhashes(sets, settings)


def _index(settings: MinHashSettings) -> RMinHashLSH:
    return RMinHashLSH(
        threshold=settings.threshold, num_perm=settings.num_perm, num_bands=settings.num_bands
    )
