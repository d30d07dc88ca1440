"""Measure ASHA+TPE against PBT on one video: the same trials and iterations, several seeds.

    python sweeps/compare_schedulers.py --video demo --seeds 0 1 2 --trials 4 --max-iters 1000

Runs the sweeps one after another (two at once on a small machine slow each other down many
times), each into the same MLflow store under its own name, then prints one row per sweep and
the mean ± std per scheduler: the best trial's objective at the evaluation it is judged by (ASHA:
its best; PBT: its last, the model its schedule made), the held-out SSIM at that evaluation, the
iterations all trials trained, and the wall time. Extra arguments go to every sweep.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_sweeps(args, extra: list[str]) -> list[dict]:
    rows = []
    for seed in args.seeds:
        for scheduler in args.schedulers:
            name = f"{args.prefix}-{scheduler}-s{seed}"
            cmd = [sys.executable, str(REPO / "sweeps" / "search.py"), "--video", args.video, "--name", name,
                   "--scheduler", scheduler, "--seed", str(seed), "--trials", str(args.trials),
                   "--max-iters", str(args.max_iters), *extra]
            print(f"compare: {' '.join(cmd[1:])}", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            done = subprocess.run(cmd, stdout=subprocess.DEVNULL)
            rows.append({"sweep": name, "scheduler": scheduler, "seed": seed, "rc": done.returncode,
                         "wall_min": (time.perf_counter() - t0) / 60})
    return rows


def measure(row: dict, uri: str, video: str) -> dict:
    """The sweep's best trial: its judged objective value, the SSIM of that evaluation, and the
    iterations all its trials trained (from the MLflow store)."""
    from lmgan.sweep import tracking
    c = tracking.client(uri)
    exp = c.get_experiment_by_name(tracking.experiment_name(video))
    parent = tracking.find_run(c, exp.experiment_id, **{tracking.SWEEP: row["sweep"], tracking.ROLE: "sweep"})
    objective = parent.data.tags["lmgan.objective"]
    best = c.get_run(parent.data.tags["lmgan.best_run_id"])
    judged = c.get_metric_history(best.info.run_id, f"best_{objective}")[-1]
    ssim = [m.value for m in c.get_metric_history(best.info.run_id, "ssim") if m.step == judged.step]
    iters = 0
    for t in tracking.trial_runs(c, exp.experiment_id, parent.info.run_id):
        steps = [m.step for m in c.get_metric_history(t.info.run_id, "it_per_s")]
        iters += max(steps, default=0)
    return {**row, "objective": objective, "value": judged.value, "at": judged.step,
            "ssim": ssim[-1] if ssim else float("nan"), "iters": iters}


def table(rows: list[dict]) -> str:
    obj = rows[0]["objective"]
    lines = [f"| sweep | scheduler | seed | best {obj} | at iteration | held-out SSIM | iterations reached (sum) | wall (min) |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['sweep']} | {r['scheduler']} | {r['seed']} | {r['value']:.3f} | {r['at']} | {r['ssim']:.3f} "
              f"| {r['iters']} | {r['wall_min']:.1f} |" for r in rows]
    lines += ["", f"| scheduler | {obj} (mean ± std) | SSIM (mean ± std) | iterations reached (mean) | wall (mean, min) |",
              "|---|---|---|---|---|"]
    for s in dict.fromkeys(r["scheduler"] for r in rows):
        mine = [r for r in rows if r["scheduler"] == s]
        lines.append(f"| {s} | {_ms([r['value'] for r in mine])} | {_ms([r['ssim'] for r in mine])} "
                     f"| {statistics.mean(r['iters'] for r in mine):.0f} "
                     f"| {statistics.mean(r['wall_min'] for r in mine):.1f} |")
    return "\n".join(lines)


def _ms(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {sd:.3f}"


def main(argv=None) -> int:
    from lmgan.runs import runs_root
    from lmgan.sweep import tracking

    p = argparse.ArgumentParser(prog="sweeps/compare_schedulers.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--video", default="demo")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--schedulers", nargs="+", default=["asha", "pbt"], choices=("asha", "pbt"))
    p.add_argument("--trials", type=int, default=4)
    p.add_argument("--max-iters", type=int, default=1000)
    p.add_argument("--prefix", default=time.strftime("cmp-%Y%m%d-%H%M%S"), help="sweep names' prefix")
    p.add_argument("--only-report", action="store_true", help="measure the sweeps --prefix already ran")
    args, extra = p.parse_known_args(argv)
    if args.only_report:
        rows = [{"sweep": f"{args.prefix}-{s}-s{seed}", "scheduler": s, "seed": seed, "rc": 0, "wall_min": float("nan")}
                for seed in args.seeds for s in args.schedulers]
    else:
        rows = run_sweeps(args, extra)
    failed = [r["sweep"] for r in rows if r["rc"] != 0]
    if failed:
        print(f"compare: error: sweeps failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    runs_dir = next((extra[i + 1] for i, a in enumerate(extra[:-1]) if a == "--runs-dir"), None)
    uri = tracking.default_uri(runs_root(runs_dir))
    from lmgan.data.videos import resolve
    print(table([measure(r, uri, resolve(args.video).name) for r in rows]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
