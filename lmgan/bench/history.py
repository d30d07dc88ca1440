"""`python -m lmgan.bench.history`: what one log costs history.jsonl, appended (how the training
loop writes it) against rewritten whole (how it did before: temporary, fsync, rename, at every
log), with 100 and with 50,000 records already in the file.

The records have the loop's shape: a loss record at each log and an evaluation record every
`EVAL_EVERY_LOGS`th (the defaults' log_every 50, eval_every 1000), into a scratch folder under
`--dir` (default: the runs folder, where history.jsonl lives). It prints the median milliseconds
of one log over `--repeats` logs. An append costs the same whatever the file holds; a rewrite
grows with it, so over a run the rewrites' total grows with the square of its length.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from functools import cache
from pathlib import Path

EVAL_EVERY_LOGS = 20


@cache
def _keys() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The loop's loss names and the default evaluation's metric names (each with its _std)."""
    from lmgan.config import Config
    from lmgan.training.loop import LOSSES

    return LOSSES, tuple(k for m in Config().eval_metrics for k in (m, f"{m}_std"))


def record(i: int) -> dict:
    """The i-th record of a run's history, as Trainer._log and Trainer.evaluate write them."""
    losses, metrics = _keys()
    if (i + 1) % EVAL_EVERY_LOGS == 0:
        return {"kind": "eval", "iter": 50 * (i + 1), **{k: 0.5 + 1e-6 * i for k in metrics}}
    return {"kind": "loss", "iter": 50 * (i + 1), **{k: -1.234567 + 1e-6 * i for k in losses}, "it_per_s": 3.21}


def measure(folder: Path, lines: int, repeats: int) -> dict:
    """Median seconds of one log with `lines` records already written: appended, and rewritten."""
    from lmgan.training import artifacts

    path = folder / f"history-{lines}.jsonl"
    history = [record(i) for i in range(lines)]
    artifacts.write_history(path, history)
    appends = []
    for i in range(repeats):
        rec = record(lines + i)
        t0 = time.perf_counter()
        artifacts.append_history(path, rec)
        appends.append(time.perf_counter() - t0)
    history = [record(i) for i in range(lines)]
    rewrites = []
    for i in range(repeats):
        history.append(record(lines + i))
        t0 = time.perf_counter()
        artifacts.write_history(path, history)
        rewrites.append(time.perf_counter() - t0)
    append_s, rewrite_s = statistics.median(appends), statistics.median(rewrites)
    return {"lines": lines, "repeats": repeats, "mib": path.stat().st_size / 2**20,
            "append_ms": 1000 * append_s, "rewrite_ms": 1000 * rewrite_s, "rewrite_over_append": rewrite_s / append_s}


def main(argv=None) -> int:
    from lmgan.runs import runs_root

    p = argparse.ArgumentParser(prog="python -m lmgan.bench.history", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lines", type=int, nargs="+", default=[100, 50_000],
                   help="records already in the file, one measurement each (default: 100 50000)")
    p.add_argument("--repeats", type=int, default=20, help="logs timed per size, the median printed (default: 20)")
    p.add_argument("--dir", help="folder on the file system to measure (default: the runs folder)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    a = p.parse_args(argv)
    root = Path(a.dir) if a.dir else runs_root()
    root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".bench_history-", dir=root))
    try:
        rows = [measure(scratch, n, max(1, a.repeats)) for n in a.lines]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if a.json:
        print(json.dumps({"dir": str(root), "history": rows}, indent=2))
        return 0
    print(f"one log into history.jsonl under {root}, median of {max(1, a.repeats)}:")
    print(f"{'lines before':>12} {'file MiB':>9} {'append ms':>10} {'rewrite ms':>11} {'rewrite / append':>17}")
    for r in rows:
        print(f"{r['lines']:>12} {r['mib']:>9.2f} {r['append_ms']:>10.3f} {r['rewrite_ms']:>11.3f} "
              f"{r['rewrite_over_append']:>16.0f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
