"""lmgan's benchmarks, one module each, every one runnable as `python -m lmgan.bench.<name>`:

- step: the training step's speed and peak memory, the metrics, the DirConvGRU layer
  (also `python -m lmgan.bench`, the name the docs have always given it)
- durable_io: what writing a checkpoint durably (temporary, fsync, rename) costs, per preset
- history: what appending a record to history.jsonl costs against rewriting the file whole
- sweep_overhead: a real sweep's platform time (Ray, MLflow, Tune) against its training time
- schedulers: ASHA+TPE against PBT on one video, the same budget, several seeds

One place to find what can be measured and how; the sweep's cost estimate reuses step's timing
(lmgan.sweep.estimate). Their figures are recorded in docs/performance.md; tests run each small
and never assert a figure.
"""
