"""The one exception type a user sees: a one-line message, exit code 2, no traceback."""


class LmganError(Exception):
    """Bad input or an unmet precondition, phrased for the user (one line, names the problem)."""

    exit_code = 2


def first_line(exc: BaseException, limit: int | None = None) -> str:
    """An exception's first line for a one-line message (tracebacks and server dumps follow it);
    the exception's class name when it carries no text."""
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else exc.__class__.__name__)[:limit]
