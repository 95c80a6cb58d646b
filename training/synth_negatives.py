"""Negative words for a synthetic dataset: near-misses of each keyword (phonetically close
look-alikes, by espeak-ng's IPA and an edit distance over phonemes), a phrase's own words,
and common words; homophones of a keyword are never negatives.
"""
from __future__ import annotations

import random
import re
from typing import Optional, Sequence

from keywire.protocol.errors import ConfigError

from .synth_voices import ESPEAK, TTSEngineError, run_tool
from .synth_words import COMMON_WORDS

_DIGRAPHS = {"oʊ", "aɪ", "aʊ", "eɪ", "ɔɪ", "tʃ", "dʒ", "ɪə", "eə", "ʊə", "əʊ", "ɜː", "iː", "uː", "ɑː", "ɔː"}
_IGNORED = set("ˈˌ.‿-_ ")


def phonemes(words: Sequence[str]) -> list[tuple[str, ...]]:
    """IPA phoneme tokens of each word (espeak-ng, en-us); letters when espeak-ng is missing."""
    if not words:
        return []
    def ask(batch: Sequence[str]) -> list[str]:
        r = run_tool([ESPEAK, "-q", "-x", "--ipa", "-v", "en-us"], "\n".join(w.replace("_", " ") for w in batch) + "\n")
        return [ln for ln in r.stdout.splitlines() if ln.strip()]

    try:
        lines = ask(words)
        if len(lines) != len(words):  # espeak-ng split or merged a line: ask word by word
            lines = [" ".join(ask([w])) for w in words]
    except TTSEngineError:
        return [tuple(w) for w in words]
    return [_tokens(ln) for ln in lines]


def _tokens(ipa: str) -> tuple[str, ...]:
    s = [c for c in ipa.strip() if c not in _IGNORED]
    out: list[str] = []
    i = 0
    while i < len(s):
        two = "".join(s[i:i + 2])
        if two in _DIGRAPHS:
            out.append(two)
            i += 2
        else:
            out.append(s[i])
            i += 1
        while i < len(s) and s[i] in "ːʲʰ̃":
            out[-1] += s[i]
            i += 1
    return tuple(out)


def edit_distance(a: Sequence[str], b: Sequence[str]) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


_VOWEL_SPELLINGS = ("a", "e", "i", "o", "u", "oo", "ee", "ow", "ay", "oh", "aw", "ai", "oi", "ur", "ea")
_ONSETS = ("b", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "y", "z",
           "ch", "sh", "th", "st", "bl", "tr", "fr", "gr", "pl", "sl", "sn", "dr")
_CODAS = ("s", "t", "d", "n", "k", "l", "er", "y", "ing")


def spelling_variants(word: str) -> set[str]:
    """Rule-made look-alikes of one word: new onset, no onset, other vowel, added/dropped coda."""
    m = re.match(r"^([^aeiouy]*)([aeiouy]+)(.*)$", word)
    if not m or not word.isalpha():
        return set()
    onset, vowel, rest = m.groups()
    out = {c + vowel + rest for c in _ONSETS}
    if onset:
        out.add(vowel + rest)
    out |= {onset + v + rest for v in _VOWEL_SPELLINGS}
    out |= {word + c for c in _CODAS}
    if len(word) > 2:
        out.add(word[:-1])
    out.discard(word)
    return out


def near_miss_candidates(word: str) -> set[str]:
    """Spelling variants of a word or of a phrase's first/last word, plus the common words."""
    parts = word.split()
    cands: set[str] = set(COMMON_WORDS)
    if len(parts) == 1:
        cands |= spelling_variants(parts[0])
    else:
        cands |= {" ".join(parts[:-1] + [v]) for v in spelling_variants(parts[-1])}
        cands |= {" ".join([v] + parts[1:]) for v in spelling_variants(parts[0])}
    return cands


def choose_negatives(keywords: Sequence[str], explicit: Sequence[str], near_misses: int,
                     common: int, seed: int) -> dict[str, str]:
    """Negative words -> why chosen: explicit ones, the single words of a phrase keyword, the
    `near_misses` phonetically closest look-alikes of each keyword (real words first at equal
    distance), and `common` other common words. Homophones of a keyword are never negatives (`ConfigError` when named explicitly)."""
    rng = random.Random(f"{seed}|negatives")
    kws = [" ".join(k.lower().split()) for k in keywords]
    explicit = [" ".join(w.lower().split()) for w in explicit]
    parts = {p for k in kws if " " in k for p in k.split()}
    cand_by_kw = {k: sorted(near_miss_candidates(k) - set(kws)) for k in kws}
    all_cands = sorted((set().union(*cand_by_kw.values()) | set(explicit) | set(COMMON_WORDS) | parts) - set(kws))
    ph = dict(zip(kws + all_cands, phonemes(kws + all_cands)))
    kw_ph = {k: ph[k] for k in kws}

    def homophone_of(w: str) -> Optional[str]:
        return next((k for k in kws if ph.get(w) == kw_ph[k] or w == k), None)

    out: dict[str, str] = {}
    for w in explicit:
        h = homophone_of(w)
        if h:
            raise ConfigError(f"negative {w!r} sounds the same as keyword {h!r}")
        out[w] = "explicit"
    for k in kws:  # a wake phrase's single words are the hardest negatives of all
        for part in k.split() if " " in k else ():
            if part not in out and not homophone_of(part):
                out[part] = f"part of {k}"
    common_set = set(COMMON_WORDS)
    for k in kws:
        scored = []
        for c in cand_by_kw[k]:
            if homophone_of(c) or c in out:
                continue
            d = edit_distance(kw_ph[k], ph[c])
            if 1 <= d <= max(1, (len(kw_ph[k]) + 1) // 2):
                scored.append((d, c not in common_set, rng.random(), c))
        seen = {kw_ph[x] for x in kws} | {ph[x] for x in out if x in ph}
        taken = 0
        for _, _, _, c in sorted(scored):
            if taken >= near_misses:
                break
            if ph[c] in seen:
                continue
            seen.add(ph[c])
            out[c] = f"near-miss of {k}"
            taken += 1
    pool = [w for w in COMMON_WORDS if w not in out and not homophone_of(w)
            and min(edit_distance(kw_ph[k], ph[w]) for k in kws) >= 2]
    for w in rng.sample(pool, min(common, len(pool))):
        out[w] = "common word"
    return out
