"""The one exception type a user sees: a one-line message, exit code 2, no traceback; and how
every lmgan command ends on it, on Ctrl-C and on an OSError (`run_command`)."""

import sys
from typing import Callable


class LmganError(Exception):
    """Bad input or an unmet precondition, phrased for the user (one line, names the problem)."""

    exit_code = 2


def first_line(exc: BaseException, limit: int | None = None) -> str:
    """An exception's first line for a one-line message (tracebacks and server dumps follow it);
    the exception's class name when it carries no text."""
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else exc.__class__.__name__)[:limit]


def os_error_line(e: OSError) -> str:
    """An OSError as lmgan's one line: the path and the system's reason in lower case
    ("runs/x/checkpoints/ckpt_0000300.pt: no space left on device"). The command line prints it
    after "lmgan: error: "; a sweep trial records it as its MLflow error (lmgan.error)."""
    where = f"{e.filename}: " if getattr(e, "filename", None) else ""
    return f"{where}{(e.strerror or first_line(e)).lower()}"


def run_command(prog: str, body: Callable[[], int], interrupted: str = "interrupted") -> int:
    """Run a command's body and end it the lmgan way: an LmganError or an OSError (a folder that
    cannot be written, a full disk: the path and why) as one line `PROG: error: ...` and its exit
    code, Ctrl-C as `PROG: <interrupted>` and 130. `lmgan` and the sweep's own entry points share it."""
    try:
        return body()
    except LmganError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: {interrupted}", file=sys.stderr)
        return 130
    except OSError as e:
        print(f"{prog}: error: {os_error_line(e)}", file=sys.stderr)
        return 2
