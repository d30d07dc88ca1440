"""Live figures of running trials, exported through `ray.util.metrics` to Ray's Prometheus
endpoint (Prometheus prefixes every name with `ray_`). dashboards/lmgan-sweep.json plots exactly
these; a test checks that every metric a panel queries is one named here.
"""

from __future__ import annotations

# name → (description, extra tag key or None). Every gauge also carries the tags sweep and trial.
GAUGES = {
    "lmgan_iteration": ("training iterations done", None),
    "lmgan_iterations_per_second": ("training iterations per second since the last log", None),
    "lmgan_loss": ("training losses averaged since the last log", "term"),
    "lmgan_gpu_memory_allocated_bytes": ("peak GPU memory allocated by tensors (torch)", None),
    "lmgan_gpu_memory_reserved_bytes": ("GPU memory held by torch's caching allocator", None),
    "lmgan_eval": ("latest held-out evaluation metrics (mean over windows)", "metric"),
}
TAGS = ("sweep", "trial")


def prometheus_names() -> set[str]:
    """The names as Prometheus and Grafana see them."""
    return {"ray_" + name for name in GAUGES}


class TrialGauges:
    """The gauges of one trial; created inside the trial's worker process (needs ray)."""

    def __init__(self, sweep: str, trial: str):
        from ray.util.metrics import Gauge
        self.tags = {"sweep": sweep, "trial": trial}
        self.gauges = {name: Gauge(name, description=desc,
                                   tag_keys=TAGS + ((extra,) if extra else ()))
                       for name, (desc, extra) in GAUGES.items()}

    def set(self, name: str, value: float, **extra: str) -> None:
        self.gauges[name].set(float(value), tags={**self.tags, **extra})

    def on_log(self, rec: dict, losses: tuple[str, ...]) -> None:
        self.set("lmgan_iteration", rec["iter"])
        self.set("lmgan_iterations_per_second", rec["it_per_s"])
        for term in losses:
            self.set("lmgan_loss", rec[term], term=term)
        import torch
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            self.set("lmgan_gpu_memory_allocated_bytes", torch.cuda.max_memory_allocated())
            self.set("lmgan_gpu_memory_reserved_bytes", torch.cuda.memory_reserved())

    def on_eval(self, metrics: dict) -> None:
        for name, value in metrics.items():
            self.set("lmgan_eval", value, metric=name)
