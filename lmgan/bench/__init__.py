"""lmgan's benchmarks, one module each, every one runnable as `python -m lmgan.bench.<name>`:

- step: the training step's speed and peak memory, the metrics, the DirConvGRU layer
  (also `python -m lmgan.bench`, the name the docs have always given it)
- durable_io: what writing a checkpoint durably (temporary, fsync, rename) costs, per preset
- history: what appending a record to history.jsonl costs against rewriting the file whole
- sweep_overhead: a real sweep's platform time (Ray, MLflow, Tune) against its training time
- schedulers: ASHA+TPE against PBT on one video, the same budget, several seeds
- preset_step: a preset's own step against variants of it (`--compare vp=none`), interleaved
- listen: time to listen, the iterations and training time until the demo's held-out frames
  follow the sound (lmgan.demo_check)

One place to find what can be measured and how; the sweep's cost estimate reuses step's timing
(lmgan.sweep.estimate). Their figures are recorded in docs/performance.md; tests run each small
and never assert a figure.
"""


def add_preset_options(p, compare_help: str) -> None:
    """--preset, --set, --compare and --video: the options of the benchmarks that run a preset
    on the demo clip (preset_step, listen)."""
    p.add_argument("--preset", default="demo", help="lmgan preset (default: demo)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting of every run; repeatable")
    p.add_argument("--compare", action="append", default=[], metavar="KEY=VALUE[,KEY=VALUE]", help=compare_help)
    p.add_argument("--video", default=None, help="the clip (default: demo, the embedded one)")
