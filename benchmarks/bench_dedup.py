"""Near-duplicate detection: our rensa-based dedup vs datasketch's MinHashLSH, same corpus,
same parameters, same greedy keep-first procedure, measured in the same run.

    .venv/bin/python benchmarks/bench_dedup.py --docs 100000

Accuracy is scored against exact Jaccard: the corpus plants clusters of edited copies, so the
true duplicate pairs are known and their exact Jaccard is computed; a reported pair counts as
correct when its exact Jaccard reaches the threshold.
"""

import argparse
import random
import time

from datasketch import MinHash, MinHashLSH

from llmops.data.dedup import MinHashSettings, jaccard, near_duplicates, shingles

VOCAB = [f"w{i}" for i in range(5000)]


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
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--num-perm", type=int, default=128)
    args = parser.parse_args()
    settings = MinHashSettings(threshold=args.threshold, num_perm=args.num_perm)
    texts = make_corpus(args.docs, seed=0)
    results = {}
    for name, fn in (
        ("datasketch", datasketch_near_duplicates),
        ("llmops (rensa)", near_duplicates),
    ):
        start = time.perf_counter()
        found = fn(texts, settings)
        elapsed = time.perf_counter() - start
        results[name] = (elapsed, *score(found, texts, settings), len(found))
    base = results["datasketch"][0]
    print(
        f"{args.docs} docs, threshold {args.threshold}, {args.num_perm} permutations, "
        "3-word shingles"
    )
    print(
        f"{'method':<16} {'docs/s':>10} {'speed-up':>9} {'precision':>10} {'recall':>8} {'dups':>7}"
    )
    for name, (elapsed, precision, recall, n) in results.items():
        print(
            f"{name:<16} {args.docs / elapsed:>10.0f} {base / elapsed:>8.2f}x "
            f"{precision:>10.4f} {recall:>8.4f} {n:>7}"
        )


if __name__ == "__main__":
    main()
