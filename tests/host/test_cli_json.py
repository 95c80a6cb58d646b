"""`--json` on the listing commands, and output-path errors that name no option the user did not type."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from keywire.protocol.errors import ExitCode
from keywire.training.bundled import list_models, model_path

REPO = Path(__file__).resolve().parents[2]
SAMPLE = str(REPO / "training" / "samples" / "sample.wav")


def keywire(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "import sys; from keywire.host.cli import main; sys.exit(main())",
                           *args], capture_output=True, text=True, timeout=120)


def test_models_json_lists_every_bundled_model():
    r = keywire("models", "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [m["name"] for m in rows] == [m.name for m in list_models()] and rows
    on_off = next(m for m in rows if m["name"] == "on_off")
    assert on_off["classes"][:2] == ["on", "off"] and Path(on_off["path"]) == model_path("on_off")
    assert on_off["size"] == model_path("on_off").stat().st_size


def test_dataset_voices_json():
    r = keywire("dataset", "voices", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out) == {"engines", "voices"} and out["engines"]
    for engine, state in out["engines"].items():
        assert isinstance(state["usable"], bool) and (state["usable"] or state["reason"]), (engine, state)
    for v in out["voices"]:
        assert v["spec"] == f"{v['engine']}:{v['name']}" and out["engines"][v["engine"]]["usable"], v


@pytest.mark.parametrize("option", ["--out", "-o", "--output"])
def test_features_output_error_names_no_other_option(tmp_path: Path, option: str):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = keywire("features", SAMPLE, "--model", str(model_path("on_off")), option, str(blocker / "f.npy"))
    assert r.returncode == ExitCode.CONFIG, r.stderr
    line = r.stderr.strip()
    assert line.count("\n") == 0 and line.startswith("keywire: error: output path "), r.stderr
    assert f"{blocker} is not a directory" in line and "--output" not in line
