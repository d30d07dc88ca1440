"""Where lmgan's own files are: the source checkout it runs from (if any), and the sweep files
that ship with it (sweeps/spaces/*.yaml, sweeps/videos.yaml).

In a checkout (an editable install, or the repository on sys.path) those are the top-level
`sweeps/` folder, where users look for them and edit them. A wheel carries the same files as the
package `lmgan.sweeps` (pyproject.toml maps it onto `sweeps/`), installed as `lmgan/sweeps/`
beside this module. The rest of lmgan asks these functions, never `__file__`. (Not
importlib.resources: setuptools' editable install cannot import `lmgan.sweeps`, a namespace
package outside lmgan/; a checkout is found from here instead.)
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def checkout() -> Path | None:
    """The repository lmgan runs from (the folder of pyproject.toml, lmgan/ and sweeps/), or
    None when lmgan is an installed copy (a non-editable `pip install`)."""
    root = PACKAGE.parent
    if (root / "pyproject.toml").is_file() and (root / "sweeps").is_dir():
        return root
    return None


def sweep_files() -> Path:
    """The folder of the shipped sweep files: `spaces/` (search spaces) and `videos.yaml` (the
    named-video registry). The checkout's `sweeps/`, else the installed copy's `lmgan/sweeps/`."""
    root = checkout()
    return root / "sweeps" if root is not None else PACKAGE / "sweeps"


def sweep_base() -> Path:
    """The folder the registry's relative paths start from (videos.yaml says
    `space: sweeps/spaces/demo.yaml`): the one holding `sweep_files()`."""
    return sweep_files().parent


def default_space() -> Path:
    """The sweep's default search space (sweeps/spaces/default.yaml, shipped)."""
    return sweep_files() / "spaces" / "default.yaml"
