"""What a sweep will cost, said before it starts: one line, an estimate.

Trials on CPUs: a training step of the trials' own config (the plan's config: the preset's model
and size, the baseline's values) is timed on this machine's CPU with the trials' thread count, in
a child process (`python -m lmgan.sweep.estimate`, lmgan.bench.step.measure_config) so its memory is
given back: one warm-up step, then at least three steps and two seconds, or one step where a step
takes over ten seconds; then one evaluation of up to two held-out windows with its sample video
(after an untimed one) and one checkpoint, scaled to the video's held-out windows. That is scaled by the sweep's
iterations, evaluations and trials at once: `max_iters` for every trial is the upper bound, and
under ASHA the expectation if two thirds of the trials stop at each rung.

Trials on GPUs cannot be timed from a driver that may have none, and nothing here is scaled by
what was not measured: the estimate takes the paper's own training times for its model on one GPU
(STATED_GPU), says so, and gives none for an image size the paper states nothing about.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import dataclass

# The paper's own figures (Redondo, "Listen and Move", arXiv 2406.16155): its full model trained
# about 50 k iterations at 128² in ~1 day, and 100 k at 256² in ~3 days, on one NVIDIA RTX 3090.
# image size → (iterations, days, GPU)
STATED_GPU = {128: (50_000, 1.0, "RTX 3090"), 256: (100_000, 3.0, "RTX 3090")}
STATED_SOURCE = "arXiv 2406.16155"
REDUCTION = 3            # ASHA's reduction factor: a third of a rung's trials go on (schedulers)
SECONDS, GIVE_UP_S, TIMEOUT_S, EVAL_WINDOWS = 2.0, 10.0, 300, 2


@dataclass(frozen=True)
class Speed:
    s_per_it: float      # one training iteration
    eval_s: float        # one evaluation with its sample video and checkpoint (0: not counted)
    source: str          # how it was had, said in the line


def stated(image_size: int) -> Speed | None:
    """The paper's figure for its model at this size on one GPU; None where it states none."""
    if image_size not in STATED_GPU:
        return None
    iters, days, gpu = STATED_GPU[image_size]
    s_per_it = days * 86400 / iters
    return Speed(s_per_it, 0.0, f"the paper's stated figure, not measured here: {iters // 1000} k iterations "
                 f"at {image_size}² in ~{days:g} day{'s' if days != 1 else ''} on one {gpu} "
                 f"(≈{1 / s_per_it:.2f} it/s; {STATED_SOURCE}); evaluations not counted")


