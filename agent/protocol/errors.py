"""Domain errors and the one table of exit codes.

Engines raise these; only the CLI layers (`keywire`, `keywire-agent`) turn them into one line
on stderr and the exit code below. Each code means one kind of failure (README lists them).
"""
from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Process exit codes of both CLIs; each names one kind of failure."""

    OK = 0
    ERROR = 1            # any other expected failure (a `KeywireError` without a narrower kind)
    CONFIG = 2           # bad option, config file, recipe or setting value (click usage errors too)
    MODEL = 3            # model file unreadable, not TFLite, or inconsistent with its parameters
    AUDIO = 4            # audio source or WAV file unusable
    FLEET = 5            # broker, push, signature or remote command failed
    DOWNLOAD = 6         # a dataset download or its checksum failed
    SPEECH_ENGINE = 7    # the text-to-speech engine is missing or failed
    SERVICE = 8          # installing or controlling the systemd service failed
    BOARD = 9            # the BRD2601 board link or its protocol failed
    FILE = 10            # a file or directory cannot be read or written (permissions, not a directory)
    DEVICES_FAILED = 11  # `keywire push` / `fleet command` ran, but a device refused or did not finish
    INTERRUPTED = 130    # Ctrl-C


class KeywireError(Exception):
    """Base of every error keywire reports to a user as one line."""

    exit_code: int = ExitCode.ERROR


class ConfigError(KeywireError):
    """Configuration (CLI options, TOML file, recipe, remote setting) names an invalid value."""

    exit_code = ExitCode.CONFIG


class ModelError(KeywireError):
    """A model file is unreadable, not TFLite, or inconsistent with its parameters."""

    exit_code = ExitCode.MODEL


class ParamsError(ModelError):
    """Embedded SL_PARAMSv1 parameters are missing, corrupt or invalid."""


class AudioError(KeywireError):
    """An audio source or WAV file cannot be used (format, missing device)."""

    exit_code = ExitCode.AUDIO


class FleetError(KeywireError):
    """The broker, a transfer or a fleet operation failed."""

    exit_code = ExitCode.FLEET


class MessageError(FleetError):
    """A message on the wire is not valid JSON of the expected schema."""


class SignatureError(FleetError):
    """A manifest is unsigned, signed by an untrusted key, or altered after signing."""


class ModelRejected(FleetError):
    """A pushed model was refused by a device (reason in the message)."""


class FileAccessError(KeywireError):
    """A file or directory named by the user cannot be read or written (or is in use)."""

    exit_code = ExitCode.FILE


def describe_os_error(exc: OSError) -> str:
    """One line for an `OSError` (`path: reason`), without the errno prefix."""
    name = exc.filename if exc.filename is not None else ""
    reason = exc.strerror or str(exc)
    return f"{name}: {reason}" if name else reason


def file_error(exc: OSError, error: type[KeywireError], what: str, path: object) -> KeywireError:
    """The one-line domain error for a file that cannot be read; `what` names its role
    ("audio file", "model file", "config file") so the user knows which argument is wrong."""
    if isinstance(exc, FileNotFoundError):
        return error(f"{what} not found: {path}")
    if isinstance(exc, IsADirectoryError):
        return error(f"{what} {path} is a directory")
    return error(f"cannot read {what} {path}: {exc.strerror or exc}")
