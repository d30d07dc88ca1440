"""Sweep overhead benchmark: `python -m lmgan.bench.sweep_overhead [--trials N] [--iters N]`.

Runs a real sweep (a local Ray or --address's cluster, Optuna, ASHA off, a SQLite MLflow store in
a scratch folder) of N short trials on a synthetic clip and prints, per trial, the time lmgan
spent training and evaluating against the time the platform took: setup (data, model, MLflow run), MLflow logging,
Tune reports with their checkpoints, and telemetry; then the sweep's wall time and what the
driver (Ray start, scheduling, Optuna, the summary) added on top of the trials.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m lmgan.bench.sweep_overhead", description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=4)
    p.add_argument("--iters", type=int, default=20, help="iterations per trial")
    p.add_argument("--eval-every", type=int, default=10)
    p.add_argument("--preset", default="tiny")
    p.add_argument("--seconds", type=float, default=8.0, help="length of the synthetic clip")
    p.add_argument("--cpus-per-trial", type=float, default=None)
    p.add_argument("--address", help="an existing Ray cluster (auto, or host:port); default: start a local one")
    p.add_argument("--keep", help="keep the scratch folder here instead of a temporary one")
    args = p.parse_args(argv)

    from lmgan.data.demo import make_demo_video
    from lmgan.sweep.driver import main as search

    root = Path(args.keep or tempfile.mkdtemp(prefix="lmgan-sweep-overhead-"))
    os.environ.setdefault("LMGAN_CACHE", str(root / "cache"))
    clip = root / "bench.mp4"
    if not clip.is_file():
        make_demo_video(clip, seconds=args.seconds)
    name = f"bench-{time.strftime('%H%M%S')}"
    cmd = ["--video", str(clip), "--preset", args.preset, "--objective", "ssim", "--trials",
           str(args.trials), "--max-iters", str(args.iters), "--grace-iters", str(args.iters),
           "--eval-every", str(args.eval_every), "--runs-dir", str(root / "runs"), "--name", name,
           "--verbose", "0"]
    if args.cpus_per_trial:
        cmd += ["--cpus-per-trial", str(args.cpus_per_trial)]
    if args.address:
        cmd += ["--address", args.address]
    t0, epoch0 = time.perf_counter(), time.time()
    rc = search(cmd)
    wall = time.perf_counter() - t0
    if rc:
        return rc
    _print(root / "runs", name, wall, epoch0, args)
    return 0


def _print(runs: Path, name: str, wall: float, epoch0: float, args) -> None:
    from lmgan.sweep import schema, tracking

    uri = tracking.default_uri(runs)
    c = tracking.client(uri)
    exp = c.get_experiment_by_name(schema.experiment_name("bench"))
    trials = [r for r in c.search_runs([exp.experiment_id], f"tags.`{schema.SWEEP}` = '{name}'")
              if r.data.tags.get(schema.ROLE) == schema.ROLE_TRIAL]
    cols = ("train", "setup", "mlflow", "tune", "telemetry")
    print(f"\n{len(trials)} trials × {args.iters} iterations ({args.preset} preset), "
          f"evaluation + report every {args.eval_every}")
    w = max([10, *(len(r.info.run_name) + 1 for r in trials)])     # run names carry the trial's values
    print(f"{'trial':<{w}}" + "".join(f"{c + ' s':>12}" for c in cols)
          + f"{'overhead':>10}{'run wall s':>12}{'gap s':>8}")
    sums = dict.fromkeys(cols, 0.0)
    walls, prev_end = 0.0, epoch0
    for r in sorted(trials, key=lambda r: r.info.start_time):
        # gap: from the previous trial's end (or the sweep's start) to this trial's MLflow run:
        # process start, imports, data and model (when trials run one at a time).
        gap = r.info.start_time / 1000 - prev_end
        prev_end = (r.info.end_time or r.info.start_time) / 1000
        m = {k: r.data.metrics.get(schema.time_metric(k), 0.0) for k in cols}
        run_wall = (r.info.end_time - r.info.start_time) / 1000 if r.info.end_time else float("nan")
        over = sum(v for k, v in m.items() if k != "train")
        for k in cols:
            sums[k] += m[k]
        walls += run_wall
        print(f"{r.info.run_name:<{w}}" + "".join(f"{m[k]:12.2f}" for k in cols)
              + f"{over / max(over + m['train'], 1e-9):10.0%}{run_wall:12.2f}{gap:8.1f}")
    over = sum(v for k, v in sums.items() if k != "train")
    print(f"{'total':<{w}}" + "".join(f"{sums[k]:12.2f}" for k in cols)
          + f"{over / max(over + sums['train'], 1e-9):10.0%}{walls:12.2f}")
    print(f"sweep wall time {wall:.1f} s; trial runs summed {walls:.1f} s; the rest is the driver "
          f"(Ray start, decoding check, MLflow store, Optuna, summary) and the gaps between trials")


if __name__ == "__main__":
    sys.exit(main())
