"""Domain errors. Engines raise these; only the CLI layers turn them into exit codes."""
from __future__ import annotations


class KeywireError(Exception):
    """Base of every error keywire reports to a user as one line."""

    exit_code = 1


class ModelError(KeywireError):
    """A model file is unreadable, not TFLite, or inconsistent with its parameters."""

    exit_code = 3


class ParamsError(ModelError):
    """Embedded SL_PARAMSv1 parameters are missing, corrupt or invalid."""


class AudioError(KeywireError):
    """An audio source or WAV file cannot be used (format, missing device)."""

    exit_code = 4


class ConfigError(KeywireError):
    """Configuration (CLI options, TOML file, recipe) names an invalid value."""

    exit_code = 2
