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
from typing import Any, Optional, Sequence

from .config import AgentConfig, build_config, load_config_file
from .errors import KeywireError

log = logging.getLogger("keywire.agent")


def _thresholds(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers 0-255, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="keywire-agent", description="keywire device agent")
    p.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="listen and report detections")
    run.add_argument("--config", help="TOML config file (every option below can be set there)")
    run.add_argument("--model", help="model .tflite (MLTK or keywire, SL_PARAMSv1 parameters)")
    run.add_argument("--source", help="mic[:DEVICE] | file:PATH | stdin[@RATE] | silence")
    run.add_argument("--no-realtime", dest="realtime", action="store_false", default=None,
                     help="process a file as fast as possible instead of at real-time pace")
    run.add_argument("--threshold", type=int, help="detection threshold 0-255 for every class")
    run.add_argument("--threshold-list", type=_thresholds, help="per-class thresholds, comma-separated")
    run.add_argument("--window-ms", type=int, help="score averaging window (average_window_duration_ms)")
    run.add_argument("--suppression-ms", type=int, help="time before the same keyword can fire again")
    run.add_argument("--minimum-count", type=int, help="results needed in the window (0: no averaging)")
    run.add_argument("--latency-ms", type=int, help="audio between two inferences")
    run.add_argument("--device-id", help="this device's id (default: hostname)")
    run.add_argument("--state-dir", help="where models, spool and state are kept")
    run.add_argument("--mqtt", help="broker URL mqtt://HOST:PORT or mqtts://HOST:PORT (fleet mode)")
    run.add_argument("--fleet", help="fleet name (MQTT topics keywire/FLEET/...)")
    run.add_argument("--trusted-key", action="append", help="Ed25519 public key allowed to sign pushed models")
    run.add_argument("--group", action="append", help="fleet group this device belongs to (repeatable)")
    run.add_argument("--board", help="BRD2601 on USB serial: serial:/dev/ttyACM0[@BAUD]")
    run.add_argument("--board-mode", choices=["detect", "stream"], help="the board runs the model or streams audio")
    run.add_argument("--led-red", help="LED class name blinking on detections (e.g. ACT)")
    run.add_argument("--led-green", help="LED class name showing audio activity")
    run.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    run.add_argument("--quiet", action="store_true", help="no JSON lines on stdout")
    from .install import add_service_commands

    COMMANDS.update(add_service_commands(sub))
    return p


def overrides_from_args(a: argparse.Namespace) -> dict[str, Any]:
    """Command-line values as config overrides (None = not given)."""
    return {
        "model": a.model, "source": a.source, "realtime": a.realtime,
        "device_id": a.device_id, "state_dir": a.state_dir, "log_level": a.log_level,
        "json_events": False if a.quiet else None,
        "detection.threshold": a.threshold, "detection.threshold_list": a.threshold_list,
        "detection.window_ms": a.window_ms, "detection.suppression_ms": a.suppression_ms,
        "detection.minimum_count": a.minimum_count, "detection.latency_ms": a.latency_ms,
        "led.red": a.led_red, "led.green": a.led_green,
        "mqtt.url": a.mqtt, "mqtt.fleet": a.fleet,
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
    from .service import ServiceComponent, ServiceEnvironment, ServiceNotifier, journal_handler

    config, overrides = load_agent_config(a)
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


COMMANDS = {"run": cmd_run}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if a.debug else logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return COMMANDS[a.command](a)
    except KeywireError as exc:
        if a.debug:
            raise
        print(f"keywire-agent: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
