"""`python -m lmgan.bench.preset_step`: a preset's own training step (default `demo`) against
variants of it, interleaved in one process, at each of several thread counts.

Where `python -m lmgan.bench` times the full model at the authors' widths, this times the step
a preset runs, on the demo clip, so a change can be judged by what it saves there: for example
`--compare vp=none` bounds what any rewrite of the DirConvGRU could pay. Each round times
`--steps` steps of every variant at every thread count in turn (after three warm-up steps), so
the machine's drift touches all alike; it prints the median seconds per iteration of the rounds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time


def measure(preset: str, variants: dict[str, list[str]], threads: list[int], rounds: int, steps: int,
            video: str | None = None) -> list[dict]:
    import torch

    from lmgan.data.dataset import load_video_data
    from lmgan.data.videos import DEMO, resolve
    from lmgan.training.loop import Trainer

    source = resolve(video or DEMO)
    trainers = {}
    with tempfile.TemporaryDirectory(prefix="lmgan-preset-step-") as scratch:
        for name, sets in variants.items():
            cfg = source.config(preset, None, sets)
            trainers[name] = Trainer(cfg, load_video_data(source.path, cfg, progress=False), f"{scratch}/{len(trainers)}")
            for _ in range(3):
                trainers[name].step()
        times: dict[tuple[str, int], list[float]] = {}
        before = torch.get_num_threads()
        try:
            for _ in range(rounds):
                for name, trainer in trainers.items():
                    for n in threads:
                        torch.set_num_threads(n)
                        t0 = time.perf_counter()
                        for _ in range(steps):
                            trainer.step()
                        if trainer.device.type == "cuda":
                            torch.cuda.synchronize(trainer.device)
                        times.setdefault((name, n), []).append((time.perf_counter() - t0) / steps)
        finally:
            torch.set_num_threads(before)
    return [{"variant": name, "threads": n, "s_per_it": round(statistics.median(v), 4)} for (name, n), v in times.items()]


def main(argv=None) -> int:
    from lmgan.bench import add_preset_options
    from lmgan.errors import run_command

    p = argparse.ArgumentParser(prog="python -m lmgan.bench.preset_step", description=__doc__.split("\n\n")[0])
    add_preset_options(p, "a variant: the preset with these settings too; repeatable")
    p.add_argument("--threads", type=int, nargs="+", default=[2], help="torch threads to time each variant at (default: 2)")
    p.add_argument("--rounds", type=int, default=4, help="rounds (default: 4)")
    p.add_argument("--steps", type=int, default=15, help="steps of each variant per round (default: 15)")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = p.parse_args(argv)
    if min(args.threads) < 1 or args.rounds < 1 or args.steps < 1:
        p.error("--threads, --rounds and --steps must be at least 1")

    def body() -> int:
        variants = {args.preset: args.set, **{c: args.set + c.split(",") for c in args.compare}}
        rows = measure(args.preset, variants, args.threads, args.rounds, args.steps, args.video)
        if args.json:
            print(json.dumps(rows))
        else:
            print(f"| variant | threads | s/it (median of {args.rounds} rounds of {args.steps} steps) |")
            print("| --- | --- | --- |")
            for r in rows:
                print(f"| {r['variant']} | {r['threads']} | {r['s_per_it']:.3f} |")
        return 0

    return run_command("python -m lmgan.bench.preset_step", body)


if __name__ == "__main__":
    sys.exit(main())
