"""Install and remove the agent as a systemd service (`keywire-agent install-service`).

The unit text is rendered here from `UnitOptions`; `systemd/keywire-agent.service` in the
repository is this rendering with the defaults (a test keeps the two identical). The
installer writes the unit, a sysusers.d entry for the dedicated user when it does not
exist yet, and a commented default `agent.toml` (never overwriting an operator's file).
`root` stages everything under another directory (packaging, tests); only with root "/"
does it run `systemd-sysusers` and `systemctl daemon-reload`.
"""
from __future__ import annotations

import argparse
import grp
import os
import pwd
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence, Tuple

from keywire.protocol.errors import ExitCode, KeywireError

UNIT_NAME = "keywire-agent.service"
DEFAULT_EXEC = "/usr/local/bin/keywire-agent"
DEFAULT_CONFIG = "/etc/keywire/agent.toml"
STATE_DIR = "/var/lib/keywire"
UNIT_DIR = "/etc/systemd/system"
SYSUSERS_FILE = "/etc/sysusers.d/keywire-agent.conf"
# audio: ALSA capture; dialout: the BRD2601's USB serial port; gpio: GPIO character devices (Pi OS).
WANTED_GROUPS = ("audio", "dialout", "gpio")
HOME_PREFIXES = ("/home/", "/root/", "/run/user/")
PRIVATE_TMP_PREFIXES = ("/tmp/", "/var/tmp/")


class ServiceInstallError(KeywireError):
    """The service cannot be installed or removed (permissions, paths hidden by the sandbox)."""

    exit_code = ExitCode.SERVICE


@dataclass(frozen=True)
class UnitOptions:
    """What varies between installations of the unit file."""

    exec_path: str = DEFAULT_EXEC
    config_path: str = DEFAULT_CONFIG
    user: str = "keywire"
    group: str = "keywire"
    supplementary_groups: Tuple[str, ...] = ("audio", "dialout")
    watchdog_s: int = 20
    protect_home: str = "yes"       # "read-only" when the agent or its config live under /home


def render_unit(o: UnitOptions = UnitOptions()) -> str:
    """The complete unit file text."""
    groups = " ".join(o.supplementary_groups)
    return f"""\
# keywire agent: on-device keyword spotting as a system service.
# Installed by `keywire-agent install-service`; see docs/SERVICE.md.
[Unit]
Description=keywire keyword-spotting agent
Wants=network-online.target
After=network-online.target sound.target
# At most 5 failed starts in 10 minutes, then systemd stops trying until an operator acts.
StartLimitIntervalSec=600
StartLimitBurst=5

[Service]
Type=notify
NotifyAccess=main
ExecStart={o.exec_path} run --config {o.config_path}
# SIGHUP reloads configuration and model while audio keeps flowing.
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
RestartSec=5s
# READY=1 comes after the first audio and the first inference (model load + warm-up).
TimeoutStartSec=90s
TimeoutStopSec=15s
# The processing loop pings only while audio arrives and inference completes.
WatchdogSec={o.watchdog_s}s
User={o.user}
Group={o.group}
{"SupplementaryGroups=" + groups if groups else "# no supplementary groups"}
StateDirectory=keywire
StateDirectoryMode=0750
ConfigurationDirectory=keywire
ConfigurationDirectoryMode=0755
WorkingDirectory={STATE_DIR}
Environment=PYTHONUNBUFFERED=1
UMask=0077

# Hardening. Devices: ALSA capture, USB/ACM serial (BRD2601), GPIO character devices.
DevicePolicy=closed
DeviceAllow=char-alsa rw
DeviceAllow=char-ttyACM rw
DeviceAllow=char-ttyUSB rw
DeviceAllow=char-gpiochip rw
NoNewPrivileges=yes
CapabilityBoundingSet=
AmbientCapabilities=
ProtectSystem=strict
ProtectHome={o.protect_home}
PrivateTmp=yes
PrivateMounts=yes
PrivateUsers=yes
ProtectHostname=yes
ProtectClock=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectProc=invisible
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
RemoveIPC=yes
KeyringMode=private
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
SystemCallErrorNumber=EPERM

[Install]
WantedBy=multi-user.target
"""


