#!/usr/bin/env bash
# Raspberry Pi OS in emulation: build a Debian 12 (bookworm) root for a Pi's CPU with
# debootstrap, run the README's demo command (scripts/demo.sh, which installs everything it
# needs) inside it under qemu-user, run the same commit's demo on this x86 machine, and compare
# the detections (keyword, time_ms, score). Not run by CI or the tests: it needs root, network
# access to the Debian mirror and PyPI, and takes about an hour under emulation.
#
#   sudo benchmarks/pi_os_emulation.sh [arm64|armhf] [WORKDIR]     (default: arm64 /tmp/pi)
#
# How foreign binaries run: the kernel's binfmt_misc with Debian's qemu-user-static handlers
# (registered with the F flag, so they work inside a chroot); where binfmt_misc cannot be used,
# proot -q qemu-ARCH-static (no kernel feature needed). Either way nothing on this machine's
# kernel is changed beyond registering the two handlers. The proot route (also RUNNER=proot) does
# not get through the demo yet: with proot 5.1.0 and qemu 7.2, `python3 -m venv` in the root
# exits 0 but leaves an empty folder, so setup.sh stops at .venv/bin/python.
# REV=COMMIT picks the commit (default HEAD when the script starts).
# Results: WORKDIR/ARCH-detections.jsonl, WORKDIR/x86-detections.jsonl, WORKDIR/ARCH-demo.log.
set -euo pipefail

main() {  # the whole script is one function, so bash has read all of it before it runs
arch="${1:-arm64}"
work="${2:-/tmp/pi}"
mirror="${MIRROR:-http://deb.debian.org/debian}"
suite=bookworm
repo="$(cd "$(dirname "$0")/.." && pwd)"
case "$arch" in
  arm64) qarch=aarch64; pyplat=(manylinux2014_aarch64 manylinux_2_17_aarch64 manylinux_2_27_aarch64 manylinux_2_28_aarch64) ;;
  armhf) qarch=arm; pyplat=(linux_armv7l manylinux2014_armv7l manylinux_2_17_armv7l manylinux_2_31_armv7l) ;;
  *) echo "pi_os_emulation: unknown architecture '$arch' (arm64 or armhf)" >&2; exit 2 ;;
esac
[ "$(id -u)" -eq 0 ] || { echo "pi_os_emulation: needs root (debootstrap, chroot, mounts)" >&2; exit 2; }
root="$work/$arch"
mkdir -p "$work"
say() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
now() { date +%s.%N; }
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.0f} s')" "$1" "$(now)"; }

rev="$(git -C "$repo" rev-parse "${REV:-HEAD}")"  # the commit both demos run (REV=... for another)
say "keywire ${rev:0:7} -> Debian $suite $arch in $root (mirror $mirror)"

# --- 0. tflite wheels for the target's Python (bookworm: CPython 3.11) -------------------------
# armhf has no manylinux wheel of ai-edge-litert, and tflite-runtime's last armv7l wheels
# (2.13.0) are for CPython 3.9 and 3.10 only: checked here so the answer is not a guess.
# PIP_CONFIG_FILE=/dev/null: this machine's pip settings (constraints, local indexes) stay out of it.
wheel() {  # wheel PACKAGE CPYTHON-VERSION: the file name of PyPI's newest wheel for the target, or nothing
  local plat_args=() p
  for p in "${pyplat[@]}"; do plat_args+=(--platform "$p"); done
  PIP_CONFIG_FILE=/dev/null python3 -m pip download -q --no-deps --only-binary=:all: "${plat_args[@]}" \
    --python-version "$2" -d "$work/wheels-$arch-cp$2" "$1" >/dev/null 2>&1 \
    && (cd "$work/wheels-$arch-cp$2" && ls "${1//-/_}"-*.whl | sort -V | tail -1)
}
found=""
for pkg in ai-edge-litert tflite-runtime; do found="$found $(wheel "$pkg" 311 || true)"; done
if [ -z "${found// /}" ]; then
  say "no ai-edge-litert or tflite-runtime wheel on PyPI for CPython 3.11 (Debian $suite's python3) on $arch:"
  for v in 39 310 312; do
    say "  CPython ${v:0:1}.${v:1}: $(wheel ai-edge-litert "$v" || true) $(wheel tflite-runtime "$v" || echo none)"
  done
  say "the agent's TFLite runtime cannot be installed from PyPI there; stopping"
  exit 1
fi
say "TFLite wheels for $arch / CPython 3.11:$found"

