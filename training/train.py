"""`keywire train`: from a recipe to a model directory.

Steps: scan the data (errors before any work), extract features with the agent's frontend
(cached), train with per-batch SpecAugment, balanced class weights, warmup + cosine schedule,
early stopping and a best-validation checkpoint; export int8 and float .tflite with
SL_PARAMSv1; evaluate the int8 model through the agent's runtime on the held-out test split.

The model directory holds `<name>.keras`, `<name>.tflite` (int8), `<name>.float.tflite`,
`recipe.toml`, `history.json`, `history.png`, `report.json` and `dataset.json`.
"""
from __future__ import annotations

import json
import logging
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from keywire.protocol.errors import ConfigError

from .augment import noise_bank, spec_augment, stream_bed_pool
from .dataset import SILENCE, SPLITS, UNKNOWN, Clip, Dataset, load_dataset
from .clip_cache import check_train_classes
from .features import FeatureCache, default_cache_dir, extract, model_input
from .progress import bar, is_terminal
from .recipe import EMBEDDING, Recipe
from .train_output import clean_history, epoch_reporter, majority_hint, result_warnings
from . import zoo

log = logging.getLogger("keywire.training")

Progress = Callable[[str], None]
ModelFactory = Callable[[tuple, int], Any]
EMBEDDING_DIM = 96  # speech embedding width (keywire.agent.frontend.embedding.EMBEDDING_DIM)


@dataclass
class PreparedData:
    """Model inputs per split: x [n, copies, frames, ch, 1] float32 (train keeps all copies),
    y [n] class indices."""

    x: dict[str, np.ndarray]
    y: dict[str, np.ndarray]
    clips: dict[str, list[Clip]]
    noise_files: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    computed: int = 0
    cached: int = 0
    speech_files: list[str] = field(default_factory=list)


@dataclass
class TrainResult:
    model_dir: Path
    keras_path: Path
    tflite_path: Path
    float_tflite_path: Path
    history: dict[str, list[float]]
    report: dict[str, Any]
    seconds: float


def _say(progress: Optional[Progress], msg: str) -> None:
    (progress or log.info)(msg)


def prepare_data(recipe: Recipe, dataset: Dataset, cache_root: Optional[Path] = None,
                 progress: Optional[Progress] = None) -> PreparedData:
    """Features (cached) for every split, as float model inputs with labels."""
    if recipe.family == EMBEDDING:
        from .embeddings import prepare

        return prepare(recipe, dataset, cache_root, progress)
    fe = recipe.frontend
    cache = FeatureCache(cache_root or default_cache_dir(), fe, recipe.augmentation,
                         noise_bank(dataset.noise_files, fe.sample_rate_hz), dataset.noise_files,
                         noise_bank(dataset.speech_files, fe.sample_rate_hz), dataset.speech_files,
                         stream_bed(dataset, fe.sample_rate_hz) if recipe.augmentation.stream_probability > 0 else None)
    xs, ys, kept_all = {}, {}, {}
    for split in SPLITS:
        copies = recipe.augmentation.copies if split == "train" else 0
        clips = dataset.clips[split]
        last = [time.monotonic()]
        with bar(f"features {split}", enabled=progress is not None) as update:

            def tick(i: int, n: int) -> None:
                update(i, n)  # a bar on a terminal; a line every 30 s in a log
                if progress and (i == n or (not is_terminal() and time.monotonic() - last[0] > 30)):
                    last[0] = time.monotonic()
                    progress(f"features {split}: {i}/{n} clips")

            u16, kept = extract(clips, cache, copies, tick)
        n, c = u16.shape[:2]
        flat = u16.reshape((n * c,) + u16.shape[2:])
        x = np.stack([model_input(f, fe) for f in flat]) if len(flat) else \
            np.zeros((0,) + u16.shape[2:], np.float32)
        xs[split] = x.reshape((n, c) + u16.shape[2:] + (1,)).astype(np.float32)
        ys[split] = np.array([recipe.classes.index(k.label) for k in kept], dtype=np.int64)
        kept_all[split] = kept
    check_train_classes(ys["train"], recipe.classes)
    return PreparedData(xs, ys, kept_all, list(dataset.noise_files), cache.stats.skipped, cache.stats.computed,
                        cache.stats.cached, list(dataset.speech_files))


