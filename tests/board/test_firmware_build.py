"""The firmware core builds and its C unit tests pass (host gcc), and it cross-compiles for
the BRD2601's Cortex-M33 with Debian's arm-none-eabi toolchain (size printed)."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.fixtures.paths import REPO

FW = REPO / "firmware"


def _make(*targets: str, build: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-C", str(FW), f"BUILD={build}", *targets], capture_output=True, text=True,
                          timeout=300)


def test_c_unit_tests_and_parity_vectors_pass(tmp_path):
    r = _make("test", build=str(tmp_path / "build"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 failures" in r.stdout
    assert "parity vectors: 6 cases, 2400 steps, 0 mismatches" in r.stdout


def test_shared_library_builds(tmp_path):
    r = _make("lib", build=str(tmp_path / "build"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "build" / "libkwcore.so").stat().st_size > 0


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="gcc-arm-none-eabi not installed")
def test_cross_build_for_cortex_m33_prints_flash_and_ram(tmp_path):
    r = _make("cross", build=str(tmp_path / "build"))
    assert r.returncode == 0, r.stdout + r.stderr
    print(r.stdout)
    assert "(TOTALS)" in r.stdout and "kw_static.o" in r.stdout
    arch = subprocess.run(["arm-none-eabi-readelf", "-A", str(tmp_path / "build" / "arm" / "kw_board.o")],
                          capture_output=True, text=True).stdout
    assert "v8-M.mainline" in arch and "FP" in arch  # Cortex-M33 with the single-precision FPU ABI
