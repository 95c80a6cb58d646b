"""`keywire-agent`: the device daemon's command line (argparse: the device needs no Typer).

    keywire-agent run --model M.tflite --source file:X.wav --no-realtime

prints one JSON object per detection on stdout. Errors are one line on stderr with a
non-zero exit code (traceback only with --debug).
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any, NoReturn, Optional, Sequence

from keywire.protocol.detection import LIMITS
from keywire.protocol.errors import ExitCode, KeywireError, describe_os_error
from keywire.protocol.text import guard_log_handlers, printable

from .config import AgentConfig, build_config, load_config_file
from .state_lock import StateLock

log = logging.getLogger("keywire.agent")


def _table_option(name: str):
    """argparse `type` checking one detection setting against the table's limits."""
    lim = LIMITS[name]

    def parse(text: str) -> object:
        try:
            return lim.check(text)
        except KeywireError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = lim.flag  # argparse names the type in its message
    return parse


def _add_detection_options(run: argparse.ArgumentParser) -> None:
    """One option per detection setting, spelled and limited by the table (dest = MLTK name)."""
    for lim in LIMITS.values():
        run.add_argument(f"--{lim.flag}", dest=lim.name, type=_table_option(lim.name),
                         metavar=lim.flag.upper().replace("-", "_"), help=lim.help)


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line (`keywire-agent run: error: ...`, exit 2), like every other error."""

    def error(self, message: str) -> "NoReturn":
        self.exit(ExitCode.CONFIG, f"{self.prog}: error: {' '.join(message.split())} (see --help)\n")


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _env_defaults(parser: argparse.ArgumentParser) -> None:
    """`KEYWIRE_<OPTION>` environment variables as defaults for the parser's options (like the
    host CLI's); the command line wins. Flags take 1/true/yes/on or 0/false/no/off (anything
    else is refused); repeatable options one value."""
    for act in parser._actions:
        if not act.option_strings or act.dest == "help":
            continue
        name = "KEYWIRE_" + act.option_strings[-1].lstrip("-").replace("-", "_").upper()
        act.help = f"{act.help or ''} [env {name}]"
        text = os.environ.get(name)
        if text is None:
            continue
        if act.nargs == 0:  # a flag
            word = text.strip().lower()
            if word not in _TRUE + _FALSE:
                parser.error(f"environment variable {name}={printable(text, 40)!r} is not a boolean: "
                             f"use one of {'/'.join(_TRUE + _FALSE)}")
            act.default = act.const if word in _TRUE else act.default
            continue
        try:
            value = (act.type or str)(text)
        except (ValueError, argparse.ArgumentTypeError) as exc:
            parser.error(f"environment variable {name}={text!r}: {exc}")
        if act.choices and value not in act.choices:
            parser.error(f"environment variable {name}={text!r}: choose from {', '.join(map(str, act.choices))}")
        act.default = [value] if isinstance(act, argparse._AppendAction) else value


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="keywire-agent", description="keywire device agent")
    p.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="listen and report detections")
    run.add_argument("--config", help="TOML config file (every option below can be set there)")
    run.add_argument("--model", action="append",
                     help="model .tflite (MLTK or keywire, SL_PARAMSv1 parameters); repeat to run "
                          "several on the same audio (the first is the primary one)")
    run.add_argument("--source", help="mic[:DEVICE] | file:PATH | stdin[@RATE] | silence")
    run.add_argument("--no-realtime", dest="realtime", action="store_false", default=None,
                     help="process a file as fast as possible instead of at real-time pace")
    _add_detection_options(run)
    run.add_argument("--embeddings-per-call", dest="embeddings_per_call", type=int, metavar="K",
                     help="speech-embedding models: compute K embeddings per call of the embedding "
                          "model (default 4: about two thirds of the CPU of 1, detections up to (K-1) x 80 ms later)")
    run.add_argument("--device-id", help="this device's id (default: hostname)")
    run.add_argument("--state-dir", help="where models, spool and state are kept")
    run.add_argument("--mqtt", help="broker URL mqtt://HOST:PORT or mqtts://HOST:PORT (fleet mode)")
    run.add_argument("--fleet", help="fleet name (MQTT topics keywire/FLEET/...)")
    run.add_argument("--trusted-key", action="append", help="Ed25519 public key allowed to sign pushed models")
    run.add_argument("--group", action="append", help="fleet group this device belongs to (repeatable)")
    run.add_argument("--ha-discovery", action="store_true", default=None,
                     help="announce this device to Home Assistant (MQTT discovery; README 'Home Assistant')")
    run.add_argument("--max-event-age", dest="max_event_age", type=float, metavar="SECONDS",
                     help="older detections (spooled while the broker was away) go to the event log "
                          "but not to Home Assistant (default 300)")
    run.add_argument("--board", help="BRD2601 on USB serial: serial:/dev/ttyACM0[@BAUD]")
    run.add_argument("--board-mode", choices=["detect", "stream"], help="the board runs the model or streams audio")
    run.add_argument("--led-red", help="LED class name blinking on detections (e.g. ACT)")
    run.add_argument("--led-green", help="LED class name showing audio activity")
    run.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    run.add_argument("--quiet", action="store_true", help="no JSON lines on stdout")
    _env_defaults(run)
    devices = sub.add_parser("devices", help="list audio input devices (for --source mic:INDEX or mic:NAME)")
    devices.add_argument("--json", action="store_true", help="one JSON object per device")
    from .install import add_service_commands

    COMMANDS.update(add_service_commands(sub))
    return p


def overrides_from_args(a: argparse.Namespace) -> dict[str, Any]:
    """Command-line values as config overrides (None = not given)."""
    return {
        "model": a.model[0] if a.model else None,
        "extra_models": tuple(a.model[1:]) if a.model else None, "source": a.source, "realtime": a.realtime,
        "embeddings_per_call": a.embeddings_per_call,
        "device_id": a.device_id, "state_dir": a.state_dir, "log_level": a.log_level,
        "json_events": False if a.quiet else None,
        **{f"detection.{name}": getattr(a, name) for name in LIMITS},
        "led.red": a.led_red, "led.green": a.led_green,
        "mqtt.url": a.mqtt, "mqtt.fleet": a.fleet,
        "mqtt.ha_discovery": a.ha_discovery, "mqtt.ha_max_event_age_s": a.max_event_age,
        "mqtt.trusted_keys": tuple(a.trusted_key) if a.trusted_key else None,
        "mqtt.groups": tuple(a.group) if a.group else None,
        "board.port": a.board, "board.mode": a.board_mode,
    }


def load_agent_config(a: argparse.Namespace) -> tuple[AgentConfig, dict[str, Any]]:
    overrides = overrides_from_args(a)
    values = load_config_file(Path(a.config)) if a.config else {}
    return build_config(values, overrides, a.config or ""), overrides


def cmd_run(a: argparse.Namespace) -> int:
    from .events import LogSink, StdoutSink
    from .led import LedResponder
    from .runtime import Agent
    from .systemd_notify import ServiceComponent, ServiceEnvironment, ServiceNotifier, journal_handler

    config, overrides = load_agent_config(a)
    # One agent per state dir, taken before anything there is read or written; held until exit.
    state_lock = StateLock(Path(config.state_dir)).acquire() if config.state_dir else None  # noqa: F841
    if config.mqtt.url:
        from .fleet.service import prepare_agent_config

        config = prepare_agent_config(config)  # a pushed model in the state dir wins over --model
        overrides["model"] = config.model      # and stays the model a reload (SIGHUP) reads
    logging.getLogger().setLevel(getattr(logging, config.log_level.upper(), logging.INFO) if not a.debug
                                 else logging.DEBUG)
    sinks: list = [LogSink()]
    if config.json_events:
        sinks.insert(0, StdoutSink())
    # systemd: sd_notify + journal; silent without NOTIFY_SOCKET / JOURNAL_STREAM.
    service_env = ServiceEnvironment.from_environ(os.environ)
    journal = journal_handler(service_env)
    if journal is not None:
        logging.getLogger().handlers[:] = [journal]
        guard_log_handlers()  # remote and device text in log records: escaped, one line each
    service = ServiceComponent(ServiceNotifier(service_env))
    components: list = [service]
    if config.led.red or config.led.green:
        components.append(LedResponder(config.led))
    if config.mqtt.url:
        from .fleet.service import FleetConfig, FleetService

        components.append(FleetService(FleetConfig.from_agent_config(config)))
    source_factory = None
    if config.board.port:  # a BRD2601 over serial (agent/board)
        from .board.component import board_for_agent, run_board_only_cli

        board = board_for_agent(config)
        if not config.model:  # detect mode without a local model: relay the board's detections
            return run_board_only_cli(board, sinks, components)
        components.append(board)
        source_factory = board.source_factory if config.board.mode == "stream" else None
    agent = Agent(config, sinks=sinks, components=components, cli_overrides=overrides,
                  source_factory=source_factory)

    def _stop(*_: Any) -> None:
        service.stopping()
        agent.stop()
        if service.loop_stalled():
            raise SystemExit(0)  # unblocks a read on a stalled source; run() still closes everything

    def _reload(*_: Any) -> None:
        service.reloading()
        agent.request_reload()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, _reload)
    return agent.run()


def cmd_devices(a: argparse.Namespace) -> int:
    """Print PortAudio's input devices (index, channels, default rate, host API, name)."""
    import json

    from keywire.protocol.errors import AudioError

    from .audio_devices import device_table, input_devices

    found = input_devices()
    if not found:
        raise AudioError("no audio input devices (PortAudio sees none with input channels)")
    print("\n".join(json.dumps(d.to_json()) for d in found) if a.json else device_table(found))
    return 0


COMMANDS = {"run": cmd_run, "devices": cmd_devices}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point; the one place where failures become one line and an exit code
    (`keywire.protocol.errors.ExitCode`); `--debug` shows the traceback instead."""
    parser = build_parser()
    a = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if a.debug else logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    guard_log_handlers()
    try:
        return COMMANDS[a.command](a)
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    except (KeywireError, OSError) as exc:
        if a.debug:
            raise
        if isinstance(exc, KeywireError):
            message, code = str(exc), int(exc.exit_code)
        else:
            message, code = describe_os_error(exc), ExitCode.FILE
        print(f"keywire-agent: error: {printable(' '.join(message.split()), 1000)}", file=sys.stderr)
        return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
