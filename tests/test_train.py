"""Training end to end on a real decoded clip: losses, checkpoints, samples, cache, resume."""

import json

import av
import pytest
import torch

from conftest import train_cli
from lmgan.config import build_config
from lmgan.data.dataset import load_video_data
from lmgan.training import checkpoint


def history(run, kind="loss"):
    rows = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    return [r for r in rows if r["kind"] == kind]


def test_twenty_steps_write_checkpoint_sample_and_curves(tiny_run):
    losses = history(tiny_run)
    assert [r["iter"] for r in losses] == [5, 10, 15, 20]
    for r in losses:
        assert all(torch.isfinite(torch.tensor(v)) for k, v in r.items() if k.startswith("loss_"))
    assert losses[-1]["loss_pl"] > 0                      # the perceptual loss ran (random VGG16)
    evals = history(tiny_run, "eval")
    assert [r["iter"] for r in evals] == [10, 20] and 0 <= evals[-1]["ssim"] <= 1
    assert (tiny_run / "losses.png").stat().st_size > 0
    assert (tiny_run / "config.yaml").is_file()
    ck = checkpoint.load(checkpoint.latest(checkpoint.ckpt_dir(tiny_run)))
    assert ck["iteration"] == 20 and {"model", "opt_g", "opt_d", "state", "rng", "streams"} <= ck.keys()
    sample = tiny_run / "samples" / "iter_0000020.mp4"
    with av.open(str(sample)) as c:
        kinds = sorted(s.type for s in c.streams)
        v = c.streams.video[0]
        assert kinds == ["audio", "video"] and (v.width, v.height) == (64, 32)   # generated | real
        assert c.streams.audio[0].codec_context.name == "aac"
    assert (tiny_run / "samples" / "iter_0000020.png").is_file()
    assert (tiny_run / "samples" / "iter_0000020-motion.png").stat().st_size > 0


def test_streams_restart_from_zero_states_every_k_windows():
    from lmgan.data.dataset import TrainStreams
    streams = TrainStreams(n_train=200, seq_len=8, batch=2, seed=0, restart_every=3)
    steps = [streams.next() for _ in range(7)]
    assert [r for _, r in steps] == [[True, True], [False, False], [False, False]] * 2 + [[True, True]]
    for (a, _), (b, reset) in zip(steps, steps[1:]):
        for pa, pb, fresh in zip(a, b, reset):
            assert fresh or pb == pa + 8                  # consecutive windows between restarts
    saved = streams.state_dict()
    ahead = [streams.next() for _ in range(5)]
    again = TrainStreams(n_train=200, seq_len=8, batch=2, seed=1, restart_every=3)
    again.load_state_dict(saved)
    assert [again.next() for _ in range(5)] == ahead


def test_cache_hit_on_second_load(demo_clip):
    cfg = build_config("tiny", sets=["image_size=64"])   # a setting no other test uses: fresh key
    first = load_video_data(demo_clip, cfg, progress=False)
    second = load_video_data(demo_clip, cfg, progress=False)
    assert not first.cached and second.cached and first.key == second.key
    assert torch.equal(first.frames, second.frames) and torch.equal(first.feats, second.feats)
    assert first.frames.shape == (80, 64, 64, 3) and first.n_train == 64
    other = load_video_data(demo_clip, build_config("tiny", sets=["image_size=64", "n_mels=8"]), progress=False)
    assert other.key != first.key and not other.cached


def test_resume_matches_uninterrupted(tmp_path, demo_clip):
    common = ["--video", demo_clip, "--preset", "tiny", "--set", "log_every=1", "--set", "ckpt_every=4",
              "--set", "eval_every=100", "--set", "sample_every=100", "--set", "batch=2",
              "--set", "restart_every=3"]
    assert train_cli(*common, "--out", tmp_path / "a", "--set", "iters=10") == 0
    assert train_cli(*common, "--out", tmp_path / "b", "--set", "iters=6") == 0
    assert train_cli("--resume", tmp_path / "b", "--set", "iters=10") == 0
    a, b = history(tmp_path / "a"), history(tmp_path / "b")
    assert [r["iter"] for r in b] == list(range(1, 11))
    for ra, rb in zip(a, b):
        for k in ra:
            if k.startswith("loss_"):
                assert ra[k] == pytest.approx(rb[k], rel=1e-4, abs=1e-5), (ra["iter"], k)


def test_corrupt_latest_checkpoint_falls_back_to_the_previous(tiny_run, tmp_path, capsys):
    import shutil
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    folder = checkpoint.ckpt_dir(run)
    assert [p.name for p in checkpoint.all_checkpoints(folder)] == ["ckpt_0000010.pt", "ckpt_0000020.pt"]
    latest = folder / "ckpt_0000020.pt"
    latest.write_bytes(latest.read_bytes()[:4096])        # a write cut short
    ck, path = checkpoint.load_latest(run)
    assert ck["iteration"] == 10 and path.name == "ckpt_0000010.pt"
    assert train_cli("--resume", run, "--set", "iters=25") == 0
    assert "skipping" in capsys.readouterr().err
    assert checkpoint.load(run)["iteration"] == 25
    for p in checkpoint.all_checkpoints(folder):
        checkpoint.load(p)                                   # the cut file was rewritten whole


def test_bf16_autocast_trains_resumes_in_fp32_and_tracks_fp32(tmp_path, demo_clip, vgg_path):
    """precision=bf16 (on the CPU here, the GPU's option): same losses to bf16 accuracy at the
    first step, states carried and checkpointed in fp32, and the run resumes in fp32."""
    common = ["--video", demo_clip, "--preset", "tiny", "--set", "log_every=1", "--set", "iters=3",
              "--set", "eval_every=100", "--set", "sample_every=100", "--set", "lambda_pl=10",
              "--set", f"vgg_weights={vgg_path}"]
    assert train_cli(*common, "--out", tmp_path / "fp32") == 0
    assert train_cli(*common, "--out", tmp_path / "bf16", "--set", "precision=bf16") == 0
    full, half = history(tmp_path / "fp32")[0], history(tmp_path / "bf16")[0]
    assert half["loss_pl"] == pytest.approx(full["loss_pl"], rel=0.05)
    assert all(torch.isfinite(torch.tensor(v)) for r in history(tmp_path / "bf16")
               for k, v in r.items() if k.startswith("loss_"))
    ck = checkpoint.load(checkpoint.latest(checkpoint.ckpt_dir(tmp_path / "bf16")))
    assert ck["state"]["vp"].dtype == torch.float32
    assert all(s.dtype == torch.float32 for s in ck["state"]["motion"])
    assert train_cli("--resume", tmp_path / "bf16", "--set", "iters=5", "--set", "precision=fp32") == 0
    assert [r["iter"] for r in history(tmp_path / "bf16")] == [1, 2, 3, 4, 5]