def heldout_windows(source: str, cfg) -> int:
    """Held-out windows an evaluation generates (as lmgan.data.dataset cuts the video)."""
    from lmgan.data.media import probe
    try:
        seconds = probe(source)["duration"] or 0.0
    except Exception:  # noqa: BLE001 - the estimate is no place to fail a sweep
        return 1
    n = int(seconds * cfg.fps)
    windows = max(1, (n - int(n * cfg.train_frac)) // cfg.seq_len)
    return min(windows, cfg.eval_windows) if cfg.eval_windows else windows


def measure(cfg, threads: int, windows: int, timeout_s: float = TIMEOUT_S) -> Speed | str:
    """The CPU speed of `cfg` (a child process: its memory is given back); or why not."""
    job = {"config": cfg.to_dict(), "threads": threads, "windows": min(windows, EVAL_WINDOWS)}
    try:
        r = subprocess.run([sys.executable, "-m", "lmgan.sweep.estimate"], input=json.dumps(job),
                           capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return f"not measured: a step of this config and an evaluation took over {timeout_s:g} s on this CPU"
    if r.returncode:
        why = (f"killed by signal {-r.returncode} (out of memory?)" if r.returncode < 0
               else (r.stderr.strip().splitlines() or ["failed"])[-1])
        return f"not measured: timing a step on this CPU failed ({why})"
    m = json.loads(r.stdout.strip().splitlines()[-1])
    eval_s = m["eval_s"] * windows / m["eval_windows"] + m["ckpt_s"]
    left = f" without {', '.join(m['left_out'])}" if m["left_out"] else ""
    steps = f"{m['steps']} warm step{'s' if m['steps'] != 1 else ''}"
    return Speed(m["s_per_it"], eval_s, f"measured on this CPU with the trials' {threads} thread"
                 f"{'s' if threads != 1 else ''}, {steps}: {m['s_per_it']:.3g} s/it; an evaluation{left} "
                 f"≈ {human(eval_s)}")


def asha_iterations(max_iters: int, grace: int, rf: int = REDUCTION) -> tuple[float, list[int]]:
    """Iterations a trial trains on average if ASHA stops all but 1/rf of the trials at each rung,
    and the rungs (Tune's: grace · rf^k below max_iters, as its _Bracket places them)."""
    rungs = [grace * rf ** k for k in range(int(math.log(max_iters / grace) / math.log(rf) + 1))]
    ends = [*rungs, max_iters]
    expected = ends[0] + sum((b - a) / rf ** (k + 1) for k, (a, b) in enumerate(zip(ends, ends[1:])))
    return expected, [r for r in rungs if r < max_iters]


def trial_seconds(speed: Speed, iters: float, eval_every: int) -> float:
    return iters * speed.s_per_it + math.ceil(iters / eval_every) * speed.eval_s


def line(plan, speed: Speed | None, at_once: int, why: str = "") -> str:
    """The one-line estimate (said by every sweep at its start, and by --dry-run)."""
    if speed is None:
        return f"estimate: none ({why})"
    at_once = max(1, min(at_once, plan.trials))
    one = trial_seconds(speed, plan.max_iters, plan.eval_every)
    upper = math.ceil(plan.trials / at_once) * one
    text = (f"estimate ({speed.source}): at most {plan.trials} trial{'s' if plan.trials != 1 else ''} × "
            f"{plan.max_iters} iterations ≈ {human(upper)}, {at_once} at a time")
    if plan.scheduler == "asha":
        iters, rungs = asha_iterations(plan.max_iters, plan.grace_iters)
        expected = max(one, plan.trials * trial_seconds(speed, iters, plan.eval_every) / at_once)
        if rungs and expected < upper:
            text += (f"; if ASHA stops two thirds at each rung ({', '.join(map(str, rungs))}): "
                     f"{iters:.0f} iterations a trial on average ≈ {human(expected)}")
    return text


def estimate(plan, cpus: float, gpus: float, at_once: int) -> str:
    """The sweep's estimate line: measured on this CPU for CPU trials, the paper's figure for GPU ones."""
    if gpus > 0:
        speed = stated(plan.config.image_size)
        return line(plan, speed, at_once, f"the trials use GPUs, which this driver does not time, and the "
                    f"paper states no figure for {plan.config.image_size}²; `python -m lmgan.bench --sizes "
                    f"{plan.config.image_size}` on a GPU node measures a step")
    speed = measure(plan.config, max(1, int(cpus)), heldout_windows(plan.source, plan.config))
    return line(plan, None, at_once, speed) if isinstance(speed, str) else line(plan, speed, at_once)


def human(seconds: float) -> str:
    """A duration in the unit a person reads it in: s, min, h, days, months, years."""
    days = seconds / 86400
    if seconds < 90:
        return f"{seconds:.2g} s" if seconds < 10 else f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    if days < 60:
        return f"{days:.0f} days" if days >= 10 else f"{days:.1f} days"
    if days < 730:
        return f"{days / 30.44:.1f} months ({days:.0f} days)"
    return f"{days / 365.25:.1f} years"


def _child() -> int:
    """`python -m lmgan.sweep.estimate`: time the config given as JSON on stdin; one JSON line."""
    import torch

    from lmgan.bench.step import measure_config
    from lmgan.config import Config, apply_overrides, validate

    job = json.loads(sys.stdin.read())
    torch.set_num_threads(max(1, int(job["threads"])))
    cfg = validate(apply_overrides(Config(), job["config"], "estimate"))
    print(json.dumps(measure_config(cfg, SECONDS, GIVE_UP_S, int(job["windows"]))))
    return 0


if __name__ == "__main__":
    sys.exit(_child())
