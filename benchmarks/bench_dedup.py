"""Near-duplicate detection: our rensa-based dedup vs datasketch's MinHashLSH, same corpus,
same parameters, same greedy keep-first procedure, measured in the same run.

    .venv/bin/python benchmarks/bench_dedup.py --docs 100000
    .venv/bin/python benchmarks/bench_dedup.py --corpus support --docs 100000

`random` (the default): short documents of random words, a third of them edited copies;
accuracy is scored against exact Jaccard (a reported pair is correct when its exact Jaccard
reaches the threshold).

`support`: planted support conversations, scored against what was planted. Duplicates are
copies up to case and punctuation and variants of a whole example with 1-3 words substituted,
inserted or deleted (in the question or the answer). Not duplicates, and planted to catch a
method out: another answer to the same question (system message and question shared), and a
paraphrased question with the topic's canned answer. Both methods see the same full text (the
whole example, system message and roles included); ours is the `prepare` flow's own
`deduplicate` with the bundled contract's rules (exact, then near duplicates with the part
check), datasketch's is MinHash.bulk + MinHashLSH with its estimated Jaccard. The prompt-key
row is the old behaviour (exact and near duplicates of the prompt alone) on the same corpus.
"""

import argparse
import random
import time
from collections import Counter

import pandas as pd
from datasketch import MinHash, MinHashLSH

from llmops.data.contracts import Deduplication
from llmops.data.dedup import (
    MinHashSettings,
    jaccard,
    key_text,
    near_duplicates,
    record_key,
    shingles,
    word_similarity,
)
from llmops.data.prepare import deduplicate

VOCAB = [f"w{i}" for i in range(5000)]
SYSTEM = "You are Driftnote's support assistant. Answer in the Driftnote house style."
GREETING = "Hi there, thanks for contacting Driftnote support!"
SIGN_OFF = "The Driftnote Support Team"


def make_corpus(n: int, seed: int) -> list[str]:
    """n short documents (20-40 words); about a third are edited copies of an earlier one."""
    rng = random.Random(seed)
    docs: list[list[str]] = []
    while len(docs) < n:
        if docs and rng.random() < 0.33:
            words = list(rng.choice(docs[-2000:]))
            for _ in range(rng.choice([0, 1, 1, 2, 4, 8])):
                words[rng.randrange(len(words))] = rng.choice(VOCAB)
        else:
            words = [rng.choice(VOCAB) for _ in range(rng.randrange(20, 41))]
        docs.append(words)
    return [" ".join(d) for d in docs]


def words(rng: random.Random, low: int, high: int) -> list[str]:
    return [rng.choice(VOCAB) for _ in range(rng.randint(low, high))]


def conversation(question: list[str], answer: list[str], system: bool) -> list[dict]:
    head = [{"role": "system", "content": SYSTEM}] if system else []
    return [
        *head,
        {"role": "user", "content": " ".join(question)},
        {"role": "assistant", "content": " ".join(answer)},
    ]


def answer_like(rng: random.Random, house_style: bool) -> list[str]:
    """An answer: greeting, 10-45 words and sign-off in the house style, else 5-45 words."""
    return [GREETING, *words(rng, 10, 45), SIGN_OFF] if house_style else words(rng, 5, 45)


def paraphrase(rng: random.Random, question: list[str]) -> list[str]:
    """Another wording: keeps about 30% of the words, and most of it differs (word similarity
    below 0.5), so it is a different question and not an edited copy."""
    while True:
        other = [w if rng.random() < 0.3 else rng.choice(VOCAB) for w in question]
        other += words(rng, 0, 5)
        if word_similarity(" ".join(other), " ".join(question)) < 0.5:
            return other


def edited(rng: random.Random, messages: list[dict], edits: int) -> list[dict]:
    """A copy with `edits` words substituted, inserted or deleted in the question or answer."""
    messages = [dict(m) for m in messages]
    for _ in range(edits):
        message = rng.choice([m for m in messages if m["role"] != "system"])
        text = message["content"].split()
        at = rng.randrange(len(text))
        operation = rng.choice(("substitute", "insert", "delete"))
        if operation == "substitute":
            text[at] = rng.choice(VOCAB)
        elif operation == "insert" or len(text) == 1:
            text.insert(at, rng.choice(VOCAB))
        else:
            del text[at]
        message["content"] = " ".join(text)
    return messages


