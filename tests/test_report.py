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

import pytest
from markupsafe import Markup

from lmgan.errors import LmganError
from lmgan.sweep import tracking
from lmgan.sweep.report import render_page, report_main, write_report
from lmgan.sweep.report.page import (BestTrial, ExploitRow, Head, Importance, Lineage, MetricGroup, Pareto, Row,
                                     Sample, SweepPage, Table, TrialRef)

from support import REPORT_BEST as BEST, REPORT_SPACE as SPACE, REPORT_TRIALS as TRIALS, copy_project, copy_store


@pytest.fixture(scope="module")
def store(report_store):
    """Sweeps of four trials and of one (support.build_report_store), in conftest's report_store."""
    return report_store


# A PBT sweep: trial → (its values from iteration 0, its final ssim, its exploits as the driver
# tags them). After an exploit the trial trains with the exploit's "new" values.
PBT_ITERS = (0, 100, 200, 300, 400)
PBT = {
    "t01": ({"lr_g": 1e-4, "lr_d": 2e-4}, 0.70, []),
    "t02": ({"lr_g": 3e-4, "lr_d": 1e-4}, 0.60, []),
    "t03": ({"lr_g": 5e-5, "lr_d": 1e-4}, 0.65,
            [{"iter": 200, "at": 200, "from": "t01", "was": {"lr_g": 5e-5, "lr_d": 1e-4},
              "donor": {"lr_g": 1e-4, "lr_d": 2e-4}, "new": {"lr_g": 1.2e-4, "lr_d": 1.6e-4}}]),
    "t04": ({"lr_g": 2e-5, "lr_d": 5e-5}, 0.50,
            [{"iter": 300, "at": None, "from": "t02", "was": {"lr_g": 2e-5, "lr_d": 5e-5},
              "donor": {"lr_g": 3e-4, "lr_d": 1e-4}, "new": {"lr_g": 2.4e-4, "lr_d": 8e-5}}]),
}
# A two-objective sweep: trial → (fvd, av_align or None, status). m1 and m2 are the front; m5,
# best on fvd, errored before its av_align: on no front, so not the page's best trial either.
MO = {"m1": (80.0, 0.20, "finished"), "m2": (120.0, 0.50, "finished"), "m3": (130.0, 0.30, "finished"),
      "m4": (90.0, 0.10, "finished"), "m5": (70.0, None, "errored")}
FRONT = ["m1", "m2"]


@pytest.fixture(scope="module")
def modes_store(tmp_path_factory, mlflow_store_template):
    """A store holding a PBT sweep (experiment lmgan-pbt) and a two-objective one (lmgan-mo)."""
    root = copy_store(mlflow_store_template, tmp_path_factory.mktemp("modes"))
    uri = tracking.default_uri(root)
    eid = tracking.ensure_experiment(uri, "pbt", root / "mlartifacts")
    pid = tracking.start_sweep_run(uri, eid, "sweep-pbt", {"lmgan.video": "pbt", "lmgan.objective": "ssim",
                                                           "lmgan.mode": "max", "lmgan.scheduler": "pbt"},
                                   {"trials": 4, "max_iters": 400}, {"search_space.yaml": SPACE})
    for trial, (values, final, exploits) in PBT.items():
        tr = tracking.TrialRun(uri, eid, pid, "sweep-pbt", trial, {**values, "vp_kernel": 3}, ["lr_g"])
        for step in PBT_ITERS:
            clone = next((e for e in exploits if e["iter"] == step), None)
            if clone:    # its own lineage reported this iteration, then took the donor's checkpoint
                tr.metrics({f"schedule.{k}": v for k, v in clone["was"].items()}, step)
                assert tr.flush()
                time.sleep(0.01)
                values = clone["new"]
            tr.metrics({"iter": step, **{f"schedule.{k}": v for k, v in values.items()},
                        **({"ssim": final * step / 400} if step else {})}, step)
        for i, e in enumerate(exploits, 1):
            tr.tag(f"lmgan.exploit.{i:02d}", json.dumps(e))
        assert tr.flush()
        tr.finish("finished")

    eid = tracking.ensure_experiment(uri, "mo", root / "mlartifacts")
    pid = tracking.start_sweep_run(uri, eid, "sweep-mo", {
        "lmgan.video": "mo", "lmgan.objective": "fvd", "lmgan.mode": "min", "lmgan.objectives": "fvd,av_align",
        "lmgan.modes": "min,max", "lmgan.scheduler": "fifo", "lmgan.pareto_trials": ",".join(FRONT)},
        {"trials": 5}, {"search_space.yaml": SPACE})
    run_ids = {}
    for k, (trial, (fvd, av, status)) in enumerate(MO.items()):
        tr = tracking.TrialRun(uri, eid, pid, "sweep-mo", trial, {"lr_g": 1e-4 * (k + 1), "vp_kernel": 3}, ["lr_g"])
        tr.metrics({"fvd": fvd, **({"av_align": av} if av is not None else {})}, 100)
        if trial in FRONT:
            tr.tag("lmgan.pareto", "true")
        assert tr.flush()
        tr.finish(status)
        run_ids[trial] = tr.run_id
    return {"uri": uri, "run_ids": run_ids}