DEFAULT_CONFIG_TEXT = """\
# keywire agent configuration (read by `keywire-agent run --config /etc/keywire/agent.toml`).
# After editing: `sudo systemctl reload keywire-agent` applies it without dropping audio.
# Every setting is optional; commented lines show the defaults.

# The keyword model (.tflite with embedded SL_PARAMSv1 parameters). Models pushed over MQTT
# are stored under state_dir and replace this one.
model = "/var/lib/keywire/models/active.tflite"

# Audio: "mic" (default input), "mic:NAME" (a PyAudio device), "file:PATH.wav", "stdin"
# (raw 16-bit mono PCM at the model's rate), or "silence".
source = "mic"

# Name of this device in events and on the fleet broker (default: the host name).
# device_id = "kitchen-pi"

# Where the agent keeps pushed models and state (the unit's StateDirectory).
state_dir = "/var/lib/keywire"

# Audio read size in milliseconds.
# chunk_ms = 100

# debug | info | warning | error
# log_level = "info"

# Print each detection as one JSON line on stdout. Off for the service: detections go to
# the journal with KEYWORD, SCORE, MODEL and EVENT_ID fields instead.
json_events = false

[detection]
# Values here override the model's own detection parameters.
# threshold = 200            # 0-255 averaged score needed to report a keyword
# threshold_list = [200, 220] # per class, instead of threshold
# window_ms = 1000           # averaging window
# suppression_ms = 1500      # quiet time after a detection
# minimum_count = 3          # inferences in the window needed
# latency_ms = 100           # run the model every this much audio

[led]
# Linux LED class names under /sys/class/leds ("" = none).
# red = "ACT"                # blinks on a detection
# green = ""                 # shows audio activity
# blink_ms = 200

[mqtt]
# Fleet broker; empty url = no MQTT.
# url = "mqtts://broker.example.org:8883"
# fleet = "keywire"
# groups = ["kitchen"]
# trusted_keys = ["/etc/keywire/fleet-signing.pub"]  # Ed25519 keys allowed to sign models
# ca = "/etc/keywire/ca.pem"
# cert = ""
# key = ""
# username = ""
# password = ""
# protocol = "3.1.1"         # or "5"
# ha_discovery = false       # Home Assistant MQTT discovery
# ha_max_event_age_s = 300   # older (spooled) detections reach the event log, not Home Assistant
# telemetry_s = 60

[board]
# A BRD2601 on USB serial ("" = none). Mode "detect": the board runs the model;
# "stream": the board streams microphone audio to this agent.
# port = "serial:/dev/ttyACM0@921600"
# mode = "detect"
"""


def _groups_present(names: Sequence[str]) -> Tuple[str, ...]:
    present = []
    for name in names:
        try:
            grp.getgrnam(name)
            present.append(name)
        except KeyError:
            pass
    return tuple(present)


def _user_group(user: str) -> Tuple[bool, str]:
    """(user exists, its primary group name; the user's own name when it does not exist yet)."""
    try:
        gid = pwd.getpwnam(user).pw_gid
    except KeyError:
        return False, user
    try:
        return True, grp.getgrgid(gid).gr_name
    except KeyError:
        return True, str(gid)


def default_exec_path() -> str:
    """The `keywire-agent` script beside this Python interpreter (its venv), else on PATH."""
    beside = Path(sys.executable).parent / "keywire-agent"
    if beside.exists():
        return str(beside)
    found = shutil.which("keywire-agent")
    return found or DEFAULT_EXEC


@dataclass(frozen=True)
class InstallRequest:
    """Options of `install-service` / `uninstall-service`."""

    user: str = "keywire"
    config_path: str = DEFAULT_CONFIG
    exec_path: str = ""              # "" = default_exec_path()
    root: str = "/"                  # stage under another directory instead of the live system
    purge: bool = False              # uninstall: also remove config and state


@dataclass
class InstallReport:
    """What was done, for the CLI to print."""

    written: list = field(default_factory=list)
    kept: list = field(default_factory=list)
    removed: list = field(default_factory=list)
    commands: list = field(default_factory=list)
    notes: list = field(default_factory=list)


def run(cmd: Sequence[str]) -> None:
    try:
        subprocess.run(list(cmd), check=True, capture_output=True, text=True)
    except FileNotFoundError:
        raise ServiceInstallError(f"{cmd[0]} not found; is this a systemd system?") from None
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or exc.stdout or "").strip().splitlines()
        raise ServiceInstallError(f"{' '.join(cmd)} failed: {detail[-1] if detail else exc.returncode}") from None


def _live(root: Path) -> bool:
    return root == Path("/") and Path("/run/systemd/system").is_dir()


def _write(path: Path, text: str, mode: int) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        tmp.chmod(mode)
        tmp.replace(path)
    except PermissionError:
        raise ServiceInstallError(f"no permission to write {path} (run with sudo)") from None


def _staged(root: Path, absolute: str) -> Path:
    return root / absolute.lstrip("/")


