"""`keywire`: the host command line (Typer).

Commands are thin: options in, one engine call, `KeywireError` -> one line on stderr and its
exit code (traceback only with --debug). Each area registers its commands from its own
module; TensorFlow is imported only inside the commands that train or convert.
"""
from __future__ import annotations

import sys
from typing import Optional

import typer

from keywire.agent.errors import KeywireError
from keywire.protocol.text import printable

app = typer.Typer(name="keywire", help="keywire: keyword spotting for fleets of small devices.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)

_state = {"debug": False}


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show tracebacks.", envvar="KEYWIRE_DEBUG")) -> None:
    _state["debug"] = debug


def fail(exc: KeywireError) -> "typer.Exit":
    """Report a domain error as one line and return the Exit to raise."""
    typer.echo(f"keywire: error: {printable(exc, 1000)}", err=True)
    return typer.Exit(exc.exit_code)


def debug_enabled() -> bool:
    return _state["debug"]


def _register() -> None:
    """Each area's module adds its commands to `app`."""
    from . import cmd_model

    cmd_model.register(app)
    for name in ("cmd_dataset", "cmd_train", "cmd_evaluate_stream", "cmd_fleet", "cmd_board", "cmd_record"):
        try:
            module = __import__(f"keywire.host.{name}", fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name != f"keywire.host.{name}":
                raise
            continue
        module.register(app)


_register()


def main(argv: Optional[list[str]] = None) -> int:
    """Console-script entry: click handles usage errors (exit 2); domain errors exit here."""
    try:
        app(args=argv)
    except KeywireError as exc:
        if _state["debug"]:
            raise
        typer.echo(f"keywire: error: {printable(exc, 1000)}", err=True)
        return exc.exit_code
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
