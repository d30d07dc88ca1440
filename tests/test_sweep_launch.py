"""What a sweep checks and says before it launches, without Ray: the pretrained weights first
(one line per missing file, exit 2, nothing created), the weights shipped to trials and written
once into a node's cache, `--dry-run`'s plan, and the time estimate's arithmetic and sources."""

import dataclasses
import hashlib
import os
import socket
import urllib.request
from types import SimpleNamespace

import numpy as np
import pytest

from lmgan import weights
from lmgan.config import build_config, needed_weights
from lmgan.data.media import write_video
from lmgan.errors import LmganError
from lmgan.metrics import REGISTRY
from lmgan.sweep import estimate as est
from lmgan.sweep import driver as search
from lmgan.sweep.ship import Shipped, node_path, receive, ship


@pytest.fixture
def places(tmp_path, monkeypatch):
    """Empty data, cache, runs and torch folders of this test's own; no weight variables."""
    folders = {k: tmp_path / k for k in ("data", "cache", "runs", "torch")}
    for var, key in (("LMGAN_DATA", "data"), ("LMGAN_CACHE", "cache"), ("LMGAN_RUNS", "runs"),
                     ("TORCH_HOME", "torch")):
        monkeypatch.setenv(var, str(folders[key]))
    monkeypatch.delenv("LMGAN_VIDEOS", raising=False)
    for w in weights.WEIGHTS.values():
        monkeypatch.delenv(w.env, raising=False)
    return SimpleNamespace(**folders)


def closed_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/"


def no_downloads(monkeypatch):
    """Every weight's URL on a local port nobody listens on: a download fails at once, offline
    or not."""
    for name, w in list(weights.WEIGHTS.items()):
        monkeypatch.setitem(weights.WEIGHTS, name, dataclasses.replace(w, url=closed_url() + w.filename))


def nothing_created(places):
    assert not places.runs.exists(), sorted(places.runs.rglob("*"))       # no store, no sweep folder
    assert not (places.cache / "data").exists() and not (places.cache / "stats").exists()   # nothing decoded


# ----------------------------------------------------------------------------- weights first
def test_needed_weights_come_from_the_config_and_the_metric_registry():
    assert needed_weights(build_config("demo", None, [])) == {}
    paper = build_config("paper-128", None, ["eval_metrics=fvd,ssim"])
    assert needed_weights(paper) == {"vgg16": None, "i3d": None}
    assert needed_weights(build_config("paper-128", None, ["vgg_weights=/v.pth"]))["vgg16"] == "/v.pth"
    for name, metric in REGISTRY.items():          # each metric's own `weights`, nothing else
        cfg = build_config("tiny", None, [f"eval_metrics={name}"])
        assert set(needed_weights(cfg)) == set(metric.weights), name


