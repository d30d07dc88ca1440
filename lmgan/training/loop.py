"""One-shot training (DESIGN §4): WGAN-GP with image and video critics, perceptual loss, TTUR Adam,
truncated back-propagation through consecutive windows.

The loop knows nothing of Ray or MLflow: it calls back with events — ("log", record),
("evaluated", record), ("sampled", paths), ("checkpointed", path) — and adapters turn those into
console output, Tune reports or tracked runs. The hot loop reads nothing back from the device
except every `log_every` iterations.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import yaml
from tqdm import tqdm

from lmgan import atomic
from lmgan.config import RESUMABLE_KEYS, Config, apply_overrides, validate
from lmgan.data.dataset import TrainStreams, VideoData, load_cached, load_video_data
from lmgan.data.media import VideoWriter
from lmgan.errors import LmganError
from lmgan.metrics.evaluator import Evaluator, heldout_pass
from lmgan.nets.model import ListenAndMove, build_critics, detach_state
from lmgan.pixels import to_uint8, to_unit_float
from lmgan.training import checkpoint, report
from lmgan.training.losses import PerceptualLoss, critic_loss

LOSSES = ("loss_d_image", "loss_d_video", "loss_gp", "loss_g_adv", "loss_pl", "loss_l1")
Callback = Callable[[str, dict], None]


class TrainingDiverged(LmganError):
    exit_code = 1


def heldout_key(data: VideoData, cfg: Config) -> str:
    """Identifies the real held-out windows: the video's data key and the windowing."""
    return f"{data.key}-L{cfg.seq_len}-w{cfg.eval_windows}"


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise LmganError(f"config: device={name!r} but CUDA is not available on this machine")
    return torch.device(name)


