"""One error tree. Every message says what went wrong and what to do about it.

Exit codes (README): 0 passed, 1 verdict failed, 2 bad input, 3 platform/fault error,
130 interrupted (faults reverted first).
"""

from __future__ import annotations

EXIT_PASSED = 0
EXIT_VERDICT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_PLATFORM = 3
# The load generator fell behind: the figures describe the machine, not the mesh.
EXIT_INCONCLUSIVE = 4
EXIT_INTERRUPTED = 130
ECHO_CHARS = 40


def echo(value: object, limit: int = ECHO_CHARS) -> str:
    """A user's value as messages quote it: repr, cut to `limit` characters with its length, so a
    300-character name or a pasted blob never floods the terminal (or a log) whole."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) <= limit:
        return repr(value)
    return f"{text[:limit]!r}… ({len(text)} characters)"


class DrillError(Exception):
    """Base of every error the tool raises on purpose."""

    exit_code = EXIT_PLATFORM

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  fix: {self.hint}"
        return self.message


class ConfigError(DrillError):
    """Bad input: a file, a field or a flag the user can fix."""

    exit_code = EXIT_BAD_INPUT

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        field: str | None = None,
        line: int | None = None,
        hint: str | None = None,
    ) -> None:
        where = ""
        if source:
            where = source + (f":{line}" if line else "")
        if field:
            where = f"{where} [{field}]" if where else f"[{field}]"
        super().__init__(f"{where}: {message}" if where else message, hint=hint)
        self.reason = message  # without the file:line [field] prefix, for callers that say where themselves
        self.source = source
        self.field = field
        self.line = line


class PlatformError(DrillError):
    """The fleet could not be brought up, inspected or torn down."""


class StateDamaged(PlatformError):
    """A platform's state file is unreadable, of the wrong shape, or missing while its processes run."""


class EnvoyNotFound(PlatformError):
    """No runnable Envoy binary."""


class PortInUse(PlatformError):
    """A port the sandbox needs is taken by another process."""


class FaultError(DrillError):
    """A fault could not be injected or reverted."""


class Interrupted(DrillError):
    """The user or a supervisor stopped the drill; faults were reverted first."""

    exit_code = EXIT_INTERRUPTED
