"""`keywire train`, `keywire transfer`, `keywire models` (`keywire evaluate` lives with evaluate-stream).

Thin commands over `keywire.training`: TensorFlow is imported only by train and transfer
(inside the engine), so `keywire models` and `keywire evaluate` start without it.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import List, Optional

import typer
from typing_extensions import Annotated


_EXTRA = {"allow_extra_args": True, "ignore_unknown_options": True}


def _quiet_tf() -> None:
    import os

    from .cli import debug_enabled
    from .quiet import quiet_tensorflow

    quiet_tensorflow(debug_enabled())  # TensorFlow's C++ and absl lines only with --debug
    # TensorFlow 2.21's oneDNN kernels abort the process ("corrupted size vs. prev_size", or
    # "could not create a primitive descriptor for the reorder primitive" in
    # Conv2DBackpropFilter) when training narrow convolutions such as tc_resnet at width 0.5.
    # The plain kernels train the same models at about the same speed on CPU; a user who
    # sets the variable keeps their choice.
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    logging.getLogger("keywire.training").setLevel(logging.WARNING)


def _native_quiet():  # type: ignore[no-untyped-def]
    """TensorFlow's and TFLite's C++ lines (converter, XNNPACK) hidden unless --debug."""
    from .cli import debug_enabled
    from .quiet import native_stderr_silenced

    return native_stderr_silenced(debug_enabled())


def _say(msg: str) -> None:
    typer.echo(msg, err=True)


def _fields_help() -> str:
    from keywire.training.recipe import field_names

    return "Recipe fields settable as options: " + ", ".join(f"--{f}" for f in field_names())


def train(
    ctx: typer.Context,
    recipe: Annotated[Path, typer.Argument(help="Recipe TOML file (see training/recipes/).")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Model directory to write (default: ./<name>).")] = None,
    cache: Annotated[Optional[Path], typer.Option(help="Feature cache folder.", envvar="KEYWIRE_CACHE")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No per-epoch lines.")] = False,
) -> None:
    """Train a model from a recipe; any recipe field can be overridden (--epochs 5, --frontend.window_step_ms 20)."""
    from keywire.training.recipe import load_recipe, parse_cli_overrides

    _quiet_tf()
    r = load_recipe(recipe, parse_cli_overrides(list(ctx.args)))
    from keywire.training.train import check_recipe, train as run

    ds = check_recipe(r)
    with _native_quiet():
        result = run(r, out or Path(r.name), cache_root=cache / "features" if cache else None,
                     progress=_say, dataset=ds, verbose=0 if quiet else 2)
    _summary(result)


def _summary(result) -> None:  # type: ignore[no-untyped-def]
    rep = result.report
    typer.echo(f"wrote {result.model_dir}: {result.tflite_path.name} ({rep['tflite_bytes']} bytes int8), "
               f"{result.float_tflite_path.name}, {result.keras_path.name} in {result.seconds:.0f} s")
    for split in ("validation", "test"):
        if split in rep:
            typer.echo(f"{split} accuracy (int8 .tflite through the agent): {rep[split]['accuracy'] * 100:.1f}% "
                       f"on {rep[split]['n']} clips")
    if not any(s in rep for s in ("validation", "test")) and result.history.get("accuracy"):
        typer.echo(f"training accuracy (last epoch, augmented training clips): "
                   f"{result.history['accuracy'][-1] * 100:.1f}%; no held-out accuracy (see the warnings)")
    if rep.get("warnings"):
        typer.echo(f"{len(rep['warnings'])} warning(s), also in {result.model_dir / 'report.json'}")


def transfer(
    ctx: typer.Context,
    base: Annotated[str, typer.Option(help="Base model: a keywire model folder, .keras, .h5, .mltk.zip, or a bundled model name.")],
    keywords: Annotated[str, typer.Option(help="New keywords, comma separated.")],
    data: Annotated[List[Path], typer.Option(help="Speech Commands-layout folder (repeatable).")],
    recipe: Annotated[Optional[Path], typer.Option(help="Recipe TOML for the other settings.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Model directory to write.")] = None,
    name: Annotated[str, typer.Option(help="Model name.")] = "transfer",
    freeze: Annotated[str, typer.Option(help="Freeze base layers: none, all, or the first N.")] = "none",
    epochs: Annotated[int, typer.Option(help="Epochs (transfer needs few).")] = 10,
    learning_rate: Annotated[float, typer.Option(help="Learning rate (small for fine-tuning).")] = 0.001,
    cache: Annotated[Optional[Path], typer.Option(help="Feature cache folder.", envvar="KEYWIRE_CACHE")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Train new keywords from a base model's weights (new head, optional freezing, few epochs)."""
    from keywire.training.recipe import Recipe, apply_overrides, load_recipe, parse_cli_overrides

    _quiet_tf()
    from keywire.training import transfer as tr

    overrides = parse_cli_overrides(list(ctx.args))
    base_path = _base_path(base)
    params, shape = tr.peek_base(base_path)  # no TensorFlow yet: misfits fail fast
    r = load_recipe(recipe) if recipe else Recipe()
    fe = tr.base_frontend(params)
    r = r.replace(name=name, keywords=tuple(k.strip() for k in keywords.split(",") if k.strip()),
                  data=tuple(str(d) for d in data), epochs=epochs, learning_rate=learning_rate,
                  warmup_epochs=0, model="transfer", **({"frontend": fe} if fe else {}))
    if fe is not None and fe.frontend_type == "speech_embedding" and shape:
        r = r.replace(embedding_frames=shape[0])  # a head reads as many embeddings as its base
    r = apply_overrides(r, overrides) if overrides else r
    r.validate()
    if shape is not None:
        tr.check_shape(shape, r.frontend, str(base_path))
    from keywire.training.train import check_recipe, train as run

    ds = check_recipe(r)
    b = tr.load_base(base_path)
    tr.check_fit(b, r.frontend)
    _say(f"base {b.source}: {b.model.count_params()} parameters, freeze={freeze}")
    with _native_quiet():
        result = run(r, out or Path(name), cache_root=cache / "features" if cache else None, progress=_say,
                     factory=tr.factory(b, freeze), dataset=ds, verbose=0 if quiet else 2)
    _summary(result)


