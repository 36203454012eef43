"""Compiled loops of near-duplicate detection (`llmops.data.dedup` calls them on its arrays).

Written by hand because no library does these over our arrays: rensa (the MinHash library used
before) hands its signature matrix back only as Python lists (converting them cost 3-4x its
hashing), and the keep-first confirmation is a sequential loop (whether a key is kept decides
what later keys are compared with) that no vectorized call expresses. numba compiles them once
per machine (`cache=True` keeps the machine code in `__pycache__` beside this file, or numba's
user cache when that is read-only); docs/data.md has the cold and warm costs.
"""

import numpy as np
from numba import njit

_ONE = np.uint64(1)
_LOW = np.uint64(0xFFFFFFFF)
# rensa 0.5's R-MinHash (its `rminhash/bucket.rs`): three rounds throw each value into one of
# the num_perm coordinates with a rank tagged by its round; a coordinate no round reached takes
# the least (a·h + b) >> 34 of a fallback hash, tagged above every round.
_ROUNDS = 3
_RANK_SHIFT = np.uint64(34)  # a rank is the top 30 bits: 32 + the 2 bits of the round tag
_FRACTION_BITS = np.uint64(30)
_FALLBACK = np.uint64(3 << 30)
_BUCKET_DOMAIN = np.uint64(0x6A09E667F3BCC909)
_ROUND_DOMAIN = np.uint64(0x3C6EF372FE94F82B)
_FALLBACK_DOMAIN = np.uint64(0xBB67AE8584CAA73B)


@njit(cache=True, nogil=True)
def _splitmix64(value):
    return _finalize(value + np.uint64(0x9E3779B97F4A7C15))