def _chart(page: str, div_id: str) -> tuple[list, dict]:
    """A plotly chart's traces and layout, as the page hands them to Plotly.newPlot."""
    m = re.search(r'Plotly\.newPlot\(\s*"' + div_id + r'",\s*', page)
    assert m, div_id
    decoder = json.JSONDecoder()
    data, end = decoder.raw_decode(page, m.end())
    layout, _ = decoder.raw_decode(page, page.index("{", end))
    return data, layout


def _section(page: str, name: str) -> str:
    return page.split(f'<section id="{name}">', 1)[1].split("</section>", 1)[0]


def test_report_of_a_pbt_sweep(modes_store, tmp_path):
    """The lineage (a lane per trial, an arrow per exploit with what it changed) and the schedules
    (each trial's values over iterations, the values a clone went on with replacing its own)."""
    out = tmp_path / "pbt.html"
    write_report("pbt", out, modes_store["uri"])
    page = out.read_text(encoding="utf-8")
    assert "<span>scheduler pbt</span>" in page
    assert page.index('<section id="history">') < page.index('<section id="lineage">') \
        < page.index('<section id="schedules">') < page.index('<section id="best">')
    assert 'id="pareto"' not in page and "Pareto</span>" not in page

    # Lineage: a lane per trial from iteration 0 to its end, first trial on top; the exploits'
    # arrows from the donor's lane to the trial's, their words as the hover text.
    lineage = _section(page, "lineage")
    data, layout = _chart(lineage, "lineage-chart")
    lanes = {tr["y"][0]: tr["x"] for tr in data if tr.get("mode") == "lines"}
    assert lanes == {t: [0, 400] for t in PBT}
    assert layout["yaxis"]["categoryarray"] == ["t04", "t03", "t02", "t01"]
    words = ["t03 cloned t01 at iteration 200: lr_g 1e-4 → 1.2e-4, lr_d 2e-4 → 1.6e-4",
             "t04 cloned t02 at iteration 300: lr_g 3e-4 → 2.4e-4, lr_d 1e-4 → 8e-5"]
    arrows = next(tr for tr in data if tr.get("name") == "exploit")
    assert arrows["x"] == [200, 200, None, 300, 300, None]
    assert arrows["y"] == ["t01", "t03", None, "t02", "t04", None]
    assert arrows["text"][1] == words[0] + "<br>its own values before: lr_g 5e-5, lr_d 1e-4"
    assert arrows["text"][4].startswith(words[1])
    assert json.dumps(words[0])[1:-1] in lineage          # as plotly writes it into the page
    table = lineage.split('<details id="exploits">', 1)[1]
    assert "<summary>2 exploits</summary>" in table
    assert all(f'<td class="id">{w}</td>' in table for w in words)

    # Schedules: a subplot per key, log axes (learning rates), each trial a step line whose value
    # at an exploit's iteration is the clone's (its own lineage's value there is replaced).
    schedules = _section(page, "schedules")
    assert "<h2>Schedules: lr_d, lr_g</h2>" in schedules
    data, layout = _chart(schedules, "schedules-chart")
    assert layout["yaxis"]["type"] == "log" and layout["yaxis2"]["type"] == "log"
    lines = {(tr["name"], tr["yaxis"]): tr for tr in data}
    assert len(lines) == 8 and all(tr["line"]["shape"] == "hv" for tr in data)
    t03 = lines[("t03", "y2")]                              # lr_g, the second subplot
    assert t03["x"] == list(PBT_ITERS) and t03["y"] == [5e-5, 5e-5, 1.2e-4, 1.2e-4, 1.2e-4]
    assert lines[("t04", "y")]["y"] == [5e-5, 5e-5, 5e-5, 8e-5, 8e-5]
    assert ('<p class="note" id="exploit-count">2 exploits: 2 of 4 trials continued from a better '
            "trial&#39;s checkpoint, with that trial&#39;s values perturbed.</p>") in schedules


