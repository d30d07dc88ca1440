"""The sweep command's options: one parser for `python sweeps/search.py`, `python -m lmgan.sweep`
and `lmgan sweep`, every default shown in its help."""

from __future__ import annotations

import argparse

from lmgan.arguments import OneLineParser
from lmgan.paths import default_space, sweep_base
from lmgan.sweep.plan import DEFAULTS, RUN_DEFAULTS    # the plan resolves the defaults

REPO = sweep_base()     # the checkout, else the installed package: what holds sweeps/ (lmgan/paths.py)
DEFAULT_SPACE = default_space()
SCHEDULERS = ("asha", "pbt", "fifo")


DESCRIPTION = ("A hyperparameter sweep of lmgan on one video: Optuna proposes, ASHA stops weak trials "
               "early, Ray Tune runs the trials on this machine or a cluster, and each trial is an "
               "MLflow run with its metrics, sample videos and best checkpoint.")


def build_parser() -> argparse.ArgumentParser:
    """`sweeps/search.py`'s own parser (`lmgan sweep` adds the same arguments to its own)."""
    p = OneLineParser(prog="sweeps/search.py", description=DESCRIPTION)
    add_sweep_arguments(p)
    return p


def demo_budget() -> dict:
    """The demo's preset, and its max_iters, eval_every and grace_iters as the plan derives them
    (plan.make_plan): its registry entry's `sweep:` values, else its preset's iters, eval_every
    (at most max_iters) and five evaluations (at most max_iters). For help texts: never an error."""
    from lmgan.config import build_config
    from lmgan.data.videos import demo_entry, sweep_default
    from lmgan.errors import LmganError

    try:
        preset = demo_entry().get("preset") or "demo"
        base = build_config(preset)
    except LmganError:          # a broken registry or preset is reported when the sweep runs
        from lmgan.config import Config
        preset, base = "demo", Config()
    iters, every = base.iters, base.eval_every
    max_iters = sweep_default("max_iters", None) or iters
    eval_every = sweep_default("eval_every", None) or min(every, max_iters)
    grace = sweep_default("grace_iters", None) or min(max_iters, 5 * eval_every)
    return {"preset": preset, "max_iters": max_iters, "eval_every": eval_every, "grace_iters": grace}


def add_sweep_arguments(p: argparse.ArgumentParser) -> None:
    from lmgan.data.videos import names_for_help, sweep_default
    from lmgan.metrics import REGISTRY

    demo = demo_budget()
    demo_preset = demo["preset"]
    p.add_argument("--video", help=f"a name from sweeps/videos.yaml ({names_for_help()}) or a video file "
                   "(no default: required, except with --resume)")
    p.add_argument("--space", help=f"search-space YAML (default {DEFAULT_SPACE.relative_to(REPO)}; "
                   f"the demo's: {sweep_default('space', DEFAULT_SPACE.relative_to(REPO))})")
    p.add_argument("--trials", type=int, help=f"trials to run (default {DEFAULTS['trials']}; "
                   f"the demo's: {sweep_default('trials', DEFAULTS['trials'])})")
    p.add_argument("--objective", help=f"metric the search optimises (default {DEFAULTS['objective']}, "
                   f"the demo's {sweep_default('objective', DEFAULTS['objective'])}; any of {', '.join(REGISTRY)}); "
                   "two or three, comma-separated (fvd,av_align), for a multi-objective search whose "
                   "result is the Pareto front")
    p.add_argument("--scheduler", choices=SCHEDULERS, help="asha: Optuna proposes, ASHA stops weak trials "
                   "early; pbt: population-based training (asynchronous: no trial waits for the others), "
                   "a weak trial continues from a strong one's checkpoint with mutated learning rates and "
                   "loss weights; fifo: every trial runs to --max-iters (default: asha for one objective; "
                   "fifo, the only choice, for several)")
    p.add_argument("--max-iters", type=int, help="iterations of a trial that is never stopped "
                   f"(default: the preset's iters; the demo's: {demo['max_iters']})")
    p.add_argument("--grace-iters", type=int, help="iterations before a trial is judged: ASHA's first "
                   "stop, PBT's interval between exploits (default: 5 evaluations, 5 × --eval-every, "
                   f"at most --max-iters; the demo's: {demo['grace_iters']}, "
                   f"{demo['grace_iters'] // demo['eval_every']} evaluations)")
    p.add_argument("--eval-every", type=int, help="iterations between evaluations (= reports, "
                   "checkpoints and samples) (default: the preset's eval_every, at most --max-iters; "
                   f"the demo's: {demo['eval_every']})")
    p.add_argument("--gpus-per-trial", type=float, help="GPUs per trial, fractions allowed "
                   "(default where the cluster has GPUs: 0.25 up to 64², 0.5 at 128², 1 above; "
                   "else 0)")
    p.add_argument("--cpus-per-trial", type=float, help="CPUs per trial (default 2 with GPUs, "
                   "else all CPUs of the smallest node)")
    p.add_argument("--seed", type=int, default=0, help="seed of the Optuna sampler and of the trials")
    p.add_argument("--address", help="an existing Ray cluster (auto, or host:port); default: "
                   "start a local one")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: sqlite:///<runs-dir>/mlflow.db, "
                   "a SQLite store)")
    p.add_argument("--optuna-storage", metavar="URL", help="also keep the Optuna study in this "
                   "database (sqlite:///... or postgresql://...) for optuna-dashboard (default: none)")
    p.add_argument("--name", help="sweep name (default <video>-<date>-<time>)")
    p.add_argument("--resume", action="store_true", help="continue the sweep --name after the "
                   "driver was stopped or killed")
    p.add_argument("--preset", help="lmgan preset for the fixed settings (default: the video's; "
                   f"the demo's: {demo_preset})")
    p.add_argument("--no-baseline", action="store_true", help="do not run the preset's own values of the "
                   "searched keys as the first trial (the paper's, for the paper presets)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="fix a model setting for every trial, e.g. image_size=64; repeatable "
                   "(default: none)")
    p.add_argument("--runs-dir", help="where sweeps and the MLflow store live (default: $LMGAN_RUNS, "
                   "else the repository's runs/ inside the checkout, else ./runs)")
    p.add_argument("--storage", help="Tune storage for checkpoints (default <runs-dir>/sweeps; "
                   "on a multi-node cluster a shared path or s3://bucket/prefix)")
    p.add_argument("--max-failures", type=int, help="restarts of a failed trial from its last "
                   f"checkpoint (default {RUN_DEFAULTS['max_failures']}; --resume keeps the sweep's)")
    p.add_argument("--verbose", type=int, nargs="?", const=1, choices=(0, 1, 2),
                   help=f"also Tune's own status tables (2: and its per-result lines) (default "
                   f"{RUN_DEFAULTS['verbose']}; --resume keeps the sweep's)")
    p.add_argument("--dry-run", action="store_true", help="print the plan (trials, space, resources per "
                   "trial, scheduler, tracking URI, pretrained weights) and the estimated time, then "
                   "exit: no store, no sweep folder, no trial (default: off)")
