"""One root for a project's runs, whatever the current folder: training runs, sweeps, the MLflow
store (`mlflow.db`, `mlartifacts/`) and reports all live under it.

The root is `--runs-dir`, else $LMGAN_RUNS, else the repository's `runs/` when the current folder
is inside the checkout lmgan runs from (so `lmgan report` in `docs/` finds the sweep that
`python sweeps/search.py` wrote from the root), else `./runs`.
"""

from __future__ import annotations

import os
from pathlib import Path

from lmgan.paths import checkout

ENV = "LMGAN_RUNS"


def runs_root(option: str | os.PathLike | None = None) -> Path:
    if option:
        return Path(option)
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    repo = checkout()
    here = Path.cwd().resolve()
    if repo is not None and (here == repo or repo in here.parents):
        return repo / "runs"
    return Path("runs")


def find_run_path(path: str | os.PathLike, root: Path | None = None) -> Path:
    """A checkpoint or run folder as given, else the same name under the runs root (so a run's
    folder name, as `lmgan train` printed it, works from any folder)."""
    given = Path(path)
    if given.exists() or given.is_absolute():
        return given
    under = (root or runs_root()) / given
    return under if under.exists() else given