def test_report_of_a_two_objective_sweep(modes_store, tmp_path):
    """The front's trials badged in the table and drawn large and joined in the scatter; the best
    trial is the front's best on the primary objective, fvd."""
    out = tmp_path / "mo.html"
    write_report("mo", out, modes_store["uri"])
    page = out.read_text(encoding="utf-8")
    assert ('<span id="objectives">objectives <b>fvd</b> (minimise), <b>av_align</b> (maximise): '
            "a Pareto front, ranked by fvd</span>") in page
    assert "<span>scheduler fifo</span>" in page
    assert 'id="lineage"' not in page and 'id="schedules"' not in page

    # The table, ranked by fvd: the Pareto badge on exactly m1 and m2; m1 the best row.
    body = _section(page, "trials").split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    rows = re.findall(r"<tr([^>]*)>(.*?)</tr>", body)
    ids = {run_id: t for t, run_id in modes_store["run_ids"].items()}
    order = [ids[re.search(r'data-run-id="(\w+)"', attrs).group(1)] for attrs, _ in rows]
    assert order == ["m5", "m1", "m4", "m2", "m3"]
    badged = [t for t, (_, cells) in zip(order, rows) if 'class="badge pareto"' in cells]
    assert badged == FRONT
    assert [t for t, (attrs, _) in zip(order, rows) if 'class="best"' in attrs] == ["m1"]
    assert "<th>fvd ↓ (objective)</th>" in page and "<th>av_align ↑ (objective)</th>" in page

    # The front: a scatter, fvd across and av_align up, directions in the axis titles.
    pareto = _section(page, "pareto")
    assert "<h2>Pareto front: fvd (lower is better) vs av_align (higher is better)</h2>" in pareto
    data, layout = _chart(pareto, "pareto-chart")
    assert layout["xaxis"]["title"]["text"] == "fvd (lower is better)"
    assert layout["yaxis"]["title"]["text"] == "av_align (higher is better)"
    front, rest = (next(tr for tr in data if tr["name"] == n) for n in ("Pareto front", "dominated"))
    assert front["x"] == [80.0, 120.0] and front["y"] == [0.2, 0.5] and front["mode"] == "lines+markers+text"
    assert front["text"] == ["m1", "m2"]                   # the front's trials named beside their points
    assert front["marker"]["size"] > rest["marker"]["size"] and rest["opacity"] < 1
    assert sorted(rest["x"]) == [90.0, 130.0]              # m5, without av_align, is not drawn
    assert front["hovertext"][0] == "m1: fvd 80, av_align 0.2"
    listed = pareto.split('id="pareto-front"', 1)[1]
    assert re.findall(r'<td class="id"><span[^>]*>(\w+)</span></td>', listed) == FRONT
    assert "2 of 4 trials with a value of every objective are on the Pareto front" in pareto
    assert "1 trial without a value of every objective left out" in pareto

    best = _section(page, "best")
    assert "<h2>Best trial on fvd on the Pareto front</h2>" in best
    assert f'title="MLflow run {modes_store["run_ids"]["m1"]}">m1</span></b>: fvd = 80 (min)' in best


def test_a_plain_sweep_has_no_lineage_schedules_or_front(store, tmp_path):
    out = tmp_path / "plain.html"
    write_report("demo", out, store["uri"], sweep="sweep-a")
    page = out.read_text(encoding="utf-8")
    for absent in ('id="lineage"', 'id="schedules"', 'id="pareto"', 'id="objectives"', "Pareto</span>",
                   "scheduler ", "on the Pareto front"):
        assert absent not in page, absent
    assert "<h2>Best trial</h2>" in page


