"""`lmgan report` against a real MLflow store (SQLite + local artifacts), no mocks: a sweep whose
trials log metrics over iterations and a real mp4 with sound, read back into one HTML page."""

import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import time
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest
from markupsafe import Markup

from lmgan.errors import LmganError
from lmgan.sweep import tracking
from lmgan.sweep.report import (BestTrial, Head, Importance, MetricGroup, Row, Sample, SweepPage, Table,
                                TrialRef, render_page, report_main, write_report)

SPACE = "lr_g: {loguniform: [1.0e-5, 1.0e-3]}\nvp_kernel: {choice: [3, 5, 7]}\n"
# trial id → (lr_g, vp_kernel, final ssim or None, status)
TRIALS = {
    "trial_00000": (1e-4, 3, 0.62, "finished"),
    "trial_00001": (3e-4, 5, 0.81, "finished"),      # the best
    "trial_<i>2</i>": (2e-5, 7, 0.55, "stopped"),    # escaped everywhere
    "trial_00003": (8e-4, 5, 0.30, "errored"),
}
BEST = "trial_00001"


def _mp4(path: Path) -> None:
    from lmgan.data.media import VideoWriter
    t = np.linspace(0, 1, 16000, dtype=np.float32)
    with VideoWriter(path, fps=10, width=32, height=16, audio_rate=16000) as w:
        w.add_frames(np.stack([np.full((16, 32, 3), 20 * i, np.uint8) for i in range(10)]))
        w.add_audio(0.3 * np.sin(2 * np.pi * 440 * t))


def _png(path: Path) -> None:
    from PIL import Image
    Image.fromarray(np.zeros((8, 16, 3), np.uint8)).save(path)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow")
    uri = tracking.default_uri(root)
    eid = tracking.ensure_experiment(uri, "demo", root / "mlartifacts")
    tracking.ensure_experiment(uri, "empty", root / "mlartifacts")
    tags = {"lmgan.video": "demo", "lmgan.objective": "ssim", "lmgan.mode": "max"}
    pid = tracking.start_sweep_run(uri, eid, "sweep-a", tags, {"objective": "ssim", "trials": 4},
                                   {"search_space.yaml": SPACE})
    media = root / "media"
    media.mkdir()
    _mp4(media / "iter_0000020.mp4")
    _mp4(media / "iter_0000030.mp4")
    _png(media / "iter_0000020.png")
    _png(media / "iter_0000030.png")
    _png(media / "iter_0000030-motion.png")
    run_ids = {}
    for k, (trial, (lr, vp, final, status)) in enumerate(TRIALS.items()):
        tr = tracking.TrialRun(uri, eid, pid, "sweep-a", trial, {"lr_g": lr, "vp_kernel": vp, "mfs": True},
                               ["lr_g", "vp_kernel"])
        for step in (10, 20, 30):
            tr.metrics({"loss_d_image": 1.0 / step, "it_per_s": 3.0}, step)
            if step >= 20:
                f = step / 30
                tr.metrics({"ssim": final * f, "ssim_std": 0.02, "psnr": 20 + 5 * final * f,
                            "psnr_std": 1.25, "fdd": 10.0 * (1 - final * f), "av_align": 0.3,
                            "av_align_real": 0.4, "motion_corr": final / 2}, step)
        if trial == BEST:
            for name in ("iter_0000020.mp4", "iter_0000030.mp4", "iter_0000020.png", "iter_0000030.png",
                         "iter_0000030-motion.png"):
                tr.artifact(media / name, "samples")
        assert tr.flush()
        tr.finish(status)
        run_ids[trial] = tr.run_id
    # A later sweep whose only trial has no objective value yet (the default: the latest sweep).
    time.sleep(0.01)
    pid_b = tracking.start_sweep_run(uri, eid, "sweep-b", tags, {}, {"search_space.yaml": SPACE})
    tr = tracking.TrialRun(uri, eid, pid_b, "sweep-b", "trial_b0", {"lr_g": 1e-4, "vp_kernel": 3}, ["lr_g"])
    tr.metrics({"loss_d_image": 0.5}, 5)
    assert tr.flush()
    return {"uri": uri, "root": root, "run_ids": run_ids, "media": media}


