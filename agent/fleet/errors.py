"""Fleet errors: all `KeywireError`s so CLIs report them as one line."""
from __future__ import annotations

from ..errors import KeywireError


class FleetError(KeywireError):
    """The broker, a transfer or a fleet operation failed."""

    exit_code = 5


class MessageError(FleetError):
    """A message on the wire is not valid JSON of the expected schema."""


class SignatureError(FleetError):
    """A manifest is unsigned, signed by an untrusted key, or altered after signing."""


class ModelRejected(FleetError):
    """A pushed model was refused by a device (reason in the message)."""
