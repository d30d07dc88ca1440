"""history.jsonl is appended a record at a time, made whole from the checkpoint when a run opens,
and read back past a torn last line (what a killed run leaves)."""

import json

import pytest

from lmgan.config import apply_overrides, build_config, validate
from lmgan.errors import LmganError
from lmgan.training import artifacts, checkpoint
from lmgan.training.loop import Trainer


@pytest.fixture
def tiny_trainer(tmp_path):
    """A Trainer of the tiny preset on synthetic data (no decoding): Trainer(iters) for a run
    of `iters` iterations in one run folder."""
    from lmgan.bench.step import _synthetic_data

    cfg = validate(apply_overrides(build_config("tiny"), {"device": "cpu", "eval_metrics": ["ssim"]}, "test"))
    data = _synthetic_data(cfg)

    def make(iters: int) -> Trainer:
        return Trainer(validate(apply_overrides(cfg, {"iters": iters}, "test")), data, tmp_path / "run")
    return make


def test_each_log_appends_one_line_and_the_file_is_rewritten_once(tiny_trainer, monkeypatch):
    calls = []
    for name in ("write_history", "append_history"):
        real = getattr(artifacts, name)
        monkeypatch.setattr(artifacts, name, lambda *a, _real=real, _name=name: (calls.append(_name), _real(*a)))
    trainer = tiny_trainer(20)
    trainer.run(progress=False)
    # tiny: a log every 5 iterations, an evaluation every 10: 4 + 2 records, all appended
    assert calls == ["write_history"] + ["append_history"] * 6
    assert artifacts.read_history(trainer.run_dir / "history.jsonl") == trainer.history
    assert [(r["kind"], r["iter"]) for r in trainer.history] == [
        ("loss", 5), ("loss", 10), ("eval", 10), ("loss", 15), ("loss", 20), ("eval", 20)]


def test_a_torn_last_line_is_skipped(tmp_path):
    path = tmp_path / "history.jsonl"
    whole = [{"kind": "loss", "iter": 5}, {"kind": "eval", "iter": 10, "ssim": 0.5}]
    artifacts.write_history(path, whole)
    with open(path, "a") as f:
        f.write('{"kind": "loss", "it')                        # a kill in the middle of an append
    assert artifacts.read_history(path) == whole
    artifacts.write_history(path, whole)
    path.write_text(path.read_text().rstrip("\n"))             # cut before its newline: still whole
    assert artifacts.read_history(path) == whole
    path.write_text('{"kind": "loss"\n{"kind": "loss", "iter": 10}\n')
    with pytest.raises(LmganError, match=r"history.jsonl:1: not a JSON record"):
        artifacts.read_history(path)                           # not a torn append: an error


def test_a_resume_drops_what_the_killed_process_wrote_past_its_checkpoint(tiny_trainer):
    first = tiny_trainer(10)
    first.run(progress=False)                                   # checkpoint at 10
    path = first.run_dir / "history.jsonl"
    with open(path, "a") as f:                                  # the killed process went on
        f.write(json.dumps({"kind": "loss", "iter": 15, "killed": True}) + "\n")
        f.write('{"kind": "loss", "iter": 2')
    ck, _ = checkpoint.load_latest(checkpoint.ckpt_dir(first.run_dir))
    resumed = tiny_trainer(20)
    resumed.load_state_dict(ck)
    resumed.run(progress=False)
    records = artifacts.read_history(path)
    assert records == resumed.history and not any(r.get("killed") for r in records)
    assert [(r["kind"], r["iter"]) for r in records] == [
        ("loss", 5), ("loss", 10), ("eval", 10), ("loss", 15), ("loss", 20), ("eval", 20)]
    assert path.read_text().endswith("}\n")


def test_the_history_benchmark_prints_its_figures(tmp_path, capsys):
    """`python -m lmgan.bench.history`, small (figures are the benchmark's, not asserted)."""
    from lmgan.bench.history import main
    assert main(["--lines", "10", "300", "--repeats", "2", "--dir", str(tmp_path), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert [row["lines"] for row in r["history"]] == [10, 300]
    assert all(row["append_ms"] > 0 and row["rewrite_ms"] > 0 for row in r["history"])
    assert list(tmp_path.iterdir()) == []                       # its scratch folder is gone
    assert main(["--lines", "10", "--repeats", "1", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "append ms" in out and "rewrite ms" in out and "\n          10 " in out