def test_report_of_a_sweep(store, tmp_path, capsys):
    out = tmp_path / "rep" / "report.html"
    assert write_report("lmgan-demo", out, store["uri"], sweep="sweep-a") == out
    page = out.read_text(encoding="utf-8")
    assert "report: lmgan-demo / sweep-a: 4 trials" in capsys.readouterr().err

    # Header and every trial, the HTML-looking trial id escaped.
    assert "Sweep sweep-a" in page and "lmgan-demo" in page and "maximise" in page
    assert "4 trials: 2 finished, 1 stopped, 1 errored, 0 running" in page
    for trial, run_id in store["run_ids"].items():
        assert run_id in page
    assert "trial_&lt;i&gt;2&lt;/i&gt;" in page and "<i>2</i>" not in page
    assert "trial_00000" in page and "trial_00003" in page

    # Table: best first and highlighted, then by ssim descending; mean ± std; iterations.
    body = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    rows = re.findall(r"<tr([^>]*)>(.*?)</tr>", body)
    assert len(rows) == 4
    assert 'class="best"' in rows[0][0] and store["run_ids"][BEST] in rows[0][0]
    assert BEST in rows[0][1] and "best</span>" in rows[0][1]
    assert not any('class="best"' in attrs for attrs, _ in rows[1:])
    order = [next(t for t in TRIALS if store["run_ids"][t] in attrs) for attrs, _ in rows]
    assert order == ["trial_00001", "trial_00000", "trial_<i>2</i>", "trial_00003"]
    assert "<td>0.8100 ± 0.0200</td>" in rows[0][1]
    assert "<td>24.05 ± 1.25</td>" in rows[0][1]
    assert "<td>1.9</td>" in rows[0][1]          # fdd, a set metric: one value
    assert "<td>30</td>" in rows[0][1]           # iterations reached
    assert "<td>0.0003</td>" in rows[0][1] and "<td>5</td>" in rows[0][1]   # its params
    assert "ssim ↑ (objective)" in page and "fdd ↓" in page
    assert "motion_corr ↑" in page and "av_align ↑" in page and ">av_align_real</td>" in page

    # Importances (3 finished/stopped trials, 2 varied params), parallel coordinates, history.
    imp = page.split('id="importance"', 1)[1].split("</section>", 1)[0]
    assert 'id="importance-chart"' in imp and "Not shown" not in imp
    assert ">lr_g</td>" in imp and ">vp_kernel</td>" in imp
    # ... from 3 trials: shown, with a plain warning above them.
    warning = ("Importances from 3 trials are noise-level; run more trials before reading them")
    assert warning in imp and imp.index(warning) < imp.index('id="importance-chart"')
    assert "over 3 finished or stopped trials, normalised" in imp
    assert 'id="parallel-coordinates"' in page and "parcoords" in page
    assert 'id="objective-history"' in page

    # The best trial's latest sample, copied beside the page and referenced relatively.
    files = out.parent / "report_files"
    video = files / f"best_{BEST}_iter_0000030.mp4"
    grid = files / f"best_{BEST}_iter_0000030.png"
    assert video.read_bytes() == (store["media"] / "iter_0000030.mp4").read_bytes()
    assert grid.read_bytes() == (store["media"] / "iter_0000030.png").read_bytes()
    assert f'<video controls preload="metadata" src="report_files/{video.name}">' in page
    # Read back from the file: 32x16 (2S x S), shown 20 times as big, halves labelled above it.
    shown = page.split('id="best-video"', 1)[1].split("</figure>", 1)[0]
    assert shown.startswith(' style="width:640px">') and "(32x16 px, shown 20x)" in shown
    assert 'class="av pixelated" id="best-video"' in page and "with sound" in shown
    assert shown.index("generated (from the held-out sound)") < shown.index(">real<") < shown.index("<video")
    assert f'src="report_files/{grid.name}"' in page
    motion = files / f"best_{BEST}_iter_0000030-motion.png"
    assert motion.read_bytes() == (store["media"] / "iter_0000030-motion.png").read_bytes()
    assert f'src="report_files/{motion.name}"' in page
    assert not (files / f"best_{BEST}_iter_0000020.mp4").exists()
    # The metrics in their groups: image quality beside the frame grid, the sync metrics (the
    # real video's av_align right after av_align) beside the motion plot, losses apart.
    best = page.split('<section id="best">', 1)[1]
    image = best.split('id="metrics-image"', 1)[1].split('id="metrics-sync"', 1)[0]
    sync = best.split('id="metrics-sync"', 1)[1].split('<div class="media">', 1)[0]
    other = best.split('id="metrics-other"', 1)[1]
    assert "image quality" in image and "does it listen" in sync
    assert [m for m in re.findall(r'<td class="id">([a-z_]+)', image)] == ["ssim", "psnr", "fdd"]
    assert "<td>0.8100 ± 0.0200</td>" in image and f'src="report_files/{grid.name}"' in image
    assert re.findall(r'<td class="id">([a-z_]+)', sync) == ["av_align", "av_align_real", "motion_corr"]
    assert "<td>0.405</td>" in sync and f'src="report_files/{motion.name}"' in sync
    assert "av_align of the real video itself" in sync
    assert re.findall(r'<td class="id">([a-z_]+)', other)[:2] == ["it_per_s", "loss_d_image"]
    js = files / "plotly.min.js"
    assert js.stat().st_size > 1_000_000
    assert '<script src="report_files/plotly.min.js"></script>' in page
    assert "cdn.plot.ly" not in page and "<script src=\"http" not in page

    # A second report replaces the page atomically (no temp files left) and keeps the files.
    out.write_text("old")
    write_report("demo", out, store["uri"], sweep="sweep-a")
    assert out.read_text(encoding="utf-8").startswith("<!doctype html>")
    assert sorted(p.name for p in out.parent.iterdir()) == ["report.html", "report_files"]
    assert sorted(p.name for p in files.iterdir()) == sorted([video.name, grid.name, motion.name, js.name])


