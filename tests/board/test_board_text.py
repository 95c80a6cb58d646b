"""A board's detection label reaches the agent's log escaped: a label holding an escape
sequence and a newline (over a real pseudo-terminal) cannot forge log lines."""
from __future__ import annotations

from keywire.protocol.sl_params import merge_params

from .conftest import read_json_lines, run_agent_during

LABEL = "\x1b[31mYES\nFORGED line"


def test_board_label_is_escaped_in_the_agent_log(emulator, word_models, words_wav, tmp_path):
    evil = tmp_path / "evil.tflite"
    evil.write_bytes(merge_params(word_models[0].read_bytes(), {"classes": [LABEL, "_silence_"]}))
    emu = emulator("--audio", str(words_wav), "--model", str(evil), "--tail-s", "2")
    cfg = tmp_path / "agent.toml"
    cfg.write_text(f'model = "{evil}"\nsource = "silence"\nlog_level = "info"\n'
                   f'[board]\nport = "serial:{emu.port}"\nmode = "detect"\n')
    stats, out, err = run_agent_during(emu, "--config", str(cfg))
    assert stats["board"]["detections"] == 3, err
    assert [d["keyword"] for d in read_json_lines(out)] == [LABEL] * 3, (out, err)
    detected = [line for line in err.splitlines() if "detected " in line]
    assert len(detected) == 3, err
    assert all("detected \\x1b[31mYES\\nFORGED line score=" in line for line in detected), err
    assert "\x1b" not in err and not any(line.startswith("FORGED") for line in err.splitlines()), err
