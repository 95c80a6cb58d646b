"""`keywire profile`: what a model costs, measured on this host and estimated for a microcontroller.

Measured here: latency percentiles of one inference over N runs (the agent's interpreter on a
real feature window) and the whole streaming pipeline's CPU time per second of audio.
Read from the file (`host/summary.py`): MACs, ops, weights and the peak of live activations
(the floor of a TFLM arena). Estimated: the time of one inference on a Cortex-M33 at 78 MHz
(the BRD2601's EFR32MG24) from the MACs and an assumed MACs-per-cycle rate: an estimate to
compare models by, not a measurement on the board.
"""
from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from keywire.protocol.errors import ConfigError

# CMSIS-NN's int8 kernels on a Cortex-M33 with the DSP extension issue up to two 16-bit MACs
# per cycle (SMLAD); loads, requantisation and loop overhead leave about half of that.
DEFAULT_MACS_PER_CYCLE = 0.5
DEFAULT_MHZ = 78.0
TENSOR_OVERHEAD_BYTES = 64  # TFLM's per-tensor bookkeeping in the arena (approximate)


@dataclass(frozen=True)
class Profile:
    model: str
    path: str
    runs: int
    latency_ms: dict[str, float]          # one inference on this host: mean, p50, p90, p99, max
    stream_cpu_ms_per_s: float            # whole pipeline (frontend + inferences) per second of audio
    inferences_per_s: float               # of the streaming pipeline at the model's latency_ms
    macs: int
    ops: dict[str, int]
    weights_bytes: int
    model_bytes: int
    peak_activation_bytes: int
    arena_estimate_bytes: int
    m33_mhz: float
    m33_macs_per_cycle: float
    m33_ms_estimate: float
    assumption: str
    step_latency_ms: dict[str, float] | None = None   # a head's step model: one new embedding
    step_macs: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _percentiles(times_ms: list[float]) -> dict[str, float]:
    """mean, p50, p90, p99 and max of a list of timings."""
    t = np.array(times_ms)
    return {"mean": float(t.mean()), "p50": float(np.percentile(t, 50)), "p90": float(np.percentile(t, 90)),
            "p99": float(np.percentile(t, 99)), "max": float(t.max())}


def profile_model(path: Path, runs: int = 200, mhz: float = DEFAULT_MHZ,
                  macs_per_cycle: float = DEFAULT_MACS_PER_CYCLE, stream_s: float = 10.0) -> Profile:
    """Measure and estimate (see the module docstring)."""
    from keywire.agent.frontend import compute_features
    from keywire.agent.model import KeywordModel
    from keywire.agent.spotter import KeywordSpotter

    from .summary import summarize

    if runs < 1:
        raise ConfigError(f"--runs must be at least 1, got {runs}")
    if mhz <= 0 or macs_per_cycle <= 0:
        raise ConfigError("--mhz and --macs-per-cycle must be positive")
    s = summarize(path)
    model = KeywordModel.load(path)
    fe = model.frontend
    rng = np.random.default_rng(0)
    audio = (rng.standard_normal(int(stream_s * fe.sample_rate_hz)) * 1000).astype(np.int16)
    if fe.frontend_type == "speech_embedding":
        window = np.zeros(tuple(int(d) for d in model.input.shape[1:3]), np.float32)
    else:
        window = compute_features(audio[:fe.sample_length], fe)
    for _ in range(min(10, runs)):  # warm up caches and the interpreter's lazy set-up
        model.infer(window)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        model.infer(window)
        times.append((time.perf_counter() - t0) * 1000.0)
    step_latency, stepper = None, model.stepper()
    if stepper is not None:     # what the agent runs per new embedding instead of the window
        stepper.scores(window, len(window))
        steps = []
        for _ in range(runs):
            t0 = time.perf_counter()
            stepper.scores(window, 1)
            steps.append((time.perf_counter() - t0) * 1000.0)
        step_latency = _percentiles(steps)
    spotter = KeywordSpotter(model)
    chunk = fe.sample_rate_hz // 10
    c0 = time.process_time()
    for i in range(0, len(audio), chunk):
        spotter.feed(audio[i:i + chunk])
    cpu = time.process_time() - c0
    inferences = spotter.stats.inferences
    spotter.close()
    cycles = s.total_macs / macs_per_cycle
    n_tensors = sum(len(x.inputs) + len(x.outputs) for x in s.layers)
    return Profile(
        model=model.name, path=str(path), runs=runs,
        latency_ms=_percentiles(times),
        stream_cpu_ms_per_s=cpu * 1000.0 / stream_s, inferences_per_s=inferences / stream_s,
        macs=s.total_macs, ops=dict(Counter(x.op for x in s.layers).most_common()),
        weights_bytes=s.total_weight_bytes, model_bytes=s.size_bytes, peak_activation_bytes=s.peak_activation_bytes,
        arena_estimate_bytes=s.peak_activation_bytes + TENSOR_OVERHEAD_BYTES * n_tensors,
        m33_mhz=mhz, m33_macs_per_cycle=macs_per_cycle, m33_ms_estimate=cycles / (mhz * 1e6) * 1000.0,
        assumption=(f"Cortex-M33 estimate = MACs / ({macs_per_cycle:g} MAC per cycle x {mhz:g} MHz): CMSIS-NN int8 "
                    "kernels issue up to 2 MACs per cycle with the DSP extension and reach about half of that "
                    "with loads and requantisation; the frontend, non-MAC ops and an accelerator (the MG24's "
                    "MVP) are not counted. An estimate to compare models by, not a measurement."),
        step_latency_ms=step_latency, step_macs=s.step_model["macs"] if s.step_model else None)


