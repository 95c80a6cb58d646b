"""MLTK's augmentation set: waveform (offset, loudness, speed, pitch, noise) and SpecAugment,
plus what a listening device needs on top: background at a signal-to-noise ratio (noise or
keyword-free speech), the background continuing *before* the clip so the frontend's
noise estimate has settled as it has in a stream, and copies mixed exactly as the evaluation
streams mix keywords (`stream_mix`: a bed of noise, other speakers' words and background
speech, the keyword at an SNR above it).

Waveform augmentations run once per cached feature copy (they need the frontend afterwards,
which is the expensive part); SpecAugment masks run on feature batches at every step.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from .audio import fit_length
from .recipe import AugmentationSettings
from .streams import BackgroundPool, StreamConfig, add_at_snr, background_bed, voiced_span


@dataclass(frozen=True)
class NoiseBank:
    """Background-noise recordings (float32, int16 scale) to cut random snippets from."""

    recordings: tuple[np.ndarray, ...]

    def snippet(self, rng: np.random.Generator, n: int) -> np.ndarray | None:
        """A random `n`-sample snippet normalised to RMS 1, or None when the bank is empty."""
        if not self.recordings:
            return None
        rec = self.recordings[int(rng.integers(len(self.recordings)))]
        if len(rec) < n:
            rec = np.tile(rec, n // max(1, len(rec)) + 1)
        start = int(rng.integers(0, len(rec) - n + 1))
        x = rec[start:start + n].astype(np.float32)
        x = x - x.mean()
        rms = float(np.sqrt(np.mean(x * x)))
        return x / rms if rms > 1e-3 else None


def _dbfs_to_rms(dbfs: float) -> float:
    return 32767.0 * 10 ** (dbfs / 20)


def voiced_rms(x: np.ndarray, frame: int = 160, range_db: float = 20.0) -> float:
    """RMS over the 10 ms frames within `range_db` of the loudest one: the level of the
    spoken part, which is what an SNR refers to (silence around a word does not count)."""
    n = len(x) // frame
    if n == 0:
        return 0.0
    e = np.mean(x[:n * frame].astype(np.float64).reshape(n, frame) ** 2, axis=1)
    top = float(e.max())
    if top <= 0:
        return 0.0
    return float(np.sqrt(np.mean(e[e >= top * 10 ** (-range_db / 10)])))


def pitch_shift(x: np.ndarray, semitones: float) -> np.ndarray:
    """Shift pitch keeping duration: resample (changes both) then time-stretch back by
    overlap-add of Hann-windowed grains (cheap WSOLA-free stretch, good enough for augmentation)."""
    if abs(semitones) < 1e-3:
        return x
    factor = 2 ** (semitones / 12)
    y = _resample_factor(x.astype(np.float32), factor)  # shorter when factor > 1, higher pitch
    return _stretch(y, len(x))


def _resample_factor(x: np.ndarray, factor: float) -> np.ndarray:
    """Play `x` `factor` times faster (linear interpolation; output length len/factor)."""
    n = max(2, int(round(len(x) / factor)))
    t = np.linspace(0, len(x) - 1, n)
    return np.interp(t, np.arange(len(x)), x).astype(np.float32)


def _stretch(x: np.ndarray, length: int, grain: int = 512) -> np.ndarray:
    """Overlap-add time stretch of `x` to `length` samples (grains at 50% overlap)."""
    hop_out = grain // 2
    n_grains = max(1, (length - grain) // hop_out + 1)
    hop_in = (len(x) - grain) / max(1, n_grains - 1) if len(x) > grain else 0
    w = np.hanning(grain).astype(np.float32)
    out = np.zeros(length + grain, dtype=np.float32)
    norm = np.zeros(length + grain, dtype=np.float32)
    xp = np.pad(x, (0, grain))
    for i in range(n_grains):
        s = int(round(i * hop_in))
        o = i * hop_out
        out[o:o + grain] += xp[s:s + grain] * w
        norm[o:o + grain] += w
    return out[:length] / np.maximum(norm[:length], 1e-3)


def _shaped(x: np.ndarray, rng: np.random.Generator, a: AugmentationSettings, length: int,
            rate: int) -> np.ndarray:
    """Speed, pitch, loudness and time shift of int16 clip `x`, fitted to `length` samples."""
    y = x.astype(np.float32)
    lo, hi = a.speed
    if hi > lo or lo != 1.0:
        y = _resample_factor(y, float(rng.uniform(lo, hi)))
    lo, hi = a.pitch_semitones
    if hi > lo or lo != 0.0:
        y = pitch_shift(y, float(rng.uniform(lo, hi)))
    lo, hi = a.loudness_db
    y = y * 10 ** (float(rng.uniform(lo, hi)) / 20)
    shift = int(rng.integers(-a.time_shift_ms, a.time_shift_ms + 1)) * rate // 1000 if a.time_shift_ms else 0
    return fit_length(np.clip(np.round(y), -32768, 32767).astype(np.int16), length, shift)


def augment_waveform(x: np.ndarray, rng: np.random.Generator, a: AugmentationSettings,
                     noise: NoiseBank, length: int, rate: int,
                     speech: NoiseBank = NoiseBank(()), bed: Optional[BackgroundPool] = None) -> np.ndarray:
    """One random augmented version of int16 clip `x`: `length` samples, preceded by
    `a.warmup_ms` of the same background (the frontend runs over it; features keep the end;
    with `a.warmup_random` the background starts anywhere in that span, so the model sees
    both a settled frontend, as in a stream, and a fresh one, as for a single clip).

    Background is a noise snippet or, with `a.babble_probability`, keyword-free speech from
    `speech`; its level is `a.noise_dbfs` absolute, or `a.noise_snr_db` below the clip's
    voiced level when that range is set. With `a.stream_probability` and a `bed` pool the
    copy is mixed as in a listening stream instead (`stream_mix`)."""
    if bed is not None and a.stream_probability > 0 and rng.random() < a.stream_probability:
        return stream_mix(x, rng, a, bed, length, rate)
    y = _shaped(x, rng, a, length, rate).astype(np.float32)
    warm = a.warmup_ms * rate // 1000
    y = np.concatenate([np.zeros(warm, np.float32), y])
    if rng.random() < a.noise_probability:
        bank = speech if speech.recordings and rng.random() < a.babble_probability else noise
        n = bank.snippet(rng, len(y))
        if n is not None and a.warmup_random and warm:
            # Background starts 0..warmup_ms before the clip; leading digital silence leaves
            # the frontend in its fresh state, so this is a shorter warm-up at the same length.
            # (`snippet` returns a new array: zeroing it in place touches no recording.)
            n[:warm - int(rng.integers(0, warm + 1))] = 0.0
        if n is not None:
            if a.noise_snr_db != (0.0, 0.0):
                level = voiced_rms(y) * 10 ** (-float(rng.uniform(*a.noise_snr_db)) / 20)
                level = max(level, _dbfs_to_rms(-70.0))
            else:
                level = _dbfs_to_rms(float(rng.uniform(*a.noise_dbfs)))
            y = y + n * level
    return np.clip(np.round(y), -32768, 32767).astype(np.int16)


def stream_mix(x: np.ndarray, rng: np.random.Generator, a: AugmentationSettings, bed: BackgroundPool,
               length: int, rate: int) -> np.ndarray:
    """Clip `x` as a device hears it in a stream, made the way the evaluation streams are made:
    a background bed (`streams.background_bed`: random cross-faded segments of noise
    recordings, other speakers' words and background speech, each at a level drawn from
    `a.stream_dbfs`) running `a.warmup_ms` before the clip, and the clip (shaped as in
    `augment_waveform`) added with its voiced part `a.stream_snr_db` above the bed under it
    (`streams.add_at_snr`). Returns warm-up + `length` samples."""
    y = _shaped(x, rng, a, length, rate)
    warm = a.warmup_ms * rate // 1000
    lo, hi = a.stream_dbfs
    config = StreamConfig(sample_rate=rate, background_dbfs=(lo + hi) / 2, background_jitter_db=(hi - lo) / 2)
    floor_dbfs = lo - 30.0
    mix = background_bed(bed, warm + length, rng, config)
    bg = mix.copy()
    span = voiced_span(y, rate)
    add_at_snr(mix, bg, y, span, warm + span[0], float(rng.uniform(*a.stream_snr_db)),
               _dbfs_to_rms(floor_dbfs), rate)
    return np.clip(np.round(mix), -32768, 32767).astype(np.int16)


def stream_bed_pool(noise_files: Sequence[str], speech_files: Sequence[str], word_files: Sequence[str],
                    rate: int, shares: tuple[float, float, float] = (0.5, 0.3, 0.2)) -> Optional[BackgroundPool]:
    """The bed material for `stream_mix`: noise recordings, background speech and short word or
    silence clips, drawn with `shares` of the segments each (about as the evaluation streams mix
    them); None when there is no material at all."""
    groups = [list(noise_files), list(speech_files), list(word_files)]
    used = [(g, sh) for g, sh in zip(groups, shares) if g]
    if not used:
        return None
    total = sum(sh for _, sh in used)
    files = [f for g, _ in used for f in g]
    weights = [sh / total / len(g) for g, sh in used for _ in g]
    return BackgroundPool(files, rate, weights=weights)


def make_silence(seed: int, noise: NoiseBank, length: int) -> np.ndarray:
    """A `_silence_` example: a background-noise snippet at a random level (-70..-30 dBFS),
    or digital silence (one in ten, and always when there is no noise)."""
    rng = np.random.default_rng(seed)
    if rng.random() < 0.1:
        return np.zeros(length, dtype=np.int16)
    n = noise.snippet(rng, length)
    if n is None:
        return np.zeros(length, dtype=np.int16)
    y = n * _dbfs_to_rms(float(rng.uniform(-70, -30)))
    return np.clip(np.round(y), -32768, 32767).astype(np.int16)


def make_speech_window(seed: int, speech: NoiseBank, length: int) -> np.ndarray:
    """An `_unknown_` example cut from keyword-free background speech: a random window with
    voice in it (the loudest of a few draws), at a random level (-40..-15 dBFS). Teaches the
    model that running speech which is not a keyword is `_unknown_`, the main source of false
    accepts in a stream."""
    rng = np.random.default_rng(seed)
    best, best_rms = None, -1.0
    for _ in range(4):
        n = speech.snippet(rng, length * 3)
        if n is None:
            return np.zeros(length, dtype=np.int16)
        start = int(rng.integers(0, 2 * length + 1))
        w = n[start:start + length]
        r = voiced_rms(w)
        if r > best_rms:
            best, best_rms = w, r
    y = best / max(best_rms, 1e-6) * _dbfs_to_rms(float(rng.uniform(-40, -15)))
    return np.clip(np.round(y), -32768, 32767).astype(np.int16)


def spec_augment(batch: np.ndarray, rng: np.random.Generator, a: AugmentationSettings,
                 fill: float) -> np.ndarray:
    """Time and frequency masks (SpecAugment) on a float batch [n, frames, channels] in place."""
    n, frames, ch = batch.shape[:3]
    for i in range(n):
        if rng.random() >= a.specaugment_probability:
            continue
        for _ in range(a.time_masks):
            w = int(rng.integers(0, a.time_mask_frames + 1))
            if w:
                s = int(rng.integers(0, max(1, frames - w)))
                batch[i, s:s + w] = fill
        for _ in range(a.freq_masks):
            w = int(rng.integers(0, a.freq_mask_channels + 1))
            if w:
                s = int(rng.integers(0, max(1, ch - w)))
                batch[i, :, s:s + w] = fill
    return batch


def noise_bank(files: Sequence[str], rate: int) -> NoiseBank:
    from .audio import load_noise

    return NoiseBank(tuple(load_noise(f, rate) for f in files))