# --- 1. a way to run $arch binaries ----------------------------------------------------------
for p in qemu-user-static debootstrap proot binfmt-support; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
    || { say "installing $p"; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$p" >/dev/null; }
done
binfmt=/proc/sys/fs/binfmt_misc
if [ "${RUNNER:-}" = proot ]; then  # RUNNER=proot: no binfmt_misc even where it would work
  runner=proot
else
  [ -e "$binfmt/register" ] || mount -t binfmt_misc binfmt_misc "$binfmt" 2>/dev/null || true
  update-binfmts --enable "qemu-$qarch" 2>/dev/null || true
  if grep -q '^enabled' "$binfmt/qemu-$qarch" 2>/dev/null && grep -q '^flags:.*F' "$binfmt/qemu-$qarch"; then
    runner=chroot
  else
    runner=proot
  fi
fi
say "running $arch binaries with: $runner ($(qemu-$qarch-static --version | head -1))"

in_root() {  # run a command inside the root as root, with a clean environment
  local envs=(env -i HOME=/root LANG=C.UTF-8 TERM=dumb PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)
  if [ "$runner" = chroot ]; then
    nice -n 10 chroot "$root" "${envs[@]}" "$@"
  else
    nice -n 10 proot -0 -r "$root" -q "qemu-$qarch-static" -b /dev -b /proc -w /root "${envs[@]}" "$@"
  fi
}

# --- 2. the Debian root ----------------------------------------------------------------------
if [ ! -f "$root/.keywire-root-done" ]; then
  t=$(now)
  say "debootstrap $suite $arch (first stage on this machine, second stage emulated)"
  for m in dev/pts dev sys proc; do ! mountpoint -q "$root/$m" || umount -l "$root/$m"; done
  if grep -q " $root/" /proc/mounts; then say "$root still has mounts; not deleting it"; exit 1; fi
  rm -rf --one-file-system "$root"
  debootstrap --foreign --arch="$arch" --variant=minbase --include=ca-certificates "$suite" "$root" "$mirror" >/dev/null
  in_root /debootstrap/debootstrap --second-stage >/dev/null
  # as in any chroot: package scripts must not start daemons (mosquitto) inside it
  printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"; chmod +x "$root/usr/sbin/policy-rc.d"
  touch "$root/.keywire-root-done"
  say "root ready in $(elapsed "$t")"
fi
cp /etc/resolv.conf "$root/etc/resolv.conf"
# this machine's own CAs (e.g. a TLS-inspecting proxy), so pip inside the root reaches PyPI as here
if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
  mkdir -p "$root/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
  in_root update-ca-certificates >/dev/null 2>&1
fi
mounted=()
cleanup() { for ((i=${#mounted[@]}-1; i>=0; i--)); do umount -l "${mounted[$i]}" 2>/dev/null || true; done; }
trap cleanup EXIT
if [ "$runner" = chroot ]; then
  # no /sys: this machine's x86 CPU topology there makes ai-edge-litert 2.x's CPU detection
  # crash (SIGSEGV creating the interpreter) under qemu; without it, it runs
  for m in proc dev dev/pts; do
    mountpoint -q "$root/$m" || { mount --bind "/$m" "$root/$m"; mounted+=("$root/$m"); }
  done
fi

# --- 3. the repository (this commit, without venvs or caches) ---------------------------------
rm -rf "$root/root/keywire" "$work/x86/keywire"
mkdir -p "$root/root/keywire" "$work/x86/keywire"
git -C "$repo" archive --format=tar "$rev" | tar -x -C "$root/root/keywire"
git -C "$repo" archive --format=tar "$rev" | tar -x -C "$work/x86/keywire"

# --- 4. the README's demo command, emulated: first run (installs) and second run (warm) --------
t=$(now)
say "emulated $arch: scripts/demo.sh (first run: apt packages, venv, pip wheels, C frontend build)"
if ! in_root bash -c 'cd /root/keywire && scripts/demo.sh' >"$work/$arch-detections.jsonl" 2>"$work/$arch-demo.log"; then
  say "scripts/demo.sh FAILED under emulation after $(elapsed "$t"); last lines of $work/$arch-demo.log:"
  tail -20 "$work/$arch-demo.log"
  exit 1
fi
say "first run: $(elapsed "$t")"
t=$(now)
in_root bash -c 'cd /root/keywire && scripts/demo.sh' >"$work/$arch-detections.jsonl" 2>>"$work/$arch-demo.log"
say "second run (set-up already done): $(elapsed "$t")"
say "inside: $(in_root bash -c '. /etc/os-release; echo "$PRETTY_NAME $(cat /etc/debian_version) $(uname -m)"')" 
say "inside: $(in_root /root/keywire/.venv/bin/python -c '
import platform, importlib.metadata as m, importlib.util as u
def version(name):
    try:
        return f"{name} {m.version(name)}"
    except m.PackageNotFoundError:
        return None
names = ["numpy", "ai-edge-litert", "tflite-runtime", "soxr", "PyAudio", "cryptography"]
print(f"Python {platform.python_version()} {platform.machine()};", ", ".join(filter(None, map(version, names))),
      "; C frontend:", "built" if u.find_spec("keywire.agent._cfrontend") else "MISSING (numpy fallback)")
' 2>&1)"

# --- 5. the same commit's demo on this machine -----------------------------------------------
t=$(now)
say "x86: scripts/demo.sh in $work/x86/keywire (own .venv, Debian's python3)"
# pip as in the emulated root: PyPI only, none of this machine's pip settings
(cd "$work/x86/keywire" && env -u PIP_FIND_LINKS PIP_CONFIG_FILE=/dev/null PYTHON=/usr/bin/python3 \
   nice -n 10 scripts/demo.sh) \
  >"$work/x86-detections.jsonl" 2>"$work/x86-demo.log"
say "x86 first run: $(elapsed "$t")"

# --- 6. compare --------------------------------------------------------------------------------
python3 - "$work/x86-detections.jsonl" "$work/$arch-detections.jsonl" "$arch" <<'EOF'
import json, sys
def load(path):
    return [(d["keyword"], d["time_ms"], d["score"]) for d in
            (json.loads(line) for line in open(path) if line.startswith("{"))]
x86, emu, arch = load(sys.argv[1]), load(sys.argv[2]), sys.argv[3]
print(f"x86:   {len(x86)} detections {x86}")
print(f"{arch}: {len(emu)} detections {emu}")
same = x86 == emu and len(x86) > 0
print("detections (keyword, time_ms, score):", "IDENTICAL" if same else "DIFFERENT")
if not same and [d[:2] for d in x86] == [d[:2] for d in emu]:
    diffs = [e[2] - x[2] for x, e in zip(x86, emu)]
    print(f"same keywords at the same times; scores differ in {sum(map(bool, diffs))} of {len(diffs)} "
          f"(by {min(diffs)}..{max(diffs)} of 255)")
sys.exit(0 if same else 1)
EOF
}

main "$@"