def test_latest_sweep_without_objective_values(store, tmp_path, capsys):
    """The short experiment name and the default sweep (the latest): a trial with no ssim yet."""
    out = tmp_path / "latest.html"
    args = Namespace(experiment="demo", sweep=None, out=str(out), tracking_uri=store["uri"])
    assert report_main(args) == 0
    assert capsys.readouterr().out.strip() == str(out)
    page = out.read_text(encoding="utf-8")
    assert "Sweep sweep-b" in page and "trial_b0" in page and "trial_00001" not in page
    assert "1 trial: 0 finished, 0 stopped, 0 errored, 1 running" in page
    assert "No trial has an objective value" in page
    assert "Not shown:" in page and 'id="parallel-coordinates"' not in page
    assert (tmp_path / "latest_files" / "plotly.min.js").is_file()


def test_errors(store, tmp_path):
    uri = store["uri"]
    with pytest.raises(LmganError, match=r"--experiment nope: no such experiment \(known: lmgan-demo, lmgan-empty\)"):
        write_report("nope", tmp_path / "r.html", uri)
    with pytest.raises(LmganError, match="lmgan-empty has no sweep runs"):
        write_report("empty", tmp_path / "r.html", uri)
    with pytest.raises(LmganError, match=r"--sweep sweep-z: no such sweep in lmgan-demo \(known: sweep-b, sweep-a\)"):
        write_report("demo", tmp_path / "r.html", uri, sweep="sweep-z")
    with pytest.raises(LmganError, match="no MLflow store at"):
        write_report("demo", tmp_path / "r.html", tracking.default_uri(tmp_path / "nowhere"))
    assert sorted(p.name for p in tmp_path.iterdir()) == []   # no page, no _files, no store
    with pytest.raises(LmganError, match="is unreachable"):
        write_report("demo", tmp_path / "r.html", "http://127.0.0.1:9")


