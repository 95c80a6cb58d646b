"""The agent's board link against `keywire board-emulator` (the firmware's C core behind a real
pseudo-terminal, opened with pyserial), in detect and stream mode, with faults injected."""
from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from keywire.agent.board import messages as m
from keywire.agent.board.link import BoardLink, BoardSpec, LinkSettings, LinkState
from keywire.protocol.errors import ConfigError

from .conftest import agent_cmd, env, read_json_lines, run_agent_during, wait_for


def _collect(link_settings: LinkSettings, port: str) -> tuple[BoardLink, list]:
    got: list = []
    link = BoardLink(BoardSpec(port), link_settings, on_detection=lambda d, h: got.append((d, h))).start()
    return link, got


def test_detect_mode_board_detections_reach_the_agent_sinks(emulator, word_models, words_wav):
    emu = emulator("--audio", str(words_wav), "--model", str(word_models[0]), "--tail-s", "1.5")
    stats, out, err = run_agent_during(emu, "--board", f"serial:{emu.port}", "--device-id", "pi-test")
    events = read_json_lines(out)
    assert stats["board"]["detections"] == 3, stats
    assert [e["keyword"] for e in events] == ["speech"] * 3, err
    assert {(e["source"], e["device_id"], e["model_name"]) for e in events} == {
        ("board:brd2601-emulator", "pi-test", "words-a")}
    # end to end parity: the board (C post-processing, clock = its microphone) detects at the same
    # audio times as the agent's own pipeline (Python detector) on the same clip
    from keywire.agent.model import KeywordModel
    from keywire.agent.audio_io import read_wav
    from keywire.agent.spotter import KeywordSpotter

    local = KeywordSpotter(KeywordModel.load(word_models[0])).feed(read_wav(words_wav, 16000))
    events.sort(key=lambda e: e["time_ms"])  # a resent detection may overtake a later one
    assert [e["time_ms"] for e in events] == [d.time_ms for d in local]
    assert [e["score"] for e in events] == [d.score for d in local]
    assert stats["red_on"] == 3  # the board's own red LED, reported to the agent


def test_stream_mode_agent_runs_the_model_and_drives_the_board_leds(emulator, word_models, words_wav):
    emu = emulator("--audio", str(words_wav), "--mode", "stream", "--tail-s", "1.5")
    stats, out, err = run_agent_during(emu, "--board", f"serial:{emu.port}@921600", "--board-mode", "stream",
                                       "--model", str(word_models[0]), "--device-id", "pi-test")
    events = read_json_lines(out)
    assert [e["keyword"] for e in events] == ["speech"] * 3, err
    assert {e["source"] for e in events} == {"board:brd2601-emulator"}
    assert stats["board"]["audio_frames"] > 300  # 20 ms frames for the whole clip
    assert stats["red_on"] == 3                 # agent: red = detection
    assert stats["green_on"] >= 3               # agent: green = audio activity


def test_stream_mode_counts_dropped_frames_and_keeps_time(emulator, word_wav):
    emu = emulator("--audio", str(word_wav), "--mode", "stream", "--drop-rate", "0.05", "--seed", "3",
                   "--tail-s", "0.5")
    link = BoardLink(BoardSpec(emu.port), LinkSettings(mode=m.Mode.STREAM)).start()
    received = 0
    try:
        assert link.wait_connected(5)
        while emu.proc.poll() is None or link.read_audio(320, 0.0).size:
            received += len(link.read_audio(4000, 0.05))
        received += len(link.read_audio(10**6, 0.1))
    finally:
        link.close()
    s = link.stats
    assert s.dropped_frames > 5
    assert received == (s.audio_frames + s.dropped_frames) * m.AUDIO_FRAME_SAMPLES  # gaps filled with silence


