"""Live figures of running trials, exported through `ray.util.metrics` to Ray's Prometheus
endpoint (Prometheus prefixes every name with `ray_`). dashboards/lmgan-sweep.json plots exactly
these; a test checks that every metric a panel queries is one named here.

Ray exports a gauge only for a while after it was last set: a worker sends the values set since
its previous export every `metrics_report_interval_ms` (10 s by default), and the node's metrics
agent forgets a value it has not received again for two such intervals, 20 s — see
`_resolve_gauge_ttl_seconds` (`return 2 * effective_report_interval_ms / 1000.0`) and the
eviction in the scrape callback (`if now - ts <= self._gauge_metric_ttl_s`) in
ray/_private/telemetry/open_telemetry_metric_recorder.py (Ray 2.x, lines 118 and 147 here).
A trial logs and evaluates far less often than that, so TrialGauges keeps the last value of each
series and a daemon thread re-sends them every half interval while the trial runs.
"""

from __future__ import annotations

import logging
import threading

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
# A trial's progress and results: still true once it has ended, so the dashboard's "latest"
# panels hold their last value over the dashboard's time range (last_over_time). The other
# gauges describe a running trial (speed, memory held) and end with it.
HELD = ("lmgan_iteration", "lmgan_loss", "lmgan_eval")

log = logging.getLogger(__name__)


def prometheus_names() -> set[str]:
    """The names as Prometheus and Grafana see them."""
    return {"ray_" + name for name in GAUGES}


def refresh_period_s() -> float:
    """How often a trial re-sends its gauges: half Ray's export interval, so that every export
    carries each value and the agent never reaches its 2-interval expiry (5 s by default)."""
    try:
        import ray
        interval_ms = ray._config.metrics_report_interval_ms()
    except Exception:        # no Ray config readable here: Ray's default
        interval_ms = 10_000
    return max(1000, interval_ms) / 2000.0     # Ray exports at most once a second


class TrialGauges:
    """The gauges of one trial; created inside the trial's worker process (needs ray).

    Every set value is remembered per series (name + tags); a daemon thread re-sends these
    cached floats every `refresh_s` seconds until close(), so the series stay exported for the
    whole life of the trial however rarely the loop logs. The training loop pays nothing for it:
    the thread touches no tensor and the loop's own calls only add a dict store.
    """

    def __init__(self, sweep: str, trial: str, refresh_s: float | None = None):
        from ray.util.metrics import Gauge
        self.tags = {"sweep": sweep, "trial": trial}
        self.gauges = {name: Gauge(name, description=desc,
                                   tag_keys=TAGS + ((extra,) if extra else ()))
                       for name, (desc, extra) in GAUGES.items()}
        self.refresh_s = refresh_s or refresh_period_s()
        self._last: dict[tuple, tuple[float, dict]] = {}   # (name, extra tags) → (value, all tags)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._refresh, name=f"lmgan-gauges-{trial}", daemon=True)
        self._thread.start()

    def set(self, name: str, value: float, **extra: str) -> None:
        value, tags = float(value), {**self.tags, **extra}
        with self._lock:
            self._last[(name, tuple(sorted(extra.items())))] = (value, tags)
        self.gauges[name].set(value, tags=tags)

    def resend(self) -> None:
        """Set every series again to its last value (Ray then exports it for another expiry)."""
        with self._lock:
            series = [(name, value, tags) for (name, _), (value, tags) in self._last.items()]
        for name, value, tags in series:
            self.gauges[name].set(value, tags=tags)

    def _refresh(self) -> None:
        warned = False
        while not self._stop.wait(self.refresh_s):
            try:
                self.resend()
            except Exception as e:     # never take the trial down for a dashboard
                if not warned:
                    log.warning("lmgan gauges: re-sending failed: %s", e)
                    warned = True

    def close(self) -> None:
        """The trial has ended: stop re-sending. Its last values were sent once more, so they
        stay on the metrics endpoint for about one more expiry (20 s); the dashboard's "latest"
        panels hold them after that (last_over_time). Idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(timeout=5)
        try:
            self.resend()
        except Exception:
            pass

    @property
    def refreshing(self) -> bool:
        return self._thread.is_alive()

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
