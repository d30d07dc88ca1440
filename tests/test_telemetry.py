"""The trial gauges stay exported for the whole life of a trial, however rarely it logs.

Ray's metrics agent forgets a gauge value that was not set again for two export intervals
(telemetry.py). TrialGauges re-sends its last values every half interval: checked here on a fake
Gauge (fast) and end to end (slow) by scraping a Ray node's Prometheus endpoint throughout a real
sweep's trial whose loop sets its gauges far less often than Ray's expiry.
"""

import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from support import free_port
from lmgan.sweep import telemetry

ROOT = Path(__file__).resolve().parents[1]


class FakeGauge:
    sets: list = []          # (name, value, tags), every set of every gauge, in order

    def __init__(self, name, description="", tag_keys=()):
        self.name = name

    def set(self, value, tags=None):
        FakeGauge.sets.append((self.name, value, dict(tags)))


@pytest.fixture
def fake_gauge(monkeypatch):
    import ray.util.metrics
    FakeGauge.sets = []
    monkeypatch.setattr(ray.util.metrics, "Gauge", FakeGauge)
    return FakeGauge


def test_trial_gauges_resend_their_last_values_until_closed(fake_gauge):
    g = telemetry.TrialGauges("sw", "t1", refresh_s=0.05)
    assert g.refreshing
    g.set("lmgan_iteration", 10)
    g.set("lmgan_loss", 0.5, term="loss_gp")
    g.set("lmgan_loss", 0.7, term="loss_gp")          # the last value of a series is re-sent
    g.set("lmgan_loss", 0.1, term="loss_l1")
    time.sleep(0.4)
    g.close()
    assert not g.refreshing
    g.close()                                          # idempotent
    sets = list(fake_gauge.sets)
    resent = sets[4:]
    assert len(resent) >= 3 * 3, "re-sent several times in 0.4 s"
    latest = {(n, tags.get("term")): (v, tags) for n, v, tags in resent}
    assert latest == {("lmgan_iteration", None): (10.0, {"sweep": "sw", "trial": "t1"}),
                      ("lmgan_loss", "loss_gp"): (0.7, {"sweep": "sw", "trial": "t1", "term": "loss_gp"}),
                      ("lmgan_loss", "loss_l1"): (0.1, {"sweep": "sw", "trial": "t1", "term": "loss_l1"})}
    time.sleep(0.2)
    assert fake_gauge.sets == sets, "nothing is sent after close()"


def test_refresh_period_is_half_rays_export_interval():
    import ray
    interval = ray._config.metrics_report_interval_ms()
    assert telemetry.refresh_period_s() == max(interval, 1000) / 2000
    assert telemetry.refresh_period_s() <= 5.0      # Ray's default: every 10 s, forgotten after 20 s


# ----------------------------------------------------------------------------- end to end
REPORT_MS = 2000     # the cluster below: exports every 2 s, so the agent forgets a gauge after 4 s
EVERY = 200          # iterations between the trial's logs and evaluations: 12-40 s at tiny's CPU speed
                     # (a quiet 2-core machine ran 80 in 5 s: shorter than the expiry this test needs)