def test_param_strings_back_to_distribution_types():
    from optuna import distributions as d

    from lmgan.sweep.report import _from_param
    assert _from_param("True", d.CategoricalDistribution([True, False])) is True
    assert _from_param("False", d.CategoricalDistribution([True, False])) is False
    assert _from_param("5", d.CategoricalDistribution([3, 5, 7])) == 5
    assert _from_param("convgru", d.CategoricalDistribution(["none", "convgru"])) == "convgru"
    assert _from_param("3", d.IntDistribution(1, 4)) == 3
    assert _from_param("0.000123", d.FloatDistribution(1e-5, 1e-3, log=True)) == 0.000123
    with pytest.raises(ValueError):
        _from_param("9", d.CategoricalDistribution([3, 5, 7]))
    with pytest.raises(ValueError):
        _from_param("2.5", d.IntDistribution(1, 4))


def test_report_command_exit_codes(store, tmp_path, capsys):
    """`lmgan report` as a user runs it: 0 and the page's path; bad input exit 2, one line."""
    from lmgan.cli import main
    out = tmp_path / "page.html"
    assert main(["report", "--experiment", "demo", "--sweep", "sweep-a", "--out", str(out),
                 "--tracking-uri", store["uri"]]) == 0
    assert capsys.readouterr().out.strip() == str(out) and out.is_file()
    for args, words in ((["--experiment", "nope"], "no such experiment"),
                        (["--experiment", "demo", "--sweep", "sweep-z"], "no such sweep"),
                        (["--experiment", "demo", "--tracking-uri", "http://127.0.0.1:9"], "is unreachable")):
        rc = main(["report", *args, "--out", str(tmp_path / "bad.html"),
                   *([] if "--tracking-uri" in args else ["--tracking-uri", store["uri"]])])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and err[0].startswith("lmgan: error: ") and words in err[0], err
    assert not (tmp_path / "bad.html").exists()


def test_report_goes_under_the_runs_folder_from_any_folder(store, tmp_path, monkeypatch, capsys):
    """Without --out the page is <runs>/reports/<sweep>/report.html, <runs> from --runs-dir or
    $LMGAN_RUNS: the store and the report are found whatever the current folder."""
    from lmgan.cli import main
    runs = Path(store["uri"][len("sqlite:///"):]).parent
    monkeypatch.chdir(tmp_path)
    assert main(["report", "--experiment", "demo", "--sweep", "sweep-a", "--runs-dir", str(runs)]) == 0
    page = runs / "reports" / "sweep-a" / "report.html"
    assert capsys.readouterr().out.strip() == str(page) and page.is_file()
    assert (page.parent / "report_files").is_dir() and not list(tmp_path.iterdir())
    monkeypatch.setenv("LMGAN_RUNS", str(runs))
    assert main(["report", "--experiment", "demo", "--sweep", "sweep-a"]) == 0
    assert capsys.readouterr().out.strip() == str(page)


# --------------------------------------------------------------------------- the template alone

EVIL = '<script>alert("x")</script>'   # what a trial id, param or tag from MLflow could hold
SECTIONS = ("trials", "importance", "parallel", "history", "best")


def _page(best: bool = True) -> SweepPage:
    """A hand-built page (no MLflow): every string that could come from a store carries markup;
    the only Markup is the importance chart, as report.py builds its plotly snippets."""
    ref = TrialRef(f"trial_{EVIL}", 'run"1', f'http://mlflow/#/runs/run"1?a=1&b={EVIL}')
    head = Head(f"sweep {EVIL}", f"lmgan-{EVIL}", "ssim", "max", EVIL,
                {"finished": 1, "stopped": 0, "errored": 0, "running": 1, EVIL: 0}, [f"trials {EVIL}"],
                "2025-01-01 10:00", "2025-01-02 10:00", f"sqlite:///{EVIL}.db")
    rows = [Row(ref, True, [EVIL, "0.8100 ± 0.0200"], "30", "finished"),
            Row(TrialRef("trial_2", "run2"), False, ["3", ""], "", "running")]
    table = Table([("lr_g", f"loguniform[{EVIL}]"), (EVIL, "")], [f"{EVIL} ↑ (objective)"], rows)
    importance = Importance(chart=Markup('<div id="imp-chart">chart</div>'), values=[(EVIL, "1.000")],
                            evaluator=f"fANOVA {EVIL}", trials=2, skipped=1)
    groups = [MetricGroup("image", "image quality", [("ssim ↑ (objective)", "0.8100 ± 0.0200", EVIL)]),
              MetricGroup("sync", "does it listen", [(EVIL, EVIL, EVIL)]),
              MetricGroup("other", "training", [(f"loss_{EVIL}", "0.5", "")])]
    best_trial = BestTrial(ref, "0.81", "finished", "30", f"trial_{EVIL}_driver", [(EVIL, EVIL)],
                           groups, {"mp4": Sample('f/best.mp4?"', 30)},
                           f"grid {EVIL} could not be downloaded", [(EVIL, EVIL)])
    return SweepPage(head, "report_files", table, importance, EVIL, None, best_trial if best else None)


