"""Screenshots of what a user looks at after a sweep, taken with headless Chromium: MLflow's runs
table (the sweep's saved view), its compare page, and the `lmgan report` page. Each page is
written as `<name>.png` and as `<name>.html`, the DOM after the page's scripts ran, which is what
tests/test_screenshots.py checks. Not the Grafana dashboard (dashboards/): that needs a running
Grafana and Prometheus scraping a live Ray cluster, not just a sweep's MLflow store.

    python docs/screenshots.py --experiment demo [--sweep NAME] [--runs-dir DIR] [--out DIR]

It serves the runs folder's MLflow store with `mlflow server` on a free loopback port for as long
as it takes. Needs a Chromium (`apt-get install chromium`, or $LMGAN_CHROMIUM=/path/to/chrome).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser() -> str | None:
    env = os.environ.get("LMGAN_CHROMIUM")
    if env:
        return env if Path(env).is_file() else None
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


def capture(browser: str, url: str, out: Path, name: str, wait_ms: int = 15000,
            height: int = 1000) -> tuple[Path, Path]:
    """`out/name.png` (1600 px wide) and `out/name.html` of `url` once its scripts had `wait_ms`."""
    base = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            f"--window-size=1600,{height}", f"--virtual-time-budget={wait_ms}", f"--user-data-dir={out / '.chromium'}"]
    png, html = out / f"{name}.png", out / f"{name}.html"
    subprocess.run([*base, f"--screenshot={png}", url], capture_output=True, timeout=180, check=True)
    dom = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True, timeout=180, check=True)
    html.write_text(dom.stdout)
    return png, html


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(store_uri: str, artifacts: Path) -> tuple[subprocess.Popen, str]:
    """`mlflow server` over the store; returns (process, base URL) once it answers."""
    port = _free_port()
    mlflow = Path(sys.executable).parent / "mlflow"
    proc = subprocess.Popen([str(mlflow), "server", "--backend-store-uri", store_uri, "--serve-artifacts",
                             "--artifacts-destination", str(artifacts), "--host", "127.0.0.1",
                             "--port", str(port), "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            urllib.request.urlopen(f"{base}/health", timeout=2).read()
            return proc, base
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("mlflow server exited") from None
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("mlflow server did not start")


def take(experiment: str, sweep: str | None, runs: Path, out: Path, browser: str) -> list[Path]:
    from lmgan.sweep import report, tracking
    from lmgan.sweep.report import queries

    out.mkdir(parents=True, exist_ok=True)
    uri = tracking.default_uri(runs)
    page = report.write_report(experiment, out / "report" / "report.html", uri, sweep, runs)
    c = tracking.client(uri)
    exp = queries.experiment(c, experiment)
    parent = queries.sweep_run(c, exp, sweep)
    name = queries.sweep_name(parent)
    trials = tracking.trial_runs(c, exp.experiment_id, parent.info.run_id)
    proc, base = serve(uri, runs / "mlartifacts")
    try:
        shots = [capture(browser, tracking.experiment_url(base, exp.experiment_id, tracking.view_key(name)),
                         out, "mlflow-runs"),
                 capture(browser, tracking.compare_url(base, exp.experiment_id, [t.info.run_id for t in trials]),
                         out, "mlflow-compare"),
                 capture(browser, page.resolve().as_uri(), out, "report", wait_ms=5000, height=3200)]
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
    return [p for shot in shots for p in shot]


def main(argv=None) -> int:
    from lmgan.runs import runs_root

    p = argparse.ArgumentParser(prog="docs/screenshots.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--experiment", required=True, help="experiment or video name, as for lmgan report")
    p.add_argument("--sweep", help="sweep name (default: the latest)")
    p.add_argument("--runs-dir", help="runs folder (default: as lmgan's)")
    p.add_argument("--out", help="folder for the PNG and HTML files (default: <runs>/screenshots)")
    args = p.parse_args(argv)
    browser = find_browser()
    if browser is None:
        print("screenshots: error: no Chromium found (apt-get install chromium, or LMGAN_CHROMIUM=PATH)",
              file=sys.stderr)
        return 2
    runs = runs_root(args.runs_dir)
    for path in take(args.experiment, args.sweep, runs, Path(args.out or runs / "screenshots"), browser):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
