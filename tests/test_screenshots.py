"""What a user sees in a browser after a sweep: MLflow's runs table opens on the sweep's trials
(readable names, the objective and searched values as columns, how each ended), the compare
page lists them, and the report shows its sections. Taken with headless Chromium by
docs/screenshots.py; skipped where no Chromium is installed (the data behind these
pages is tested everywhere: test_tracking.py, test_summary.py, test_report.py)."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from lmgan.sweep import tracking

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "docs" / "screenshots.py"


def _script():
    spec = importlib.util.spec_from_file_location("screenshots", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(_script().find_browser() is None,
                                 reason="no Chromium here (apt-get install chromium to run these)")]


def test_mlflow_and_the_report_in_a_browser(report_store, tmp_path):
    store = report_store      # a real MLflow store with a sweep of four trials (support.build_report_store)
    runs = Path(store["uri"][len("sqlite:///"):]).parent
    c = tracking.client(store["uri"])
    exp = c.get_experiment_by_name(tracking.experiment_name("demo"))
    parent = c.search_runs([exp.experiment_id], "tags.`lmgan.role` = 'sweep'")[0]
    names = tracking.name_trials(c, exp.experiment_id, parent.info.run_id)     # as the sweep's end does
    tracking.save_sweep_view(c, exp.experiment_id, "sweep-a", "ssim", "max", ["lr_g", "vp_kernel"])
    out = tmp_path / "shots"
    r = subprocess.run([sys.executable, str(SCRIPT), "--experiment", "demo", "--sweep", "sweep-a",
                        "--runs-dir", str(runs), "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    for page in ("mlflow-runs", "mlflow-compare", "report"):
        assert (out / f"{page}.png").stat().st_size > 10_000, page
    runs_view = (out / "mlflow-runs.html").read_text()
    for name in names.values():                       # every trial as a row of its own, by name
        assert name in runs_view, name
    assert "best_ssim" in runs_view and "lr_g" in runs_view and "lmgan.status" in runs_view
    assert "Traces" not in runs_view or "Runs" in runs_view       # the model-training view, not GenAI's
    compare = (out / "mlflow-compare.html").read_text()
    assert sum(name in compare for name in names.values()) == len(names)
    report = (out / "report.html").read_text()
    for words in ("generated (from the held-out sound)", "does it listen", "image quality"):
        assert words in report, words
