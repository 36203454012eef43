"""PII redaction: e-mail addresses, phone numbers, credit cards (Luhn), IPv4, IBANs (mod 97).

Written here rather than with Presidio/scrubadub: those need spaCy models we cannot download
offline, and these five kinds are well served by checked patterns.
"""

import re
from collections import Counter

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
IPV4 = re.compile(r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b")
# A run of digits with the separators people type in card and phone numbers.
NUMBER_RUN = re.compile(r"\+?\(?\d[\d\s().-]{5,}\d")
NON_DIGIT = re.compile(r"\D")


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum every payment card number satisfies."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_valid(text: str) -> bool:
    """ISO 13616 mod-97 check."""
    compact = text.replace(" ", "")
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def redact(text: str) -> tuple[str, Counter]:
    """Replace PII with typed placeholders; return the new text and counts by type."""
    counts: Counter = Counter()
    return redact_into(text, counts), counts


def redact_into(text: str, counts: Counter) -> str:
    """`text` with PII replaced by typed placeholders, each counted into `counts` by type (one
    Counter for many texts: this runs on every text of every record)."""
    # Most texts hold no PII: a cheap test that a pattern cannot match skips its scan (the
    # e-mail pattern alone retries its run of word characters from every position of a word).
    if "@" in text:
        text = EMAIL.sub(_placeholder("EMAIL", counts), text)
    if not text.islower():  # an IBAN opens with two capitals
        text = IBAN.sub(_placeholder("IBAN", counts, iban_valid), text)
    if text.count(".") >= 3:
        text = IPV4.sub(_placeholder("IP_ADDRESS", counts), text)
    return NUMBER_RUN.sub(lambda m: _classify_number(m.group(), counts), text)


def _placeholder(kind: str, counts: Counter, check=None):
    """A `re.sub` replacement: `[kind]`, counted, for each match that passes `check`."""

    def replace(match: re.Match) -> str:
        if check and not check(match.group()):
            return match.group()
        counts[kind] += 1
        return f"[{kind}]"

    return replace


def _classify_number(run: str, counts: Counter) -> str:
    """A digit run is a card (13-19 digits, Luhn), a phone (7-15 digits, written like one),
    or left alone (order numbers, Luhn-invalid 16-digit ids, dates)."""
    digits = run if run.isdigit() else NON_DIGIT.sub("", run)
    if 13 <= len(digits) <= 19 and luhn_valid(digits):
        counts["CREDIT_CARD"] += 1
        return "[CREDIT_CARD]"
    looks_like_phone = run.startswith("+") or "(" in run or 10 <= len(digits) <= 11
    if 7 <= len(digits) <= 15 and looks_like_phone and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", run):
        counts["PHONE"] += 1
        return "[PHONE]"
    return run