def test_stream_mode_needs_460800_baud(tmp_path, word_models):
    with pytest.raises(ConfigError, match="460800"):
        BoardLink(BoardSpec("/dev/null", 115200), LinkSettings(mode=m.Mode.STREAM))
    r = subprocess.run([*agent_cmd(), "run", "--board", "serial:/dev/ttyACM9@115200", "--board-mode", "stream",
                        "--model", str(word_models[0])], capture_output=True, text=True, env=env(), timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "460800" in r.stderr


def test_emulated_uart_below_stream_rate_drops_audio(emulator, word_wav):
    emu = emulator("--audio", str(word_wav), "--mode", "stream", "--baud", "115200", "--tail-s", "0")
    link = BoardLink(BoardSpec(emu.port, 921600), LinkSettings(mode=m.Mode.STREAM)).start()
    try:
        assert link.wait_connected(5)
        while emu.proc.poll() is None:
            link.read_audio(16000, 0.05)
    finally:
        link.close()
    stats = emu.wait_stats()
    assert stats["frames_dropped_uart"] > stats["board"]["audio_frames"] // 2
    assert link.stats.dropped_frames > 0


def test_model_push_over_serial_becomes_active_and_bad_models_are_refused(emulator, word_models, words_wav):
    emu = emulator("--audio", str(words_wav), "--model", str(word_models[0]), "--loop", "--flash-kb", "64")
    link, got = _collect(LinkSettings(), emu.port)
    try:
        assert link.wait_connected(5)
        assert link.hello.model_name == "words-a"
        data = word_models[1].read_bytes()
        t0 = time.monotonic()
        hello = link.push_model(data)
        push_s = time.monotonic() - t0
        assert hello.model_name == "words-b" and hello.model_size == len(data)
        n = len(got)
        assert wait_for(lambda: len(got) > n, 8)  # the new model detects
        assert got[-1][1].model_name == "words-b"

        with pytest.raises(m.BoardError, match="does not fit the board's staging area"):
            link.push_model(os.urandom(100 * 1024))
        with pytest.raises(m.BoardError, match="ACTIVATE_FAILED"):
            link.push_model(b"not a model" * 300)
        assert link.hello.model_name == "words-b"   # the old model keeps running
        n = len(got)
        assert wait_for(lambda: len(got) > n, 8)
        assert link.stats.board_errors >= 2         # MODEL_TOO_LARGE and BAD_STATE error frames
        assert link.state is LinkState.CONNECTED

        # detection parameters on the board: a threshold list of the wrong length is refused,
        # threshold 255 silences it (an average never exceeds 255)
        assert not link.set_params(m.SetParams(200, 1500, 100, 150, 2, (100, 100, 100)))
        assert link.set_params(m.SetParams(200, 1500, 100, 255, 2))
        time.sleep(0.3)
        n = len(got)
        time.sleep(3.5)
        assert len(got) == n
    finally:
        link.close()
        emu.stop()
    print(f"pushed {len(data)} bytes in {push_s:.2f} s")


def test_noisy_line_loses_and_duplicates_no_detection(emulator, word_models, words_wav):
    emu = emulator("--audio", str(words_wav), "--model", str(word_models[0]), "--bit-flip-rate", "0.01",
                   "--garbage-per-s", "3", "--seed", "11", "--tail-s", "2.5")
    scores: list = []
    link = BoardLink(BoardSpec(emu.port), LinkSettings(scores_every=10), on_detection=lambda d, h: got.append((d, h)),
                     on_event=lambda msg: scores.append(msg) if isinstance(msg, m.Scores) else None)
    got: list = []
    link.start()
    try:
        stats = emu.wait_stats()
        time.sleep(0.3)
    finally:
        link.close()
    board = stats["board"]
    assert stats["bytes_flipped"] > 0 and stats["garbage_bursts"] > 0
    assert board["detections"] == 3
    ids = [d.event_id for d, _ in got]
    assert sorted(ids) == [1, 2, 3]                      # each exactly once
    assert link.stats.bad_crc > 0                         # corrupt frames were seen and rejected
    assert board["rx_bad_crc"] > 0 or board["detections_resent"] > 0
    # averaged scores on request: one SCORES per 10 inferences (some lost to the noise)
    assert 0 < len(scores) <= board["inferences"] // 10
    assert all(len(s.scores) == 2 for s in scores)


def test_reset_and_unplug_replug_resume_within_2s(emulator, word_models, words_wav):
    emu = emulator("--audio", str(words_wav), "--model", str(word_models[0]), "--reset-at", "2.2",
                   "--disconnect-at", "4.2", "--disconnect-s", "1.0", "--tail-s", "1.5")
    port = Path(emu.port)
    link, got = _collect(LinkSettings(), str(port))
    events: list[tuple[str, float]] = []

    def watch() -> None:
        present, connected = True, False
        while emu.proc.poll() is None:
            p = port.exists()
            c = link.state is LinkState.CONNECTED
            if p != present:
                events.append(("port" if p else "gone", time.monotonic()))
            if c != connected:
                events.append(("connected" if c else "lost", time.monotonic()))
            present, connected = p, c
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        stats = emu.wait_stats()
        watcher.join()
    finally:
        link.close()
    names = [e for e, _ in events]
    assert "gone" in names and "port" in names, events
    back = next(t for e, t in events if e == "port")
    resumed = next(t for e, t in events if e == "connected" and t >= back)
    assert resumed - back < 2.0
    assert stats["resets"] == 1 and stats["disconnects"] == 1
    assert link.stats.board_resets == 2 and link.stats.reconnects >= 1
    assert [d.event_id for d, _ in got] == [1, 1, 1]  # one word per boot; each boot numbers from 1
    assert len({h.boot_id for _, h in got}) == 3
    print(f"resumed {resumed - back:.2f} s after the port came back")


def test_board_push_command(emulator, word_models, words_wav):
    emu = emulator("--audio", str(words_wav), "--model", str(word_models[0]), "--loop", "--flash-kb", "32")
    keywire = [str(Path(agent_cmd()[0]).parent / "keywire")]
    r = subprocess.run([*keywire, "board-push", str(word_models[1]), "--board", f"serial:{emu.port}"],
                       capture_output=True, text=True, env=env(), timeout=60)
    assert r.returncode == 0, r.stderr
    assert "model 'words-b' active" in r.stdout
    big = Path(emu.stderr_path).with_name("big.tflite")
    big.write_bytes(word_models[0].read_bytes() * 3)
    r = subprocess.run([*keywire, "board-push", str(big), "--board", f"serial:{emu.port}"],
                       capture_output=True, text=True, env=env(), timeout=60)
    assert r.returncode == 9 and "does not fit the board's staging area (32768 bytes)" in r.stderr
    assert r.stderr.count("\n") == 1
    emu.stop()
