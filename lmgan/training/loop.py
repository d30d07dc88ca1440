"""One-shot training (docs/model.md): WGAN-GP with image and video critics, perceptual loss,
TTUR Adam, truncated back-propagation through consecutive windows.

The loop knows nothing of Ray or MLflow: it tells its listeners (training/events.py) when it
logged, evaluated, sampled and checkpointed, and adapters turn those into Tune reports or tracked
runs. A run is opened (new, resumed or restored by Tune) in training/run.py. The hot loop reads
nothing back from the device except every `log_every` iterations.
"""

from __future__ import annotations

import copy
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from lmgan.config import Config
from lmgan.data.dataset import TrainStreams, VideoData
from lmgan.data.media import VideoWriter
from lmgan.device import pick_device
from lmgan.errors import LmganError
from lmgan.metrics.evaluator import Evaluator, heldout_pass
from lmgan.nets.model import ListenAndMove, build_critics, detach_state
from lmgan.pixels import to_uint8, to_unit_float
from lmgan.training import artifacts, checkpoint
from lmgan.training.events import Samples, TrainingEvents
from lmgan.training.losses import PerceptualLoss, critic_loss

LOSSES = ("loss_d_image", "loss_d_video", "loss_gp", "loss_g_adv", "loss_pl", "loss_l1", "loss_l2")


class TrainingDiverged(LmganError):
    exit_code = 1