def test_three_objectives_a_scatter_matrix_and_the_goals_read_from_tags():
    from types import SimpleNamespace

    from lmgan.sweep.outcome import TrialOutcome, decide
    from lmgan.sweep.report.page import pareto as pareto_section
    from lmgan.sweep.report.queries import Trial, objectives
    points = {"a": (80.0, 0.2, 0.5), "b": (120.0, 0.5, 0.4), "c": (130.0, 0.4, 0.3), "d": (85.0, 0.1, 0.9)}
    names = ("fvd", "av_align", "motion_corr")
    trials = [Trial(TrialOutcome(t, "finished", 100, p[0], 100, dict(zip(names, p)), run_id=f"run-{t}"))
              for t, p in points.items()]
    goals = [("fvd", "min"), ("av_align", "max"), ("motion_corr", "max")]
    decide([t.outcome for t in trials], goals)
    assert [t.trial_id for t in trials if t.pareto] == ["a", "b", "d"]   # c: b is better on all three
    pareto = pareto_section(trials, goals, None)
    assert pareto.objectives == ["fvd (lower is better)", "av_align (higher is better)",
                                 "motion_corr (higher is better)"]
    assert [ref.trial_id for ref, _ in pareto.front] == ["a", "b", "d"] and pareto.front[0][1] == ["80", "0.2", "0.5"]
    assert '"type":"splom"' in pareto.chart and '"label":"motion_corr (higher is better)"' in pareto.chart

    def goals_of(**tags):
        return list(objectives(SimpleNamespace(data=SimpleNamespace(tags=tags, params={}))).goals)
    assert goals_of() == [("ssim", "max")]                                   # an older driver's sweep
    assert goals_of(**{"lmgan.objective": "fvd", "lmgan.objectives": "fvd"}) == [("fvd", "min")]
    assert goals_of(**{"lmgan.objective": "fvd", "lmgan.mode": "min", "lmgan.objectives": "fvd,av_align",
                       "lmgan.modes": "min,max"}) == [("fvd", "min"), ("av_align", "max")]
    # No readable modes: the primary's from lmgan.mode, the others' the registry's directions.
    assert goals_of(**{"lmgan.objective": "fvd", "lmgan.mode": "min", "lmgan.objectives": "fvd, lpips ,av_align"}) \
        == [("fvd", "min"), ("lpips", "min"), ("av_align", "max")]


def test_exploits_in_words_and_schedules_by_step():
    from types import SimpleNamespace

    from lmgan.sweep.report.page import exploit_row, short
    from lmgan.sweep.report.queries import by_step
    from lmgan.sweep.schema import Exploit, exploits_from_tags
    assert [short(v) for v in (1e-4, 1.23e-4, 0.5, 2e-3, 32, True, "convgru", 12345.0)] == \
        ["1e-4", "1.2e-4", "0.5", "2e-3", "32", "on", "convgru", "1.2e4"]       # as in the run names
    e = exploit_row("t2", Exploit.from_dict({"iter": 40, "at": 60, "from": "t1", "was": {"lr_g": 1e-4},
                                             "donor": {"lr_g": 2e-4, "rnn": "gru", "bs": None},
                                             "new": {"lr_g": 1.6e-4, "rnn": "gru", "bs": 8}}))
    assert e.text == "t2 cloned t1 at iteration 40 (it was at iteration 60): lr_g 2e-4 → 1.6e-4, rnn gru → gru, bs 8"
    assert (e.trial, e.donor, e.iteration, e.was) == ("t2", "t1", "40", "lr_g 1e-4")
    tags = {"lmgan.exploit.02": json.dumps({"iter": 9, "from": "x"}), "lmgan.exploit.01": json.dumps({"iter": 5, "from": "y"}),
            "lmgan.exploit.03": "not json", "lmgan.exploit.04": json.dumps({"iter": 5, "from": ["z"]}),
            "lmgan.status": "finished"}
    assert [x.from_trial for x in exploits_from_tags(tags)] == ["y", "x"]
    m = [SimpleNamespace(step=s, timestamp=ts, value=v) for s, ts, v in ((20, 5, 2.0), (10, 1, 1.0), (20, 3, 9.0))]
    assert by_step(m) == [(10, 1.0), (20, 2.0)]            # the value logged last at a step


