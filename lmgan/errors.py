"""The one exception type a user sees: a one-line message, exit code 2, no traceback."""


class LmganError(Exception):
    """Bad input or an unmet precondition, phrased for the user (one line, names the problem)."""

    exit_code = 2