def _check_page(page: str) -> None:
    """Every section is there, the Markup chart raw, every other string escaped."""
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</body></html>")
    for section in SECTIONS:
        assert page.count(f'<section id="{section}">') == 1, section
    assert '<div id="imp-chart">chart</div>' in page
    assert "<script>alert" not in page and 'alert("x")' not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page


def test_template_renders_a_hand_built_page_escaped():
    page = render_page(_page())
    _check_page(page)
    # Strings inside attributes too, and a str where a chart goes is text, not HTML.
    assert 'data-run-id="run&#34;1"' in page and 'title="searched: loguniform[&lt;script&gt;' in page
    assert 'href="http://mlflow/#/runs/run&#34;1?a=1&amp;b=&lt;script&gt;' in page
    assert 'src="f/best.mp4?&#34;"' in page
    assert '<script src="report_files/plotly.min.js"></script>' in page
    parallel = page.split('<section id="parallel">', 1)[1].split("</section>", 1)[0]
    assert "&lt;script&gt;" in parallel
    # The table: one row per line, the best one marked; then the best trial's section.
    body = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    rows = re.findall(r"<tr([^>]*)>(.*?)</tr>", body)
    assert len(rows) == 2 and 'class="best"' in rows[0][0] and "best</span>" in rows[0][1]
    assert "<td>0.8100 ± 0.0200</td>" in rows[0][1] and '<td class="st st-running">running</td>' in rows[1][1]
    assert "2 trials: 1 finished, 0 stopped, 0 errored, 1 running, 0 &lt;script&gt;" in page
    assert "1 trial left out (params outside the space)" in page
    assert "over 2 finished or stopped trials" in page and "importance-warning" not in page
    assert "recorded trial_&lt;script&gt;" in page and "could not be downloaded" in page
    assert "iteration 30: generated | real, with sound" in page and "frame grid" not in page
    assert page.count("&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;</td>") >= 5   # metric tables


def _best_section(best: BestTrial) -> str:
    page = _page()
    page.best = best
    return render_page(page).split('<section id="best">', 1)[1].split("</section>", 1)[0]


@pytest.mark.parametrize("width, height, audio, shown, pixelated, words", [
    (128, 64, True, 640, True, "(128x64 px, shown 5x)"),        # the demo: S 64
    (256, 128, True, 512, True, "(256x128 px, shown 2x)"),      # S 128: whole factors only
    (1024, 512, True, 1024, False, "(1024x512 px, shown 1x)"),  # S 512: as it is, at most 100%
    (None, None, None, 640, True, "with sound."),               # size unknown: about 640 px
    (128, 64, False, 640, True, "no sound track in the file"),
])
def test_best_video_scaled_up_with_its_halves_labelled(width, height, audio, shown, pixelated, words):
    best = _page().best
    best.samples = {"mp4": Sample("report_files/best.mp4", 30, width, height, audio)}
    section = _best_section(best)
    figure = section.split('<figure class="av', 1)[1].split("</figure>", 1)[0]
    assert figure.startswith(f'{" pixelated" if pixelated else ""}" id="best-video" style="width:{shown}px">')
    assert '<video controls preload="metadata" src="report_files/best.mp4"></video>' in figure
    halves = re.search(r'<div class="halves"><span class="gen">(.*?)</span>'
                       r'<span class="real">(.*?)</span></div>', figure)
    assert halves and halves.groups() == ("generated (from the held-out sound)", "real")
    assert figure.index('class="halves"') < figure.index("<video")
    assert words in figure
    css = render_page(_page()).split("<style>", 1)[1].split("</style>", 1)[0]
    assert "figure.av video{display:block;width:100%" in css and "max-width:100%" in css
    assert "figure.av.pixelated video{image-rendering:pixelated}" in css


