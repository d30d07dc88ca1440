"""Every benchmark of lmgan.bench runs end to end, small, and prints what it promises (figures
are never asserted: speed is measured by the benchmarks, not by tests). The history benchmark's
test is in test_history.py, the durable-write one's in test_durable_writes.py."""

import json
import subprocess
import sys

import pytest


# ------------------------------------------------------------------------------ the training step
@pytest.mark.slow   # a benchmark process that starts one process per size
def test_bench_prints_the_step_sharing_and_the_dirconvgru():
    out = subprocess.run([sys.executable, "-m", "lmgan.bench", "--sizes", "32", "--seq-len", "4",
                          "--seconds", "0", "--skip-metrics", "--concurrent", "2", "--json",
                          "--channel-base", "256"],     # narrow: the command, not the paper's model, is tested
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout)
    assert [(x["size"], x["precision"]) for x in r["results"]] == [(32, "fp32")]
    assert all(x["it_per_s"] > 0 for x in r["results"])
    assert r["shared_device"][0]["trials"] == 2 and r["shared_device"][0]["ok"] == 2, r["shared_device"]
    vp = r["dirconvgru"][0]
    assert vp["size"] == 32 and min(vp["fast_s"], vp["naive_s"]) > 0


def test_the_step_benchmark_times_one_size_and_the_dirconvgru_in_process(capsys):
    """`python -m lmgan.bench.step`, small and in this process: one 32² size of a narrow model,
    then the DirConvGRU table."""
    from lmgan.bench.step import main
    assert main(["--one", "32", "--seq-len", "4", "--seconds", "0", "--channel-base", "256"]) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert row["size"] == 32 and row["precision"] == "fp32" and row["it_per_s"] > 0
    assert main(["--skip-train", "--skip-metrics", "--sizes", "32", "--seq-len", "4", "--seconds", "0",
                 "--channel-base", "256"]) == 0
    out = capsys.readouterr().out
    assert "DirConvGRU forward + backward" in out and "fast is" in out and "  32² C=" in out


