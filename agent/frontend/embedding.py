"""The speech-embedding feature family (`fe.frontend_type = "speech_embedding"`).

Google's speech embedding (Lin et al. 2020), as shipped by the `openwakeword==0.5.1` wheel
(Apache-2.0; installed with `--no-deps`, never copied into this repository): two TFLite
models. `melspectrogram.tflite` turns 16 kHz samples (as float values of int16) into 32 mel
bins every 160 samples over a 512-sample window; `embedding_model.tflite` turns the last 76
mel frames (scaled x/10 + 2, as openWakeWord feeds them) into one 96-d embedding.

The mel model clamps relative to the loudest value of each call, so its output depends on
how audio is grouped into calls. The stream is therefore cut on a fixed grid: every 1280 new
samples (80 ms) the mel model runs once on those samples plus the 480 before them (8 frames;
the stream starts after 480 samples of silence), and once 76 mel frames exist each block
adds one embedding. The calls, and so the embeddings, are the same however the audio is
chunked. A model ("head") reads the last N embeddings, input [1, N, 96].

Where the runtime allows it, both models run cut (`embedding_segments.py`): the mel model on
a group of blocks per call (the stream's groups, 64 blocks in training's batches), and in a
stream the embedding model as segments that keep their context, so only the mel frames it
has not seen are computed (training's batches call the whole model on runs of windows). All
give the same values.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from keywire.protocol.errors import ModelError

from ..interpreter import load_interpreter
from .embedding_segments import EmbeddingSegments, MelCut, build_mel_cut, build_segments
from .framing import as_int16_mono

EMBEDDING_FRONTEND = "speech_embedding"
EMBEDDING_DIM = 96
EMBEDDING_STEP_SAMPLES = 1280          # one embedding per 80 ms at 16 kHz
MEL_BINS = 32
MEL_FRAMES_PER_EMBEDDING = 76
_MEL_STEP = 160
_MEL_WINDOW = 512
_MEL_CONTEXT = 480                      # samples before a block its 8 mel frames also need
_MEL_FRAMES_PER_BLOCK = (EMBEDDING_STEP_SAMPLES + _MEL_CONTEXT - _MEL_WINDOW) // _MEL_STEP + 1   # 8
_MEL_WINDOW_SAMPLES = _MEL_CONTEXT + EMBEDDING_STEP_SAMPLES         # samples of one mel call (1760)
# Samples from a fresh start to the end of the first embedding's last block (10 blocks, 0.8 s).
FIRST_EMBEDDING_SAMPLES = -(-MEL_FRAMES_PER_EMBEDDING // _MEL_FRAMES_PER_BLOCK) * EMBEDDING_STEP_SAMPLES
_BLOCKS_BEFORE_FIRST = FIRST_EMBEDDING_SAMPLES // EMBEDDING_STEP_SAMPLES - 1   # 9: block b >= 10 ends window b - 9

_PACKAGE = "openwakeword"
_VERSION = "0.5.1"
_MODELS_DIR = "openwakeword/resources/models"
MEL_FILE, EMBEDDING_FILE = "melspectrogram.tflite", "embedding_model.tflite"
MEL_SHA256 = "96fa0adccb6e8cf95cb14465409a1a2898ee4a96a85bb9ed3c7eb0e68bf163e8"
EMBEDDING_SHA256 = "c0aea21eb84a4ce90a08c870da41b7a7173b45269e6a3207c71d67c40f3a59d8"
_INSTALL_HINT = f"install it with: pip install --no-deps {_PACKAGE}=={_VERSION}"
_BATCH_CLIPS = 16                       # clips per batched interpreter call (training)
MAX_EMBEDDINGS_PER_CALL = 16
_RUN_WINDOWS = 32                       # windows per run in batched calls (training)
_MEL_CALL_BLOCKS = 64                   # blocks per mel call in batched calls (training)


@dataclass(frozen=True)
class FeatureModels:
    """The two installed feature models, checked against their pinned sha256."""

    mel_path: Path
    embedding_path: Path
    embedding_sha256: str


def _installed_file(name: str) -> Optional[Path]:
    """Where the wheel put `name`, found without importing openwakeword (its __init__ needs
    onnxruntime): through the distribution's file list, else the package's spec."""
    try:
        p = Path(importlib.metadata.distribution(_PACKAGE).locate_file(f"{_MODELS_DIR}/{name}"))
        if p.is_file():
            return p
    except importlib.metadata.PackageNotFoundError:
        pass
    spec = importlib.util.find_spec(_PACKAGE)
    for root in (spec.submodule_search_locations or []) if spec else []:
        p = Path(root) / "resources" / "models" / name
        if p.is_file():
            return p
    return None


@lru_cache(maxsize=8)
def _sha256_of(path: Path, size: int, mtime_ns: int) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _checked(name: str, sha256: str) -> Path:
    p = _installed_file(name)
    if p is None:
        raise ModelError(f"speech-embedding feature model {name} is not installed; {_INSTALL_HINT}")
    st = p.stat()
    if _sha256_of(p, st.st_size, st.st_mtime_ns) != sha256:
        raise ModelError(f"speech-embedding feature model {p} has the wrong sha256 "
                         f"(not the one of {_PACKAGE}=={_VERSION}); {_INSTALL_HINT}")
    return p


def feature_models() -> FeatureModels:
    """The installed mel and embedding models; `ModelError` (one line) when missing or altered."""
    return FeatureModels(mel_path=_checked(MEL_FILE, MEL_SHA256),
                         embedding_path=_checked(EMBEDDING_FILE, EMBEDDING_SHA256),
                         embedding_sha256=EMBEDDING_SHA256)


class _Models:
    """The mel model and the embedding model, whole or cut (`embedding_segments`). The
    embedding model is fully convolutional in time with a total stride of 8 mel frames
    (80 ms), so one call on 76 + 8(k-1) consecutive mel frames gives the k embeddings of the
    k windows in them, bit-identical to k single calls (docs/BENCHMARKS.md). Inputs are
    resized when a call needs another shape."""

    def __init__(self, cut_mel: bool = True, segments: bool = False) -> None:
        """Where the runtime allows it: `cut_mel`, the mel model cut before its clamp (several
        blocks per call); `segments`, the embedding model cut into segments that keep their
        context (a stream's)."""
        fm = feature_models()
        mel_bytes, emb_bytes = fm.mel_path.read_bytes(), fm.embedding_path.read_bytes()
        self.mel_cut: Optional[MelCut] = (build_mel_cut(mel_bytes, _MEL_WINDOW_SAMPLES, _MEL_FRAMES_PER_BLOCK)
                                          if cut_mel else None)
        if self.mel_cut is None:
            self.mel = load_interpreter(mel_bytes, input_shape=[1, _MEL_WINDOW_SAMPLES])
            self._mel_in = self.mel.get_input_details()[0]["index"]
            self._mel_out = self.mel.get_output_details()[0]["index"]
            self._mel_input = np.zeros((1, _MEL_WINDOW_SAMPLES), dtype=np.float32)
        self.segments: Optional[EmbeddingSegments] = build_segments(emb_bytes) if segments else None
        if self.segments is None:
            self.emb = load_interpreter(emb_bytes, input_shape=[1, MEL_FRAMES_PER_EMBEDDING, MEL_BINS, 1])
            self._emb_in = self.emb.get_input_details()[0]["index"]
            self._emb_out = self.emb.get_output_details()[0]["index"]
            self._emb_shape = (1, MEL_FRAMES_PER_EMBEDDING)

    def mel_blocks(self, samples: np.ndarray) -> np.ndarray:
        """480 + 1280n int16 samples -> the 8n scaled mel frames [8n, 32] float32 of their n
        blocks, each block as one call of the whole mel model gives it."""
        if self.mel_cut is not None:
            frames = self.mel_cut(samples)
        else:
            n = (len(samples) - _MEL_CONTEXT) // EMBEDDING_STEP_SAMPLES
            frames = np.zeros((n * _MEL_FRAMES_PER_BLOCK, MEL_BINS), dtype=np.float32)
            for j in range(n):
                self._mel_input[0] = samples[j * EMBEDDING_STEP_SAMPLES:j * EMBEDDING_STEP_SAMPLES
                                             + _MEL_WINDOW_SAMPLES]
                self.mel.set_tensor(self._mel_in, self._mel_input)
                self.mel.invoke()
                frames[j * _MEL_FRAMES_PER_BLOCK:(j + 1) * _MEL_FRAMES_PER_BLOCK] = \
                    self.mel.get_tensor(self._mel_out).reshape(-1, MEL_BINS)
        frames /= 10.0
        frames += 2.0
        return frames

    def embed_stream(self, mel: np.ndarray, k: int) -> np.ndarray:
        """The k newest embeddings of a stream whose last mel frames are `mel` (at least
        76 + 8(k-1)): through the segments where there are any (only the frames they have
        not seen), else one call on the whole run."""
        if self.segments is None:
            return self.embed_runs(mel[None, len(mel) - run_frames(k):])[0]
        new = _MEL_FRAMES_PER_BLOCK * k if self.segments.primed else run_frames(k)
        return self.segments.run(mel[len(mel) - new:])

    def embed_runs(self, mel: np.ndarray) -> np.ndarray:
        """Mel runs [b, 76 + 8(k-1), 32] -> embeddings [b, k, 96] float32 in one call: the
        embeddings of the windows ending every 8 frames from frame 76 of each run."""
        b, frames = mel.shape[:2]
        if (b, frames) != self._emb_shape:
            self.emb.resize_tensor_input(self._emb_in, [b, frames, MEL_BINS, 1])
            self.emb.allocate_tensors()
            self._emb_shape = (b, frames)
        self.emb.set_tensor(self._emb_in, np.ascontiguousarray(mel, dtype=np.float32)[..., None])
        self.emb.invoke()
        return self.emb.get_tensor(self._emb_out).reshape(b, -1, EMBEDDING_DIM)


def run_frames(k: int) -> int:
    """Mel frames holding k consecutive embedding windows."""
    return MEL_FRAMES_PER_EMBEDDING + _MEL_FRAMES_PER_BLOCK * (k - 1)


class EmbeddingFrontend:
    """Streaming speech embeddings: `process(int16 samples)` -> float32 [n_new, 96], one new
    embedding per 1280 samples once 76 mel frames exist; chunk-size invariant.

    `embeddings_per_call` k > 1 runs the embedding model once per k embeddings (on the 8k
    new mel frames, or on the last 76 + 8(k-1) without segments), which costs less CPU per
    embedding and holds each embedding back until the k-th of its group is due: up to
    (k-1) x 80 ms. The values are the same for every k."""

    step_samples = EMBEDDING_STEP_SAMPLES
    first_frame_samples = FIRST_EMBEDDING_SAMPLES
    n_channels = EMBEDDING_DIM
    dtype = np.dtype(np.float32)
    native = False
    # No adaptive state to restart on detection; a restarted stream would compute nothing
    # new for 1.76 s, so its heads would score the same window again and detect every step.
    resets_on_detection = False

    def __init__(self, embeddings_per_call: int = 1, segmented: bool = True) -> None:
        """`segmented=False` runs both feature models whole (the mel model once per block, the
        embedding model on each run of windows) even where they could be cut: the same
        values at more CPU, for comparisons."""
        if not 1 <= embeddings_per_call <= MAX_EMBEDDINGS_PER_CALL:
            raise ValueError(f"embeddings_per_call = {embeddings_per_call} is out of range "
                             f"1..{MAX_EMBEDDINGS_PER_CALL}")
        self.embeddings_per_call = embeddings_per_call
        self._models: Optional[_Models] = _Models(cut_mel=segmented, segments=segmented)
        self.reset()

    @property
    def segmented(self) -> bool:
        """Whether the feature models run cut (`embedding_segments`): the mel model on groups
        of blocks, the embedding model as segments with context."""
        return self._models is not None and self._models.segments is not None

    def reset(self) -> None:
        """Back to a fresh stream (silence before it, no mel frames)."""
        self._pending = np.zeros(_MEL_CONTEXT, dtype=np.int16)   # context of the next block, then any rest
        self._mel = np.zeros((run_frames(self.embeddings_per_call), MEL_BINS), dtype=np.float32)
        self._blocks = 0        # blocks whose mel frames are computed (and their embeddings)
        if self._models is not None and self._models.segments is not None:
            self._models.segments.reset()

    def process(self, samples: np.ndarray) -> np.ndarray:
        """Consume int16 samples (any count); return the embeddings completed by them.
        Blocks are computed in groups: when the k-th window of the next group is complete,
        its blocks' mel frames (one call) and its k embeddings (one call)."""
        if self._models is None:
            raise RuntimeError("EmbeddingFrontend used after close()")
        buf = np.concatenate([self._pending, as_int16_mono(samples)])
        complete = (len(buf) - _MEL_CONTEXT) // EMBEDDING_STEP_SAMPLES
        k, done, out = self.embeddings_per_call, 0, []
        while True:
            n = max(_BLOCKS_BEFORE_FIRST, self._blocks) + k - self._blocks   # blocks to the group's end
            if done + n > complete:
                break
            self._add_mel(buf[done * EMBEDDING_STEP_SAMPLES:(done + n) * EMBEDDING_STEP_SAMPLES + _MEL_CONTEXT])
            done += n
            out.append(self._models.embed_stream(self._mel, k))
        self._pending = buf[done * EMBEDDING_STEP_SAMPLES:].copy()
        return np.concatenate(out) if out else np.zeros((0, EMBEDDING_DIM), dtype=np.float32)

    def _add_mel(self, samples: np.ndarray) -> None:
        """Compute the blocks of `samples` (480 + 1280n) into the end of the mel buffer."""
        frames = self._models.mel_blocks(samples)
        n = min(len(frames), len(self._mel))
        self._mel[:len(self._mel) - n] = self._mel[n:]
        self._mel[len(self._mel) - n:] = frames[len(frames) - n:]
        self._blocks += len(frames) // _MEL_FRAMES_PER_BLOCK

    def flush(self) -> np.ndarray:
        """The embeddings held back (fewer than k complete windows), computed now: at the end
        of a finite stream. The stream goes on from there as before."""
        if self._models is None:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        emitted = max(0, self._blocks - _BLOCKS_BEFORE_FIRST)
        complete = (len(self._pending) - _MEL_CONTEXT) // EMBEDDING_STEP_SAMPLES
        if complete:
            self._add_mel(self._pending[:complete * EMBEDDING_STEP_SAMPLES + _MEL_CONTEXT])
            self._pending = self._pending[complete * EMBEDDING_STEP_SAMPLES:].copy()
        due = max(0, self._blocks - _BLOCKS_BEFORE_FIRST) - emitted
        if not due:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        return self._models.embed_stream(self._mel, due)

    def close(self) -> None:
        """Drop the interpreters."""
        self._models = None


def _clip_mel(models: _Models, x: np.ndarray) -> np.ndarray:
    """All mel frames of a clip from a fresh stream, in calls of up to `_MEL_CALL_BLOCKS`
    blocks (the same values as the stream's)."""
    padded = np.concatenate([np.zeros(_MEL_CONTEXT, dtype=np.int16), x])
    n_blocks = len(x) // EMBEDDING_STEP_SAMPLES
    frames = [models.mel_blocks(padded[j * EMBEDDING_STEP_SAMPLES:
                                       min(j + _MEL_CALL_BLOCKS, n_blocks) * EMBEDDING_STEP_SAMPLES + _MEL_CONTEXT])
              for j in range(0, n_blocks, _MEL_CALL_BLOCKS)]
    return np.concatenate(frames) if frames else np.zeros((0, MEL_BINS), dtype=np.float32)


# The first window of a fresh stream starts at mel frame 4 (it ends with block 10, frame 80).
_first_frame = -(-MEL_FRAMES_PER_EMBEDDING // _MEL_FRAMES_PER_BLOCK) * _MEL_FRAMES_PER_BLOCK - MEL_FRAMES_PER_EMBEDDING


def _embedding_count(n_samples: int) -> int:
    """Embeddings of a clip of `n_samples` from a fresh stream: one per block from block 10 on."""
    return max(0, n_samples // EMBEDDING_STEP_SAMPLES - FIRST_EMBEDDING_SAMPLES // EMBEDDING_STEP_SAMPLES + 1)


def _runs(mel: np.ndarray, n: int, clip: int) -> list[tuple[int, int, np.ndarray]]:
    """A clip's mel frames, holding `n` windows (the 76-frame windows ending at each block
    boundary from frame 80 on), cut into runs of at most `_RUN_WINDOWS` consecutive windows:
    (clip, first window, run)."""
    out = []
    for w in range(0, n, _RUN_WINDOWS):
        k = min(_RUN_WINDOWS, n - w)
        start = _first_frame + w * _MEL_FRAMES_PER_BLOCK
        out.append((clip, w, mel[start:start + run_frames(k)]))
    return out


_batch_lock = threading.Lock()


@lru_cache(maxsize=1)
def _batch_models() -> _Models:
    return _Models()


def compute_embeddings(samples: np.ndarray) -> np.ndarray:
    """Embeddings of one whole clip from a fresh stream: float32 [n, 96],
    n = max(0, len // 1280 - 9) (what `EmbeddingFrontend` gives for the same samples)."""
    return compute_embeddings_batch([samples])[0]


def compute_embeddings_batch(clips: Sequence[np.ndarray]) -> list[np.ndarray]:
    """`compute_embeddings` of many clips (any lengths), reusing one pair of interpreters:
    runs of equal length from up to `_BATCH_CLIPS` clips share one embedding call."""
    xs = [as_int16_mono(c) for c in clips]
    out = [np.zeros((_embedding_count(len(x)), EMBEDDING_DIM), dtype=np.float32) for x in xs]
    with _batch_lock:
        models = _batch_models()
        runs = [r for i, x in enumerate(xs) for r in _runs(_clip_mel(models, x), len(out[i]), i)]
        runs.sort(key=lambda r: len(r[2]))
        i = 0
        while i < len(runs):
            j = i
            while j < len(runs) and j - i < _BATCH_CLIPS and len(runs[j][2]) == len(runs[i][2]):
                j += 1
            group = runs[i:j]
            emb = models.embed_runs(np.stack([r[2] for r in group]))
            for (clip, w, _), e in zip(group, emb):
                out[clip][w:w + len(e)] = e
            i = j
    return out


def embedding_window(head_input_shape: Sequence[int]) -> int:
    """N of a head's input [1, N, 96]; `ModelError` for any other shape."""
    shape = list(head_input_shape)
    if len(shape) != 3 or shape[0] != 1 or shape[2] != EMBEDDING_DIM or shape[1] < 1:
        raise ModelError(f"input shape {shape} is not [1, N, {EMBEDDING_DIM}] (N speech embeddings)")
    return int(shape[1])


