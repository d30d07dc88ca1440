"""Measure ASHA+TPE against PBT on one video: the same trials and iterations, several seeds.

    python sweeps/compare_schedulers.py --video demo --seeds 0 1 2 --trials 4 --max-iters 1000

Runs the sweeps one after another (two at once on a small machine slow each other down many
times), each into the same MLflow store under its own name, then prints one row per sweep and
the mean ± std per scheduler: the best trial's objective at the evaluation it is judged by (ASHA:
its best; PBT: its last, the model its schedule made) and the held-out SSIM there; like for like,
the best final model's objective (at --max-iters) and its SSIM; the iterations all trials
reached, and the wall time. Extra arguments go to every sweep.
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


def _at(history, step: int) -> float | None:
    """A metric's value at `step`, the one logged last (a PBT clone logs its steps again)."""
    found = sorted((m for m in history if m.step == step), key=lambda m: m.timestamp)
    return found[-1].value if found else None


def measure(row: dict, uri: str, video: str, max_iters: int) -> dict:
    """The sweep's result as its scheduler judges it (the best trial's value: ASHA its best
    evaluation, PBT its last) with that evaluation's SSIM; and, like for like, the best final
    model: the best objective value at iteration max_iters over the trials that reached it."""
    from lmgan.sweep import tracking
    c = tracking.client(uri)
    exp = c.get_experiment_by_name(tracking.experiment_name(video))
    parent = tracking.find_run(c, exp.experiment_id, **{tracking.SWEEP: row["sweep"], tracking.ROLE: "sweep"})
    objective = parent.data.tags["lmgan.objective"]
    best = c.get_run(parent.data.tags["lmgan.best_run_id"])
    judged = c.get_metric_history(best.info.run_id, f"best_{objective}")[-1]
    ssim = [m.value for m in c.get_metric_history(best.info.run_id, "ssim") if m.step == judged.step]
    iters, finals = 0, []
    for t in tracking.trial_runs(c, exp.experiment_id, parent.info.run_id):
        steps = [m.step for m in c.get_metric_history(t.info.run_id, "it_per_s")]
        iters += max(steps, default=0)
        value = _at(c.get_metric_history(t.info.run_id, objective), max_iters)
        if value is not None:
            finals.append((value, _at(c.get_metric_history(t.info.run_id, "ssim"), max_iters)))
    higher = parent.data.tags.get("lmgan.mode", "max") == "max"
    final = (max if higher else min)(finals, key=lambda f: f[0], default=(float("nan"), float("nan")))
    return {**row, "objective": objective, "value": judged.value, "at": judged.step,
            "ssim": ssim[-1] if ssim else float("nan"), "iters": iters,
            "final": final[0], "final_ssim": final[1] if final[1] is not None else float("nan")}


def table(rows: list[dict]) -> str:
    obj = rows[0]["objective"]
    lines = [f"| sweep | scheduler | seed | judged {obj} | at iteration | its SSIM | best final {obj} | its SSIM "
             f"| iterations reached (sum) | wall (min) |", "|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['sweep']} | {r['scheduler']} | {r['seed']} | {r['value']:.3f} | {r['at']} | {r['ssim']:.3f} "
              f"| {r['final']:.3f} | {r['final_ssim']:.3f} | {r['iters']} | {r['wall_min']:.1f} |" for r in rows]
    lines += ["", f"| scheduler | judged {obj} | its SSIM | best final {obj} | its SSIM | iterations reached "
              f"| wall (min) |", "|---|---|---|---|---|---|---|"]
    for s in dict.fromkeys(r["scheduler"] for r in rows):
        mine = [r for r in rows if r["scheduler"] == s]
        lines.append(f"| {s} | {_ms([r['value'] for r in mine])} | {_ms([r['ssim'] for r in mine])} "
                     f"| {_ms([r['final'] for r in mine])} | {_ms([r['final_ssim'] for r in mine])} "
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
    print(table([measure(r, uri, resolve(args.video).name, args.max_iters) for r in rows]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