def stream_bed(dataset: Dataset, rate: int):
    """Bed material for stream-mixed copies: the noise recordings, the background speech and
    the training split's real `_unknown_` and `_silence_` clips (other speakers' words; never
    a validation or test speaker)."""
    words = sorted({c.path for c in dataset.clips["train"]
                    if not c.is_generated and c.label in (UNKNOWN, SILENCE)})
    return stream_bed_pool(dataset.noise_files, dataset.speech_files, words, rate)


def class_weights(y: np.ndarray, n_classes: int, mode: str,
                  scale: Sequence[float] | None = None) -> np.ndarray:
    """'balanced' weights n / (k * count_c) (sklearn's formula), or ones; then each class's
    factor from `scale` (the recipe's class_weight_scale, in class order)."""
    if mode == "balanced":
        counts = np.bincount(y, minlength=n_classes).astype(np.float64)
        w = len(y) / (n_classes * np.maximum(counts, 1))
    else:
        w = np.ones(n_classes, np.float64)
    if scale is not None:
        w = w * np.asarray(scale, np.float64)
    return w.astype(np.float32)


def weight_scale(recipe: Recipe, classes: Sequence[str]) -> list[float]:
    """The recipe's class_weight_scale as factors in output order (1.0 where unnamed)."""
    return [float(recipe.class_weight_scale.get(c, 1.0)) for c in classes]


def lr_at(recipe: Recipe, epoch: int) -> float:
    """Learning rate for an epoch: linear warmup, then cosine, step (x0.1 at 50%/75%) or constant."""
    base = recipe.learning_rate
    if epoch < recipe.warmup_epochs:
        return base * (epoch + 1) / (recipe.warmup_epochs + 1)
    if recipe.lr_schedule == "constant":
        return base
    t = (epoch - recipe.warmup_epochs) / max(1, recipe.epochs - recipe.warmup_epochs)
    if recipe.lr_schedule == "step":
        return base * (0.1 if t >= 0.5 else 1.0) * (0.1 if t >= 0.75 else 1.0)
    return base * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * t)))