class Trainer:
    def __init__(self, cfg: Config, data: VideoData, run_dir: Path, callbacks: list[Callback] = (),
                 perceptual: PerceptualLoss | None = None, name: str | None = None):
        self.cfg, self.data, self.run_dir = cfg, data, Path(run_dir)
        self.name = name or self.run_dir.name      # titles of the progress bar and the plots
        self.callbacks = list(callbacks)
        self.device = pick_device(cfg.device)
        torch.manual_seed(cfg.seed)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        if cfg.precision == "bf16" and self.device.type == "cpu" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            print("lmgan: warning: precision=bf16 on a CPU without bf16 instructions is emulated and "
                  "several times slower than fp32; it is meant for GPUs", file=sys.stderr)

        self.model = ListenAndMove(cfg).to(self.device)
        self.model.set_feature_stats(*(s.to(self.device) for s in data.feature_stats()))
        self.d_image, self.d_video = (c.to(self.device) for c in build_critics(cfg))
        self.g_params = list(self.model.parameters())
        self.d_params = list(self.d_image.parameters()) + list(self.d_video.parameters())
        betas = (cfg.beta1, cfg.beta2)
        self.opt_g = torch.optim.Adam(self.g_params, lr=cfg.lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(self.d_params, lr=cfg.lr_d, betas=betas)
        if cfg.lambda_pl > 0:
            self.perceptual = (perceptual or PerceptualLoss.from_config(cfg.vgg_weights)).to(self.device)
        else:
            self.perceptual = None

        self.evaluator = Evaluator(cfg.eval_metrics, self.device, stats_key=heldout_key(data, cfg),
                                   fps=cfg.fps, sample_rate=cfg.sample_rate)
        self.evaluator.check(len(data.heldout_starts(cfg.seq_len, cfg.eval_windows)), cfg.seq_len)

        # Data resident on the device: a step gathers its windows with one index.
        self.frames = data.frames.to(self.device)
        self.feats = data.feats.to(self.device)
        self.window = torch.arange(cfg.seq_len)
        self.streams = TrainStreams(data.n_train, cfg.seq_len, cfg.batch, cfg.seed, cfg.restart_every)
        self.state = self.model.initial_state(cfg.batch, self.device)
        self.iteration = 0
        self.history: list[dict] = []
        self._loss_sum = torch.zeros(len(LOSSES), device=self.device)
        self._loss_n = 0
        self._t_last = time.perf_counter()

    # ----------------------------------------------------------------------------- one step
    def step(self) -> None:
        cfg, dev = self.cfg, self.device
        starts, reset = self.streams.next()
        idx = (torch.tensor(starts)[:, None] + self.window).to(dev, non_blocking=True)
        real = to_unit_float(self.frames[idx])                      # [B, L, 3, S, S]
        feats = self.feats[idx]
        if any(reset):
            keep = torch.tensor([0.0 if r else 1.0 for r in reset]).to(dev, non_blocking=True)
            self.state = detach_state(self.state, keep)
        amp = self._autocast
        with amp():
            fake, state = self.model.generate(feats, self.state)
        fake = fake.float()

        # Critics: one random frame index per step (same t for real and fake) for D_I; whole
        # windows for D_V, which must also score a frame-shuffled real window as fake: a second
        # full WGAN-GP term, as the authors train it.
        t = torch.randint(cfg.seq_len, (1,), device=dev)
        real_t, fake_t = real.index_select(1, t).squeeze(1), fake.index_select(1, t).squeeze(1)
        shuffled = real.index_select(1, torch.randperm(cfg.seq_len, device=dev))
        fake_d, fake_t_d = fake.detach(), fake_t.detach()
        loss_di, gp_i = critic_loss(self.d_image, real_t, [fake_t_d], amp)
        loss_dv, gp_v = critic_loss(self.d_video, real, [fake_d, shuffled], amp)
        gp = gp_i + gp_v
        self.opt_d.zero_grad(set_to_none=True)
        (loss_di + loss_dv + cfg.lambda_gp * gp).backward(inputs=self.d_params)
        self.opt_d.step()

        with amp():
            g_adv = -self.d_image(fake_t).mean() - self.d_video(fake).mean()
            zero = g_adv.new_zeros(())
            pl = self.perceptual(fake.flatten(0, 1), real.flatten(0, 1)) if self.perceptual else zero
        l1 = (fake - real).abs().mean() if cfg.lambda_l1 > 0 else zero
        self.opt_g.zero_grad(set_to_none=True)
        (g_adv + cfg.lambda_pl * pl + cfg.lambda_l1 * l1).backward(inputs=self.g_params)
        self.opt_g.step()

        self.state = detach_state(state, dtype=torch.float32)   # carried in fp32 under autocast too
        self._loss_sum += torch.stack([loss_di, loss_dv, gp, g_adv, pl, l1]).detach().float()
        self._loss_n += 1
        self.iteration += 1

    def _autocast(self):
        """bf16 autocast of a forward pass when cfg.precision is bf16 (a no-op context otherwise)."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.precision == "bf16")

    # ----------------------------------------------------------------------------- the loop
    def run(self, progress: bool = True) -> dict:
        cfg = self.cfg
        self.run_dir.mkdir(parents=True, exist_ok=True)
        bar = tqdm(total=cfg.iters, initial=self.iteration, disable=not progress, unit="it",
                   dynamic_ncols=True, desc=self.name)
        start_iter, t0 = self.iteration, time.perf_counter()
        try:
            while self.iteration < cfg.iters:
                self.step()
                bar.update(1)
                i, last = self.iteration, self.iteration == cfg.iters
                if i % cfg.log_every == 0 or last:
                    rec = self._log()
                    bar.set_postfix({k[5:]: f"{rec[k]:.3g}" for k in LOSSES[:4]}, refresh=False)
                do_eval, do_sample = i % cfg.eval_every == 0 or last, i % cfg.sample_every == 0 or last
                if do_eval or do_sample:
                    self.evaluate(sample=do_sample)
                if i % cfg.ckpt_every == 0 or last:
                    self.save_checkpoint()
        except KeyboardInterrupt:
            bar.close()
            if self.iteration > start_iter:
                if self._loss_n:
                    self._log()
                self.save_checkpoint()
            raise
        finally:
            bar.close()
        elapsed = time.perf_counter() - t0
        evals = [r for r in self.history if r["kind"] == "eval"]
        return {"iterations": self.iteration, "it_per_s": (self.iteration - start_iter) / max(elapsed, 1e-9),
                "last_eval": evals[-1] if evals else {}, "samples": str(self.run_dir / "samples"),
                "checkpoint": str(checkpoint.latest(checkpoint.ckpt_dir(self.run_dir)))}

    def _emit(self, event: str, info: dict) -> None:
        for cb in self.callbacks:
            cb(event, info)

    def _log(self) -> dict:
        """The one host sync: average the losses accumulated on the device since the last log."""
        values = (self._loss_sum / max(self._loss_n, 1)).tolist()
        now = time.perf_counter()
        rec = {"kind": "loss", "iter": self.iteration, **dict(zip(LOSSES, values)),
               "it_per_s": self._loss_n / max(now - self._t_last, 1e-9)}
        self._loss_sum.zero_()
        self._loss_n, self._t_last = 0, now
        self.history.append(rec)
        report.write_history(self.run_dir / "history.jsonl", self.history)
        self._emit("log", rec)
        if not all(math.isfinite(v) for v in values):
            bad = [k for k, v in zip(LOSSES, values) if not math.isfinite(v)]
            raise TrainingDiverged(f"training diverged: non-finite {', '.join(bad)} at iteration "
                                   f"{self.iteration} (try lower lr_g/lr_d)")
        return rec

    # ----------------------------------------------------------------------------- evaluation
    def evaluate(self, sample: bool = False) -> dict:
        """Score the held-out part (metrics/evaluator.py); with `sample`, also write the sample
        video (generated | real, with the held-out sound) and a frame grid."""
        cfg = self.cfg
        samples, tag = self.run_dir / "samples", f"iter_{self.iteration:07d}"
        writer, grid_fake, grid_real = None, [], []

        def on_window(start, fake, real):
            f8, r8 = to_uint8(fake), to_uint8(real)
            writer.add_frames(np.concatenate([f8, r8], axis=2))
            writer.add_audio(self.data.audio_span(start, cfg.seq_len)[None])
            grid_fake.append(f8)
            grid_real.append(r8)

        if sample:
            samples.mkdir(parents=True, exist_ok=True)
            writer = VideoWriter(samples / f"{tag}.mp4", cfg.fps, 2 * cfg.image_size, cfg.image_size,
                                 audio_rate=cfg.sample_rate)
        try:
            metrics = heldout_pass(self.model, self.data, cfg, self.device, self.evaluator,
                                   seed=cfg.seed + 1, on_window=on_window if writer else None)
            if writer:
                writer.close()
        except BaseException:
            if writer:
                writer.abort()
            raise
        rec = {"kind": "eval", "iter": self.iteration, **metrics}
        self.history.append(rec)
        report.write_history(self.run_dir / "history.jsonl", self.history)
        report.plot_curves(self.run_dir / "losses.png", self.history, title=self.name)
        self._emit("evaluated", rec)
        if sample:
            grid, motion = samples / f"{tag}.png", samples / f"{tag}-motion.png"
            fake_all, real_all = np.concatenate(grid_fake), np.concatenate(grid_real)
            report.save_png(grid, report.frame_grid(fake_all, real_all))
            report.plot_motion(motion, fake_all, real_all, cfg.fps, title=f"{self.name}, iteration {self.iteration}")
            self._emit("sampled", {"iter": self.iteration, "video": str(samples / f"{tag}.mp4"),
                                   "grid": str(grid), "motion": str(motion)})
        return rec

    # ----------------------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict:
        rng = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {
            "iteration": self.iteration,
            "config": self.cfg.to_dict(),
            "data": {"key": self.data.key, "source": self.data.source},
            "model": self.model.state_dict(),
            "d_image": self.d_image.state_dict(),
            "d_video": self.d_video.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "state": {"motion": [s.cpu() for s in self.state["motion"]],
                      "vp": None if self.state["vp"] is None else self.state["vp"].cpu()},
            "streams": self.streams.state_dict(),
            "rng": rng,
            "history": self.history,
        }

    def load_state_dict(self, ck: dict) -> None:
        dev = self.device
        self.model.load_state_dict(ck["model"])
        self.d_image.load_state_dict(ck["d_image"])
        self.d_video.load_state_dict(ck["d_video"])
        self.opt_g.load_state_dict(ck["opt_g"])
        self.opt_d.load_state_dict(ck["opt_d"])
        st = ck["state"]
        self.state = {"motion": [s.to(dev) for s in st["motion"]],
                      "vp": None if st["vp"] is None else st["vp"].to(dev)}
        self.streams.load_state_dict(ck["streams"])
        torch.set_rng_state(ck["rng"]["torch"])
        if dev.type == "cuda" and "cuda" in ck["rng"]:
            torch.cuda.set_rng_state(ck["rng"]["cuda"], dev)
        self.iteration = ck["iteration"]
        self.history = list(ck["history"])

    def save_checkpoint(self) -> Path:
        folder = checkpoint.ckpt_dir(self.run_dir)
        path = checkpoint.save(folder / checkpoint.name_for(self.iteration), self.state_dict())
        checkpoint.prune(folder, self.cfg.keep_checkpoints)
        self._emit("checkpointed", {"iter": self.iteration, "path": str(path)})
        return path


# --------------------------------------------------------------------------------- entry points
def write_run_config(run_dir: Path, cfg: Config, video: str) -> None:
    atomic.write_text(Path(run_dir) / "config.yaml",
                      yaml.safe_dump({"video": video, **cfg.to_dict()}, sort_keys=False))


def new_run(video: str | Path, cfg: Config, run_dir: Path, callbacks=(), progress=True) -> Trainer:
    run_dir = Path(run_dir)
    if checkpoint.all_checkpoints(checkpoint.ckpt_dir(run_dir)):
        raise LmganError(f"{run_dir}: already holds a run; resume it with --resume {run_dir} "
                         f"or choose another --out")
    data = load_video_data(video, cfg, progress=progress)
    trainer = Trainer(cfg, data, run_dir, callbacks)  # builds everything before touching the folder
    run_dir.mkdir(parents=True, exist_ok=True)
    write_run_config(run_dir, cfg, str(video))
    return trainer


def resume_run(run_dir: Path, overrides: dict | None = None, callbacks=(), progress=True) -> Trainer:
    """Continue from the latest checkpoint; only RESUMABLE_KEYS may change."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir() or checkpoint.latest(checkpoint.ckpt_dir(run_dir)) is None:
        raise LmganError(f"{run_dir}: no run to resume (no checkpoints/ckpt_*.pt)")
    ck, latest = checkpoint.load_latest(checkpoint.ckpt_dir(run_dir))
    cfg = apply_overrides(Config(), ck["config"], str(latest))
    fixed = sorted(k for k in (overrides or {}) if k not in RESUMABLE_KEYS)
    if fixed:
        raise LmganError(f"--resume: {fixed[0]!r} cannot change in a resumed run "
                         f"(changeable: {', '.join(sorted(RESUMABLE_KEYS))})")
    cfg = validate(apply_overrides(cfg, overrides or {}, "--set"))
    data = load_cached(ck["data"]["key"], cfg)
    if data is None:
        source = ck["data"]["source"]
        if not Path(source).is_file():
            raise LmganError(f"{run_dir}: the decoded data is no longer cached and the source "
                             f"video {source} is gone")
        data = load_video_data(source, cfg, progress=progress)
        if data.key != ck["data"]["key"]:
            raise LmganError(f"{source}: the file changed since this run started")
    trainer = Trainer(cfg, data, run_dir, callbacks)
    trainer.load_state_dict(ck)
    write_run_config(run_dir, cfg, data.source)
    return trainer
