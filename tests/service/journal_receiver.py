"""Stand-in for journald's native socket, run inside a private mount namespace.

    unshare -rm sh -c 'mount -t tmpfs tmpfs /run && exec python journal_receiver.py OUT AGENT ARGS...'

binds /run/systemd/journal/socket, runs the agent with JOURNAL_STREAM set (as systemd does
for a service whose output goes to the journal), decodes every native-protocol datagram
and writes the entries as JSON lines to OUT.
"""
from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys


def parse_native(data: bytes) -> dict[str, str]:
    """journald's native protocol: KEY=VALUE\\n, or KEY\\n<le64 length><bytes>\\n for binary values."""
    fields: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        nl = data.index(b"\n", pos)
        line = data[pos:nl]
        if b"=" in line:
            key, _, value = line.partition(b"=")
            fields[key.decode()] = value.decode(errors="replace")
            pos = nl + 1
        else:
            (size,) = struct.unpack("<Q", data[nl + 1:nl + 9])
            fields[line.decode()] = data[nl + 9:nl + 9 + size].decode(errors="replace")
            pos = nl + 9 + size + 1
    return fields


def main() -> int:
    out, cmd = sys.argv[1], sys.argv[2:]
    os.makedirs("/run/systemd/journal", exist_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("/run/systemd/journal/socket")
    sock.settimeout(0.2)
    env = {**os.environ, "JOURNAL_STREAM": "0:0"}
    env.pop("NOTIFY_SOCKET", None)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    entries = []
    while True:
        try:
            entries.append(parse_native(sock.recv(1 << 20)))
        except socket.timeout:
            if proc.poll() is not None:
                break
    stdout, stderr = proc.communicate()
    with open(out, "w") as f:
        json.dump({"rc": proc.returncode, "entries": entries, "stdout": stdout.decode(),
                   "stderr": stderr.decode()}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