def test_missing_weights_stop_a_paper_sweep_before_anything_is_created(places, monkeypatch, capsys):
    """paper-128 on the named video quintet (a real file where `lmgan fetch` puts it): VGG16
    (lambda_pl 10), I3D (fvd, the objective) and Inception (fid) are missing and cannot be
    downloaded: one line each saying how to provide it, exit 2, and no MLflow store, no sweep
    folder, no decoded video."""
    places.data.mkdir()
    t = np.arange(32000) / 16000
    write_video(places.data / "quintet.mp4", np.zeros((40, 72, 128, 3), np.uint8), 20,
                audio=(0.1 * np.sin(2 * np.pi * 440 * t))[None].astype(np.float32), sample_rate=16000)
    no_downloads(monkeypatch)
    assert search.main(["--video", "quintet", "--set", "eval_metrics=ssim,fid", "--name", "paper"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    missing = [line for line in lines if line.startswith("sweep paper: ")]
    assert [line.split()[2] for line in missing] == ["vgg16:", "i3d:", "inception:"], lines
    for line, (name, how) in zip(missing, [("vgg16", "--set vgg_weights=PATH"), ("i3d", ""), ("inception", "")]):
        w = weights.WEIGHTS[name]
        assert w.filename in line and f"{w.env}=PATH" in line and "connection refused" in line.lower(), line
        assert how in line and "lmgan eval --weights" not in line
    assert lines[-1] == "sweep: error: 3 pretrained weight files this sweep needs are missing (above); " \
                        "nothing was created or started"
    nothing_created(places)


# ----------------------------------------------------------------------------- shipped to trials
def test_trials_get_the_drivers_weight_files_written_once_into_their_cache(places, tmp_path, monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("no download expected")
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    driver = tmp_path / "driver" / "my-vgg.pth"
    driver.parent.mkdir()
    driver.write_bytes(b"vgg bytes " * 1000)
    shipped = ship({"vgg16": driver}, put=lambda data: data)       # bytes inline instead of ray.put
    s = shipped["vgg16"]
    assert (s.filename, s.size, s.sha256) == ("vgg16-397923af.pth", 10000, hashlib.sha256(driver.read_bytes()).hexdigest())

    # A node whose cache lacks it: written once, under its content's name (never the canonical one).
    got = receive(shipped)["vgg16"]
    assert got == node_path(s) and got.read_bytes() == driver.read_bytes()
    assert got.parent == places.cache / "weights" / "shipped" and got.name.endswith("-vgg16-397923af.pth")
    stamp = got.stat().st_mtime_ns
    unfetchable = {"vgg16": dataclasses.replace(s, data=None)}       # fetching it would fail
    assert receive(unfetchable)["vgg16"] == got and got.stat().st_mtime_ns == stamp
    assert [p.name for p in got.parent.iterdir()] == [got.name]   # no temporary left behind

    # A shared LMGAN_CACHE that holds the very file under its canonical name: used, nothing copied.
    shared = tmp_path / "shared"
    monkeypatch.setenv("LMGAN_CACHE", str(shared))
    (shared / "weights").mkdir(parents=True)
    (shared / "weights" / "vgg16-397923af.pth").write_bytes(driver.read_bytes())
    assert receive(unfetchable)["vgg16"] == shared / "weights" / "vgg16-397923af.pth"
    assert not (shared / "weights" / "shipped").exists()
    # A different file under that name is not the driver's: the shipped one is written beside it.
    (shared / "weights" / "vgg16-397923af.pth").write_bytes(b"the node's own")
    assert receive(shipped)["vgg16"] == node_path(s)
    # Bytes that are not what the driver hashed are refused.
    monkeypatch.setenv("LMGAN_CACHE", str(tmp_path / "other"))
    with pytest.raises(RuntimeError, match="not the one the sweep's driver hashed"):
        receive({"vgg16": Shipped("vgg16", s.filename, s.size, s.sha256, b"tampered")})

    # In a trial, lookups return the shipped files and download nothing else.
    with weights.given_only({"vgg16": got}):
        assert weights.locate("vgg16", "/driver/path/that/is/not/here.pth") == got
        with pytest.raises(LmganError, match="I3D .* not found"):
            weights.locate("i3d")
    monkeypatch.setenv("LMGAN_I3D_WEIGHTS", str(driver))
    assert weights.locate("i3d") == driver          # outside the block: lookups as ever


# ----------------------------------------------------------------------------- --dry-run
def test_dry_run_prints_the_plan_and_the_estimate_and_creates_nothing(places, sweep_clip, capsys):
    from lmgan.cli import main
    rc = main(["sweep", "--video", str(sweep_clip), "--preset", "tiny", "--objective", "ssim", "--trials", "3",
               "--max-iters", "40", "--eval-every", "10", "--grace-iters", "10", "--cpus-per-trial", "1",
               "--name", "dry", "--dry-run"])
    out = capsys.readouterr().out
    assert rc == 0, out
    rows = {}
    for line in out.splitlines():
        key, _, value = line.partition(" ")
        rows.setdefault(key, []).append(value.strip())
    assert rows["sweep"] == ["dry (dry run: no store, no sweep folder, no trial)"]
    assert rows["trials"][0].startswith("3, objective ssim (max)")
    for key in ("lr_g", "lr_d", "rnn_layers", "vp_kernel"):                     # the space, key by key
        assert any(line.strip().startswith(key) for line in out.splitlines()), key
    assert "lr_g       loguniform[1e-05, 0.001]" in out
    fit = os.cpu_count()          # one CPU a trial: as many at once as this machine has CPUs
    assert rows["resources"][0].startswith(f"1 CPU + 0 GPU per trial (1 torch thread), {fit} at once on this machine")
    assert rows["scheduler"] == ["asha: grace 10, max 40 iterations, reduction factor 3 (a trial is judged at 10, 30)"]
    assert rows["tracking"] == [f"sqlite:///{places.runs.resolve() / 'mlflow.db'}"]
    assert rows["weights"] == ["none needed"]
    line = rows["estimate"][0]
    assert line.startswith("(measured on this CPU with the trials' 1 thread, ") and " s/it; an evaluation ≈ " in line
    assert ": at most 3 trials × 40 iterations ≈ " in line and f", {min(fit, 3)} at a time" in line
    nothing_created(places)
    for parser in (search.build_parser(),):
        assert "--dry-run" in parser.format_help() and "(default: off)" in " ".join(parser.format_help().split())


def test_dry_run_is_refused_with_resume(places, capsys):
    assert search.main(["--resume", "--name", "x", "--dry-run"]) == 2
    assert "--dry-run shows a new sweep's plan" in capsys.readouterr().err


# ----------------------------------------------------------------------------- ASHA's budget
def _asha(argv):
    """The plan make_plan makes of a sweep's arguments, and the scheduler Tune gets from it."""
    from ray.tune.schedulers import ASHAScheduler
    from lmgan.sweep.schedulers import search_and_scheduler
    p = search.make_plan(search.build_parser().parse_args(argv), str(weights.cache_dir() / "sweeps"))
    _, scheduler = search_and_scheduler(p)
    assert isinstance(scheduler, ASHAScheduler)
    return p, scheduler, sorted(m for m, _ in scheduler._brackets[0]._rungs)


def test_asha_judges_each_trial_at_the_documented_rungs_on_its_evaluations(places, sweep_clip):
    """docs/sweeps.md: ASHA with time_attr = iteration and reduction factor 3, judging on the
    objective at every evaluation; a trial runs --max-iters and is first judged after
    --grace-iters (default: 5 evaluations), then at grace·3^k below the end: the demo's sweep
    (grace 200, max 900, every 100) is judged at 200 and 600. Every rung falls on an evaluation
    (a trial reports only then), and every trial's config trains, evaluates and checkpoints on
    that schedule."""
    places.data.mkdir()
    (places.data / "demo.mp4").write_bytes(sweep_clip.read_bytes())
    p, asha, rungs = _asha(["--video", "demo"])
    assert (p.max_iters, p.grace_iters, p.eval_every, p.objective, p.mode) == (900, 200, 100, "motion_corr", "max")
    assert (asha._time_attr, asha._metric, asha._mode, asha._max_t) == ("iter", "motion_corr", "max", 900)
    assert asha._reduction_factor == 3 and rungs == [200, 600] == est.asha_iterations(900, 200)[1]
    cfg = p.config
    assert (cfg.iters, cfg.eval_every, cfg.ckpt_every) == (900, 100, 100)
    assert all(r % cfg.eval_every == 0 for r in rungs)

    p, asha, rungs = _asha(["--video", str(sweep_clip), "--preset", "tiny", "--objective", "fvd",
                            "--max-iters", "400", "--eval-every", "20"])
    assert (p.grace_iters, asha._max_t, asha._metric, asha._mode) == (100, 400, "fvd", "min")   # 5 evaluations
    assert rungs == [100, 300] and (p.config.iters, p.config.eval_every) == (400, 20)
    p, asha, rungs = _asha(["--video", str(sweep_clip), "--preset", "tiny", "--max-iters", "90",
                            "--eval-every", "10", "--grace-iters", "10"])
    assert asha._max_t == 90 and [r for r in rungs if r < 90] == [10, 30] == est.asha_iterations(90, 10)[1]


# ----------------------------------------------------------------------------- the estimate
def plan(**kw):
    base = dict(trials=4, max_iters=1000, eval_every=100, grace_iters=200, scheduler="asha",
                config=SimpleNamespace(image_size=64))
    return SimpleNamespace(**{**base, **kw})


def test_the_estimates_arithmetic():
    assert est.asha_iterations(1000, 200) == (pytest.approx(200 + 400 / 3 + 400 / 9), [200, 600])
    assert est.asha_iterations(50000, 5000)[1] == [5000, 15000, 45000]      # Tune's rungs
    assert est.asha_iterations(20, 20) == (20, [])                            # judged only at the end
    speed = est.Speed(0.21, 3.0, "measured here")
    # 4 trials, one at a time: 4 × (1000 × 0.21 s + 10 evaluations × 3 s) = 960 s
    assert est.line(plan(), speed, 1) == (
        "estimate (measured here): at most 4 trials × 1000 iterations ≈ 16 min, 1 at a time; if ASHA stops "
        "two thirds at each rung (200, 600): 378 iterations a trial on average ≈ 6 min")
    # two at a time halve it; ASHA's expectation is never below one whole trial (240 s)
    assert "≈ 8 min, 2 at a time" in est.line(plan(), speed, 2)
    assert est.line(plan(), speed, 4).endswith("≈ 4 min, 4 at a time")
    assert "ASHA" not in est.line(plan(scheduler="pbt"), speed, 1)
    # paper-128 on a CPU at 21 s/it: 20 trials × 50 000 iterations is months, and says so
    paper = plan(trials=20, max_iters=50000, eval_every=1000, grace_iters=5000)
    text = est.line(paper, est.Speed(21.0, 0.0, "measured here"), 1)
    assert "20 trials × 50000 iterations ≈ 8.0 months (243 days), 1 at a time" in text
    assert text.endswith("11852 iterations a trial on average ≈ 58 days")
    assert [est.human(s) for s in (0.5, 30, 600, 5 * 3600, 3 * 86400, 3 * 365.25 * 86400)] == \
        ["0.5 s", "30 s", "10 min", "5.0 h", "3.0 days", "3.0 years"]
    assert est.line(plan(), None, 1, "why not") == "estimate: none (why not)"


def test_gpu_trials_take_the_papers_stated_figure_and_say_so(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("GPU trials are not timed on the driver's CPU")
    monkeypatch.setattr(est, "measure", refuse)
    fig = est.stated(128)
    assert fig.s_per_it == pytest.approx(86400 / 50000) and est.stated(256).s_per_it == pytest.approx(3 * 86400 / 100000)
    assert fig.source.startswith("the paper's stated figure, not measured here: 50 k iterations at 128² in ~1 day "
                                 "on one RTX 3090 (≈0.58 it/s; arXiv 2406.16155)")
    text = est.estimate(plan(trials=20, max_iters=50000, eval_every=1000, grace_iters=5000,
                             config=SimpleNamespace(image_size=128)), cpus=2, gpus=0.5, at_once=2)
    assert text.startswith("estimate (the paper's stated figure, not measured here") and "10 days, 2 at a time" in text
    assert est.stated(64) is None
    text = est.estimate(plan(), cpus=2, gpus=0.25, at_once=4)
    assert text.startswith("estimate: none (the trials use GPUs, which this driver does not time, and the paper "
                           "states no figure for 64²")
