"""What `pip install .` (not editable) installs: the wheel holds every module, the presets and
the sweep files (sweeps/spaces/*.yaml, sweeps/videos.yaml, as lmgan/sweeps/), and the installed
copy finds its default search space and video registry from any folder (lmgan/paths.py)."""

import json
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from support import REPO, copy_project

# Run by the installed copy, from a folder outside the checkout: what lmgan finds there.
FOUND = """
import json
from pathlib import Path
import lmgan, lmgan.paths
from lmgan.data import videos
from lmgan.runs import runs_root
from lmgan.sweep.arguments import DEFAULT_SPACE, REPO, build_parser
demo_space = videos.load_registry()["demo"]["sweep"]["space"]
print(json.dumps({"module": lmgan.__file__, "checkout": str(lmgan.paths.checkout()),
                  "space": str(DEFAULT_SPACE), "registry": str(videos.registry_path()),
                  "names": videos.known_names(), "demo_space": str(REPO / demo_space),
                  "runs": str(runs_root()), "help": build_parser().format_help()}))
"""


def test_the_package_list_names_every_package():
    """pyproject.toml lists the packages (lmgan.sweeps is the top-level sweeps/ folder, so they
    cannot be found): each folder of lmgan/ holding files is one of them."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "lmgan").rglob("*")
               if p.is_file() and "__pycache__" not in p.parts and p.suffix in (".py", ".yaml", ".html")}
    assert folders <= set(config["packages"]), sorted(folders - set(config["packages"]))
    assert config["package-dir"] == {"lmgan.sweeps": "sweeps"}


def test_a_wheel_install_has_the_sweep_files(tmp_path):
    src = copy_project(tmp_path / "src")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                            "--no-index", "-w", str(tmp_path / "dist"), str(src)],
                           cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-3000:]
    wheel, = (tmp_path / "dist").glob("lmgan-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"lmgan/sweeps/{p.relative_to(REPO / 'sweeps').as_posix()}" for p in (REPO / "sweeps").rglob("*.yaml")}
    assert {"lmgan/sweeps/spaces/default.yaml", "lmgan/sweeps/videos.yaml"} <= shipped <= names, sorted(names)
    modules = {p.relative_to(REPO).as_posix() for p in (REPO / "lmgan").rglob("*")
               if p.suffix in (".py", ".yaml", ".html") and "__pycache__" not in p.parts}
    assert modules <= names, sorted(modules - names)

    site = tmp_path / "site"
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                                "--target", str(site), str(wheel)], capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr[-3000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("LMGAN_VIDEOS", "LMGAN_RUNS")}
    r = subprocess.run([sys.executable, "-c", FOUND], cwd=elsewhere, env={**env, "PYTHONPATH": str(site)},
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout)
    assert got["module"] == str(site / "lmgan" / "__init__.py")      # the installed copy, not the checkout
    assert got["checkout"] == "None"
    assert got["space"] == str(site / "lmgan" / "sweeps" / "spaces" / "default.yaml")
    assert Path(got["space"]).read_bytes() == (REPO / "sweeps" / "spaces" / "default.yaml").read_bytes()
    assert got["registry"] == str(site / "lmgan" / "sweeps" / "videos.yaml")
    assert "demo" in got["names"] and Path(got["demo_space"]).is_file(), got["demo_space"]
    assert got["runs"] == "runs"                                      # no checkout: ./runs
    assert "default sweeps/spaces/default.yaml" in " ".join(got["help"].split())
