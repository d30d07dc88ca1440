"""`python -m lmgan.bench.schedulers`: ASHA+TPE against PBT on one video, the same trials and
iterations, several seeds.

    python -m lmgan.bench.schedulers --video demo --seeds 0 1 2 --trials 4 --max-iters 200 \\
        --eval-every 50 --grace-iters 50 --runs-dir runs/compare

Runs the sweeps one after another (two at once on a small machine slow each other down many
times), each into the same MLflow store under its own name, then prints one row per sweep and
the mean ± std per scheduler: the best trial's objective at the evaluation it is judged by
(lmgan.sweep.outcome.judged, the rule the sweep's own summary uses: ASHA a trial's best, PBT its
last, the model its schedule made) and the held-out SSIM there; like for like, the best final
model's objective (at --max-iters) and its SSIM; the iterations all trials reached, and the wall
time. The options under "passed to every sweep" are the sweep command's own.
"""

from __future__ import annotations

import math
import statistics
import subprocess
import sys
import time

from lmgan.arguments import OneLineParser
from lmgan.errors import LmganError

PROG = "python -m lmgan.bench.schedulers"

# The sweep command's options this benchmark passes on unchanged: (option, its help here).
PASSED = (
    ("--eval-every", int, "iterations between evaluations, reports and checkpoints (default: the "
                          "sweep's, the preset's eval_every capped at --max-iters)"),
    ("--grace-iters", int, "iterations before a trial is judged: ASHA's first stop, PBT's interval "
                           "between exploits (default: the sweep's, 5 × --eval-every capped at --max-iters)"),
    ("--runs-dir", str, "where the sweeps and their MLflow store live, and where the table is read "
                        "from (default: the sweep's: $LMGAN_RUNS, else the checkout's runs/, else ./runs)"),
    ("--preset", str, "lmgan preset for the fixed settings (default: the video's)"),
    ("--objective", str, "the one metric the sweeps optimise (default: the sweep's for the video)"),
    ("--cpus-per-trial", float, "CPUs per trial (default: the sweep's, all CPUs of the smallest node "
                                "without GPUs)"),
    ("--address", str, "an existing Ray cluster (auto, or host:port) for every sweep (default: each "
                       "sweep starts a local one)"),
)


def build_parser() -> OneLineParser:
    p = OneLineParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--video", default="demo", help="a name from sweeps/videos.yaml or a video file")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="one sweep per scheduler for each seed")
    p.add_argument("--schedulers", nargs="+", default=["asha", "pbt"], choices=("asha", "pbt"),
                   help="the schedulers to compare")
    p.add_argument("--trials", type=int, default=4, help="trials per sweep")
    p.add_argument("--max-iters", type=int, default=1000, help="iterations of a trial no scheduler stops, "
                   "and where the best final models are compared")
    p.add_argument("--prefix", default=time.strftime("cmp-%Y%m%d-%H%M%S"),
                   help="sweep names' prefix: <prefix>-<scheduler>-s<seed> (default: cmp-<date>-<time>)")
    p.add_argument("--only-report", action="store_true", help="measure the sweeps --prefix already ran "
                   "(default: off, run them first)")
    passed = p.add_argument_group("passed to every sweep")
    for option, kind, text in PASSED:
        passed.add_argument(option, type=kind, help=text)
    return p


def sweep_options(args) -> list[str]:
    """The PASSED options given on this command line, as the sweep command takes them."""
    out = []
    for option, _, _ in PASSED:
        value = getattr(args, option[2:].replace("-", "_"))
        if value is not None:
            out += [option, str(value)]
    return out


def run_sweeps(args) -> list[dict]:
    rows = []
    for seed in args.seeds:
        for scheduler in args.schedulers:
            name = f"{args.prefix}-{scheduler}-s{seed}"
            cmd = [sys.executable, "-m", "lmgan.sweep", "--video", args.video, "--name", name,
                   "--scheduler", scheduler, "--seed", str(seed), "--trials", str(args.trials),
                   "--max-iters", str(args.max_iters), *sweep_options(args)]
            print(f"compare: {' '.join(cmd[1:])}", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            done = subprocess.run(cmd, stdout=subprocess.DEVNULL)
            rows.append({"sweep": name, "scheduler": scheduler, "seed": seed, "rc": done.returncode,
                         "wall_min": (time.perf_counter() - t0) / 60})
    return rows


def _points(c, run_id: str, key: str) -> list[tuple[int, float]]:
    """A metric's (iteration, value) in report order (MLflow's timestamps), as `judged` takes them."""
    return [(m.step, m.value) for m in sorted(c.get_metric_history(run_id, key), key=lambda m: m.timestamp)]


def measure(row: dict, uri: str, video: str, max_iters: int) -> dict:
    """The sweep's result as its scheduler judges it (the best trial's judged value, and the SSIM
    of that evaluation) and, like for like, the best final model: the best objective value at
    iteration max_iters over the trials that reached it."""
    from lmgan.sweep import outcome, schema, tracking

    c = tracking.client(uri)
    exp = c.get_experiment_by_name(schema.experiment_name(video))
    parent = tracking.find_run(c, exp.experiment_id, **{schema.SWEEP: row["sweep"], schema.ROLE: schema.ROLE_SWEEP})
    goals = schema.Objectives.from_tags(parent.data.tags, parent.data.params)
    objective, mode, sign = goals.objective, goals.mode, 1 if goals.mode == "max" else -1
    judged, iters, finals = None, 0, []
    for t in tracking.trial_runs(c, exp.experiment_id, parent.info.run_id):
        points = _points(c, t.info.run_id, objective)
        ssim = dict(_points(c, t.info.run_id, "ssim"))
        iters += max((step for step, _ in _points(c, t.info.run_id, schema.IT_PER_S)), default=0)
        mine = outcome.judged(points, mode, goals.judged_by_last)
        if mine is not None and (judged is None or sign * mine[0] > sign * judged[0]):
            judged = (*mine, ssim.get(mine[1]))
        final = dict(points).get(max_iters)
        if final is not None and math.isfinite(final):
            finals.append((final, ssim.get(max_iters)))
    value, at, judged_ssim = judged or (math.nan, None, None)
    final = (max if mode == "max" else min)(finals, key=lambda f: f[0], default=(math.nan, None))
    return {**row, "objective": objective, "value": value, "at": at,
            "ssim": math.nan if judged_ssim is None else judged_ssim, "iters": iters,
            "final": final[0], "final_ssim": math.nan if final[1] is None else final[1]}


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
    try:
        args = build_parser().parse_args(argv)
        from lmgan.data.videos import resolve
        from lmgan.runs import runs_root
        from lmgan.sweep import tracking

        video = resolve(args.video).name      # an unknown video fails here, before any sweep
        if args.only_report:
            rows = [{"sweep": f"{args.prefix}-{s}-s{seed}", "scheduler": s, "seed": seed, "rc": 0,
                     "wall_min": math.nan} for seed in args.seeds for s in args.schedulers]
        else:
            rows = run_sweeps(args)
        failed = [r["sweep"] for r in rows if r["rc"] != 0]
        if failed:
            print(f"compare: error: sweeps failed: {', '.join(failed)}", file=sys.stderr)
            return 1
        uri = tracking.default_uri(runs_root(args.runs_dir))
        print(table([measure(r, uri, video, args.max_iters) for r in rows]))
        return 0
    except LmganError as e:
        print(f"compare: error: {str(e).removeprefix(PROG + ': ')}", file=sys.stderr)   # a usage error names the parser
        return e.exit_code


if __name__ == "__main__":
    sys.exit(main())
