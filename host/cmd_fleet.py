"""Fleet commands: `keywire push`, `keywire keys generate`, `keywire fleet status|command|prune`, `keywire watch`."""
from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, List, Optional

import typer

from keywire.protocol.detection import LIMITS
from keywire.protocol.errors import ConfigError, ExitCode
from keywire.protocol.text import printable

keys_app = typer.Typer(help="Ed25519 keys that sign pushed models.", no_args_is_help=True)
fleet_app = typer.Typer(help="The devices of a fleet.", no_args_is_help=True)

Mqtt = Annotated[str, typer.Option("--mqtt", help="Broker URL: mqtt://HOST[:PORT] or mqtts://HOST[:PORT].",
                                   envvar="KEYWIRE_MQTT")]
Fleet = Annotated[str, typer.Option("--fleet", help="Fleet name (topic prefix keywire/NAME/).", envvar="KEYWIRE_FLEET")]
Ca = Annotated[Optional[Path], typer.Option("--ca", help="CA certificate for TLS.", envvar="KEYWIRE_MQTT_CA")]
Cert = Annotated[Optional[Path], typer.Option("--cert", help="Client certificate (TLS).", envvar="KEYWIRE_MQTT_CERT")]
CertKey = Annotated[Optional[Path], typer.Option("--cert-key", help="Client certificate's private key.",
                                                 envvar="KEYWIRE_MQTT_KEY")]
User = Annotated[Optional[str], typer.Option("--username", help="Broker user name.", envvar="KEYWIRE_MQTT_USER")]
Password = Annotated[Optional[str], typer.Option("--password", help="Broker password.",
                                                 envvar="KEYWIRE_MQTT_PASSWORD")]
Protocol = Annotated[str, typer.Option("--protocol", help="MQTT protocol: 3.1.1 or 5.")]


def _detection_help(name: str) -> str:
    return f"set_detection: {LIMITS[name].help}."


def _settings(url: str, client: str, ca: Optional[Path], cert: Optional[Path], cert_key: Optional[Path],
              username: Optional[str], password: Optional[str], protocol: str):
    import os
    import uuid

    from keywire.protocol.mqtt_link import MqttSettings

    return MqttSettings(url=url, client_id=f"keywire-{client}-{os.getpid()}-{uuid.uuid4().hex[:6]}",
                        username=username or "", password=password or "", ca=str(ca or ""), cert=str(cert or ""),
                        key=str(cert_key or ""), protocol=protocol).validate()