@pytest.fixture(scope="module")
def quick_metrics_cluster(tmp_path_factory):
    """A one-node Ray cluster (one CPU) whose processes export metrics every REPORT_MS, so a gauge
    expires in 2 x 2 s instead of Ray's default 2 x 10 s and a short trial outlives it several
    times. Runs as `ray start --block` in its own process group: ending it stops this cluster
    only (not the session's `ray_cluster`, as `ray stop` would)."""
    import secrets
    token = tmp_path_factory.mktemp("ray-quick") / "token"    # as conftest's cluster: token auth,
    token.write_text(secrets.token_hex(32))                  # not whatever ~/.ray holds
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token),
           "RAY_USAGE_STATS_ENABLED": "0", "RAY_DEDUP_LOGS": "0",
           "RAY_metrics_report_interval_ms": str(REPORT_MS)}
    port, metrics = free_port(), free_port()
    head = subprocess.Popen([str(Path(sys.executable).parent / "ray"), "start", "--head", "--block",
                             f"--port={port}", "--include-dashboard=false",
                             f"--metrics-export-port={metrics}", "--num-cpus=1", "--num-gpus=0",
                             "--disable-usage-stats"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        for _ in range(120):
            assert head.poll() is None, "ray start --head exited"
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=2).read()
                break
            except OSError:
                time.sleep(0.5)
        else:
            raise AssertionError("the node's metrics endpoint did not answer")
        yield {"address": f"127.0.0.1:{port}", "env": env, "metrics_ports": [metrics]}
    finally:
        head.terminate()     # --block: Ray drains and stops its processes (~3 s); signalling
        try:                 # the whole group instead makes it wait for the dead ones (30 s)
            head.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()


def dashboard_metrics() -> set[str]:
    """Every lmgan metric a panel or a variable of the dashboard queries."""
    text = (ROOT / "dashboards" / "lmgan-sweep.json").read_text()
    return set(re.findall(r"\bray_lmgan_\w+", text))


def scrape(ports, sweep_name) -> dict[str, list[str]]:
    """metric name → the lines of this sweep's series on the nodes' Prometheus endpoints."""
    out: dict[str, list[str]] = {}
    for p in ports:
        text = urllib.request.urlopen(f"http://127.0.0.1:{p}/metrics", timeout=5).read().decode()
        for line in text.splitlines():
            if line.startswith("ray_lmgan_") and f'sweep="{sweep_name}"' in line:
                out.setdefault(line.split("{")[0], []).append(line)
    return out


def iteration(series) -> float | None:
    lines = series.get("ray_lmgan_iteration")
    return max(float(line.rsplit(" ", 1)[1]) for line in lines) if lines else None


@pytest.mark.slow   # a Ray cluster and a sweep: ~60 s
@pytest.mark.usefixtures("fresh_store")
def test_every_dashboard_metric_stays_exported_while_a_trial_runs(quick_metrics_cluster, sweep_clip, tmp_path):
    from support import sweep
    cluster, name = quick_metrics_cluster, "stays-lit"
    # The loop sets its gauges only every EVERY iterations (log_every = eval_every), far less
    # often than the agent's 4 s expiry; the cluster has no GPU, so no GPU-memory gauges.
    expected = dashboard_metrics() - {"ray_lmgan_gpu_memory_allocated_bytes",
                                      "ray_lmgan_gpu_memory_reserved_bytes"}
    assert {"ray_lmgan_iteration", "ray_lmgan_loss", "ray_lmgan_eval"} <= expected
    done = []
    driver = threading.Thread(target=lambda: done.append(sweep(
        cluster, tmp_path, "--video", sweep_clip, "--trials", 1, "--max-iters", 2 * EVERY,
        "--grace-iters", 2 * EVERY, "--eval-every", EVERY, "--set", f"log_every={EVERY}",
        "--name", name, timeout=300)), daemon=True)
    driver.start()
    scrapes = []    # (when, the trial's iteration gauge, the metric names exported)
    while driver.is_alive():
        t = time.monotonic()
        series = scrape(cluster["metrics_ports"], name)
        scrapes.append((t, iteration(series), set(series)))
        time.sleep(max(0.0, 1.0 - (time.monotonic() - t)))     # a scrape a second
    driver.join()
    r = done[0]
    assert r.returncode == 0, r.stderr[-3000:]
    # From the first scrape with everything (the first log and evaluation, at EVERY) to the
    # first one showing the trial's last log (2 EVERY), every scrape has every metric.
    start = next((t for t, it, names in scrapes if it == EVERY and names >= expected), None)
    end = next((t for t, it, _ in scrapes if it == 2 * EVERY), None)
    assert start is not None and end is not None, [(round(t), it, sorted(n)) for t, it, n in scrapes]
    window = [(t, it, names) for t, it, names in scrapes if start <= t < end]
    gone = [(round(t - start, 1), sorted(expected - names)) for t, it, names in window
            if it != EVERY or not names >= expected]
    assert not gone, f"gauges gone between the trial's updates (s after the first, names): {gone}"
    # The trial's two updates came well beyond Ray's expiry apart (2 x 2 s, plus an export
    # interval for a value to arrive), and the scrapes covered that gap: without re-sending,
    # some would have found nothing.
    assert end - start > 2.5 * REPORT_MS / 1000 + 1, f"the trial's updates came only {end - start:.1f} s apart"
    assert len(window) >= (end - start) - 2, (end - start, len(window))