def support_corpus(n: int, seed: int) -> tuple[list[list[dict]], list[int], list[str]]:
    """n conversations, the planted cluster of each (duplicates share their source's) and what
    each was planted as (question, paraphrase, other answer, variant, copy).

    Topics of 1-4 paraphrased questions share a canned answer; 40% carry the system message.
    After a record: 15% another answer to its question (a new cluster), 20% a 1-3 word variant,
    7% a copy up to case and punctuation (both in the source's cluster).
    """
    rng = random.Random(seed)
    records: list[list[dict]] = []
    cluster: list[int] = []
    kind: list[str] = []

    def add(messages: list[dict], planted_as: str, same_as: int | None = None) -> None:
        cluster.append(len(cluster) if same_as is None else cluster[same_as])
        records.append(messages)
        kind.append(planted_as)

    while len(records) < n:
        system, house_style = rng.random() < 0.4, rng.random() < 0.7
        first, answer = words(rng, 3, 30), answer_like(rng, house_style)
        for number in range(rng.randint(1, 4)):
            question = first if number == 0 else paraphrase(rng, first)
            add(conversation(question, answer, system), "paraphrase" if number else "question")
            source, roll = len(records) - 1, rng.random()
            if roll < 0.15:
                add(conversation(question, answer_like(rng, house_style), system), "other answer")
            elif roll < 0.35:
                add(edited(rng, records[source], rng.randint(1, 3)), "variant", source)
            elif roll < 0.42:
                copy = [{**m, "content": m["content"].upper() + " !"} for m in records[source]]
                add(copy, "copy", source)
    return records[:n], cluster[:n], kind[:n]


def ours_on(rules: Deduplication):
    """Our `deduplicate` under `rules` as {removed: the record it names}."""

    def run(records: list[list[dict]], settings: MinHashSettings) -> dict[int, int]:
        frame = pd.DataFrame({"record_id": range(len(records)), "source": "", "messages": records})
        _, rejected, _ = deduplicate(frame, rules, settings)
        return {r["record_id"]: r.get("duplicate_of", r.get("conflicts_with")) for r in rejected}

    return run


def datasketch_on_records(records: list[list[dict]], settings: MinHashSettings) -> dict[int, int]:
    """datasketch over the whole example's text (the same text our key hashes)."""
    texts = [key_text(record_key(m, "example")) for m in records]
    return datasketch_near_duplicates(texts, settings)


def score_planted(
    found: dict[int, int], cluster: list[int], kind: list[str]
) -> tuple[float, float, str]:
    """(precision, recall, what was wrongly removed) against the planted clusters: a removal is
    right when the record it names is of the same cluster; recall is over every planted
    duplicate."""
    seen: set[int] = set()
    planted = set()
    for i, c in enumerate(cluster):
        if c in seen:
            planted.add(i)
        seen.add(c)
    wrong = Counter(kind[i] for i, j in found.items() if cluster[i] != cluster[j])
    precision = 1 - wrong.total() / len(found) if found else 1.0
    return precision, len(planted & set(found)) / len(planted), dict(wrong.most_common())


def reachable(records: list[list[dict]], cluster: list[int], settings: MinHashSettings) -> float:
    """Share of planted duplicates whose whole-example Jaccard to an earlier record of their
    cluster reaches the threshold: the ceiling for any method confirming on that Jaccard."""
    sets = [set(shingles(key_text(record_key(m, "example")), settings)) for m in records]
    members: dict[int, list[int]] = {}
    hits = planted = 0
    for i, c in enumerate(cluster):
        if c in members:
            planted += 1
            hits += any(jaccard(sets[i], sets[j]) >= settings.threshold for j in members[c])
        members.setdefault(c, []).append(i)
    return hits / planted