def push(
    model: Annotated[Path, typer.Argument(help="Model .tflite with SL_PARAMSv1 (classes, fe.*).")],
    mqtt: Mqtt,
    fleet: Fleet,
    key: Annotated[Path, typer.Option("--key", help="Ed25519 signing key (from `keywire keys generate`).",
                                      envvar="KEYWIRE_SIGNING_KEY")],
    device: Annotated[Optional[List[str]], typer.Option("--device", help="Target device id (repeatable).")] = None,
    group: Annotated[Optional[str], typer.Option("--group", help="Target every device of this group.")] = None,
    all_devices: Annotated[bool, typer.Option("--all", help="Target every device of the fleet.")] = False,
    canary: Annotated[int, typer.Option("--canary", help="Push to N devices first; continue only if healthy.")] = 0,
    wait: Annotated[float, typer.Option("--timeout", "--wait", help="Seconds to wait for every device to report.")] = 300.0,
    chunk_size: Annotated[int, typer.Option("--chunk-size", help="Bytes per MQTT message (<= 120 KiB).")] = 32768,
    version: Annotated[Optional[str], typer.Option("--version", help="Version to announce (default: the model's).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    ca: Ca = None, cert: Cert = None, cert_key: CertKey = None, username: User = None, password: Password = None,
    protocol: Protocol = "3.1.1",
) -> None:
    """Sign MODEL and push it to devices; exit 0 only when every target reports it active."""
    from keywire.protocol.signing import load_private_key

    from .push import PushEngine, PushOptions, PushTarget

    from .tables import DeviceProgress

    bars = DeviceProgress(enabled=not as_json)  # a bar per device on a terminal, a line per state otherwise

    def show(d) -> None:
        bars.update(printable(d.device_id, 64), printable(d.state, 32), d.received, d.total, printable(d.reason))

    data = model.read_bytes()
    engine = PushEngine(_settings(mqtt, "push", ca, cert, cert_key, username, password, protocol), fleet,
                        load_private_key(key), on_update=show)
    try:
        result = engine.push(data, PushTarget(tuple(device or ()), group or "", all_devices),
                             PushOptions(chunk_size=chunk_size, canary=canary, wait_s=wait, version=version))
    finally:
        bars.close()
    m = result.manifest
    if as_json:
        typer.echo(json.dumps({"ok": result.ok, "model": m.name, "version": m.version, "sha256": m.sha256,
                               "size": m.size, "chunks": m.n_chunks, "seconds": round(result.seconds, 3),
                               "canary_failed": result.canary_failed,
                               "devices": {d: {"state": p.state, "reason": p.reason}
                                           for d, p in sorted(result.devices.items())}}, indent=1))
    else:
        ok = sum(p.ok for p in result.devices.values())
        typer.echo(f"{m.name} v{m.version} ({m.sha256[:12]}, {m.size} bytes): active on {ok}/{len(result.devices)} "
                   f"devices in {result.seconds:.1f} s")
        for p in result.failures():
            typer.echo(f"FAILED {printable(p.device_id, 64)}: {printable(p.state, 32)}: "
                       f"{printable(p.reason) or 'no reason given'}")
    if not result.ok:
        raise typer.Exit(ExitCode.DEVICES_FAILED)


@keys_app.command("generate")
def keys_generate(
    directory: Annotated[Path, typer.Argument(help="Where to write signing.key (private) and signing.pub.")],
    force: Annotated[bool, typer.Option("--force", help="Replace an existing key pair.")] = False,
) -> None:
    """Create an Ed25519 key pair: keep signing.key on the host, copy signing.pub to devices."""
    from keywire.protocol.signing import generate_keys, key_id, load_public_key

    priv, pub = generate_keys(directory, overwrite=force)
    typer.echo(f"wrote {priv} (keep secret) and {pub} (key id {key_id(load_public_key(pub))})")


@fleet_app.command("status")
def fleet_status_cmd(
    mqtt: Mqtt, fleet: Fleet,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array instead of a table.")] = False,
    timeout: Annotated[float, typer.Option("--timeout", min=0.1, max=3600,
                                           help="Seconds to wait for the broker to accept the connection.")] = 10.0,
    ca: Ca = None, cert: Cert = None, cert_key: CertKey = None, username: User = None, password: Password = None,
    protocol: Protocol = "3.1.1",
) -> None:
    """Every device: online, model, version, last seen, detections per hour."""
    from .fleet_view import fleet_status, format_rows

    rows = fleet_status(_settings(mqtt, "status", ca, cert, cert_key, username, password, protocol), fleet,
                        connect_timeout_s=timeout)
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in rows], indent=1))
    else:
        typer.echo(format_rows(rows) if rows else f"no device of fleet {fleet!r} has reported to this broker")


@fleet_app.command("prune")
def fleet_prune(
    mqtt: Mqtt, fleet: Fleet,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would be cleared.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    ca: Ca = None, cert: Cert = None, cert_key: CertKey = None, username: User = None, password: Password = None,
    protocol: Protocol = "3.1.1",
) -> None:
    """Clear retained model chunks that no desired manifest names (not while a push runs)."""
    from .prune import prune_chunks

    r = prune_chunks(_settings(mqtt, "prune", ca, cert, cert_key, username, password, protocol), fleet,
                     dry_run=dry_run)
    if as_json:
        typer.echo(json.dumps(r.to_dict(), indent=1))
        return
    verb = "would clear" if dry_run else "cleared"
    for sha, n in sorted(r.cleared.items()):
        typer.echo(f"{verb} {sha[:12]}: {n} chunks")
    for topic in r.unreadable:
        typer.echo(f"kept everything: {printable(topic)} holds no readable manifest", err=True)
    typer.echo(f"{verb} {sum(r.cleared.values())} chunks of {len(r.cleared)} models; "
               f"kept {len(r.kept)} models named by {len(r.desired)} desired manifests")


