"""Near-duplicate detection: ours vs datasketch's MinHashLSH, same corpus, same parameters, same
greedy keep-first procedure, measured in the same run with the methods interleaved
(A B A B ...); the speed-up is the median over rounds of datasketch's time / ours, with its
spread, in wall time and in CPU time (CPU time is the steadier one on a shared machine).

    .venv/bin/python benchmarks/bench_dedup.py --corpus support --docs 100000
    .venv/bin/python benchmarks/bench_dedup.py --quick              # support, 20k docs, 2 rounds
    .venv/bin/python benchmarks/bench_dedup.py --docs 100000        # the random corpus

The last line is one JSON summary. Our compiled loops (numba, `llmops/data/dedup_kernels.py`)
are warmed once before the timed rounds (compiled, or loaded from numba's cache), so the rounds
time the work, not a one-off compile; the warm-up's seconds are printed and in the summary.

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
check), datasketch's is MinHash.bulk + MinHashLSH with its estimated Jaccard. Two rows of
ours: `near_duplicates` alone on the whole example's key (what datasketch does: the ratio the
issue asks for) and the `prepare` flow's whole `deduplicate` (exact duplicates, near
duplicates, conflicting answers, the rejected rows). The prompt-key row is the old behaviour
(exact and near duplicates of the prompt alone) on the same corpus.
"""

import argparse
import gc
import json
import random
import statistics
import time
from collections import Counter
from difflib import SequenceMatcher

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
    """Another wording: keeps about 30% of the words, and most of it differs (difflib ratio
    below 0.5, as when the corpus was first planted, so it stays the same corpus), so it is a
    different question and not an edited copy."""
    while True:
        other = [w if rng.random() < 0.3 else rng.choice(VOCAB) for w in question]
        other += words(rng, 0, 5)
        if SequenceMatcher(None, other, question, autojunk=False).ratio() < 0.5:
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


def ours_near_duplicates(records: list[list[dict]], settings: MinHashSettings) -> dict[int, int]:
    """Our `near_duplicates` on the whole example's key, from the records (as datasketch's)."""
    return near_duplicates([record_key(m, "example") for m in records], settings)


def timed(method) -> tuple[float, float, dict[int, int]]:
    """(wall seconds, CPU seconds of this process, result). The garbage of the method before is
    collected first, untimed: otherwise whichever method runs next pays for its full
    collections (datasketch leaves about 430k objects at 50k documents)."""
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    found = method()
    return time.perf_counter() - wall, time.process_time() - cpu, found


def spread(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 2),
        "min": round(min(values), 2),
        "max": round(max(values), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", choices=("random", "support"), default="random")
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--num-perm", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3, help="Interleaved rounds.")
    parser.add_argument("--quick", action="store_true", help="Support corpus, 20k docs, 2 rounds.")
    args = parser.parse_args()
    if args.quick:
        args.corpus, args.docs, args.repeats = "support", 20_000, 2
    settings = MinHashSettings(threshold=args.threshold, num_perm=args.num_perm)
    if args.corpus == "random":
        texts = make_corpus(args.docs, seed=0)
        methods = {
            "datasketch": lambda: datasketch_near_duplicates(texts, settings),
            "llmops near_duplicates": lambda: near_duplicates([(t,) for t in texts], settings),
        }

        def accuracy(found: dict[int, int]) -> tuple[float, float, dict]:
            return *score(found, texts, settings), {}

    else:
        records, cluster, kind = support_corpus(args.docs, seed=0)
        old = Deduplication(key="prompt", conflicting_answers="drop")
        methods = {
            "datasketch": lambda: datasketch_on_records(records, settings),
            "llmops near_duplicates": lambda: ours_near_duplicates(records, settings),
            "llmops deduplicate": lambda: ours_on(Deduplication())(records, settings),
            "llmops, prompt key": lambda: ours_on(old)(records, settings),
        }

        def accuracy(found: dict[int, int]) -> tuple[float, float, dict]:
            return score_planted(found, cluster, kind)

        print(
            f"planted duplicates within reach of Jaccard >= {args.threshold}: "
            f"{reachable(records, cluster, settings):.4f}"
        )
    warm_up, _, _ = timed(lambda: near_duplicates([("a b c",), ("a b c",)], settings))
    print(f"compiled loops warmed (compile or cache load) in {warm_up:.2f} s, before timing")
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in methods}
    found: dict[str, dict[int, int]] = {}
    for _ in range(args.repeats):
        for name, method in methods.items():
            wall, cpu, found[name] = timed(method)
            times[name].append((wall, cpu))
    print(
        f"{args.corpus} corpus, {args.docs} docs, threshold {args.threshold}, "
        f"{args.num_perm} permutations, 3-word shingles, {args.repeats} interleaved rounds"
    )
    print(
        f"{'method':<23} {'docs/s':>9} {'speed-up (min-max)':>20} {'cpu speed-up':>13} "
        f"{'precision':>10} {'recall':>7} {'removed':>8}  wrongly removed"
    )
    rows = {}
    for name, measured in times.items():
        walls = [base[0] / own[0] for base, own in zip(times["datasketch"], measured, strict=True)]
        cpus = [base[1] / own[1] for base, own in zip(times["datasketch"], measured, strict=True)]
        precision, recall, wrong = accuracy(found[name])
        rows[name] = {
            "docs_per_s": round(args.docs / statistics.median(w for w, _ in measured)),
            "speedup_wall": spread(walls),
            "speedup_cpu": spread(cpus),
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "removed": len(found[name]),
            "wrongly_removed": wrong,
        }
        row = rows[name]
        print(
            f"{name:<23} {row['docs_per_s']:>9} "
            f"{row['speedup_wall']['median']:>7.2f}x ({min(walls):.2f}-{max(walls):.2f}) "
            f"{row['speedup_cpu']['median']:>12.2f}x {precision:>10.4f} {recall:>7.4f} "
            f"{len(found[name]):>8}  {wrong}"
        )
    summary = {
        "benchmark": "dedup",
        "corpus": args.corpus,
        "docs": args.docs,
        "repeats": args.repeats,
        "threshold": args.threshold,
        "num_perm": args.num_perm,
        "warm_up_s": round(warm_up, 2),
        "methods": rows,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