def datasketch_near_duplicates(texts: list[str], settings: MinHashSettings) -> dict[int, int]:
    """The baseline: datasketch MinHash (bulk hashing) + MinHashLSH, keep-first like ours."""
    sets = [[s.encode() for s in shingles(t, settings)] for t in texts]
    hashes = MinHash.bulk(sets, num_perm=settings.num_perm, seed=settings.seed)
    lsh = MinHashLSH(threshold=settings.threshold, num_perm=settings.num_perm)
    found = {}
    for i, mh in enumerate(hashes):
        hits = [j for j in lsh.query(mh) if mh.jaccard(hashes[j]) >= settings.threshold]
        if hits:
            found[i] = min(hits)
        else:
            lsh.insert(i, mh)
    return found


def score(
    found: dict[int, int], texts: list[str], settings: MinHashSettings
) -> tuple[float, float]:
    """(precision, recall) against exact Jaccard over the planted candidate pairs."""
    shingle_sets = [set(shingles(t, settings)) for t in texts]
    # Exact all-pairs Jaccard is quadratic; an inverted index over shingles lists every pair
    # that shares at least one shingle, which includes every pair above any threshold > 0.
    index: dict[str, list[int]] = {}
    truly_duplicate = set()
    for i, s in enumerate(shingle_sets):
        candidates = {j for sh in s for j in index.get(sh, ())}
        if any(jaccard(s, shingle_sets[j]) >= settings.threshold for j in candidates):
            truly_duplicate.add(i)
        for sh in s:
            index.setdefault(sh, []).append(i)
    correct = sum(
        jaccard(shingle_sets[i], shingle_sets[j]) >= settings.threshold for i, j in found.items()
    )
    precision = correct / len(found) if found else 1.0
    recall = len(truly_duplicate & set(found)) / len(truly_duplicate) if truly_duplicate else 1.0
    return precision, recall


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", choices=("random", "support"), default="random")
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--num-perm", type=int, default=128)
    args = parser.parse_args()
    settings = MinHashSettings(threshold=args.threshold, num_perm=args.num_perm)
    if args.corpus == "random":
        texts = make_corpus(args.docs, seed=0)
        methods = {
            "datasketch": lambda: datasketch_near_duplicates(texts, settings),
            "llmops (rensa)": lambda: near_duplicates([(t,) for t in texts], settings),
        }

        def accuracy(found: dict[int, int]) -> tuple[float, float, str]:
            return *score(found, texts, settings), ""

    else:
        records, cluster, kind = support_corpus(args.docs, seed=0)
        old = Deduplication(key="prompt", conflicting_answers="drop")
        methods = {
            "datasketch": lambda: datasketch_on_records(records, settings),
            "llmops (rensa)": lambda: ours_on(Deduplication())(records, settings),
            "llmops, prompt key": lambda: ours_on(old)(records, settings),
        }

        def accuracy(found: dict[int, int]) -> tuple[float, float, str]:
            return score_planted(found, cluster, kind)

        print(
            f"planted duplicates within reach of Jaccard >= {args.threshold}: "
            f"{reachable(records, cluster, settings):.4f}"
        )
    results = {}
    for name, method in methods.items():
        start = time.perf_counter()
        found = method()
        elapsed = time.perf_counter() - start
        results[name] = (elapsed, *accuracy(found), len(found))
    base = results["datasketch"][0]
    print(
        f"{args.corpus} corpus, {args.docs} docs, threshold {args.threshold}, "
        f"{args.num_perm} permutations, 3-word shingles"
    )
    print(
        f"{'method':<19} {'docs/s':>10} {'speed-up':>9} {'precision':>10} {'recall':>8} "
        f"{'removed':>8}  wrongly removed"
    )
    for name, (elapsed, precision, recall, wrong, n) in results.items():
        print(
            f"{name:<19} {args.docs / elapsed:>10.0f} {base / elapsed:>8.2f}x "
            f"{precision:>10.4f} {recall:>8.4f} {n:>8}  {wrong}"
        )


if __name__ == "__main__":
    main()