def _base_path(base: str) -> Path:
    p = Path(base)
    if p.exists():
        return p
    from keywire.training.bundled import model_path

    return model_path(base).parent  # a bundled model's folder (holds its .keras)


models_app = typer.Typer(help="Bundled models: list them, or print one's path.", invoke_without_command=True,
                         no_args_is_help=False)


@models_app.callback()
def models(ctx: typer.Context,
           as_json: Annotated[bool, typer.Option("--json", help="One JSON array instead of a table.")] = False,
           ) -> None:
    """List the bundled models with their classes and sizes."""
    if ctx.invoked_subcommand is not None:
        return
    from keywire.training.bundled import list_models

    if as_json:
        typer.echo(json.dumps([{"name": m.name, "path": str(m.path), "size": m.size, "classes": list(m.classes),
                                "description": m.description} for m in list_models()], indent=1))
        return
    from .tables import show, table

    show(table("bundled models", ("name", "size", "classes", "description"),
               [(m.name, f"{m.size / 1024:.1f} kB", ", ".join(m.classes), m.description) for m in list_models()],
               caption="size: the int8 .tflite; `keywire models path NAME` prints its path, and every command "
                       "that takes a model accepts NAME", right=(1,)))


@models_app.command("path")
def models_path(name: Annotated[str, typer.Argument(help="Bundled model name, e.g. speech12.")]) -> None:
    """Print a bundled model's .tflite path."""
    from keywire.training.bundled import model_path

    typer.echo(str(model_path(name)))
def register(app: typer.Typer) -> None:
    app.command(context_settings=_EXTRA, epilog=_fields_help())(train)
    app.command(context_settings=_EXTRA)(transfer)
    app.add_typer(models_app, name="models")
