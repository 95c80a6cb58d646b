"""`keywire board-emulator` (a BRD2601 on a pseudo-terminal) and `keywire board-push`."""
from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, List, Optional

import typer

from keywire.protocol.errors import ConfigError


def register(app: typer.Typer) -> None:
    app.command("board-emulator")(board_emulator)
    app.command("board-push")(board_push)


def board_emulator(
    audio: Annotated[Path, typer.Option("--audio", help="WAV file the board's microphone hears (real-time pace).")],
    model: Annotated[Optional[Path], typer.Option("--model", help="Model the board runs in detect mode (.tflite).")] = None,
    mode: Annotated[str, typer.Option("--mode", help="Start mode: detect or stream (the agent may change it).")] = "detect",
    baud: Annotated[int, typer.Option("--baud", help="Emulated UART speed; frames beyond it are dropped.")] = 921600,
    port_link: Annotated[Optional[Path], typer.Option("--port-link", help="Symlink to publish the port at (default: a temporary path).")] = None,
    board_id: Annotated[str, typer.Option("--board-id", help="Identity announced in HELLO.")] = "brd2601-emulator",
    flash_kb: Annotated[int, typer.Option("--flash-kb", help="Size of the model staging area in KiB.")] = 512,
    garbage_per_s: Annotated[float, typer.Option("--garbage-per-s", help="Fault: random byte bursts per second.")] = 0.0,
    bit_flip_rate: Annotated[float, typer.Option("--bit-flip-rate", help="Fault: probability that a byte gets a bit flipped.")] = 0.0,
    drop_rate: Annotated[float, typer.Option("--drop-rate", help="Fault: probability that a board frame is lost.")] = 0.0,
    reset_at: Annotated[Optional[List[float]], typer.Option("--reset-at", help="Fault: reset the board at this second (repeatable).")] = None,
    disconnect_at: Annotated[Optional[List[float]], typer.Option("--disconnect-at", help="Fault: unplug at this second (repeatable).")] = None,
    disconnect_s: Annotated[float, typer.Option("--disconnect-s", help="How long an unplug lasts.")] = 1.0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the fault generator.")] = 0,
    loop: Annotated[bool, typer.Option("--loop", help="Play the WAV file again and again.")] = False,
    tail_s: Annotated[float, typer.Option("--tail-s", help="Seconds of silence after the audio before exiting.")] = 3.0,
) -> None:
    """Behave like a BRD2601 on a pseudo-terminal: prints the port path first, then runs."""
    from keywire.agent.board import messages as m
    from keywire.agent.board.emulator import BoardEmulator, EmulatorConfig, Faults

    if mode not in ("detect", "stream"):
        raise ConfigError(f"--mode must be detect or stream, got {mode!r}")
    for name, rate in (("--bit-flip-rate", bit_flip_rate), ("--drop-rate", drop_rate)):
        if not 0.0 <= rate <= 1.0:
            raise ConfigError(f"{name} must be between 0 and 1, got {rate}")
    if baud <= 0 or flash_kb <= 0:
        raise ConfigError("--baud and --flash-kb must be positive")
    faults = Faults(garbage_per_s=garbage_per_s, bit_flip_rate=bit_flip_rate, drop_rate=drop_rate,
                    reset_at_s=tuple(reset_at or ()), disconnect_at_s=tuple(disconnect_at or ()),
                    disconnect_s=disconnect_s, seed=seed)
    cfg = EmulatorConfig(audio=audio, model=model, mode=m.Mode.STREAM if mode == "stream" else m.Mode.DETECT,
                         baud=baud, board_id=board_id, flash_capacity=flash_kb * 1024, faults=faults,
                         port_link=port_link, loop=loop, tail_s=tail_s)
    emu = BoardEmulator(cfg)
    port = emu.open()
    typer.echo(str(port))
    sys.stdout.flush()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        stats = emu.run(stop)
    finally:
        emu.close()
    typer.echo(json.dumps({"emulator": asdict(stats)}))


def board_push(
    model: Annotated[Path, typer.Argument(help="Model (.tflite) to install on the board.")],
    board: Annotated[str, typer.Option("--board", help="serial:/dev/ttyACM0[@BAUD]")],
    timeout_s: Annotated[float, typer.Option("--timeout", "--timeout-s", help="Seconds to wait for the board.")] = 10.0,
) -> None:
    """Transfer a model to a BRD2601 over serial (CRC-checked, staged, verified, activated)."""
    from keywire.agent.board import messages as m
    from keywire.agent.board.link import BoardLink, BoardSpec
    from keywire.protocol.text import printable

    from .cli import debug_enabled

    # The link logs the board's ERROR frames; the command reports the outcome in one line.
    logging.basicConfig(level=logging.DEBUG if debug_enabled() else logging.CRITICAL)
    data = model.read_bytes()
    link = BoardLink(BoardSpec.parse(board)).start()
    try:
        if not link.wait_connected(timeout_s):
            raise m.BoardError(f"no board answered on {link.spec.port} within {timeout_s:g} s")
        hello = link.push_model(data)
    finally:
        link.close()
    typer.echo(f"board {printable(hello.board_id, 64)}: model '{printable(hello.model_name, 64)}' active "
               f"({hello.model_size} bytes, "
               f"crc32 {hello.model_crc32:08x})")