def test_report_of_a_sweep(store, tmp_path, capsys):
    out = tmp_path / "rep" / "report.html"
    assert write_report("lmgan-demo", out, store["uri"], sweep="sweep-a") == out
    page = out.read_text(encoding="utf-8")
    err = capsys.readouterr().err
    assert "report: lmgan-demo / sweep-a: 4 trials" in err and "report: best trial trial_00001" in err
    assert "Downloading" not in err and "%|" not in err       # no MLflow progress bar per artifact

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
    assert '<td title="at iteration 30">0.81</td>' in rows[0][1]   # what it is ranked by: its best ssim
    assert '<th id="judged" title="what the trials are ranked by: each trial&#39;s best evaluation of ssim' in page
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


def test_the_best_trial_is_the_one_the_driver_judges_best(mlflow_store_template, tmp_path):
    """ASHA judges a trial by its best evaluation, the driver records it as best_<objective>: a
    trial whose latest ssim is the worst but whose best is the best is the page's best trial, first
    in the table and the one the baseline line measures, exactly as outcome.decide says."""
    from lmgan.sweep import schema
    from lmgan.sweep.outcome import TrialOutcome, decide
    from lmgan.sweep.report import gather_page
    root = copy_store(mlflow_store_template, tmp_path / "runs")
    uri = tracking.default_uri(root)
    eid = tracking.ensure_experiment(uri, "asha", root / "mlartifacts")
    objectives = schema.Objectives((("ssim", "max"),), "asha")
    pid = tracking.start_sweep_run(uri, eid, "sweep-asha", {schema.VIDEO: "asha", **objectives.to_tags()},
                                   {"trials": 4}, {schema.SPACE_FILE: SPACE})
    # trial → its ssim at iterations 10 and 20; the best_ssim the driver recorded (value, iteration)
    asha = {"a0": ((0.50, 0.60), (0.60, 20)),     # the baseline
            "a1": ((0.80, 0.55), (0.80, 10)),     # peaked early: the worst latest, the best best
            "a2": ((0.62, 0.70), None),           # not settled by the driver yet: its history judged here
            "a3": ((0.40, 0.45), (0.75, 30))}     # Tune's last report never reached MLflow: the driver's counts
    c = tracking.client(uri)
    for k, (trial, ((early, late), recorded)) in enumerate(asha.items()):
        tr = tracking.TrialRun(uri, eid, pid, "sweep-asha", trial, {"lr_g": 1e-4 * (k + 1), "vp_kernel": 3}, ["lr_g"])
        tr.metrics({"ssim": early}, 10)
        tr.metrics({"ssim": late}, 20)
        if trial == "a0":
            tr.tag(schema.BASELINE, "true")
        assert tr.flush()
        tr.finish("stopped")
        if recorded:
            c.log_metric(tr.run_id, schema.best_metric("ssim"), recorded[0], step=recorded[1])
    judged = {"a0": 0.60, "a1": 0.80, "a2": 0.70, "a3": 0.75}
    expected = decide([TrialOutcome(t, "stopped", 20, v, baseline=t == "a0") for t, v in judged.items()],
                      objectives.goals)
    assert expected.best.trial == "a1" and [t.trial for t in expected.ranked] == ["a1", "a3", "a2", "a0"]

    page = gather_page(c, "asha", uri, None, tmp_path / "report_files")
    assert page.best.trial.trial_id == expected.best.trial and page.best.value == "0.8"
    assert "its best evaluation of ssim, at iteration 10, as the sweep's driver recorded it" in page.best.judged
    assert [r.trial.trial_id for r in page.table.rows] == [t.trial for t in expected.ranked]
    assert [r.best for r in page.table.rows] == [True, False, False, False]
    assert [(r.judged, r.judged_at) for r in page.table.rows] == [("0.8", "10"), ("0.75", "30"), ("0.7", "20"),
                                                                  ("0.6", "20")]
    assert "0.5500" in page.table.rows[0].cells          # its latest ssim, beside the value it is ranked by
    assert page.head.versus == ("baseline a0 (the preset's own values): ssim 0.6; the best trial beat it by "
                                f"{expected.gain:.4g}")
    html = render_page(page)
    assert '<th id="judged" title="what the trials are ranked by: each trial&#39;s best evaluation of ssim' in html
    assert "best ssim ↑</th>" in html