def _interpreter(script: str) -> str:
    """The `#!` interpreter of a script ('' for a binary or an unreadable file)."""
    try:
        with open(script, "rb") as f:
            first = f.readline(512)
    except OSError:
        return ""
    if not first.startswith(b"#!"):
        return ""
    parts = first[2:].decode(errors="replace").split()
    return parts[0] if parts else ""


def service_paths(exec_path: str) -> list[str]:
    """The agent script, its interpreter and where their symlinks lead: all must be reachable."""
    paths = [exec_path, os.path.realpath(exec_path)]
    interp = _interpreter(exec_path)
    if interp:
        paths += [interp, os.path.realpath(interp)]
    return list(dict.fromkeys(paths))


def _ids(user: str, groups: Sequence[str]) -> Tuple[int, set]:
    """uid (-1 for a user still to be created) and the gids the service will hold."""
    gids = set()
    for name in groups:
        try:
            gids.add(grp.getgrnam(name).gr_gid)
        except KeyError:
            pass
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        return -1, gids
    gids.add(pw.pw_gid)
    gids.update(g.gr_gid for g in grp.getgrall() if user in g.gr_mem)
    return pw.pw_uid, gids


def _allowed(st: os.stat_result, uid: int, gids: set, bits: int) -> bool:
    """Whether `uid`/`gids` have all of `bits` (as 'other' bits: 1 = x, 4 = r) on a file."""
    if uid == 0:
        return True
    if uid == st.st_uid:
        return (st.st_mode >> 6) & bits == bits
    if st.st_gid in gids:
        return (st.st_mode >> 3) & bits == bits
    return st.st_mode & bits == bits


def unreachable(path: str, uid: int, gids: set, bits: int = 1) -> str:
    """The first directory (or the file) on `path` that the service user cannot use; '' if none."""
    real = Path(os.path.realpath(path))
    for d in list(reversed(real.parents)):
        try:
            if not _allowed(d.stat(), uid, gids, 1):
                return f"{d} (mode {d.stat().st_mode & 0o777:04o})"
        except OSError:
            return f"{d} (missing)"
    try:
        st = real.stat()
    except OSError:
        return f"{real} (missing)"
    return "" if _allowed(st, uid, gids, bits) else f"{real} (mode {st.st_mode & 0o777:04o})"


def unit_options_for(req: InstallRequest) -> UnitOptions:
    """Resolve the request against this machine: executable, user's group, groups that exist.

    Refuses an agent the service user could not run (e.g. a Python under a private /root),
    because systemd would only report `status=203/EXEC` at every start.
    """
    exec_path = req.exec_path or default_exec_path()
    if not os.path.isabs(exec_path) or not os.path.isabs(req.config_path):
        raise ServiceInstallError("the agent executable and --config must be absolute paths")
    if req.config_path.startswith(HOME_PREFIXES):
        raise ServiceInstallError(f"--config {req.config_path} is under a home directory, which the "
                                  "service cannot write or rely on; use /etc/keywire/")
    _, group = _user_group(req.user)
    groups = _groups_present(WANTED_GROUPS)
    uid, gids = _ids(req.user, groups)
    paths = service_paths(exec_path)
    for path in paths:
        blocked = unreachable(path, uid, gids, bits=5 if path == paths[0] else 1)
        if blocked:
            raise ServiceInstallError(
                f"user {req.user} cannot run {exec_path}: {blocked} is in the way of {path}; "
                "install keywire where the service can read it, e.g. a venv under /opt/keywire")
    hidden = [p for p in paths if p.startswith(PRIVATE_TMP_PREFIXES)]
    if hidden:
        raise ServiceInstallError(
            f"{hidden[0]} is under a temporary directory, which the unit's PrivateTmp=yes hides from "
            "the service; install keywire elsewhere, e.g. a venv under /opt/keywire")
    return UnitOptions(
        exec_path=exec_path,
        config_path=req.config_path,
        user=req.user,
        group=group,
        supplementary_groups=groups,
        # An agent (or its Python) under /home must stay readable; the service still cannot write there.
        protect_home="read-only" if any(p.startswith(HOME_PREFIXES) for p in paths) else "yes",
    )


