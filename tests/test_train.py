"""Training end to end on a real decoded clip: losses, checkpoints, samples, cache, resume."""

import av
import pytest
import numpy as np
import torch

from support import train_cli
from lmgan.config import build_config
from lmgan.data.dataset import load_video_data
from lmgan.training import artifacts, checkpoint


def history(run, kind="loss"):
    return [r for r in artifacts.read_history(run / "history.jsonl") if r["kind"] == kind]


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
    from PIL import Image
    grid = Image.open(tiny_run / "samples" / "iter_0000020.png")
    assert grid.size == (16 * 32, 4 * 32 + 4)    # 16 held-out frames: spread, then consecutive
    assert (tiny_run / "samples" / "iter_0000020-motion.png").stat().st_size > 0


def test_the_sample_grid_shows_spread_then_consecutive_frames():
    from lmgan.training.artifacts import sample_grid
    n, s = 240, 4
    fake = np.arange(n, dtype=np.uint8)[:, None, None, None].repeat(s, 1).repeat(s, 2).repeat(3, 3)
    grid = sample_grid(fake, 255 - fake, columns=16)
    assert grid.shape == (4 * s + 4, 16 * s, 3)
    spread, consecutive = grid[0, ::s, 0], grid[2 * s + 4, ::s, 0]
    assert spread[0] == 0 and spread[-1] == n - 1 and (np.diff(spread.astype(int)) > 10).all()
    assert list(consecutive) == list(range(112, 128))           # the middle 16, in order
    assert (grid[3 * s + 4, ::s, 0] == 255 - consecutive).all()  # real below generated


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