@pytest.mark.slow
def test_bench_times_bf16_autocast():
    out = subprocess.run([sys.executable, "-m", "lmgan.bench.step", "--one", "32", "--seq-len", "4",
                          "--seconds", "0", "--precision", "bf16", "--channel-base", "256"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    row = json.loads(out.stdout.strip().splitlines()[-1])
    assert row["precision"] == "bf16" and row["it_per_s"] > 0


# ------------------------------------------------------------------------------ the sweep's overhead
@pytest.mark.slow   # a real sweep on the tests' Ray cluster
def test_the_sweep_overhead_benchmark_prints_a_row_per_trial(ray_cluster, tmp_path):
    out = subprocess.run([sys.executable, "-m", "lmgan.bench.sweep_overhead", "--trials", "1", "--iters", "4",
                          "--eval-every", "2", "--seconds", "4", "--cpus-per-trial", "1", "--keep", str(tmp_path),
                          "--address", ray_cluster["address"]],
                         env=ray_cluster["env"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "1 trials × 4 iterations (tiny preset)" in out.stdout, out.stdout
    assert "overhead" in out.stdout and "\ntotal " in out.stdout and "sweep wall time" in out.stdout


# ------------------------------------------------------------------------------ ASHA against PBT
def test_the_schedulers_benchmark_rejects_an_unknown_option_in_one_line():
    """Its options are its own and the sweep's it names; a misspelt one no longer reaches six sweeps."""
    out = subprocess.run([sys.executable, "-m", "lmgan.bench.schedulers", "--eval-evry", "50"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr == "compare: error: unrecognized arguments: --eval-evry 50; did you mean --eval-every?\n"


def test_the_schedulers_benchmark_help_shows_every_default():
    from lmgan.bench.schedulers import PASSED, build_parser
    text = " ".join(build_parser().format_help().split())
    options = ["--video", "--seeds", "--schedulers", "--trials", "--max-iters", "--prefix", "--only-report"]
    options += [option for option, _, _ in PASSED]
    assert text.count("(default:") == len(options) == 14, text
    assert "passed to every sweep: --eval-every" in text and "(default: 1000)" in text


def test_the_schedulers_benchmark_passes_its_sweep_options_on():
    from lmgan.bench.schedulers import build_parser, sweep_options
    args = build_parser().parse_args(["--eval-every", "50", "--grace-iters", "100", "--runs-dir", "r",
                                      "--cpus-per-trial", "1"])
    assert sweep_options(args) == ["--eval-every", "50", "--grace-iters", "100", "--runs-dir", "r",
                                   "--cpus-per-trial", "1.0"]


def _log(c, run_id, key, points):
    """Metric points (step, value) in report order: each a millisecond after the previous."""
    for i, (step, value) in enumerate(points):
        c.log_metric(run_id, key, value, timestamp=1_000_000 + i, step=step)


def test_the_schedulers_table_judges_each_trial_as_its_scheduler_does(fresh_store, tmp_path, capsys):
    """--only-report over a store made by hand: an ASHA trial is judged by its best evaluation, a
    PBT trial by its last in report order (a clone reports iteration 20 again), and the best
    final model is compared at --max-iters."""
    from mlflow.tracking import MlflowClient

    from lmgan.bench.schedulers import main
    from lmgan.sweep import schema, tracking

    c = MlflowClient(tracking.default_uri(fresh_store))
    exp = c.create_experiment(schema.experiment_name("clip"))
    trials = {"asha": [[(10, 0.5), (20, 0.7), (30, 0.6)], [(10, 0.4), (30, 0.65)]],
              "pbt": [[(10, 0.3), (20, 0.9), (20, 0.2), (30, 0.25)], [(10, 0.1), (20, 0.15), (30, 0.2)]]}
    for scheduler, series in trials.items():
        parent = c.create_run(exp, tags={schema.SWEEP: f"cmp-{scheduler}-s0", schema.ROLE: schema.ROLE_SWEEP,
                                         **schema.Objectives((("motion_corr", "max"),), scheduler).to_tags()})
        for points in series:
            t = c.create_run(exp, tags={schema.PARENT: parent.info.run_id, schema.ROLE: schema.ROLE_TRIAL})
            _log(c, t.info.run_id, "motion_corr", points)
            _log(c, t.info.run_id, "ssim", [(step, 1 - value) for step, value in points])
            _log(c, t.info.run_id, schema.IT_PER_S, [(step, 1.0) for step, _ in points])
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"never decoded")
    assert main(["--video", str(clip), "--prefix", "cmp", "--seeds", "0", "--max-iters", "30",
                 "--only-report", "--runs-dir", str(fresh_store)]) == 0
    out = capsys.readouterr().out
    # ASHA: best 0.7 at 20 (its SSIM 0.3); best final 0.65 (SSIM 0.35). PBT: last values 0.25 and
    # 0.2 at 30, the 0.9 its first lineage reported at 20 is not its result.
    assert "| cmp-asha-s0 | asha | 0 | 0.700 | 20 | 0.300 | 0.650 | 0.350 | 60 | nan |" in out, out
    assert "| cmp-pbt-s0 | pbt | 0 | 0.250 | 30 | 0.750 | 0.250 | 0.750 | 60 | nan |" in out, out
    assert "| asha | 0.700 ± 0.000 | 0.300 ± 0.000 | 0.650 ± 0.000 | 0.350 ± 0.000 | 60 | nan |" in out, out


@pytest.mark.slow   # two real sweeps on the tests' Ray cluster
def test_the_schedulers_benchmark_runs_both_sweeps_and_prints_the_table(ray_cluster, fresh_store, sweep_clip):
    out = subprocess.run([sys.executable, "-m", "lmgan.bench.schedulers", "--video", str(sweep_clip),
                          "--seeds", "0", "--trials", "2", "--max-iters", "4", "--eval-every", "2",
                          "--grace-iters", "2", "--prefix", "t", "--preset", "tiny", "--objective", "ssim",
                          "--cpus-per-trial", "1", "--address", ray_cluster["address"],
                          "--runs-dir", str(fresh_store)],
                         env=ray_cluster["env"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [line for line in out.stdout.splitlines() if line.startswith("| t-")]
    assert [line.split(" | ")[1] for line in rows] == ["asha", "pbt"], out.stdout
    assert "| asha | " in out.stdout and "| pbt | " in out.stdout
    assert out.stderr.count("compare: ") == 2 and "--eval-every 2 --grace-iters 2" in out.stderr


# ------------------------------------------------------------------------------ time to listen
def test_the_time_to_listen_benchmark_prints_a_line_per_target(demo_clip, capsys):
    """`python -m lmgan.bench.listen`, tiny and in this process: every target gets its line, an
    iteration where it was reached, else the best value seen; --compare adds a second run."""
    from lmgan.bench.listen import TARGETS, main
    assert main(["--video", str(demo_clip), "--preset", "tiny", "--iters", "4", "--every", "2",
                 "--compare", "lambda_dv=0.5"]) == 0
    out = capsys.readouterr()
    blocks = out.out.split("tiny lambda_dv=0.5")
    assert len(blocks) == 2 and blocks[0].startswith("tiny (")
    for block in blocks:
        for name, *_ in TARGETS:
            assert name in block
    assert out.err.count(" it ") == 4            # a progress line per reading, two readings a run


def test_the_time_to_listen_benchmark_prints_json(demo_clip, capsys):
    from lmgan.bench.listen import TARGETS, main
    assert main(["--video", str(demo_clip), "--preset", "tiny", "--iters", "2", "--every", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["targets"]) == {name for name, *_ in TARGETS}
    assert [c["iteration"] for c in result["curve"]] == [2]


# ------------------------------------------------------------------------------ a preset's step
def test_the_preset_step_benchmark_prints_a_row_per_variant_and_thread_count(demo_clip, capsys):
    from lmgan.bench.preset_step import main
    assert main(["--video", str(demo_clip), "--preset", "tiny", "--compare", "vp=none", "--threads", "1", "2",
                 "--rounds", "1", "--steps", "1"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| tiny") or line.startswith("| vp")]
    assert [tuple(c.strip() for c in r.strip("|").split("|")[:2]) for r in rows] == [
        ("tiny", "1"), ("tiny", "2"), ("vp=none", "1"), ("vp=none", "2")]