def profile(
    model: Annotated[Path, typer.Argument(help="A .tflite, a keywire model folder or a bundled model's name.")],
    runs: Annotated[int, typer.Option(help="Timed inferences on this host.")] = 200,
    mhz: Annotated[float, typer.Option(help="Clock of the microcontroller for the estimate.")] = DEFAULT_MHZ,
    macs_per_cycle: Annotated[float, typer.Option(help="Assumed int8 MACs per cycle on it.")] = DEFAULT_MACS_PER_CYCLE,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Latency on this host, arena and MACs, ops, and a Cortex-M33 (78 MHz) estimate (like `mltk profile`)."""
    from .cli import debug_enabled
    from .cmd_evaluate_stream import resolve_model
    from .quiet import native_stderr_silenced
    from .tables import show, table

    path = resolve_model(model)
    if path.is_dir():
        from keywire.training.evaluate import load_any_model

        path = Path(load_any_model(path).source)
    with native_stderr_silenced(debug_enabled()):
        p = profile_model(path, runs, mhz, macs_per_cycle)
    if as_json:
        typer.echo(json.dumps(p.to_dict(), indent=2))
        return
    lat = p.latency_ms
    rows = [
        ("host: one inference", f"{lat['p50']:.3f} ms median, {lat['p90']:.3f} p90, {lat['p99']:.3f} p99, "
                                f"{lat['max']:.3f} max ({p.runs} runs)"),
    ]
    if p.step_latency_ms is not None:
        st = p.step_latency_ms
        rows.append(("host: one step (new embedding)", f"{st['p50']:.3f} ms median, {st['p90']:.3f} p90, "
                     f"{st['p99']:.3f} p99, {p.step_macs:,} MACs: the agent runs this instead of the window"))
    rows += [
        ("host: streaming pipeline", f"{p.stream_cpu_ms_per_s:.1f} ms CPU per s of audio "
                                     f"({p.inferences_per_s:.1f} inferences/s, frontend included)"),
        ("MACs", f"{p.macs:,} per inference"),
        ("ops", ", ".join(f"{k} x{v}" for k, v in p.ops.items())),
        ("model / weights", f"{p.model_bytes:,} / {p.weights_bytes:,} bytes"),
        ("peak activations", f"{p.peak_activation_bytes:,} bytes"),
        ("arena estimate", f"{p.arena_estimate_bytes:,} bytes"),
        (f"Cortex-M33 @ {p.m33_mhz:g} MHz", f"~{p.m33_ms_estimate:.1f} ms per inference (estimate)"),
    ]
    show(table(f"profile of {p.model} ({p.path})", ("what", "figure"), rows, right_from=9,
               caption="p50/p90/p99: the latency half, 90% and 99% of the runs stay under; peak activations: most "
                       "bytes of intermediate tensors alive at once (the least a TFLM arena holds); arena estimate: "
                       f"that plus ~{TENSOR_OVERHEAD_BYTES} B of bookkeeping per tensor (CMSIS-NN scratch buffers "
                       "not counted). " + p.assumption))


def register(app: typer.Typer) -> None:
    app.command()(profile)