def test_best_metrics_grouped_beside_their_plots():
    best = _page().best
    best.samples = {"png": Sample("report_files/grid.png", 30),
                    "motion": Sample("report_files/motion.png", 30)}
    section = _best_section(best)
    assert "<video" not in section
    image = section.split('id="metrics-image"', 1)[1].split('id="metrics-sync"', 1)[0]
    sync = section.split('id="metrics-sync"', 1)[1].split('<div class="media">', 1)[0]
    assert "<h3>image quality</h3>" in image and "ssim ↑ (objective)" in image
    assert 'src="report_files/grid.png"' in image and "motion.png" not in image
    assert "<h3>does it listen</h3>" in sync and 'src="report_files/motion.png"' in sync
    assert "&lt;script&gt;" in sync and "<script>" not in sync
    assert "loss_&lt;script&gt;" in section.split('id="metrics-other"', 1)[1]
    # A trial that logged no sync metric says how to get them; nothing else: no training table.
    best.metrics = [MetricGroup("image", "image quality", [("ssim", "0.5", "")]),
                    MetricGroup("sync", "does it listen", []), MetricGroup("other", "training", [])]
    section = _best_section(best)
    assert "No sync metric logged: add av_align, motion_corr or sensitivity" in section
    assert 'id="metrics-other"' not in section and 'src="report_files/motion.png"' in section


def test_metric_groups_follow_the_registry_kinds():
    from lmgan.metrics import REGISTRY
    from lmgan.sweep.report import _metric_groups
    logged = {"loss_g": 1.5, "sensitivity_silence": 0.7, "fvd": 120.0, "lpips": 0.2, "lpips_std": 0.01,
              "sensitivity": 0.4, "av_align_real": 0.5, "motion_corr": 0.3, "ssim": 0.6, "ssim_std": 0.05,
              "av_align": 0.25, "psnr": 21.0, "iter": 300.0}
    groups = _metric_groups(logged, "fvd")
    assert [(g.key, g.title) for g in groups] == [("image", "image quality"), ("sync", "does it listen"),
                                                  ("other", "training")]
    names = {g.key: [r[0] for r in g.rows] for g in groups}
    assert names == {"image": ["ssim ↑", "psnr ↑", "lpips ↓", "fvd ↓ (objective)"],
                     "sync": ["av_align ↑", "av_align_real", "motion_corr ↑", "sensitivity ↑",
                              "sensitivity_silence"],
                     "other": ["iter", "loss_g"]}
    rows = {r[0].split()[0]: r for g in groups for r in g.rows}
    assert rows["lpips"][1] == "0.2000 ± 0.0100" and rows["fvd"][1] == "120"
    assert rows["ssim"][2] == REGISTRY["ssim"].what and rows["loss_g"][2] == ""
    assert rows["sensitivity_silence"][2] == "sensitivity with the sound silenced instead of shifted"
    for name, metric in REGISTRY.items():      # every kind has a group: a new kind must be placed
        assert _metric_groups({name: 1.0}, "ssim")[0 if metric.kind in ("frame", "set") else 1].rows


def test_importance_warning_below_ten_trials():
    from lmgan.sweep.report import IMPORTANCE_MIN_TRIALS, _importance_warning
    assert IMPORTANCE_MIN_TRIALS == 10
    assert _importance_warning(9).startswith(
        "Importances from 9 trials are noise-level; run more trials before reading them")
    assert _importance_warning(10) == "" and _importance_warning(40) == ""
    page = _page()
    page.importance.warning = f"Importances from 2 trials are noise-level {EVIL}"
    imp = render_page(page).split('<section id="importance">', 1)[1].split("</section>", 1)[0]
    assert imp.index('id="importance-warning"') < imp.index('<div id="imp-chart">')
    assert "noise-level &lt;script&gt;" in imp
    # No importances at all: the reason, and no warning.
    page.importance = Importance("too few trials", warning="unused")
    imp = render_page(page).split('<section id="importance">', 1)[1].split("</section>", 1)[0]
    assert "Not shown: too few trials" in imp and "importance-warning" not in imp


