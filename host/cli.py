"""`keywire`: the host command line (Typer).

Commands are thin: options in, one engine call. They raise; `main` is the one place where an
expected failure (`KeywireError`, a file that cannot be read or written, a malformed TOML
file) becomes one line on stderr and an exit code from `keywire.protocol.errors.ExitCode`
(the traceback instead with --debug, for every command). Each area registers its commands
from its own module; TensorFlow is imported only inside the commands that train or convert.
"""
from __future__ import annotations

import logging
import sys
from typing import Optional

import typer

from keywire.protocol.errors import ExitCode, KeywireError, describe_os_error
from keywire.protocol.text import printable

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

app = typer.Typer(name="keywire", help="keywire: keyword spotting for fleets of small devices.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=True)

_state = {"debug": False}


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show tracebacks.", envvar="KEYWIRE_DEBUG")) -> None:
    _state["debug"] = debug
    if debug:  # e.g. the TFLite runtime's own INFO lines, which keywire.agent.interpreter hides otherwise
        logging.getLogger("keywire").setLevel(logging.DEBUG)


def debug_enabled() -> bool:
    return _state["debug"]


def _register() -> None:
    """Each area's module adds its commands to `app`."""
    from . import cmd_model

    cmd_model.register(app)
    for name in ("cmd_dataset", "cmd_train", "cmd_evaluate_stream", "cmd_fleet", "cmd_board", "cmd_record",
                 "cmd_classify", "cmd_profile", "cmd_wakeword"):
        try:
            module = __import__(f"keywire.host.{name}", fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name != f"keywire.host.{name}":
                raise
            continue
        module.register(app)


_register()


def error_line(exc: BaseException) -> tuple[str, int]:
    """The one line and exit code for an expected failure."""
    if isinstance(exc, KeywireError):
        return str(exc), int(exc.exit_code)
    if isinstance(exc, OSError):
        return describe_os_error(exc), ExitCode.FILE
    return f"invalid TOML: {exc}", ExitCode.CONFIG


def main(argv: Optional[list[str]] = None) -> int:
    """Console-script entry: click handles usage errors (exit 2); every other expected failure
    is reported here, once for all commands."""
    try:
        app(args=argv)
    except (KeywireError, OSError, tomllib.TOMLDecodeError) as exc:
        if _state["debug"]:
            raise
        message, code = error_line(exc)
        typer.echo(f"keywire: error: {printable(message, 1000)}", err=True)
        return code
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