def identical(a, b, where="") -> None:
    """Checkpoint contents equal bit for bit (tensors with torch.equal, the rest with ==)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            identical(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            identical(x, y, f"{where}[{i}]")
    else:
        assert a == b, (where, a, b)


def test_resume_is_bit_exact_in_weights_losses_and_evaluations(tmp_path, demo_clip):
    """On the CPU a resumed run is the uninterrupted run, bit for bit: every loss and evaluation,
    the networks, both optimisers, the carried states and the RNG (measured: 0.0 difference)."""
    common = ["--video", demo_clip, "--preset", "tiny", "--set", "log_every=1", "--set", "ckpt_every=4",
              "--set", "eval_every=3", "--set", "sample_every=100", "--set", "batch=2",
              "--set", "restart_every=3", "--set", "ema_decay=0.9"]
    assert train_cli(*common, "--out", tmp_path / "a", "--set", "iters=10") == 0
    assert train_cli(*common, "--out", tmp_path / "b", "--set", "iters=5") == 0
    assert train_cli("--resume", tmp_path / "b", "--set", "iters=10") == 0
    timing = ("it_per_s",)
    rows = [[{k: v for k, v in r.items() if k not in timing} for r in history(tmp_path / run, kind)]
            for run in ("a", "b") for kind in ("loss", "eval")]
    assert [r["iter"] for r in rows[2]] == list(range(1, 11)) and [r["iter"] for r in rows[3]] == [3, 5, 6, 9, 10]
    assert rows[0] == rows[2]                                      # every loss, exactly
    evals_a = {r["iter"]: r for r in rows[1]}
    for r in rows[3]:                                              # b also evaluated at its end (5)
        if r["iter"] in evals_a:
            assert r == evals_a[r["iter"]]
    a, b = (checkpoint.load(tmp_path / run) for run in ("a", "b"))
    assert a["iteration"] == b["iteration"] == 10
    for key in ("model", "model_ema", "d_image", "d_video", "opt_g", "opt_d", "state", "streams", "rng"):
        identical(a[key], b[key], key)


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


@pytest.mark.parametrize("precision, dtype", [("bf16", torch.bfloat16), ("fp32", torch.float32)])
def test_precision_is_the_dtype_the_convolutions_run_in(tmp_path, demo_clip, precision, dtype):
    """precision=bf16 really runs G's and both critics' convolutions in bf16 (autocast on), and
    fp32 in fp32: what the losses cannot show, since bf16's are within a few % of fp32's."""
    from lmgan.training.loop import Trainer
    cfg = build_config("tiny", sets=[f"precision={precision}"])
    trainer = Trainer(cfg, load_video_data(demo_clip, cfg, progress=False), tmp_path)
    seen = {}
    for name, net in (("G", trainer.model), ("D_I", trainer.d_image), ("D_V", trainer.d_video)):
        for m in net.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Conv3d)):
                m.register_forward_hook(lambda m, i, out, name=name: seen.setdefault(name, set()).add(out.dtype))
    trainer.step()
    assert seen == {"G": {dtype}, "D_I": {dtype}, "D_V": {dtype}}, seen


@pytest.mark.slow
def test_ctrl_c_and_sigterm_save_exit_130_and_resume(tmp_path, demo_clip):
    """A real `lmgan train` process: Ctrl-C (SIGINT), then a scheduler's SIGTERM on the resumed
    run, each save a checkpoint at the iteration they stopped (not a periodic one) and exit 130;
    the run then finishes with every iteration logged once."""
    import re
    import signal
    import subprocess
    import sys
    import time

    run = tmp_path / "run"
    never = "100000"

    def stop(args, sig, past):
        # SIGINT ignored at start-up, as for a job started in the background (`&`), where Python
        # installs no Ctrl-C handler of its own: lmgan must install one.
        proc = subprocess.Popen([sys.executable, "-m", "lmgan", "train", "--quiet", *map(str, args)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
        try:
            deadline = time.time() + 180
            while time.time() < deadline and proc.poll() is None:
                try:
                    if len(history(run)) >= past:
                        break
                except (OSError, ValueError):
                    pass
                time.sleep(0.2)
            proc.send_signal(sig)
            _, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()            # never leave a 100000-iteration run behind
                proc.wait()
        said = re.search(r"interrupted at iteration (\d+); checkpoint saved", err)
        assert proc.returncode == 130 and said, err[-2000:]
        assert "Traceback" not in err
        at = int(said.group(1))
        assert checkpoint.load(run)["iteration"] == at and at >= past
        return at

    first = stop(["--video", demo_clip, "--out", run, "--preset", "tiny", "--set", "log_every=1",
                  "--set", f"iters={never}", "--set", f"ckpt_every={never}", "--set", f"eval_every={never}",
                  "--set", f"sample_every={never}"], signal.SIGINT, 3)
    second = stop(["--resume", run], signal.SIGTERM, first + 3)
    assert train_cli("--resume", run, "--set", f"iters={second + 2}") == 0
    assert [r["iter"] for r in history(run)] == list(range(1, second + 3))


@pytest.mark.parametrize("key, on, nets", [("lambda_l1", 100.0, "G"), ("lambda_l2", 100.0, "G"),
                                           ("lambda_pl", 10.0, "G"), ("lambda_gp", 10.0, "D")])
def test_every_loss_weight_reaches_its_networks_update(tmp_path, demo_clip, vgg_path, key, on, nets):
    """One step from the same seed with a loss weighted 0 and weighted `on`: the updated weights
    of the networks that loss trains differ (a term logged but left out of backward would not),
    and the other side's do not (the critics' step comes first, G's losses cannot reach it)."""
    from lmgan.training.loop import Trainer
    after = []
    for weight in (0.0, on):
        cfg = build_config("tiny", sets=[f"{key}={weight}", f"vgg_weights={vgg_path}",
                                         *([] if key == "lambda_pl" else ["lambda_pl=0"])])
        trainer = Trainer(cfg, load_video_data(demo_clip, cfg, progress=False), tmp_path / f"{key}{weight}")
        trainer.step()
        after.append({"G": list(trainer.model.parameters()), "D": trainer.d_params})
    changed = lambda side: any(not torch.equal(a, b) for a, b in zip(after[0][side], after[1][side]))  # noqa: E731
    assert changed(nets), f"{key} does not reach {nets}'s update"
    if nets == "D":
        return      # G's step follows the critics' update, so it differs too
    assert not changed("D"), f"{key} leaks into the critics' update"


def test_a_checkpoint_continues_with_the_configs_optimiser_settings(tmp_path, demo_clip):
    """PBT continues a donor's checkpoint with perturbed learning rates: Adam's moments are the
    checkpoint's, its learning rates and betas the new config's (torch's load_state_dict would
    bring the old ones back)."""
    from dataclasses import replace

    from lmgan.training.run import open_run
    cfg = build_config("tiny", sets=["iters=2", "ckpt_every=2", "eval_every=100", "sample_every=100"])
    trainer = open_run(tmp_path / "a", cfg, demo_clip, progress=False)
    trainer.run(progress=False)
    ck = checkpoint.load(tmp_path / "a")
    new = replace(cfg, lr_g=3e-4, lr_d=2e-5, beta1=0.5, beta2=0.99, iters=4)
    clone = open_run(tmp_path / "b", new, demo_clip, restore=ck, progress=False)
    assert clone.iteration == 2
    for opt, lr in ((clone.opt_g, 3e-4), (clone.opt_d, 2e-5)):
        assert all(g["lr"] == lr and g["betas"] == (0.5, 0.99) for g in opt.param_groups)
    moments = ck["opt_g"]["state"][0]["exp_avg"]
    assert torch.equal(clone.opt_g.state_dict()["state"][0]["exp_avg"], moments)