def _batches(recipe: Recipe, data: PreparedData, binary: bool, n_classes: int):
    """A keras PyDataset over the training split: random feature copy per clip, SpecAugment,
    class weights as sample weights, one-hot (smoothed) targets."""
    import keras

    x, y = data.x["train"], data.y["train"]
    w = class_weights(y, n_classes, recipe.class_weights, weight_scale(recipe, recipe.classes))
    a = recipe.augmentation

    class TrainBatches(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__()
            self.rng = np.random.default_rng(recipe.seed)
            self.order = np.tile(np.arange(len(y)), recipe.epoch_passes)
            self.on_epoch_end()

        def __len__(self) -> int:
            return max(1, math.ceil(len(self.order) / recipe.batch_size))

        def on_epoch_end(self) -> None:
            self.rng.shuffle(self.order)
            self.copy = self.rng.integers(0, x.shape[1], size=len(self.order))

        def __getitem__(self, i: int):
            sl = slice(i * recipe.batch_size, (i + 1) * recipe.batch_size)
            idx = self.order[sl]
            xb = x[idx, self.copy[sl]].copy()
            if recipe.family == EMBEDDING:  # a window at a random end position; no SpecAugment
                from .embeddings import pick_windows

                xb = pick_windows(xb, self.rng, recipe.embedding_frames)
            elif a.time_masks or a.freq_masks:
                spec_augment(xb, self.rng, a, fill=-128.0)
            yb = _targets(y[idx], n_classes, binary, recipe.label_smoothing)
            return xb, yb, w[y[idx]]

    return TrainBatches()


def _targets(y: np.ndarray, n_classes: int, binary: bool, smoothing: float) -> np.ndarray:
    if binary:
        t = (y == 0).astype(np.float32)[:, None]  # keyword is class 0
        return t * (1 - smoothing) + smoothing / 2
    t = np.eye(n_classes, dtype=np.float32)[y]
    return t * (1 - smoothing) + smoothing / n_classes


def build_model(recipe: Recipe, factory: Optional[ModelFactory] = None):
    """(keras model, binary?) for the recipe's model name or a given factory (transfer)."""
    fe = recipe.frontend
    shape = (recipe.embedding_frames, EMBEDDING_DIM) if recipe.family == EMBEDDING else (fe.n_frames, fe.n_channels, 1)
    if factory is not None:
        m = factory(shape, len(recipe.classes))
        return m, int(m.output_shape[-1]) == 1
    return zoo.build(recipe.model, shape, len(recipe.classes), recipe.model_options)


def check_recipe(recipe: Recipe) -> Dataset:
    """Everything that can be checked before training: recipe fields, model name, data."""
    recipe.validate()
    for name in ([recipe.model] if recipe.model != "transfer" else []) + [m["model"] for m in recipe.ensemble_models]:
        zoo.check_family(name, recipe.family)  # transfer runs bring their own model factory
    return load_dataset(recipe)


def train(recipe: Recipe, out_dir: Path, cache_root: Optional[Path] = None,
          progress: Optional[Progress] = None, factory: Optional[ModelFactory] = None,
          dataset: Optional[Dataset] = None, verbose: int = 2) -> TrainResult:
    """Train the recipe's model and write the model directory `out_dir`."""
    t0 = time.monotonic()
    dataset = dataset or check_recipe(recipe)
    _say(progress, "dataset:\n" + dataset.summary())
    for s in dataset.skipped:
        _say(progress, f"skipped {s}")
    data = prepare_data(recipe, dataset, cache_root, progress)
    for s in data.skipped:
        _say(progress, f"skipped {s}")
    _say(progress, f"features: {data.computed} clips computed, {data.cached} from cache")

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    keras_path = out_dir / f"{recipe.name}.keras"
    plan = member_recipes(recipe)
    best, histories, binary = _fit_members(plan, recipe, data, progress, factory, verbose)
    mined = None
    if recipe.hard_negative_probability > 0:
        mined = _add_hard_negatives(recipe, best, data, progress)
        if len(mined.blocks):
            _say(progress, "training again with the hard negatives")
            best, histories, binary = _fit_members(plan, recipe, data, progress, factory, verbose)
    history = histories[0]
    best.save(keras_path)  # weights only, no optimizer state: a third of the checkpoint's size
    result = export_model_dir(recipe, best, data, out_dir, history, binary)
    result.seconds = time.monotonic() - t0
    report = dict(result.report)
    report["training_seconds"] = round(result.seconds, 1)
    if len(plan) > 1:
        report["members"] = [m.model for m in plan]
        report["members_best_val_accuracy"] = [max(h.get("val_accuracy", [0.0]) or [0.0]) for h in histories]
    if mined is not None:
        report["hard_negatives"] = mined.summary()
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    result.report = report
    for w in report.get("warnings", []):
        _say(progress, f"warning: {w}")
    return result


def _fit_members(plan: Sequence[Recipe], recipe: Recipe, data: PreparedData, progress: Optional[Progress],
                 factory: Optional[ModelFactory], verbose: int) -> tuple[Any, list[dict[str, list[float]]], bool]:
    """Train every member of `plan` (`member_recipes`); (the model, or the ensemble of the
    members' best checkpoints, their histories, binary?)."""
    members, histories = [], []
    with tempfile.TemporaryDirectory(prefix="keywire-members-") as tmp:
        for i, member in enumerate(plan):
            if len(plan) > 1:
                _say(progress, f"ensemble member {i + 1}/{len(plan)}: {member.model} (seed {member.seed})")
            # a transfer factory builds the recipe's own model, not the other architectures
            own = factory if i < recipe.ensemble else None
            best, history, binary = _fit(member, data, Path(tmp) / f"member{i}.keras", progress, own, verbose)
            members.append(best)
            histories.append(history)
    return (ensemble_model(members) if len(members) > 1 else members[0]), histories, binary


def _add_hard_negatives(recipe: Recipe, model: Any, data: PreparedData, progress: Optional[Progress]):
    """Mine the recipe's keyword-free speech with a first `model` and add each event as an
    `_unknown_` training example (every feature copy the same window block)."""
    from .hard_negatives import mine_speech

    x = data.x["train"]
    mined = mine_speech(model, data.speech_files, recipe.embedding_frames, x.shape[2], recipe.classes,
                        recipe.keywords, recipe.hard_negative_probability, recipe.seed)
    counts = ", ".join(f"{k} {v}" for k, v in mined.by_keyword.items()) or "none"
    _say(progress, f"hard negatives: {len(mined.blocks)} moments of {mined.hours:.2f} h of keyword-free speech "
                   f"reach {recipe.hard_negative_probability:g} ({counts})")
    if len(mined.blocks):
        block = np.repeat(mined.blocks[:, None].astype(x.dtype), x.shape[1], axis=1)
        data.x["train"] = np.concatenate([x, block])
        data.y["train"] = np.concatenate([data.y["train"],
                                          np.full(len(block), recipe.classes.index(UNKNOWN), np.int64)])
    return mined


def _fit(recipe: Recipe, data: PreparedData, keras_path: Path, progress: Optional[Progress],
         factory: Optional[ModelFactory], verbose: int) -> tuple[Any, dict[str, list[float]], bool]:
    """Train one model from the recipe's seed; (best validation checkpoint, history, binary?)."""
    import keras

    keras.utils.set_random_seed(recipe.seed)
    model, binary = build_model(recipe, factory)
    if binary and len(recipe.keywords) != 1:
        raise ConfigError("recipe field 'model': a single-output (binary) model needs exactly one keyword")
    n_classes = len(recipe.classes)
    loss = keras.losses.BinaryCrossentropy() if binary else keras.losses.CategoricalCrossentropy()
    ema = recipe.weight_averaging > 0
    optimizer = keras.optimizers.AdamW(recipe.learning_rate, weight_decay=recipe.weight_decay,
                                       use_ema=ema, ema_momentum=recipe.weight_averaging if ema else 0.99)
    model.compile(optimizer=optimizer,
                  loss=loss, metrics=["binary_accuracy" if binary else "categorical_accuracy"])
    has_val = len(data.y["validation"]) > 0
    monitor = "val_accuracy" if has_val else "accuracy"
    metric = "binary_accuracy" if binary else "categorical_accuracy"

    class Renamer(keras.callbacks.Callback):
        """Expose the accuracy metric as accuracy/val_accuracy (one name for every model)."""

        def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
            if logs is not None:
                for pre in ("", "val_"):
                    if pre + metric in logs:
                        logs[pre + "accuracy"] = logs[pre + metric]
                logs["lr"] = float(lr_at(recipe, epoch))

    callbacks: list[Any] = [
        keras.callbacks.LearningRateScheduler(lambda e, lr: lr_at(recipe, e)),
        Renamer(),
        # With weight averaging, validate and checkpoint the averaged weights (must precede the checkpoint).
        *([keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if ema else []),
        keras.callbacks.ModelCheckpoint(str(keras_path), monitor=monitor, mode="max", save_best_only=True),
    ]
    if recipe.early_stopping_patience > 0:
        callbacks.append(keras.callbacks.EarlyStopping(monitor=monitor, mode="max",
                                                       patience=recipe.early_stopping_patience))
    val = None
    if has_val:
        val = (data.x["validation"][:, 0], _targets(data.y["validation"], n_classes, binary, 0.0))
    _say(progress, f"training {model.name}: {model.count_params()} parameters, {len(data.y['train'])} clips "
                   f"x {data.x['train'].shape[1]} feature copies, {recipe.epochs} epochs")
    callbacks.append(epoch_reporter(recipe.epochs, lambda m: _say(progress, m), quiet=verbose == 0))
    hist = model.fit(_batches(recipe, data, binary, n_classes), validation_data=val, epochs=recipe.epochs,
                     callbacks=callbacks, verbose=0)  # keras's own lines repeat every metric; see train_output
    history = clean_history(hist.history)
    best = keras.models.load_model(keras_path, compile=False) if keras_path.exists() else model
    return best, history, binary


def member_recipes(recipe: Recipe) -> list[Recipe]:
    """One recipe per ensemble member: `ensemble` seeds of the recipe's model, then each of
    `ensemble_models` (its own architecture and options), seeds counting on."""
    plan = [recipe if i == 0 else recipe.replace(seed=recipe.seed + i) for i in range(recipe.ensemble)]
    for j, m in enumerate(recipe.ensemble_models):
        options = {k: v for k, v in m.items() if k != "model"}
        plan.append(recipe.replace(seed=recipe.seed + recipe.ensemble + j, model=m["model"],
                                   model_options=options, ensemble_models=()))
    return plan


def ensemble_model(members: Sequence[Any]) -> Any:
    """One model whose scores are the mean of its members' scores (same input, same classes).
    Averaging independently trained nets is the cheapest accuracy gain on small data; the
    device runs it as one .tflite at the members' summed cost."""
    import keras

    inp = keras.Input(shape=tuple(members[0].input_shape[1:]), name="features")
    outs = [keras.Model(m.inputs[0], m.outputs[0], name=f"member{i}")(inp) for i, m in enumerate(members)]
    out = keras.layers.Average(name="scores")(outs)
    return keras.Model(inp, out, name=f"{members[0].name}_x{len(members)}")


def export_model_dir(recipe: Recipe, model: Any, data: PreparedData, out_dir: Path,
                     history: dict[str, list[float]], binary: bool) -> TrainResult:
    """Write .tflite files, recipe, history and the evaluation report next to the .keras model."""
    from keywire.agent.model import KeywordModel

    from .evaluate import EvalItem, evaluate_clips
    from .plots import save_plots
    from .export import model_params, to_float_tflite, to_int8_tflite, with_params
    from .streaming_head import with_step_model
    from .history import save_history

    fe = recipe.frontend
    classes = (recipe.keywords[0],) if binary else recipe.classes
    params = model_params(recipe.name, recipe.version, classes, fe, recipe.detection,
                          {"description": recipe.description} if recipe.description else None)
    rep = data.x["train"][:, 0]
    rng = np.random.default_rng(recipe.seed)
    rep = rep[rng.permutation(len(rep))[:300]]
    if recipe.family == EMBEDDING:
        from .embeddings import embedding_model_sha256, pick_windows

        rep = pick_windows(rep, rng, recipe.embedding_frames)
        params.setdefault("fe.embedding_sha256", embedding_model_sha256())
    int8 = with_params(to_int8_tflite(model, rep, fe.frontend_type != "microfrontend"), params)
    flt = with_params(to_float_tflite(model, fe), params)
    if recipe.family == EMBEDDING:
        int8, flt = with_step_model(model, rep, int8, True), with_step_model(model, rep, flt, False)
    tfl, ftfl = out_dir / f"{recipe.name}.tflite", out_dir / f"{recipe.name}.float.tflite"
    tfl.write_bytes(int8)
    ftfl.write_bytes(flt)
    (out_dir / "recipe.toml").write_text(recipe.to_toml())
    (out_dir / "history.json").write_text(json.dumps(history, indent=1) + "\n")
    save_history(history, out_dir / "history.png", recipe.name)
    counts = {s: {k: int(np.sum(data.y[s] == i)) for i, k in enumerate(recipe.classes)} for s in SPLITS}
    (out_dir / "dataset.json").write_text(json.dumps(
        {"counts": counts, "skipped": data.skipped,
         "speakers": {s: sorted({c.speaker for c in data.clips[s] if not c.is_generated}) for s in SPLITS}},
        indent=1) + "\n")
    report: dict[str, Any] = {"name": recipe.name, "classes": list(classes), "model": recipe.model,
                              "tflite_bytes": len(int8), "float_tflite_bytes": len(flt),
                              "parameters": int(model.count_params()),
                              "epochs_run": len(next(iter(history.values()), [])),
                              "best_val_accuracy": max(history.get("val_accuracy", [0.0]) or [0.0])}
    noise = noise_bank(data.noise_files, fe.sample_rate_hz)
    speech = noise_bank(data.speech_files, fe.sample_rate_hz)
    for split in ("validation", "test"):
        items = [EvalItem(c.path or f"generated {c.word} {c.generated_seed}", c.label, _audio_loader(c, noise, speech, fe))
                 for c in data.clips[split]]
        if items:
            with bar(f"evaluating {split}") as update:
                evaluated = evaluate_clips(KeywordModel.load(tfl), items, update)
            report[split] = evaluated.summary()
            save_plots(evaluated, out_dir, prefix=f"{split}_")  # <split>_confusion_matrix.png, _roc, _precision_recall
    report["warnings"] = _result_warnings(recipe, data, report)
    return TrainResult(out_dir, out_dir / f"{recipe.name}.keras", tfl, ftfl, history, report, 0.0)


def _result_warnings(recipe: Recipe, data: PreparedData, report: dict[str, Any]) -> list[str]:
    """Warnings about the exported model's evaluation (majority class, empty splits, keywords
    only in train_data); see `train_output.result_warnings`."""
    roots = [str(Path(d).resolve()) for d in recipe.train_data]
    train_only = [k for k in recipe.keywords
                  if roots and all(any(str(Path(c.path).resolve()).startswith(r + "/") for r in roots)
                                   for c in data.clips["train"] if c.label == k)]
    in_split = {s: sorted({c.label for c in data.clips[s]} & set(recipe.keywords)) for s in ("validation", "test")}
    return result_warnings(report["classes"], recipe.keywords, report, in_split, train_only,
                           majority_hint(recipe.weight_averaging, report.get("epochs_run", 0)))


def _audio_loader(clip: Clip, noise: Any, speech: Any, fe: Any) -> Callable[[], np.ndarray]:
    """Audio of a dataset clip at the frontend's rate (generated clips are regenerated)."""
    from .audio import load_clip
    from .features import generated_clip

    if clip.is_generated:
        return lambda: generated_clip(clip, noise, speech, fe.sample_length)
    return lambda: load_clip(clip.path, fe.sample_rate_hz)