def test_template_renders_a_page_without_results():
    empty = _page(best=False)
    empty.table.rows, empty.importance, empty.parallel = [], Importance("no trials yet"), None
    page = render_page(empty)
    for section in SECTIONS:
        assert f'<section id="{section}">' in page
    assert "This sweep has no trial runs yet." in page and "<tbody>" not in page
    assert "Not shown: no trials yet" in page and "Not shown: no finished or stopped trial" in page
    assert "No trial has logged ssim yet." in page and "No trial has an objective value (ssim) yet." in page


RENDER_INSTALLED = """
import json, pickle, sys
from lmgan.sweep import report
page = report.render_page(pickle.loads(sys.stdin.buffer.read()))
print(json.dumps({"module": report.__file__, "html": page,
                  "template": report._environment().get_template(report.TEMPLATE).filename}))
"""


def test_template_ships_as_package_data(tmp_path):
    """Built as an install builds it (setuptools' build_py, from a copy of the project, with
    pyproject.toml's package-data), the package renders its page from there with another working
    folder: the template ships with the package and is loaded through it."""
    pytest.importorskip("setuptools")
    root, src, site = Path(__file__).resolve().parents[1], tmp_path / "src", tmp_path / "site"
    shutil.copytree(root / "lmgan", src / "lmgan", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, src / name)
    built = subprocess.run([sys.executable, "-c", "import setuptools; setuptools.setup()", "-q", "build_py",
                            "--build-lib", str(site)], cwd=src, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    shutil.rmtree(src)                    # nothing left to find the template in but the build
    (tmp_path / "cwd").mkdir()
    done = subprocess.run([sys.executable, "-c", RENDER_INSTALLED], cwd=tmp_path / "cwd",
                          input=pickle.dumps(_page()), capture_output=True,
                          env={**os.environ, "PYTHONPATH": str(site)})
    assert done.returncode == 0, done.stderr.decode()
    got = json.loads(done.stdout)
    assert got["module"] == str(site / "lmgan" / "sweep" / "report.py")
    assert got["template"] == str(site / "lmgan" / "sweep" / "templates" / "report.html")
    _check_page(got["html"])


def test_run_links_carry_no_credentials():
    from types import SimpleNamespace

    from lmgan.sweep.report import _redact, _runs_url
    exp = SimpleNamespace(experiment_id="7")
    assert _runs_url("https://ann:s3cret@mlflow.lab:5000/", exp) == "https://mlflow.lab:5000/#/experiments/7/runs/"
    assert _redact("https://ann:s3cret@mlflow.lab:5000") == "https://ann:***@mlflow.lab:5000"
    assert _runs_url("sqlite:///runs/mlflow.db", exp) is None


def test_the_baseline_trial_is_marked_and_the_gain_over_it_stated():
    """The sweep's first trial runs the preset's own values: its row says so, and the head says
    how far the best trial beat it (in the objective's direction)."""
    from lmgan.sweep.report import Trial, _versus
    base = Trial("r1", "aaaa", "finished", {}, {}, 20, 0.2, baseline=True)
    best = Trial("r2", "bbbb", "finished", {}, {}, 20, 0.45)
    assert _versus(base, best, "motion_corr", "max") == \
        "baseline aaaa (the preset's own values): motion_corr 0.2; the best trial beat it by 0.25"
    assert _versus(base, base, "motion_corr", "max").endswith("; no trial beat it")
    assert _versus(Trial("r1", "a", "finished", {}, {}, 20, 90.0), Trial("r2", "b", "finished", {}, {}, 20, 60.0),
                   "fvd", "min").endswith("beat it by 30")
    assert _versus(None, best, "motion_corr", "max") == ""
    page = _page()
    page.head.versus = f"baseline {EVIL}"
    page.table.rows[1].baseline = True
    html = render_page(page)
    assert '<p class="meta" id="versus">baseline &lt;script&gt;' in html
    assert html.count('<span class="badge base"') == 1
