"""`python -m lmgan.bench.listen`: time to listen. How long the demo model trains before its
held-out frames follow the sound.

It trains a preset (default `demo`, its `iters`) on the demo clip from scratch and, every
`--every` iterations, generates the held-out part as the run's evaluations do and reads it
(lmgan.demo_check). It prints one line per target: the iteration and the training wall time
(evaluation excluded) at which held-out `motion_corr` first reached 0.3 and 0.5, the disc was
first drawn in its colour in 90 % of frames with every hue band at 80 %, and the bar's height
first followed the real one's at r 0.6; "not reached" with the best value seen otherwise. Nothing
is kept: the run lives in a scratch folder. `--set` changes the preset; each `--compare` adds
a run with other settings after the first, in the same process, so two settings are timed on
the machine in the same state.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

from lmgan.demo_check import TARGETS as CHECK

# (what is printed, the figure read (lmgan.demo_check.DemoFigures), its threshold); all but the
# first are the demo check's own targets
TARGETS = (
    ("motion_corr >= 0.3", "motion_corr", 0.3),
    (f"motion_corr >= {CHECK['motion_corr']}", "motion_corr", CHECK["motion_corr"]),
    (f"disc in colour >= {100 * CHECK['disc_in_colour']:.0f} %, every hue band >= "
     f"{100 * CHECK['hue_band_min']:.0f} %", "disc", 1.0),
    (f"bar height r >= {CHECK['bar_r']}", "bar_r", CHECK["bar_r"]),
)


def _value(fig, key: str) -> float:
    if key == "disc":       # the weaker of the two shares, each against its own threshold: >= 1 passes
        return min(fig.disc_in_colour / CHECK["disc_in_colour"], fig.hue_band_min / CHECK["hue_band_min"])
    return getattr(fig, key)


def _best(key: str, reading: dict) -> str:
    """How close a target that was not reached came, in its own figures."""
    if not reading:
        return "no reading"
    if key == "disc":
        return (f"{100 * reading['disc_in_colour']:.0f} % in colour, worst band "
                f"{100 * reading['hue_band_min']:.0f} %, at {reading['iteration']}")
    return f"{reading[key]:.3f} at {reading['iteration']}"


def time_to_listen(sets: list[str], preset: str, every: int, iters: int | None, video: str | None = None,
                   progress: bool = True) -> dict:
    """Train and read every `every` iterations; {target: {"iteration", "train_s"} or {"best"}}."""
    import torch

    from lmgan.data.videos import DEMO, resolve
    from lmgan.demo_check import figures, heldout_frames
    from lmgan.training.run import open_run

    video = resolve(video or DEMO)
    cfg = video.config(preset, None, list(sets) + ([f"iters={iters}"] if iters else []))
    found: dict[str, dict] = {}
    best = {name: float("-inf") for name, *_ in TARGETS}
    best_at: dict[str, dict] = {}          # the reading where each target came closest
    train_s, curve = 0.0, []
    with tempfile.TemporaryDirectory(prefix="lmgan-listen-") as scratch:
        trainer = open_run(scratch, cfg, video.path, progress=False)
        while trainer.iteration < cfg.iters and len(found) < len(TARGETS):
            t0 = time.perf_counter()
            for _ in range(min(every, cfg.iters - trainer.iteration)):
                trainer.step()
            if trainer.device.type == "cuda":
                torch.cuda.synchronize(trainer.device)     # the clock reads finished work
            train_s += time.perf_counter() - t0
            fig = figures(*heldout_frames(trainer.eval_model, trainer.data, cfg, trainer.device))
            curve.append({"iteration": trainer.iteration, "train_s": round(train_s, 1),
                          "motion_corr": round(fig.motion_corr, 3), "disc_in_colour": round(fig.disc_in_colour, 3),
                          "hue_band_min": round(fig.hue_band_min, 3), "bar_r": round(fig.bar_r, 3)})
            for name, key, threshold in TARGETS:
                v = _value(fig, key)
                if v > best[name]:
                    best[name] = v
                    best_at[name] = curve[-1]
                if name not in found and v >= threshold:
                    found[name] = {"iteration": trainer.iteration, "train_s": round(train_s, 1)}
            if progress:
                c = curve[-1]
                print(f"  {c['iteration']:5d} it  {train_s:6.0f} s  motion_corr {c['motion_corr']:.3f}  "
                      f"disc {100 * c['disc_in_colour']:.0f} % (worst band {100 * c['hue_band_min']:.0f} %)  "
                      f"bar r {c['bar_r']:.2f}", file=sys.stderr, flush=True)
    return {"preset": preset, "sets": list(sets), "iters": cfg.iters, "every": every,
            "it_per_s": round(curve[-1]["iteration"] / max(train_s, 1e-9), 2) if curve else None,
            "targets": {name: found.get(name, {"best": _best(key, best_at.get(name, {}))}) for name, key, _ in TARGETS},
            "curve": curve}


def lines(result: dict) -> list[str]:
    out = [f"{result['preset']} {' '.join(result['sets'])}".strip() + f" ({result['it_per_s']} it/s):"]
    for name, hit in result["targets"].items():
        if "iteration" in hit:
            out.append(f"  {name:<48} iteration {hit['iteration']:5d}  {hit['train_s'] / 60:5.1f} min")
        else:
            out.append(f"  {name:<48} not reached in {result['iters']} iterations (best: {hit['best']})")
    return out


def main(argv=None) -> int:
    from lmgan.bench import add_preset_options
    from lmgan.errors import run_command

    p = argparse.ArgumentParser(prog="python -m lmgan.bench.listen", description=__doc__.split("\n\n")[0])
    add_preset_options(p, "after the first run, another with these settings too; repeatable")
    p.add_argument("--every", type=int, default=50, help="iterations between readings (default: 50)")
    p.add_argument("--iters", type=int, default=None, help="iterations at most (default: the preset's)")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object")
    args = p.parse_args(argv)
    if args.every < 1:
        p.error("--every must be at least 1")

    def body() -> int:
        groups = [args.set] + [args.set + g.split(",") for g in args.compare]
        results = []
        for sets in groups:
            results.append(time_to_listen(sets, args.preset, args.every, args.iters, args.video, progress=not args.json))
            if not args.json:
                print("\n".join(lines(results[-1])), flush=True)
        if args.json:
            print(json.dumps(results if len(results) > 1 else results[0]))
        return 0

    return run_command("python -m lmgan.bench.listen", body)


if __name__ == "__main__":
    sys.exit(main())
