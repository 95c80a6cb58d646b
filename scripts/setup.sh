#!/usr/bin/env bash
# Set up keywire on a fresh Debian / Raspberry Pi OS machine: system packages, then a
# virtualenv in .venv with the package installed editable. Safe to run again (it skips
# what is already there). Usage: scripts/setup.sh [agent|host|test]  (default: test = everything)
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${1:-test}"

APT_PACKAGES=(
  python3 python3-venv python3-dev gcc make pkg-config
  portaudio19-dev libasound2-dev libsystemd-dev
  espeak-ng flite sox libsox-fmt-all mosquitto alsa-utils systemd
)
if [ "$profile" = "test" ]; then
  APT_PACKAGES+=(gcc-arm-none-eabi libnewlib-arm-none-eabi)
fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "setup: installing ${missing[*]}" >&2
  $SUDO apt-get update -qq
  # --no-install-recommends: gcc-arm-none-eabi would otherwise pull a 1.5 GB C++ library.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
extras="agent"
case "$profile" in
  host) extras="host" ;;
  test) extras="host,test,bench" ;;
esac
# pyproject.toml (metadata) and setup.py (the C frontend's build): a change to either reinstalls,
# which also rebuilds keywire.agent._cfrontend (gcc, python3-dev above).
stamp=".venv/.keywire-$extras-$(cat pyproject.toml setup.py | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip setuptools wheel >&2
  .venv/bin/python -m pip install -q -e ".[$extras]" >&2
  # The speech-embedding feature models (Apache-2.0, Google's speech embedding as shipped by
  # openWakeWord): the wheel only, without its dependencies (no onnxruntime); the agent finds
  # the two .tflite files in it and checks their pinned sha256.
  .venv/bin/python -m pip install -q --no-deps "openwakeword==0.5.1" >&2
  touch "$stamp"
fi