class Trainer:
    def __init__(self, cfg: Config, data: VideoData, run_dir: Path, callbacks: list[TrainingEvents] = (),
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
        self.model_ema, self._ema_params = self._ema_copy()
        betas = (cfg.beta1, cfg.beta2)
        self.opt_g = torch.optim.Adam(self.g_params, lr=cfg.lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(self.d_params, lr=cfg.lr_d, betas=betas)
        if cfg.lambda_pl > 0:
            self.perceptual = (perceptual or PerceptualLoss.from_config(cfg.vgg_weights)).to(self.device)
        else:
            self.perceptual = None

        self.evaluator = Evaluator(cfg.eval_metrics, self.device, stats_key=data.heldout_key(cfg.seq_len, cfg.eval_windows),
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
        self._history_file_whole = False     # history.jsonl holds self.history: appends may follow
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
            g_adv = -cfg.lambda_di * self.d_image(fake_t).mean() - cfg.lambda_dv * self.d_video(fake).mean()
            zero = g_adv.new_zeros(())
            pl = self.perceptual(fake.flatten(0, 1), real.flatten(0, 1)) if self.perceptual else zero
        l1 = (fake - real).abs().mean() if cfg.lambda_l1 > 0 else zero
        l2 = (fake - real).square().mean() if cfg.lambda_l2 > 0 else zero
        self.opt_g.zero_grad(set_to_none=True)
        (g_adv + cfg.lambda_pl * pl + cfg.lambda_l1 * l1 + cfg.lambda_l2 * l2).backward(inputs=self.g_params)
        self.opt_g.step()
        if self.model_ema is not None:
            with torch.no_grad():      # else autograd would chain every update into one growing graph
                torch._foreach_lerp_(self._ema_params, self.g_params, 1.0 - cfg.ema_decay)

        self.state = detach_state(state, dtype=torch.float32)   # carried in fp32 under autocast too
        self._loss_sum += torch.stack([loss_di, loss_dv, gp, g_adv, pl, l1, l2]).detach().float()
        self._loss_n += 1
        self.iteration += 1

    def _ema_copy(self) -> tuple[ListenAndMove | None, list]:
        """With ema_decay > 0, a copy of G and R whose weights follow the trained ones as an
        exponential moving average (stylegan2-ada's G_ema): a GAN's weights wander from step to
        step, their average draws steadier frames (docs/configuration.md, `ema_decay`). One fused
        lerp per step updates it; torch's AveragedModel would read its step count back from the
        device at every update."""
        if self.cfg.ema_decay <= 0:
            return None, []
        ema = copy.deepcopy(self.model).eval().requires_grad_(False)
        return ema, list(ema.parameters())

    @property
    def eval_model(self) -> ListenAndMove:
        """The networks evaluations, samples and renders use: the moving average when there is one."""
        return self.model if self.model_ema is None else self.model_ema

    def _autocast(self):
        """bf16 autocast of a forward pass when cfg.precision is bf16 (a no-op context otherwise)."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.precision == "bf16")

    # ----------------------------------------------------------------------------- the loop
    def run(self, progress: bool = True) -> dict:
        cfg = self.cfg
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._write_history()
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

    def _log(self) -> dict:
        """The one host sync: average the losses accumulated on the device since the last log."""
        values = (self._loss_sum / max(self._loss_n, 1)).tolist()
        now = time.perf_counter()
        rec = {"kind": "loss", "iter": self.iteration, **dict(zip(LOSSES, values)),
               "it_per_s": self._loss_n / max(now - self._t_last, 1e-9)}
        self._loss_sum.zero_()
        self._loss_n, self._t_last = 0, now
        self._keep(rec)
        for cb in self.callbacks:
            cb.on_log(rec)
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
            metrics = heldout_pass(self.eval_model, self.data, cfg, self.device, self.evaluator,
                                   seed=cfg.seed + 1, on_window=on_window if writer else None)
            if writer:
                writer.close()
        except BaseException:
            if writer:
                writer.abort()
            raise
        rec = {"kind": "eval", "iter": self.iteration, **metrics}
        self._keep(rec)
        artifacts.plot_curves(self.run_dir / "losses.png", self.history, title=self.name)
        for cb in self.callbacks:
            cb.on_evaluated(rec)
        if sample:
            grid, motion = samples / f"{tag}.png", samples / f"{tag}-motion.png"
            fake_all, real_all = np.concatenate(grid_fake), np.concatenate(grid_real)
            artifacts.save_png(grid, artifacts.sample_grid(fake_all, real_all))
            artifacts.plot_motion(motion, fake_all, real_all, cfg.fps, title=f"{self.name}, iteration {self.iteration}")
            done = Samples(self.iteration, samples / f"{tag}.mp4", grid, motion)
            for cb in self.callbacks:
                cb.on_sampled(done)
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
            **({"model_ema": self.model_ema.state_dict()} if self.model_ema is not None else {}),
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
        if self.model_ema is not None:   # a run that starts averaging on a resume starts from its weights
            self.model_ema.load_state_dict(ck.get("model_ema", ck["model"]))
        self.d_image.load_state_dict(ck["d_image"])
        self.d_video.load_state_dict(ck["d_video"])
        self.opt_g.load_state_dict(ck["opt_g"])
        self.opt_d.load_state_dict(ck["opt_d"])
        # Adam's moments continue; its settings are this run's (population-based training
        # continues a checkpoint with mutated learning rates).
        for opt, lr in ((self.opt_g, self.cfg.lr_g), (self.opt_d, self.cfg.lr_d)):
            for group in opt.param_groups:
                group.update(lr=lr, betas=(self.cfg.beta1, self.cfg.beta2))
        st = ck["state"]
        self.state = {"motion": [s.to(dev) for s in st["motion"]],
                      "vp": None if st["vp"] is None else st["vp"].to(dev)}
        self.streams.load_state_dict(ck["streams"])
        torch.set_rng_state(ck["rng"]["torch"])
        if dev.type == "cuda" and "cuda" in ck["rng"]:
            torch.cuda.set_rng_state(ck["rng"]["cuda"], dev)
        self.iteration = ck["iteration"]
        self.history = list(ck["history"])
        self._history_file_whole = False    # the file may hold a killed process's later lines

    # ----------------------------------------------------------------------------- history.jsonl
    def _write_history(self) -> None:
        """Make history.jsonl exactly self.history (the checkpoint's, on a resume), once per
        opening: after it each record is appended, not the whole file rewritten."""
        if not self._history_file_whole:
            artifacts.write_history(self.run_dir / "history.jsonl", self.history)
            self._history_file_whole = True

    def _keep(self, rec: dict) -> None:
        """Add a log or evaluation record to the history and to history.jsonl."""
        self.history.append(rec)
        if not self._history_file_whole:     # evaluate() outside run(), or after a failed append
            self._write_history()
            return
        try:
            artifacts.append_history(self.run_dir / "history.jsonl", rec)
        except BaseException:
            self._history_file_whole = False   # a part-written line: the next write rewrites it whole
            raise

    def save_checkpoint(self) -> Path:
        folder = checkpoint.ckpt_dir(self.run_dir)
        path = checkpoint.save(folder / checkpoint.name_for(self.iteration), self.state_dict())
        checkpoint.prune(folder, self.cfg.keep_checkpoints)
        for cb in self.callbacks:
            cb.on_checkpointed(self.iteration, path)
        return path
