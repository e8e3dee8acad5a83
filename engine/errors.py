"""The errors a person can fix: raised anywhere, printed by the CLI and the web UI as the message alone (exit 2),
never as a traceback. Both live here, below every other module, so any module can raise them without importing
the one that validates arguments."""
from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix. The CLI prints str(e) and exits 2: no traceback."""


class ConfigError(UserError, ValueError):
    """A configuration problem; str() is the whole message, `field` the argument it names (the UI marks it)."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field
