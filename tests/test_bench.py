"""The benchmark command runs end to end and prints what it promises (figures are never
asserted: speed is measured by the benchmark, not by tests)."""

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow   # whole benchmark processes


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


def test_bench_times_bf16_autocast():
    out = subprocess.run([sys.executable, "-m", "lmgan.bench", "--one", "32", "--seq-len", "4",
                          "--seconds", "0", "--precision", "bf16", "--channel-base", "256"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    row = json.loads(out.stdout.strip().splitlines()[-1])
    assert row["precision"] == "bf16" and row["it_per_s"] > 0
