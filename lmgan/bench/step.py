"""`python -m lmgan.bench` (or `python -m lmgan.bench.step`): training-step speed and peak memory
of the full model.

Full model at the authors' widths (channel_base 4096): MfS + SaC + acIN, DirConvGRU K=3, both
critics with D_V's shuffled term, WGAN-GP, relu2_2 perceptual loss; L=32, B=1 unless overridden. Each size runs in its own process so peak memory is that size's alone. Where
the VGG16 weights are absent the step runs an identically shaped, randomly initialised VGG16
(speed does not depend on weight values) and the output says so.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import resource
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
import torch

from lmgan.nets import channels_at


def _synthetic_data(cfg, heldout_windows: int = 1):
    """Random frames and features: three training windows and `heldout_windows` held-out ones,
    with quiet noise as their sound (the sequence metrics and sample videos read it)."""
    from lmgan.data.dataset import VideoData
    n = (3 + heldout_windows) * cfg.seq_len
    g = torch.Generator().manual_seed(0)
    sound = 0.01 * np.random.default_rng(0).standard_normal(int(n / cfg.fps * cfg.sample_rate) + 1)
    return VideoData(frames=torch.randint(0, 256, (n, cfg.image_size, cfg.image_size, 3), dtype=torch.uint8, generator=g),
                     feats=torch.randn(n, cfg.n_mels, generator=g), audio=sound.astype(np.float32),
                     fps=cfg.fps, sample_rate=cfg.sample_rate, n_train=3 * cfg.seq_len, key="bench",
                     source="synthetic", cached=False)


def time_steps(trainer, seconds: float, min_steps: int = 3, give_up_s: float = math.inf) -> tuple[int, float]:
    """(steps, seconds) of Trainer.step timed back to back, warm-up left to the caller: at least
    `min_steps` and `seconds`, or fewer once `give_up_s` have passed (a slow model: one step)."""
    dev = trainer.device
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    sync()
    t0, n = time.perf_counter(), 0
    while True:
        trainer.step()
        n += 1
        if n % 5 == 0 or dev.type == "cpu":
            sync()
            elapsed = time.perf_counter() - t0
            if (elapsed >= seconds and n >= min_steps) or elapsed >= give_up_s:
                return n, elapsed


def measure(size: int, seq_len: int, batch: int, seconds: float, device: str, precision: str = "fp32",
            channel_base: int = 4096) -> dict:
    """Iterations/s of Trainer.step at one size (warm-up excluded) and peak memory."""
    from lmgan.config import Config, validate
    from lmgan.errors import LmganError
    from lmgan.training.loop import Trainer
    from lmgan.training.losses import PerceptualLoss

    cfg = validate(Config(image_size=size, seq_len=seq_len, batch=batch, device=device, lambda_pl=10.0,
                          mfs=True, sac=True, acin=True, vp="dirconvgru", vp_kernel=3,
                          precision=precision, g_channel_base=channel_base, d_channel_base=channel_base))
    try:
        vgg, vgg_note = PerceptualLoss.from_config(""), "ImageNet"
    except LmganError:
        vgg, vgg_note = random_perceptual_loss(), "random init (weights absent)"
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, _synthetic_data(cfg), tmp, perceptual=vgg)
        dev = trainer.device
        sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
        for _ in range(2):
            trainer.step()
        sync()
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        n, elapsed = time_steps(trainer, seconds)
    if dev.type == "cuda":
        peak, mem_kind = torch.cuda.max_memory_allocated(dev) / 2**20, "GPU allocated"
    else:
        peak, mem_kind = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "process RSS"
    return {"size": size, "precision": precision, "seq_len": seq_len, "batch": batch, "iters": n, "it_per_s": n / elapsed,
            "s_per_it": elapsed / n, "peak_mem_mib": round(peak, 1), "mem_kind": mem_kind, "vgg16": vgg_note}


def random_perceptual_loss():
    """The perceptual loss with a randomly initialised VGG16 up to relu2_2: what a step costs does
    not depend on the weights' values, so benchmarks and estimates need no ImageNet file. Only
    those layers are made (on the meta device, then filled), not the whole 138M-parameter VGG16."""
    import torchvision

    from lmgan.training.losses import RELU2_2, PerceptualLoss

    with torch.device("meta"):
        layers = torchvision.models.vgg16(weights=None).features[: RELU2_2 + 1]
    layers = layers.to_empty(device="cpu")
    for p in layers.parameters():
        torch.nn.init.normal_(p, std=0.01)
    return PerceptualLoss({f"features.{k}": v for k, v in layers.state_dict().items()})


def measure_config(cfg, seconds: float = 2.0, give_up_s: float = 10.0, heldout_windows: int = 1) -> dict:
    """What a run of `cfg` costs on this machine's CPU (a sweep's estimate, lmgan.sweep.estimate):
    s/it of Trainer.step after one warm-up step (at least 3 steps and `seconds`, or one step once
    `give_up_s` have passed), then one evaluation of `heldout_windows` held-out windows with its
    sample video, as a trial makes at every report (after an untimed one), and one checkpoint. Metrics that need
    pretrained weights are left out of the evaluation (named in "left_out"), and the perceptual
    loss runs a randomly initialised VGG16 relu2_2 (speed does not depend on weight values). The
    cache it writes (real statistics) is a temporary one."""
    import os

    import matplotlib

    from lmgan.config import apply_overrides, validate
    from lmgan.metrics import lookup
    from lmgan.training.loop import Trainer

    kept = [m.name for m in lookup(cfg.eval_metrics, "eval_metrics") if not m.weights]
    left_out = [name for name in cfg.eval_metrics if name not in kept]
    cfg = validate(apply_overrides(cfg, {"device": "cpu", "eval_metrics": kept, "eval_windows": heldout_windows,
                                         "vgg_weights": ""}, "estimate"))
    vgg = random_perceptual_loss() if cfg.lambda_pl > 0 else None
    matplotlib.use("Agg")            # as lmgan.training.artifacts does; its first import of
    import matplotlib.pyplot  # noqa: F401, E402 - pyplot is no evaluation's cost
    saved_cache = os.environ.get("LMGAN_CACHE")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["LMGAN_CACHE"] = tmp
        try:
            trainer = Trainer(cfg, _synthetic_data(cfg, heldout_windows), f"{tmp}/run", perceptual=vgg)
            trainer.step()                   # warm-up: first-call allocations, oneDNN primitives
            n, elapsed = time_steps(trainer, seconds, give_up_s=give_up_s)
            trainer.evaluate(sample=True)    # warm-up: imports, librosa's JIT, the probe's setup
            t0 = time.perf_counter()
            trainer.evaluate(sample=True)
            eval_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            trainer.save_checkpoint()
            ckpt_s = time.perf_counter() - t0
        finally:
            if saved_cache is None:
                os.environ.pop("LMGAN_CACHE", None)
            else:
                os.environ["LMGAN_CACHE"] = saved_cache
    return {"steps": n, "s_per_it": elapsed / n, "eval_s": eval_s, "eval_windows": heldout_windows,
            "ckpt_s": ckpt_s, "left_out": left_out, "threads": torch.get_num_threads()}


def measure_metrics(device: str, frames: int = 64, size: int = 128, seq_len: int = 32) -> list[dict]:
    """Seconds per evaluation of each registered metric on `frames` held-out frames, with the real
    statistics already cached (as in training's periodic evaluation after the first one).

    LPIPS without its ImageNet backbone is timed with a randomly initialised one of the same
    shape; FVD and FID without their TorchScript files cannot be timed and say so.
    """
    import os
    import torchvision

    from lmgan import weights
    from lmgan.errors import LmganError
    from lmgan.metrics import REGISTRY
    from lmgan.metrics.evaluator import Evaluator
    from lmgan.device import pick_device

    dev = pick_device(device)
    g = torch.Generator().manual_seed(0)
    real = (torch.rand(frames // seq_len, seq_len, 3, size, size, generator=g) * 2 - 1).to(dev)
    fake = (real + 0.2 * torch.randn(real.shape, generator=g).to(dev)).clamp(-1, 1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        found, stand_ins = {}, {}
        for name in weights.WEIGHTS:
            try:
                found[name] = str(weights.locate(name, download=False))
            except LmganError:
                pass
        saved_cache = os.environ.get("LMGAN_CACHE")
        os.environ["LMGAN_CACHE"] = tmp          # the bench's real statistics stay out of the user cache
        try:
            for name, metric in REGISTRY.items():
                paths, note = dict(found), "real weights" if metric.weights else "needs none"
                missing = [w for w in metric.weights if w not in found]
                if missing and name.startswith("lpips"):
                    w = missing[0]
                    if w not in stand_ins:
                        net = torchvision.models.alexnet if w == "alexnet" else torchvision.models.vgg16
                        sd = {k: v for k, v in net(weights=None).state_dict().items() if k.startswith("features.")}
                        stand_ins[w] = f"{tmp}/{w}-random.pth"
                        torch.save(sd, stand_ins[w])
                    paths[w], note = stand_ins[w], "random backbone (weights absent)"
                elif missing:
                    rows.append({"metric": name, "error": f"not timed: {', '.join(missing)} weights absent (lmgan weights)"})
                    continue
                if metric.kind == "probe":
                    rows.append({"metric": name, "error": f"not timed alone: {metric.cost}"})
                    continue
                ev = Evaluator([name], dev, stats_key="bench", weight_paths=paths)
                sound = np.random.default_rng(0).standard_normal(int(seq_len / ev.fps * ev.sample_rate))
                warnings.filterwarnings("ignore", "samples <= ", RuntimeWarning)   # 64 frames: expected
                for _ in range(2):               # the first pass caches the real statistics
                    t0 = time.perf_counter()
                    for f, r in zip(fake, real):
                        ev.add(f, r, sound)
                    ev.result()
                    if dev.type == "cuda":
                        torch.cuda.synchronize()
                    seconds = time.perf_counter() - t0
                rows.append({"metric": name, "seconds": seconds, "frames": frames, "size": size, "weights": note})
        finally:
            if saved_cache is None:
                os.environ.pop("LMGAN_CACHE", None)
            else:
                os.environ["LMGAN_CACHE"] = saved_cache
    return rows


def measure_vp(size: int, channels: int, seq_len: int, kernel: int, device: str, seconds: float) -> dict:
    """DirConvGRU forward + backward at G's full-resolution shape for `size`: the layer as it runs
    in G and the naive formulation (lmgan.nets.prediction_naive), with the same parameters."""
    from lmgan.nets.prediction import VideoPrediction
    from lmgan.nets.prediction_naive import naive_forward
    from lmgan.device import pick_device

    dev = pick_device(device)
    torch.manual_seed(0)
    vp = VideoPrediction(channels, kernel).to(dev)
    x = torch.randn(1, seq_len, channels, size, size, device=dev, requires_grad=True)
    state = vp.initial_state(1, size, dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    out = {}
    for name, fn in (("fast", vp), ("naive", lambda a, b: naive_forward(vp, a, b))):
        def once():
            y, h = fn(x, state)
            (y.square().mean() + h.square().mean()).backward()
        once()
        sync()
        t0, n = time.perf_counter(), 0
        while n < 2 or time.perf_counter() - t0 < seconds:
            once()
            sync()
            n += 1
        out[name] = (time.perf_counter() - t0) / n
    return {"size": size, "channels": channels, "seq_len": seq_len, "kernel": kernel,
            "fast_s": out["fast"], "naive_s": out["naive"],
            "speedup": out["naive"] / out["fast"]}


def device_name(device: str) -> str:
    if device in ("auto", "cuda") and torch.cuda.is_available() or device.startswith("cuda:"):
        return torch.cuda.get_device_name()
    return f"CPU {platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m lmgan.bench", description=__doc__)
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    p.add_argument("--seq-len", type=int, default=32)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--channel-base", type=int, default=4096, help="g_ and d_channel_base (default "
                   "4096, the authors' widths; smaller is narrower, as the demo's 512)")
    p.add_argument("--seconds", type=float, default=20.0, help="timed seconds per size (after warm-up)")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--skip-train", action="store_true", help="only time the metrics")
    p.add_argument("--skip-metrics", action="store_true", help="only time the training step")
    p.add_argument("--skip-vp", action="store_true", help="do not time the DirConvGRU against its naive form")
    p.add_argument("--precision", nargs="+", default=["fp32"], choices=["fp32", "bf16"],
                   help="Config.precision values to time side by side (bf16 autocast pays "
                        "on GPUs; CPUs without bf16 units emulate it)")
    p.add_argument("--concurrent", type=int, nargs="+", metavar="N",
                   help="also run N copies of the step at once on the device (trials sharing a "
                        "GPU) and print their aggregate iterations/s, for each N")
    p.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: measure one size in this process
    a = p.parse_args(argv)
    if a.one:
        print(json.dumps(measure(a.one, a.seq_len, a.batch, a.seconds, a.device, a.precision[0],
                                 a.channel_base)))
        return 0
    rows, shared = [], []
    for size in [] if a.skip_train else a.sizes:
        for prec in a.precision:
            if not a.json:
                print(f"measuring {size}² ({prec}) ...", file=sys.stderr, flush=True)
            rows.append(_run_one(a, size, 1, prec)[0])
        for n in a.concurrent or []:
            if not a.json:
                print(f"measuring {n} concurrent {size}² steps ...", file=sys.stderr, flush=True)
            got = _run_one(a, size, n, a.precision[0])
            ok = [r for r in got if "error" not in r]
            shared.append({"size": size, "trials": n, "ok": len(ok),
                           "aggregate_it_per_s": sum(r["it_per_s"] for r in ok),
                           "each_it_per_s": [round(r["it_per_s"], 3) for r in ok],
                           "peak_mem_mib_each": max((r["peak_mem_mib"] for r in ok), default=0),
                           "errors": [r["error"] for r in got if "error" in r]})
    if not (a.skip_metrics or a.json):
        print("timing the metrics ...", file=sys.stderr, flush=True)
    metric_rows = [] if a.skip_metrics else measure_metrics(a.device)
    if not (a.skip_vp or a.json):
        print("timing the DirConvGRU layer against its naive formulation ...", file=sys.stderr, flush=True)
    vp_rows = [] if a.skip_vp else [measure_vp(s, channels_at(s, a.channel_base, 512), a.seq_len, 3, a.device, min(a.seconds, 10.0))
                                    for s in a.sizes if s <= 128]
    widths = " (the authors' widths)" if a.channel_base == 4096 else ""
    result = {"device": device_name(a.device), "torch": torch.__version__,
              "model": f"full, channel_base {a.channel_base}{widths} (MfS+SaC+acIN, DirConvGRU K=3, "
                       "D_I+D_V, WGAN-GP, relu2_2 perceptual)", "results": rows,
              "shared_device": shared, "metrics": metric_rows, "dirconvgru": vp_rows}
    if a.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"device: {result['device']}   torch {result['torch']}   model: {result['model']}")
    if rows:
        _print_train(rows)
    for r in shared:
        print(f"{r['trials']} concurrent {r['size']}² trials: {r['aggregate_it_per_s']:.3f} it/s together "
              f"(each {r['each_it_per_s']}), peak {r['peak_mem_mib_each']:.0f} MiB each"
              + (f"; failed: {r['errors']}" if r["errors"] else ""))
    if metric_rows:
        print("\nseconds per evaluation, 64 held-out frames at 128² (2 windows of 32), real statistics cached")
        for r in metric_rows:
            if "error" in r:
                print(f"  {r['metric']:<10} {r['error']}")
            else:
                print(f"  {r['metric']:<10} {r['seconds']:8.3f} s   {r['weights']}")
    if vp_rows:
        print("\nDirConvGRU forward + backward (K=3, B=1), the layer against its naive formulation")
        for r in vp_rows:
            print(f"  {r['size']:>4}² C={r['channels']} T={r['seq_len']}:  fast {r['fast_s'] * 1000:8.1f} ms   "
                  f"naive {r['naive_s'] * 1000:8.1f} ms   "
                  f"fast is {r['speedup']:.1f}× the naive")
    return 0


def _run_one(a, size: int, copies: int, precision: str) -> list[dict]:
    """`copies` processes timing one size at once; each row or {"error": ...}."""
    cmd = [sys.executable, "-m", "lmgan.bench.step", "--one", str(size), "--seq-len", str(a.seq_len),
           "--batch", str(a.batch), "--seconds", str(a.seconds), "--device", a.device,
           "--channel-base", str(a.channel_base),
           "--precision", precision]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(copies)]
    rows = []
    for proc in procs:
        out, err = proc.communicate()
        if proc.returncode < 0:   # SIGKILL from the kernel's OOM killer leaves no message
            rows.append({"size": size, "precision": precision, "error": f"killed by signal {-proc.returncode} (out of memory?)"})
        elif proc.returncode != 0:
            rows.append({"size": size, "precision": precision, "error": (err.strip().splitlines() or ["failed"])[-1]})
        else:
            rows.append(json.loads(out.strip().splitlines()[-1]))
    return rows


def _print_train(rows: list[dict]) -> None:
    print(f"{'size':>6} {'prec':>5} {'L':>4} {'B':>3} {'it/s':>8} {'s/it':>8} {'vs fp32':>8} {'peak MiB':>10}  memory        VGG16")
    fp32 = {r["size"]: r["s_per_it"] for r in rows if r["precision"] == "fp32" and "error" not in r}
    for r in rows:
        if "error" in r:
            print(f"{r['size']:>5}² {r['precision']:>5} failed: {r['error']}")
            continue
        up = f"{fp32[r['size']] / r['s_per_it']:.2f}×" if r["size"] in fp32 else "—"
        print(f"{r['size']:>5}² {r['precision']:>5} {r['seq_len']:>4} {r['batch']:>3} {r['it_per_s']:>8.3f} "
              f"{r['s_per_it']:>8.3f} {up:>8} {r['peak_mem_mib']:>10.0f}  {r['mem_kind']:<13} {r['vgg16']}")


if __name__ == "__main__":
    sys.exit(main())