@njit(cache=True, nogil=True)
def _finalize(value):
    """splitmix64's finalizer: spreads a folded value over all 64 bits."""
    value = (value ^ (value >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    value = (value ^ (value >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return value ^ (value >> np.uint64(31))


# The passes over every word below are loops rather than numpy expressions: at 100k keys (6M
# words) each numpy temporary is 48 MB, and the kernel maps fresh pages for every one of them,
# which cost more than the arithmetic (0.2-0.35 s of page faults for the part digests alone).


@njit(cache=True, nogil=True)
def part_words(codes, hashes, end_code, empty_code):
    """The hash of each word (`hashes[code]`) of the split text, flat, and where each part
    begins: a word coded `end_code` ends a part, and one coded `empty_code` (what leading or
    trailing whitespace splits into) is no word."""
    parts = 0
    blanks = 0
    for c in codes:
        parts += c == end_code
        blanks += c == empty_code
    words = np.empty(len(codes) - parts - blanks, np.uint64)
    starts = np.zeros(parts + 1, np.int64)
    w = p = 0
    for c in codes:
        if c == end_code:
            p += 1
            starts[p] = w
        elif c != empty_code:
            words[w] = hashes[c]
            w += 1
    return words, starts


@njit(cache=True, nogil=True)
def sequence_digests(values, starts):
    """A 64-bit digest of each run of values (from starts[k] to starts[k+1]), order and length
    included: equal runs get equal digests, others differ but for a 2^-64 collision."""
    out = np.empty(len(starts) - 1, np.uint64)
    for k in range(len(out)):
        total = np.uint64(0)
        for position in range(starts[k + 1] - starts[k]):
            total += _finalize(values[starts[k] + position] + np.uint64(position))
        out[k] = _finalize(total + np.uint64(starts[k + 1] - starts[k]))
    return out


@njit(cache=True, nogil=True)
def word_grams(words, starts, n, multipliers):
    """Every key's word n-gram fingerprints, flat, and where each key's begin. A fingerprint
    mixes its length and its words' hashes, each times its position's odd multiplier (so
    "a b c" and "c b a" differ); a key of fewer than n words is one shingle of all of them."""
    keys = len(starts) - 1
    gram_start = np.zeros(keys + 1, np.int64)
    for k in range(keys):
        gram_start[k + 1] = gram_start[k] + max(starts[k + 1] - starts[k] - n + 1, 1)
    grams = np.empty(gram_start[-1], np.uint64)
    for k in range(keys):
        length = min(starts[k + 1] - starts[k], n)
        for g in range(gram_start[k + 1] - gram_start[k]):
            total = np.uint64(length)
            for r in range(length):
                total += words[starts[k] + g + r] * multipliers[r]
            grams[gram_start[k] + g] = _finalize(total)
    return grams, gram_start


@njit(cache=True, nogil=True)
def signatures(values, bounds, a, b):
    """(rows, len(a)) uint32: row r is rensa 0.5's `RMinHash` digest of the token hashes
    values[bounds[r]:bounds[r+1]] with permutations (a, b) (its `build_permutations`), value
    for value: the same signatures, bands and candidates as rensa gave, without its list
    conversion."""
    rows = len(bounds) - 1
    num_perm = len(a)
    count = np.uint64(num_perm)
    reject_below = (np.uint64(1) << np.uint64(32)) % count  # Lemire's unbiased bucket
    seeds = np.empty(_ROUNDS, np.uint64)
    for r in range(_ROUNDS):
        seeds[r] = b[0] ^ _BUCKET_DOMAIN ^ (np.uint64(r) * _ROUND_DOMAIN)
    fallback_seed = a[0] ^ _FALLBACK_DOMAIN
    out = np.full((rows, num_perm), np.uint32(0xFFFFFFFF), np.uint32)
    longest = 0
    for row in range(rows):
        longest = max(longest, bounds[row + 1] - bounds[row])
    fallback = np.empty(longest, np.uint64)
    for row in range(rows):
        digest = out[row]
        size = bounds[row + 1] - bounds[row]
        filled = False
        for t in range(bounds[row], bounds[row + 1]):
            for r in range(_ROUNDS):
                mixed = _splitmix64(values[t] ^ seeds[r])
                candidate = mixed
                while True:
                    product = (candidate & _LOW) * count
                    if (product & _LOW) >= reject_below:
                        break
                    candidate = _splitmix64(candidate)
                bucket = np.int64(product >> np.uint64(32))
                rank = np.uint32((np.uint64(r) << _FRACTION_BITS) | (mixed >> _RANK_SHIFT))
                if rank < digest[bucket]:
                    digest[bucket] = rank
        for p in range(num_perm):
            if digest[p] < _FALLBACK:
                continue  # a round reached it
            if not filled:  # the row's fallback hashes, once
                for t in range(size):
                    fallback[t] = _splitmix64(values[bounds[row] + t] ^ fallback_seed)
                filled = True
            least = _FALLBACK | np.uint64(0xFFFFFFFF)
            for t in range(size):
                least = min(least, _FALLBACK | ((a[p] * fallback[t] + b[p]) >> _RANK_SHIFT))
            digest[p] = min(digest[p], np.uint32(least))
    return out


@njit(cache=True, nogil=True)
def fold_bands(signatures, bands, rows, prime):
    """(keys, bands) uint64: each band's `rows` consecutive values folded into one number
    (x -> x·prime + value from 0, modulo 2^64)."""
    out = np.zeros((len(signatures), bands), np.uint64)
    for k in range(len(signatures)):
        for b in range(bands):
            total = np.uint64(0)
            for r in range(rows):
                total = total * prime + np.uint64(signatures[k, b * rows + r])
            out[k, b] = total
    return out


@njit(cache=True, nogil=True)
def keep_first(
    rows,
    buckets,
    capacity,
    check,
    keep_unmatched,
    grams,
    gram_start,
    parts,
    first_part,
    part_digest,
    words,
    part_start,
    threshold,
):
    """For each key in `rows` (ascending), the earliest key it near-duplicates among those that
    joined a bucket it is in, or -1. `buckets[r]` are row r's shared bucket ids (-1 padded) and
    `capacity[b]` how many rows hold bucket b. A key is compared when `check[key]`; it joins its
    buckets when not checked, or when unmatched and `keep_unmatched` (dedup keeps the first of
    each cluster; contamination compares queries with a corpus that always joins).

    The confirmation is `dedup.is_near_duplicate` on arrays: the Jaccard of the keys' shingle
    fingerprint sets (hash sets: the fingerprints are well-mixed 64-bit values) and the word
    similarity of each part (equal part digests first, else the LCS of the parts' word hashes).
    Hash tables rather than sorting: numba's sorts took most of the one-off compile time."""
    starts = np.zeros(len(capacity) + 1, np.int64)
    for b in range(len(capacity)):
        starts[b + 1] = starts[b] + capacity[b]
    members = np.empty(max(starts[-1], 1), np.int64)
    fill = np.zeros(len(capacity), np.int64)
    n = len(gram_start) - 1
    longest = 1
    for r in range(len(rows)):
        longest = max(longest, gram_start[rows[r] + 1] - gram_start[rows[r]])
    size = _table_size(longest)
    table = np.empty(size, np.uint64)  # key i's fingerprints (stamped r + 1)
    stamp = np.zeros(size, np.int64)
    counted = np.full(size, -1, np.int64)  # the key j last counted in a slot's fingerprint
    scratch = np.empty(size, np.uint64)  # for the distinct count of a key j
    scratch_stamp = np.zeros(size, np.int64)
    distinct = np.full(n, -1, np.int64)
    compared = np.full(n, -1, np.int64)  # the key i that key j was last compared with
    found = np.full(len(rows), -1, np.int64)
    for r in range(len(rows)):
        i = rows[r]
        if check[i]:
            mask = _table_size(gram_start[i + 1] - gram_start[i]) - 1
            size_i = 0
            for g in grams[gram_start[i] : gram_start[i + 1]]:
                s = _probe(table, stamp, r + 1, g, mask)
                if stamp[s] != r + 1:
                    table[s], stamp[s], counted[s] = g, r + 1, -1
                    size_i += 1
            distinct[i] = size_i
            # Each bucket's members are in key order: the earliest match is the least key that
            # matches in any bucket, so a bucket's scan stops at its first match or at that key.
            for b in buckets[r]:
                if b < 0:
                    continue
                for m in range(fill[b]):
                    j = members[starts[b] + m]
                    if found[r] >= 0 and j >= found[r]:
                        break
                    if compared[j] == i:
                        continue
                    compared[j] = i
                    if parts[i] != parts[j]:
                        continue
                    if distinct[j] < 0:
                        distinct[j] = _distinct(grams[gram_start[j] : gram_start[j + 1]],
                                                scratch, scratch_stamp, j + 1)  # fmt: skip
                    size_j = distinct[j]
                    if min(size_i, size_j) < threshold * max(size_i, size_j):
                        continue  # the Jaccard is at most the ratio of the sizes
                    shared = 0
                    for g in grams[gram_start[j] : gram_start[j + 1]]:
                        s = _probe(table, stamp, r + 1, g, mask)
                        if stamp[s] == r + 1 and counted[s] != j:
                            counted[s] = j
                            shared += 1
                    if shared < threshold * (size_i + size_j - shared):
                        continue
                    if _parts_similar(i, j, parts, first_part, part_digest, words, part_start,
                                      threshold):  # fmt: skip
                        found[r] = j
                        break
        if not check[i] or (keep_unmatched and found[r] < 0):
            for b in buckets[r]:
                if b >= 0:
                    members[starts[b] + fill[b]] = i
                    fill[b] += 1
    return found


@njit(cache=True, nogil=True)
def _parts_similar(i, j, parts, first_part, part_digest, words, part_start, threshold):
    """Every part's word similarity reaches the threshold (a one-part key has none to check)."""
    if parts[i] == 1:
        return True
    for k in range(parts[i]):
        p, q = first_part[i] + k, first_part[j] + k
        if part_digest[p] != part_digest[q]:
            x = words[part_start[p] : part_start[p + 1]]
            y = words[part_start[q] : part_start[q + 1]]
            if indel_similarity(x, y) < threshold:
                return False
    return True


@njit(cache=True, nogil=True)
def _table_size(count):
    """A power of two at least twice `count`: open addressing stays short."""
    size = 2
    while size < 2 * count:
        size *= 2
    return size


@njit(cache=True, nogil=True)
def _probe(table, stamp, current, value, mask):
    """The slot holding `value`, or the free one where it goes (a slot is taken when its stamp
    is `current`, so a table is emptied by moving to a new stamp). Values are 64-bit hashes:
    their low bits are the slot."""
    s = np.int64(value & np.uint64(mask))
    while stamp[s] == current and table[s] != value:
        s = (s + 1) & mask
    return s


@njit(cache=True, nogil=True)
def _distinct(values, table, stamp, current):
    mask = _table_size(len(values)) - 1
    count = 0
    for v in values:
        s = _probe(table, stamp, current, v, mask)
        if stamp[s] != current:
            table[s], stamp[s] = v, current
            count += 1
    return count


@njit(cache=True, nogil=True)
def indel_similarity(x, y):
    """rapidfuzz's `Indel.normalized_similarity` of two sequences, the same float:
    1 - (|x| + |y| - 2·LCS) / (|x| + |y|), 1.0 for two empty ones."""
    total = len(x) + len(y)
    if total == 0:
        return 1.0
    return 1.0 - (total - 2 * lcs_length(x, y)) / total


@njit(cache=True, nogil=True)
def lcs_length(x, y):
    """Length of the longest common subsequence, bit-parallel (Hyyrö 2004): a bit per position
    of the shorter sequence, one pass over the longer, so 64 cells a machine word."""
    if len(x) > len(y):
        x, y = y, x
    n = len(x)
    if n == 0:
        return 0
    blocks = (n + 63) // 64
    mask = _table_size(n) - 1
    table = np.empty(mask + 1, np.uint64)
    stamp = np.zeros(mask + 1, np.int64)
    row_of = np.empty(mask + 1, np.int64)
    matches = np.zeros((n, blocks), np.uint64)  # per distinct token of x: where it is
    tokens = 0
    for position in range(n):
        s = _probe(table, stamp, 1, x[position], mask)
        if stamp[s] != 1:
            table[s], stamp[s], row_of[s] = x[position], 1, tokens
            tokens += 1
        matches[row_of[s], position >> 6] |= _ONE << np.uint64(position & 63)
    row = np.full(blocks, ~np.uint64(0), np.uint64)
    for token in y:
        s = _probe(table, stamp, 1, token, mask)
        if stamp[s] != 1:
            continue  # no match: the row does not change
        match = matches[row_of[s]]
        carry = np.uint64(0)
        for w in range(blocks):
            u = row[w] & match[w]
            partial = row[w] + carry
            total = partial + u
            carry = np.uint64(1) if (partial < row[w] or total < partial) else np.uint64(0)
            row[w] = total | (row[w] - u)
    zeros = 0
    for w in range(blocks):
        bits = ~row[w]
        if w == blocks - 1 and n & 63:
            bits &= (_ONE << np.uint64(n & 63)) - _ONE
        while bits:
            bits &= bits - _ONE
            zeros += 1
    return zeros