def test_the_report_reads_no_private_names():
    """The report reads MLflow, Optuna and the rest of lmgan through their public names only: a
    private one (`_x`, imported or as an attribute) can change or go in any release."""
    import ast
    found = []
    for f in sorted((Path(__file__).resolve().parents[1] / "lmgan" / "sweep" / "report").glob("*.py")):
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [a.name for a in node.names]
            elif isinstance(node, ast.Attribute):
                names = [node.attr]
            elif (isinstance(node, ast.Call) and getattr(node.func, "id", "") in ("getattr", "hasattr", "setattr")
                  and len(node.args) > 1 and isinstance(node.args[1], ast.Constant)):
                names = [str(node.args[1].value)]
            else:
                continue
            private = [n for name in names for n in name.split(".") if n.startswith("_") and not n.endswith("__")]
            if private:
                found.append(f"{f.name}:{node.lineno}: {', '.join(private)}")
    assert not found, found


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

    from lmgan.sweep.report.study import from_param as _from_param
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
    best_trial = BestTrial(ref, "0.81", "finished", "30", f"Judged by {EVIL}", [(EVIL, EVIL)],
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
    assert '<p class="note" id="judged-by">Judged by &lt;script&gt;' in page and "could not be downloaded" in page
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
    from lmgan.sweep.report.page import metric_groups as _metric_groups
    logged = {"loss_g": 1.5, "sensitivity_silence": 0.7, "fvd": 120.0, "lpips": 0.2, "lpips_std": 0.01,
              "sensitivity": 0.4, "av_align_real": 0.5, "motion_corr": 0.3, "ssim": 0.6, "ssim_std": 0.05,
              "av_align": 0.25, "psnr": 21.0, "iter": 300.0}
    groups = _metric_groups(logged, ["fvd"])
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
        assert _metric_groups({name: 1.0}, ["ssim"])[0 if metric.kind in ("frame", "set") else 1].rows


def test_importance_warning_below_ten_trials():
    from lmgan.sweep.report.page import importance_warning as _importance_warning
    from lmgan.sweep.report.study import IMPORTANCE_MIN_TRIALS
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
from lmgan.sweep.report import page as report
page = report.render_page(pickle.loads(sys.stdin.buffer.read()))
print(json.dumps({"module": report.__file__, "html": page,
                  "template": report.environment().get_template(report.TEMPLATE).filename}))
"""


def test_template_ships_as_package_data(tmp_path):
    """Built as an install builds it (setuptools' build_py, from a copy of the project, with
    pyproject.toml's package-data), the package renders its page from there with another working
    folder: the template ships with the package and is loaded through it."""
    pytest.importorskip("setuptools")
    src, site = copy_project(tmp_path / "src"), tmp_path / "site"
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
    assert got["module"] == str(site / "lmgan" / "sweep" / "report" / "page.py")
    assert got["template"] == str(site / "lmgan" / "sweep" / "report" / "templates" / "report.html")
    _check_page(got["html"])


def _modes_page() -> SweepPage:
    """The hand-built page as a PBT, two-objective sweep: every new string carries markup too."""
    page = _page()
    page.head.objectives = [("ssim", "max"), (EVIL, "min")]
    page.head.scheduler = f"pbt{EVIL}"
    page.table.rows[1].pareto = True
    exploit = ExploitRow(f"t_{EVIL}", "t_1", "200", f"t_{EVIL} cloned t_1 at iteration 200: lr {EVIL}", f"lr {EVIL}")
    page.lineage = Lineage(Markup('<div id="lineage-chart">lanes</div>'), None, ["lr_g", EVIL], [exploit],
                           f"1 exploit {EVIL}.")
    page.pareto = Pareto(["ssim (higher is better)", f"{EVIL} (lower is better)"], None,
                         [(TrialRef(f"t_{EVIL}", "run3"), ["0.8", EVIL])], f"1 of 2 {EVIL}.")
    return page


def test_template_renders_lineage_schedules_and_front_escaped():
    page = render_page(_modes_page())
    _check_page(page)
    for section in ("pareto", "lineage", "schedules"):
        assert page.count(f'<section id="{section}">') == 1, section
    assert page.index('<section id="trials">') < page.index('<section id="pareto">') \
        < page.index('<section id="importance">')
    assert '<span id="objectives">objectives <b>ssim</b> (maximise), <b>&lt;script&gt;' in page
    assert "<span>scheduler pbt&lt;script&gt;" in page
    assert page.count('<span class="badge pareto"') == 1
    lineage, schedules = _section(page, "lineage"), _section(page, "schedules")
    assert '<div id="lineage-chart">lanes</div>' in lineage and "<summary>1 exploit</summary>" in lineage
    assert "cloned t_1 at iteration 200: lr &lt;script&gt;" in lineage
    assert "<h2>Schedules: lr_g, &lt;script&gt;" in schedules
    assert "No trial has logged the values it trains with" in schedules and "1 exploit &lt;script&gt;" in schedules
    pareto = _section(page, "pareto")
    assert "No trial has a value of every objective yet." in pareto and "1 of 2 &lt;script&gt;" in pareto
    assert "<th>&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; (lower is better)</th>" in pareto
    assert "<h2>Best trial on ssim on the Pareto front</h2>" in page and "no one best trial" in page
    # A PBT sweep before any trial reached an iteration: its lineage says so.
    empty = _modes_page()
    empty.lineage.chart, empty.lineage.exploits = None, []
    lineage = _section(render_page(empty), "lineage")
    assert "No trial has reached an iteration yet." in lineage and "<details" not in lineage


def test_run_links_carry_no_credentials():
    from types import SimpleNamespace

    from lmgan.sweep.report.page import redact as _redact, runs_url as _runs_url
    exp = SimpleNamespace(experiment_id="7")
    assert _runs_url("https://ann:s3cret@mlflow.lab:5000/", exp) == "https://mlflow.lab:5000/#/experiments/7/runs/"
    assert _redact("https://ann:s3cret@mlflow.lab:5000") == "https://ann:***@mlflow.lab:5000"
    assert _runs_url("sqlite:///runs/mlflow.db", exp) is None


def test_the_baseline_trial_is_marked_and_the_gain_over_it_stated():
    """The sweep's first trial runs the preset's own values: its row says so, and the head says
    how far the best trial beat it (in the objective's direction)."""
    from lmgan.sweep.outcome import TrialOutcome, decide
    from lmgan.sweep.report.page import versus
    from lmgan.sweep.schema import Objectives

    def line(goals, *trials):       # the head's line, from what outcome.decide made of the trials
        return versus(decide([TrialOutcome(t, "finished", 20, v, 20, {goals[0][0]: v}, baseline=b)
                              for t, v, b in trials], goals), Objectives(goals))
    motion = [("motion_corr", "max")]
    assert line(motion, ("aaaa", 0.2, True), ("bbbb", 0.45, False)) == \
        "baseline aaaa (the preset's own values): motion_corr 0.2; the best trial beat it by 0.25"
    assert line(motion, ("aaaa", 0.5, True), ("bbbb", 0.45, False)).endswith("; no trial beat it")
    assert line([("fvd", "min")], ("a", 90.0, True), ("b", 60.0, False)).endswith("beat it by 30")
    assert line(motion, ("aaaa", None, True), ("bbbb", 0.45, False)) == ""
    assert line(motion, ("bbbb", 0.45, False)) == ""
    # Several objectives: no one best to beat; whether the baseline is on the front.
    assert line([("fvd", "min"), ("ssim", "max")], ("a", 90.0, True), ("b", 60.0, False)) == \
        "baseline a (the preset's own values): fvd 90; not on the Pareto front"
    page = _page()
    page.head.versus = f"baseline {EVIL}"
    page.table.rows[1].baseline = True
    html = render_page(page)
    assert '<p class="meta" id="versus">baseline &lt;script&gt;' in html
    assert html.count('<span class="badge base"') == 1
