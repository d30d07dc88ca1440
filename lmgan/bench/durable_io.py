"""`python -m lmgan.bench.durable_io`: what writing a checkpoint durably costs, per preset.

For each preset it builds the run's real checkpoint (the Trainer's state_dict: G, both critics,
both Adams with their moments, carried states, history; random weights, which weigh the same)
and writes it `--repeats` times with `checkpoint.save`, the path training takes (lmgan.atomic:
write a temporary, fsync it, rename, fsync the folder), into a scratch folder under `--dir`
(default: the runs folder, where checkpoints go). It prints the checkpoint's size and the median
seconds of the whole save and of its two fsyncs, timed inside the save. The figures are the
file system's and the disk's under `--dir`; they say nothing about training speed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch


def checkpoint_payload(preset: str) -> tuple[dict, int]:
    """The state_dict a run of `preset` checkpoints, Adam moments included, and its parameter
    count. No step is taken (one step of the paper's model is minutes on a CPU): Adam's state is
    set as after its first step, the same tensors it holds at any later one."""
    from lmgan.bench.step import _synthetic_data
    from lmgan.config import apply_overrides, build_config, validate
    from lmgan.training.loop import Trainer

    cfg = build_config(preset)
    # The perceptual network and the evaluator's weights are not in a checkpoint.
    cfg = validate(apply_overrides(cfg, {"device": "cpu", "lambda_pl": 0.0, "eval_metrics": ["ssim"]},
                                   "durable_io"))
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, _synthetic_data(cfg), tmp)
        for opt in (trainer.opt_g, trainer.opt_d):
            for group in opt.param_groups:
                for p in group["params"]:
                    opt.state[p] = {"step": torch.tensor(1.0), "exp_avg": torch.zeros_like(p),
                                    "exp_avg_sq": torch.zeros_like(p)}
        params = sum(p.numel() for p in (*trainer.g_params, *trainer.d_params))
        return trainer.state_dict(), params


def measure(preset: str, folder: Path, repeats: int) -> dict:
    """Median seconds of checkpoint.save of `preset`'s checkpoint, and of the fsyncs in it."""
    from lmgan import atomic
    from lmgan.training import checkpoint

    payload, params = checkpoint_payload(preset)
    fsync_path = atomic.fsync_path
    spent = {"file": 0.0, "folder": 0.0}

    def timed_fsync(path):
        t0 = time.perf_counter()
        fsync_path(path)
        spent["folder" if Path(path).is_dir() else "file"] += time.perf_counter() - t0

    rows = []
    atomic.fsync_path = timed_fsync
    try:
        for i in range(repeats):
            spent.update(file=0.0, folder=0.0)
            t0 = time.perf_counter()
            path = checkpoint.save(folder / checkpoint.name_for(i), payload)
            total = time.perf_counter() - t0
            rows.append((total, spent["file"], spent["folder"]))
            size = path.stat().st_size
            if i >= 2:       # three on disk at most, as training keeps (keep_checkpoints)
                (folder / checkpoint.name_for(i - 2)).unlink()
    finally:
        atomic.fsync_path = fsync_path
    total, f_file, f_folder = (statistics.median(col) for col in zip(*rows))
    return {"preset": preset, "params": params, "mib": size / 2**20, "repeats": repeats,
            "save_s": total, "fsync_file_s": f_file, "fsync_folder_s": f_folder,
            "fsync_share": (f_file + f_folder) / total if total else 0.0,
            "write_mib_per_s": size / 2**20 / max(total - f_file - f_folder, 1e-9)}


def main(argv=None) -> int:
    from lmgan.runs import runs_root

    p = argparse.ArgumentParser(prog="python -m lmgan.bench.durable_io", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", nargs="+", default=["demo", "paper-128", "paper-256"],
                   help="presets whose checkpoints to write (default: the demo's and the paper's)")
    p.add_argument("--repeats", type=int, default=5, help="saves per preset (the median is printed)")
    p.add_argument("--dir", help="folder on the file system to measure (default: the runs folder)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    a = p.parse_args(argv)
    root = Path(a.dir) if a.dir else runs_root()
    root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".durable_io-", dir=root))
    rows = []
    try:
        for preset in a.presets:
            if not a.json:
                print(f"writing {preset} checkpoints ...", file=sys.stderr, flush=True)
            rows.append(measure(preset, scratch, max(1, a.repeats)))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    fs = _file_system(root)
    if a.json:
        print(json.dumps({"dir": str(root), "file_system": fs, "checkpoints": rows}, indent=2))
        return 0
    print(f"checkpoint.save under {root} ({fs}), median of {rows[0]['repeats'] if rows else 0}:")
    print(f"{'preset':<10} {'params':>8} {'MiB':>8} {'save s':>8} {'fsync file s':>13} {'fsync dir s':>12} "
          f"{'fsync share':>12} {'write MiB/s':>12}")
    for r in rows:
        print(f"{r['preset']:<10} {r['params'] / 1e6:>7.1f}M {r['mib']:>8.1f} {r['save_s']:>8.3f} "
              f"{r['fsync_file_s']:>13.3f} {r['fsync_folder_s']:>12.4f} {r['fsync_share']:>11.0%} "
              f"{r['write_mib_per_s']:>12.0f}")
    return 0


def _file_system(path: Path) -> str:
    """The type and device of the file system holding `path` (from /proc/mounts), or ''."""
    try:
        mounts = [line.split() for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return ""
    path = path.resolve()
    best = max((m for m in mounts if len(m) > 2 and (path == Path(m[1]) or Path(m[1]) in path.parents)),
               key=lambda m: len(m[1]), default=None)
    return f"{best[2]} on {best[0]}" if best else ""


if __name__ == "__main__":
    sys.exit(main())