@fleet_app.command("command")
def fleet_command(
    action: Annotated[str, typer.Argument(help="reload | set_detection | rollback | status")],
    mqtt: Mqtt, fleet: Fleet,
    device: Annotated[str, typer.Option("--device", help="Device id.")],
    threshold: Annotated[Optional[str], typer.Option("--threshold", help=_detection_help("detection_threshold"))] = None,
    threshold_list: Annotated[Optional[str], typer.Option("--threshold-list",
                                                          help=_detection_help("detection_threshold_list"))] = None,
    window_ms: Annotated[Optional[str], typer.Option("--window-ms", help=_detection_help("average_window_duration_ms"))] = None,
    suppression_ms: Annotated[Optional[str], typer.Option("--suppression-ms", help=_detection_help("suppression_ms"))] = None,
    minimum_count: Annotated[Optional[str], typer.Option("--minimum-count", help=_detection_help("minimum_count"))] = None,
    latency_ms: Annotated[Optional[str], typer.Option("--latency-ms", help=_detection_help("latency_ms"))] = None,
    volume_gain: Annotated[Optional[str], typer.Option("--volume-gain", help=_detection_help("volume_gain"))] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for the device's reply.")] = 10.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the device's reply as JSON.")] = False,
    ca: Ca = None, cert: Cert = None, cert_key: CertKey = None, username: User = None, password: Password = None,
    protocol: Protocol = "3.1.1",
) -> None:
    """Send a remote command to one device and print its reply (exit 0 only if it succeeded).
    set_detection values are checked against the detection table before they are sent."""
    from keywire.protocol.detection import check_values
    from keywire.protocol.messages import COMMAND_ACTIONS

    from .fleet_view import send_command

    given = {"detection_threshold": threshold, "detection_threshold_list": threshold_list,
             "average_window_duration_ms": window_ms, "suppression_ms": suppression_ms,
             "minimum_count": minimum_count, "latency_ms": latency_ms, "volume_gain": volume_gain}
    detection = check_values({k: v for k, v in given.items() if v is not None}, ConfigError)
    detection = {k: list(v) if isinstance(v, tuple) else v for k, v in detection.items()}
    if action not in COMMAND_ACTIONS:
        raise ConfigError(f"unknown command {action!r} ({', '.join(COMMAND_ACTIONS)})")
    if action == "set_detection" and not detection:
        raise ConfigError("set_detection needs at least one setting (--threshold, --window-ms, ...)")
    reply = send_command(_settings(mqtt, "command", ca, cert, cert_key, username, password, protocol), fleet,
                         device, action, detection, timeout)
    if as_json:
        typer.echo(json.dumps({"device": device, "action": action, "ok": reply.ok, "reason": reply.reason,
                               "id": reply.id, "time": reply.time}, indent=1))
    else:
        typer.echo(f"{printable(device, 64)}: {action}: {'ok' if reply.ok else 'FAILED: ' + printable(reply.reason)}")
    if not reply.ok:
        raise typer.Exit(ExitCode.DEVICES_FAILED)


def watch(
    mqtt: Mqtt, fleet: Fleet,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    count: Annotated[int, typer.Option("--count", help="Exit after this many detections (0: run until Ctrl-C).")] = 0,
    ca: Ca = None, cert: Cert = None, cert_key: CertKey = None, username: User = None, password: Password = None,
    protocol: Protocol = "3.1.1",
) -> None:
    """Live detections of the whole fleet, one line each."""
    from .fleet_view import Watcher, format_detection

    done = threading.Event()
    seen = [0]

    def show(d, raw) -> None:
        line = json.dumps(raw, separators=(",", ":"), sort_keys=True) if as_json else format_detection(d)
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
        seen[0] += 1
        if count and seen[0] >= count:
            done.set()

    w = Watcher(_settings(mqtt, "watch", ca, cert, cert_key, username, password, protocol), fleet, show).start()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        while not done.wait(0.2):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        w.close()


def register(app: typer.Typer) -> None:
    app.command("push")(push)
    app.command("watch")(watch)
    app.add_typer(keys_app, name="keys")
    app.add_typer(fleet_app, name="fleet")