def install_service(req: InstallRequest) -> InstallReport:
    """Write the unit, the sysusers entry (new user only) and a default config (if absent)."""
    root = Path(req.root)
    opts = unit_options_for(req)
    report = InstallReport()
    if opts.protect_home == "read-only":
        report.notes.append(f"{opts.exec_path} is under a home directory: the unit uses ProtectHome=read-only")

    unit_path = _staged(root, f"{UNIT_DIR}/{UNIT_NAME}")
    _write(unit_path, render_unit(opts), 0o644)
    report.written.append(str(unit_path))

    exists, _ = _user_group(req.user)
    if not exists:
        sysusers = _staged(root, SYSUSERS_FILE)
        _write(sysusers, f"# keywire agent service user (created by keywire-agent install-service)\n"
                         f"u {req.user} - \"keywire agent\" {STATE_DIR} /usr/sbin/nologin\n", 0o644)
        report.written.append(str(sysusers))

    config = _staged(root, req.config_path)
    if config.exists():
        report.kept.append(str(config))
    else:
        _write(config, DEFAULT_CONFIG_TEXT, 0o644)
        report.written.append(str(config))

    if _live(root):
        if not exists:
            run(["systemd-sysusers", SYSUSERS_FILE])
            report.commands.append(f"systemd-sysusers {SYSUSERS_FILE}")
        run(["systemctl", "daemon-reload"])
        report.commands.append("systemctl daemon-reload")
        report.notes.append(f"start it now and at boot: sudo systemctl enable --now {UNIT_NAME}")
    elif root == Path("/"):
        report.notes.append("systemd is not running here: the files are written but nothing was reloaded")
    return report


def uninstall_service(req: InstallRequest) -> InstallReport:
    """Stop and disable the unit, remove it (and with purge the config and state)."""
    root = Path(req.root)
    report = InstallReport()
    if _live(root):
        run(["systemctl", "disable", "--now", UNIT_NAME])
        report.commands.append(f"systemctl disable --now {UNIT_NAME}")
    targets = [_staged(root, f"{UNIT_DIR}/{UNIT_NAME}"), _staged(root, SYSUSERS_FILE)]
    if req.purge:
        targets += [_staged(root, req.config_path)]
    for path in targets:
        try:
            path.unlink()
            report.removed.append(str(path))
        except FileNotFoundError:
            pass
        except PermissionError:
            raise ServiceInstallError(f"no permission to remove {path} (run with sudo)") from None
    if req.purge:
        state = _staged(root, STATE_DIR)
        if state.is_dir():
            try:
                shutil.rmtree(state)
            except PermissionError:
                raise ServiceInstallError(f"no permission to remove {state} (run with sudo)") from None
            report.removed.append(str(state))
    else:
        report.notes.append(f"kept {req.config_path} and {STATE_DIR} (use --purge to remove them)")
    if _live(root):
        run(["systemctl", "daemon-reload"])
        report.commands.append("systemctl daemon-reload")
    return report


# ------------------------------------------------------------------ command line
def add_service_commands(sub: "argparse._SubParsersAction") -> dict:
    """Register `install-service` and `uninstall-service` on keywire-agent's subparsers."""
    ins = sub.add_parser("install-service", help="install the systemd unit, service user and a default config")
    ins.add_argument("--user", default="keywire", help="account the service runs as (created if missing)")
    ins.add_argument("--config", default=DEFAULT_CONFIG, help="config file the service reads")
    ins.add_argument("--exec", dest="exec_path", default="",
                     help="keywire-agent executable for ExecStart (default: this installation's)")
    ins.add_argument("--root", default="/", help="write under this directory instead of / (packaging)")
    ins.add_argument("--print-unit", action="store_true", help="print the unit that would be installed and exit")
    uni = sub.add_parser("uninstall-service", help="stop, disable and remove the systemd unit")
    uni.add_argument("--config", default=DEFAULT_CONFIG, help="config file to remove with --purge")
    uni.add_argument("--root", default="/", help="remove from under this directory instead of /")
    uni.add_argument("--purge", action="store_true", help=f"also remove the config file and {STATE_DIR}")
    return {"install-service": cmd_install_service, "uninstall-service": cmd_uninstall_service}


def _print_report(report: InstallReport) -> None:
    for label, items in (("wrote", report.written), ("kept", report.kept), ("removed", report.removed),
                         ("ran", report.commands)):
        for item in items:
            print(f"{label} {item}")
    for note in report.notes:
        print(note)


def cmd_install_service(a: "argparse.Namespace") -> int:
    req = InstallRequest(user=a.user, config_path=a.config, exec_path=a.exec_path, root=a.root)
    if a.print_unit:
        print(render_unit(unit_options_for(req)), end="")
        return 0
    _print_report(install_service(req))
    return 0


def cmd_uninstall_service(a: "argparse.Namespace") -> int:
    _print_report(uninstall_service(InstallRequest(config_path=a.config, root=a.root, purge=a.purge)))
    return 0
