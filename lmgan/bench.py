"""`python -m lmgan.bench`: training-step speed and peak memory of the full model.

Full model: MfS + SaC + acIN, DirConvGRU K=3, both critics, WGAN-GP, perceptual loss; L=32, B=1
unless overridden. Each size runs in its own process so peak memory is that size's alone. Where
the VGG16 weights are absent the step runs an identically shaped, randomly initialised VGG16
(speed does not depend on weight values) and the output says so.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch


def _synthetic_data(cfg):
    from lmgan.data.dataset import VideoData
    n = 4 * cfg.seq_len
    g = torch.Generator().manual_seed(0)
    return VideoData(frames=torch.randint(0, 256, (n, cfg.image_size, cfg.image_size, 3), dtype=torch.uint8, generator=g),
                     feats=torch.randn(n, cfg.n_mels, generator=g), audio=np.zeros(16000, np.float32),
                     fps=cfg.fps, sample_rate=cfg.sample_rate, n_train=3 * cfg.seq_len, key="bench",
                     source="synthetic", cached=False)


def measure(size: int, seq_len: int, batch: int, seconds: float, device: str) -> dict:
    """Iterations/s of Trainer.step at one size (warm-up excluded) and peak memory."""
    import torchvision

    from lmgan.config import Config, validate
    from lmgan.errors import LmganError
    from lmgan.training.loop import Trainer
    from lmgan.training.losses import PerceptualLoss

    cfg = validate(Config(image_size=size, seq_len=seq_len, batch=batch, device=device, lambda_pl=10.0,
                          mfs=True, sac=True, acin=True, vp="dirconvgru", vp_kernel=3))
    try:
        vgg, vgg_note = PerceptualLoss.from_config(""), "ImageNet"
    except LmganError:
        vgg = PerceptualLoss(torchvision.models.vgg16(weights=None).state_dict())
        vgg_note = "random init (weights absent)"
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, _synthetic_data(cfg), tmp, perceptual=vgg)
        dev = trainer.device
        sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
        for _ in range(2):
            trainer.step()
        sync()
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        t0 = time.perf_counter()
        n = 0
        while True:
            trainer.step()
            n += 1
            if n % 5 == 0 or dev.type == "cpu":
                sync()
                if time.perf_counter() - t0 >= seconds and n >= 3:
                    break
        elapsed = time.perf_counter() - t0
    if dev.type == "cuda":
        peak, mem_kind = torch.cuda.max_memory_allocated(dev) / 2**20, "GPU allocated"
    else:
        peak, mem_kind = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "process RSS"
    return {"size": size, "seq_len": seq_len, "batch": batch, "iters": n, "it_per_s": n / elapsed,
            "s_per_it": elapsed / n, "peak_mem_mib": round(peak, 1), "mem_kind": mem_kind, "vgg16": vgg_note}


def device_name(device: str) -> str:
    if device in ("auto", "cuda") and torch.cuda.is_available() or device.startswith("cuda:"):
        return torch.cuda.get_device_name()
    return f"CPU {platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m lmgan.bench", description=__doc__)
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    p.add_argument("--seq-len", type=int, default=32)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--seconds", type=float, default=20.0, help="timed seconds per size (after warm-up)")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: measure one size in this process
    a = p.parse_args(argv)
    if a.one:
        print(json.dumps(measure(a.one, a.seq_len, a.batch, a.seconds, a.device)))
        return 0
    rows = []
    for size in a.sizes:
        cmd = [sys.executable, "-m", "lmgan.bench", "--one", str(size), "--seq-len", str(a.seq_len),
               "--batch", str(a.batch), "--seconds", str(a.seconds), "--device", a.device]
        if not a.json:
            print(f"measuring {size}² ...", file=sys.stderr, flush=True)
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode < 0:   # SIGKILL from the kernel's OOM killer leaves no message
            rows.append({"size": size, "error": f"killed by signal {-out.returncode} (out of memory?)"})
        elif out.returncode != 0:
            last = (out.stderr.strip().splitlines() or ["failed"])[-1]
            rows.append({"size": size, "error": last})
        else:
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    result = {"device": device_name(a.device), "torch": torch.__version__,
              "model": "full (MfS+SaC+acIN, DirConvGRU K=3, D_I+D_V, WGAN-GP, perceptual)", "results": rows}
    if a.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"device: {result['device']}   torch {result['torch']}   model: {result['model']}")
    print(f"{'size':>6} {'L':>4} {'B':>3} {'it/s':>8} {'s/it':>8} {'peak MiB':>10}  memory        VGG16")
    for r in rows:
        if "error" in r:
            print(f"{r['size']:>5}² failed: {r['error']}")
            continue
        print(f"{r['size']:>5}² {r['seq_len']:>4} {r['batch']:>3} {r['it_per_s']:>8.3f} {r['s_per_it']:>8.3f} "
              f"{r['peak_mem_mib']:>10.0f}  {r['mem_kind']:<13} {r['vgg16']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
