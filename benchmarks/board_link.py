"""BRD2601 serial link figures: firmware core size on the Cortex-M33, agent-side codec cost,
stream-mode wire rate, model push time and reconnect time against the board emulator.

    nice -n 10 .venv/bin/python benchmarks/board_link.py [--model M.tflite] [--reconnects 5]

The emulator is the firmware's C core behind a pseudo-terminal. A pty has no baud rate: the
emulator paces board -> agent bytes to --baud, agent -> board bytes are not paced, so model
push times here are protocol round trips (stop-and-wait, one ACK per chunk), not the time on a
921600-baud VCOM line; the wire-time estimate for that line is printed beside them.
"""
from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def firmware_size() -> None:
    with tempfile.TemporaryDirectory() as d:
        r = subprocess.run(["make", "-s", "-C", str(REPO / "firmware"), f"BUILD={d}", "cross"], capture_output=True,
                           text=True, check=True)
    total = re.search(r"^\s*(\d+)\s+(\d+)\s+(\d+)\s+\d+\s+\w+\s+\(TOTALS\)", r.stdout, re.M)
    static = re.search(r"^\s*(\d+)\s+(\d+)\s+(\d+)\s+\d+\s+\w+\s+\S*kw_static\.o", r.stdout, re.M)
    assert total and static, r.stdout
    text, data = int(total.group(1)), int(total.group(2))
    print(f"firmware core, arm-none-eabi-gcc -Os cortex-m33: flash {text + data} B (text {text}, data {data}); "
          f"RAM {int(static.group(3))} B static (struct kw_board + 4096-sample ring), no heap")


def codec_cost() -> None:
    from keywire.agent.board import frame as fr
    from keywire.agent.board import messages as m

    pcm = (np.random.default_rng(0).integers(-3000, 3000, m.AUDIO_FRAME_SAMPLES)).astype("<i2").tobytes()
    frames = [m.Audio(i, pcm).to_frame(i) for i in range(500)]
    stream = b"".join(frames)
    dec = fr.FrameDecoder()
    t0 = time.perf_counter()
    for _ in range(4):
        for raw in dec.feed(stream):
            m.decode(raw).pcm()
    dt = (time.perf_counter() - t0) / 2000
    t0 = time.perf_counter()
    for i in range(2000):
        m.Audio(i, pcm).to_frame(i)
    et = (time.perf_counter() - t0) / 2000
    print(f"agent codec (Python): decode {dt * 1e6:.0f} us, encode {et * 1e6:.0f} us per 20 ms AUDIO frame "
          f"({len(frames[0])} B on the wire) -> {dt * 50 * 100:.2f}% of one core to receive 16 kHz audio")
    print(f"stream mode wire rate: {len(frames[0]) * 50} B/s = {len(frames[0]) * 50 * 10} baud "
          f"(8N1) for 16 kHz 16-bit audio; 460800 baud carries {46080 / (len(frames[0]) * 50):.2f}x that")


def emulated(model: Path, audio: Path, **faults):  # noqa: ANN003, ANN201
    from keywire.agent.board.emulator import BoardEmulator, EmulatorConfig, Faults

    emu = BoardEmulator(EmulatorConfig(audio=audio, model=model, loop=True, faults=Faults(**faults)))
    port = emu.open()
    stop = threading.Event()
    th = threading.Thread(target=emu.run, args=(stop,), daemon=True)
    th.start()
    return emu, port, stop, th


def model_push(model: Path, audio: Path) -> None:
    from keywire.agent.board.link import BoardLink, BoardSpec

    emu, port, stop, th = emulated(model, audio)
    link = BoardLink(BoardSpec(str(port))).start()
    try:
        assert link.wait_connected(5)
        data = model.read_bytes()
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            link.push_model(data)
            times.append(time.perf_counter() - t0)
        chunks = -(-len(data) // 1016)
        wire = (len(data) + chunks * 20) * 10 / 921600
        print(f"model push {len(data)} B in {chunks} chunks over the emulator pty: median {statistics.median(times):.2f} s "
              f"(min {min(times):.2f}); bytes alone on a 921600-baud line: {wire:.2f} s")
    finally:
        link.close()
        stop.set()
        th.join()
        emu.close()


def reconnects(model: Path, audio: Path, n: int) -> None:
    from keywire.agent.board.link import BoardLink, BoardSpec, LinkState

    at = tuple(2.0 + 3.0 * i for i in range(n))
    emu, port, stop, th = emulated(model, audio, disconnect_at_s=at, disconnect_s=1.0)
    link = BoardLink(BoardSpec(str(port))).start()
    delays = []
    try:
        present, connected, back = True, True, None
        end = time.monotonic() + at[-1] + 4.0
        while time.monotonic() < end:
            p, c = port.exists(), link.state is LinkState.CONNECTED
            if p and not present:
                back = time.monotonic()
            if c and not connected and back is not None:
                delays.append(time.monotonic() - back)
                back = None
            present, connected = p, c
            time.sleep(0.002)
    finally:
        link.close()
        stop.set()
        th.join()
        emu.close()
    print(f"unplug/replug: connected again {statistics.median(delays) * 1000:.0f} ms after the port reappeared "
          f"(median of {len(delays)}, max {max(delays) * 1000:.0f} ms)")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, help="model to push (default: MLTK tflite_micro_speech from ../shared)")
    p.add_argument("--reconnects", type=int, default=5)
    a = p.parse_args()
    model = a.model or REPO.parent / "shared" / "data" / "mltk_models" / "tflite_micro_speech.tflite"
    if not model.exists():
        sys.exit(f"model {model} not found; give --model")
    from tests.fixtures.speech import stream_of_words, write_wav

    audio = Path(tempfile.mkdtemp()) / "words.wav"
    write_wav(audio, stream_of_words(["yes", "no"], ["en-us"], gap_s=1.0)[0])
    firmware_size()
    codec_cost()
    model_push(model, audio)
    reconnects(model, audio, a.reconnects)
    return 0


if __name__ == "__main__":
    sys.exit(main())
