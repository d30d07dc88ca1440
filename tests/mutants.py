"""Mutation checks: does the test that names a feature fail when the feature breaks?

Each mutation below is a realistic bug (a dropped argument, a flipped comparison, a line gone)
written into a scratch copy of the repository; the tests that name the feature then run on that
copy. A mutation they do not catch *survives*: the feature is not really tested.

    python tests/mutants.py                   # every mutation (about half an hour on 2 cores)
    python tests/mutants.py --fast            # only those whose tests are not marked slow
    python tests/mutants.py render-offset best-min-for-max     # by name
    python tests/mutants.py --list

Not part of CI: run it before a refactor of a listed feature, and add a mutation with each
test written for a bug. Exit status 0 when every mutation is caught; 1 when one survives, no
longer applies (the code it rewrites changed: update it here) or breaks the test run itself.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str                        # file, relative to the repository root
    edits: tuple[tuple[str, str], ...]   # (text that must occur exactly once, its replacement)
    tests: tuple[str, ...]           # pytest arguments: the tests that name the feature
    slow: bool = False               # its tests start Ray clusters or servers


def m(name, path, old, new, *tests, slow=False, more=()) -> Mutation:
    return Mutation(name, path, ((old, new), *more), tests, slow)


MUTATIONS = [
    # Render streams exactly what training saw.
    m("render-offset", "lmgan/render.py", "feats(wave, t, n, offset)", "feats(wave, t, n)",
      "tests/test_render.py"),
    m("render-state-dropped", "lmgan/render.py", "frames, state = model.generate(f[None], state)",
      "frames, _ = model.generate(f[None], state)", "tests/test_render.py"),
    m("render-deaf", "lmgan/render.py", "f = feats(wave, t, n, offset).to(dev)",
      "f = feats(np.zeros(1, np.float32), t, n).to(dev)", "tests/test_render.py", "-k", "moves"),
    m("render-sound-rate", "lmgan/render.py",
      'to_out = Resampler(out_rate, "stereo" if channels == 2 else "mono") if out_rate else None',
      'to_out = Resampler(cfg.sample_rate, "stereo" if channels == 2 else "mono") if out_rate else None',
      "tests/test_render.py"),
    m("feature-stats-not-saved", "lmgan/nets/model.py",
      'self.register_buffer("feat_mean", torch.zeros(f))',
      'self.register_buffer("feat_mean", torch.zeros(f), persistent=False)', "tests/test_render.py", "-k", "own_sound",
      more=(('self.register_buffer("feat_std", torch.ones(f))',
             'self.register_buffer("feat_std", torch.ones(f), persistent=False)'),)),
    m("feature-chunk-shifted", "lmgan/data/features.py",
      "np.rint(np.asarray(t) * self.sr / self.fps / self.hop)",
      "np.rint(np.asarray(t) * self.sr / self.fps / self.hop + 2)", "tests/test_features.py"),
    # The DirConvGRU's directions.
    m("dirconvgru-no-centre-line", "lmgan/nets/prediction.py", "mask_h[:, : ctr + 1] = 1.0",
      "mask_h[:, :ctr] = 1.0", "tests/test_nets.py", "tests/test_prediction_naive.py"),
    m("dirconvgru-v-mirrored-wrong", "lmgan/nets/prediction.py",
      "return torch.cat((h, h.flip(-1), v, v.flip(-2), w[\"c\"]), 0)",
      "return torch.cat((h, h.flip(-1), v, v.flip(-1), w[\"c\"]), 0)",
      "tests/test_nets.py", "tests/test_prediction_naive.py"),
    # Training: precision, exact resume, interruption.
    m("bf16-autocast-off", "lmgan/training/loop.py", 'enabled=self.cfg.precision == "bf16"',
      "enabled=False", "tests/test_train.py", "-k", "precision or bf16"),
    m("resume-rng-not-restored", "lmgan/training/loop.py", 'torch.set_rng_state(ck["rng"]["torch"])',
      "pass", "tests/test_train.py", "-k", "resume"),
    m("resume-streams-not-restored", "lmgan/training/loop.py",
      'self.streams.load_state_dict(ck["streams"])', "pass", "tests/test_train.py", "-k", "resume"),
    m("resume-optimiser-not-restored", "lmgan/training/loop.py",
      'self.opt_d.load_state_dict(ck["opt_d"])', "pass", "tests/test_train.py", "-k", "resume"),
    m("interrupt-saves-nothing", "lmgan/training/loop.py",
      "                self.save_checkpoint()\n            raise", "            raise",
      "tests/test_train.py", "-k", "ctrl_c"),
    m("l1-not-in-backward", "lmgan/training/loop.py",
      "(g_adv + cfg.lambda_pl * pl + cfg.lambda_l1 * l1 + cfg.lambda_l2 * l2).backward",
      "(g_adv + cfg.lambda_pl * pl + cfg.lambda_l2 * l2).backward",
      "tests/test_train.py", "-k", "loss_weight"),
    m("gp-not-in-backward", "lmgan/training/loop.py", "(loss_di + loss_dv + cfg.lambda_gp * gp).backward",
      "(loss_di + loss_dv).backward", "tests/test_train.py", "-k", "loss_weight"),
    # The moving average of the weights: updated, read by evaluations and renders, checkpointed.
    m("ema-not-updated", "lmgan/training/loop.py",
      "torch._foreach_lerp_(self._ema_params, self.g_params, 1.0 - cfg.ema_decay)", "pass",
      "tests/test_ema.py"),
    m("ema-not-evaluated", "lmgan/training/loop.py", "metrics = heldout_pass(self.eval_model,",
      "metrics = heldout_pass(self.model,", "tests/test_ema.py"),
    m("ema-not-rendered", "lmgan/render.py", 'model.load_state_dict(ck.get("model_ema", ck["model"]))',
      'model.load_state_dict(ck["model"])', "tests/test_ema.py"),
    m("ema-not-resumed", "lmgan/training/loop.py", 'self.model_ema.load_state_dict(ck.get("model_ema", ck["model"]))',
      'self.model_ema.load_state_dict(ck["model"])', "tests/test_train.py", "-k", "resume"),
    # history.jsonl: appended a line per record, made whole at open, a torn last line skipped.
    m("history-rewritten-every-log", "lmgan/training/loop.py",
      'artifacts.append_history(self.run_dir / "history.jsonl", rec)',
      'artifacts.write_history(self.run_dir / "history.jsonl", self.history)', "tests/test_history.py", "-k", "appends"),
    m("history-not-made-whole-at-open", "lmgan/training/loop.py", "        self._write_history()\n        bar = tqdm(",
      "        bar = tqdm(", "tests/test_history.py", "-k", "appends"),
    m("torn-history-line-fatal", "lmgan/training/artifacts.py", "the write was cut short\n                break",
      "the write was cut short\n                raise", "tests/test_history.py", "-k", "torn"),
    # The schedulers' benchmark judges a trial as the sweep does.
    m("schedulers-judge-pbt-by-best", "lmgan/bench/schedulers.py",
      "outcome.judged(points, mode, goals.judged_by_last)", "outcome.judged(points, mode, False)",
      "tests/test_bench.py", "-k", "judges"),
    # Metrics: the sensitivity probe replays the main pass's noise; values that cannot be 0.
    m("probe-noise-not-replayed", "lmgan/metrics/evaluator.py", "                    _set_rng_state(device, rng)\n",
      "", "tests/test_sync.py"),
    m("frechet-sign", "lmgan/metrics/frechet.py", "np.trace(s1) + np.trace(s2) - 2.0 * cross",
      "np.trace(s1) - np.trace(s2) - 2.0 * cross", "tests/test_eval.py", "tests/test_frechet.py"),
    # Command-line errors.
    m("demo-seconds-zero", "lmgan/cli.py", "if args.seconds <= 0:", "if args.seconds < 0:",
      "tests/test_errors.py", "-k", "demo_video"),
    m("oserror-traceback", "lmgan/errors.py", "    except OSError as e:\n", "    except LookupError as e:\n",
      "tests/test_errors.py", "-k", "unwritable"),
    m("report-error-exit-0", "lmgan/errors.py", "        return e.exit_code\n", "        return 0\n",
      "tests/test_report.py"),
    # MLflow bookkeeping.
    m("fail-drops-reason", "lmgan/sweep/tracking.py", "self.outbox.tag(ERROR, reason)", "pass",
      "tests/test_tracking.py", slow=True),
    m("outage-drops-metrics", "lmgan/sweep/outbox.py", "            self.failed_sends += 1\n",
      "            self.failed_sends += 1\n            self.metrics = []\n",
      "tests/test_faults.py", "-k", "server_down_mid_sweep", slow=True),
    # Sweeps: restarts continue, the best trial and its checkpoint are the right ones.
    m("restart-ignores-checkpoint", "lmgan/sweep/trainable.py", "if (restored := tune.get_checkpoint()) is None:",
      "if (restored := None) is None:", "tests/test_faults.py", "-k", "killed_worker", slow=True),
    m("restart-weights-only", "lmgan/training/run.py", "trainer.load_state_dict(restore)",
      'trainer.model.load_state_dict(restore["model"])',
      "tests/test_faults.py", "tests/test_train.py", "-k", "killed_worker or resume", slow=True),
    m("best-min-for-max", "lmgan/sweep/outcome.py", '    sign = 1 if mode == "max" else -1\n    it, v = max(',
      '    sign = -1 if mode == "max" else 1\n    it, v = max(', "tests/test_sweep.py", "-k", "two_node",
      slow=True),
    m("best-sort-flipped", "lmgan/sweep/outcome.py", '    sign = -1 if mode == "max" else 1\n    scored',
      '    sign = 1 if mode == "max" else -1\n    scored', "tests/test_sweep.py", "-k", "two_node", slow=True),
    m("best-checkpoint-latest", "lmgan/sweep/summary.py", "if metrics.get(ITER) == at:", "if True:",
      "tests/test_summary.py"),
    m("best-min-for-max-unit", "lmgan/sweep/outcome.py", '    sign = 1 if mode == "max" else -1\n    it, v = max(',
      '    sign = -1 if mode == "max" else 1\n    it, v = max(', "tests/test_summary.py"),
    m("best-is-the-latest", "lmgan/sweep/outcome.py", "    if by_last:\n", "    if True:\n",
      "tests/test_summary.py", "tests/test_outcome.py"),
    # --resume: the plan read back, and a snapshot that names a deleted checkpoint.
    m("plan-loses-config", "lmgan/sweep/plan.py",
      'd["config"] = validate(apply_overrides(Config(), d["config"], where))', 'd["config"] = Config()',
      "tests/test_plan.py"),
    m("snapshot-not-mended", "lmgan/sweep/snapshot.py", "if present and present[-1] > name:", "if False:",
      "tests/test_snapshot.py"),
    # The preset's own values as the first trial, and the gain over it.
    m("baseline-not-proposed", "lmgan/sweep/schedulers.py",
      "first = [plan.baseline] if plan.baseline else None", "first = None",
      "tests/test_sweep.py", "-k", "two_node", slow=True),
    m("baseline-gain-unsigned", "lmgan/sweep/outcome.py",
      'return (top.value - base.value) * (1 if mode == "max" else -1)',
      "return top.value - base.value", "tests/test_summary.py"),
    # Population-based training and multi-objective sweeps.
    m("clone-keeps-old-lr", "lmgan/training/loop.py",
      "group.update(lr=lr, betas=(self.cfg.beta1, self.cfg.beta2))", "pass",
      "tests/test_train.py", "-k", "optimiser"),
    m("tag-spelled-twice", "lmgan/sweep/record.py", "c.set_tag(parent, BEST_TRIAL, out.best.trial)",
      'c.set_tag(parent, "lmgan.best_trial", out.best.trial)', "tests/test_schema.py"),
    m("metric-spelled-twice", "lmgan/sweep/record.py", "c.log_metric(parent, best_metric(objective), out.best.value)",
      'c.log_metric(parent, f"best_{objective}", out.best.value)', "tests/test_schema.py"),
    m("clone-not-undone", "lmgan/sweep/lineage.py", "    if len(lineage) <= kept:", "    if True:",
      "tests/test_tracking.py", "-k", "pbt"),
    m("pbt-explore-unclamped", "lmgan/sweep/space.py", "v = min(max(value, low), high)", "v = value",
      "tests/test_space.py", "-k", "pbt"),
    m("pareto-ignores-direction", "lmgan/sweep/outcome.py",
      'signs = [1 if m == "max" else -1 for m in modes]', "signs = [1 for m in modes]",
      "tests/test_summary.py", "-k", "pareto"),
    m("several-objectives-under-asha", "lmgan/sweep/plan.py", "    if n_objectives == 1:\n",
      "    if n_objectives >= 1:\n", "tests/test_videos.py", "-k", "scheduler"),
    # The held-out split: no training step reads the last 20 %, frames or sound; evaluation
    # generates exactly it.
    m("train-part-rounded", "lmgan/data/dataset.py", "n_train = int(t * cfg.train_frac + 1e-9)",
      "n_train = round(t * cfg.train_frac)", "tests/test_heldout.py"),
    m("streams-run-past-training", "lmgan/data/dataset.py", "elif p + self.seq_len > self.n_train:",
      "elif p > self.n_train:", "tests/test_heldout.py"),
    m("streams-restart-anywhere", "lmgan/data/dataset.py",
      "p = int(torch.randint(self.n_train - self.seq_len + 1, (), generator=self.gen))",
      "p = int(torch.randint(self.n_train, (), generator=self.gen))", "tests/test_heldout.py"),
    m("feature-stats-whole-video", "lmgan/data/dataset.py", "f = self.feats[: self.n_train]", "f = self.feats",
      "tests/test_heldout.py"),
    m("trainer-streams-whole-video", "lmgan/training/loop.py", "self.streams = TrainStreams(data.n_train,",
      "self.streams = TrainStreams(data.n_frames,", "tests/test_heldout.py"),
    m("heldout-starts-one-early", "lmgan/data/dataset.py", "return [self.n_train + k * seq_len for k in range(n)]",
      "return [self.n_train - 1 + k * seq_len for k in range(n)]", "tests/test_heldout.py"),
    m("training-tail-hears-heldout", "lmgan/data/dataset.py", "fx(audio[lo:end].copy(), first",
      "fx(audio[lo:].copy(), first", "tests/test_heldout.py"),
    # Truncated back-propagation: each stream carries its own state; a restarted one starts from zero.
    m("restart-keeps-state", "lmgan/training/loop.py", "keep = torch.tensor([0.0 if r else 1.0 for r in reset])",
      "keep = torch.tensor([1.0 if r else 0.0 for r in reset])", "tests/test_truncated_bptt.py"),
    m("state-not-carried", "lmgan/training/loop.py", "self.state = detach_state(state, dtype=torch.float32)",
      "self.state = self.model.initial_state(cfg.batch, dev)", "tests/test_truncated_bptt.py"),
    # acIN starts as the plain instance norm, per frame; noise injection starts silent.
    m("acin-scale-starts-at-zero", "lmgan/nets/generator.py", "return 1.0 + gamma, beta", "return gamma, beta",
      "tests/test_nets.py", "-k", "acin"),
    m("acin-not-normalised", "lmgan/nets/generator.py", "torch.addcmul(beta, F.instance_norm(x), scale)",
      "torch.addcmul(beta, x, scale)", "tests/test_nets.py", "-k", "acin"),
    m("acin-window-statistics", "lmgan/nets/generator.py", "torch.addcmul(beta, F.instance_norm(x), scale)",
      "torch.addcmul(beta, F.batch_norm(x, None, None, training=True), scale)", "tests/test_nets.py", "-k", "acin"),
    m("noise-one-map-per-window", "lmgan/nets/generator.py",
      "torch.randn(n, 1, h, w, device=x.device, dtype=x.dtype)",
      "torch.randn(1, 1, h, w, device=x.device, dtype=x.dtype)", "tests/test_nets.py", "-k", "noise"),
    m("noise-scale-starts-at-one", "lmgan/nets/generator.py",
      "self.scale = nn.Parameter(torch.zeros(1, channels, 1, 1))",
      "self.scale = nn.Parameter(torch.ones(1, channels, 1, 1))", "tests/test_nets.py", "-k", "noise"),
    # The sensitivity probe: half the held-out length, forwards, window by window, and its unit.
    m("probe-shift-quarter", "lmgan/metrics/evaluator.py", '"shifted": shifted(held, len(held) // 2)',
      '"shifted": shifted(held, len(held) // 4)', "tests/test_probe.py"),
    m("probe-shift-reversed", "lmgan/metrics/sync.py", "torch.roll(x, shifts=-by, dims=0)",
      "torch.roll(x, shifts=by, dims=0)", "tests/test_probe.py"),
    m("probe-windows-misaligned", "lmgan/metrics/evaluator.py", "alt[i * cfg.seq_len:(i + 1) * cfg.seq_len][None]",
      "alt[i:i + cfg.seq_len][None]", "tests/test_probe.py"),
    m("sensitivity-from-silence", "lmgan/metrics/evaluator.py",
      'out["sensitivity"] = float(moved["shifted"]) / scale', 'out["sensitivity"] = float(moved["silence"]) / scale',
      "tests/test_probe.py"),
    # Losses, the sweep's budget, render's gain invariance measured before encoding.
    m("gp-eps-per-element", "lmgan/training/losses.py",
      "eps = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), device=real.device",
      "eps = torch.rand(real.shape, device=real.device", "tests/test_losses.py"),
    m("asha-grace-from-eval-every", "lmgan/sweep/schedulers.py", "grace_period=plan.grace_iters",
      "grace_period=plan.eval_every", "tests/test_sweep_launch.py", "-k", "asha"),
    m("sweep-default-grace-one-eval", "lmgan/sweep/plan.py",
      'grace = opts["grace_iters"] or min(max_iters, 5 * eval_every)',
      'grace = opts["grace_iters"] or min(max_iters, eval_every)', "tests/test_sweep_launch.py", "-k", "asha"),
    m("render-absolute-db", "lmgan/data/features.py", "ref = power.amax(dim=(1, 2), keepdim=True)",
      "ref = power.new_ones(1, 1, 1)", "tests/test_render.py", "-k", "gain_invariant"),
    # Durable writes: temporary written, fsynced, renamed, its folder fsynced; a full disk is one line.
    m("rename-not-durable", "lmgan/atomic.py", "    os.replace(tmp, path)\n    fsync_path(path.parent)",
      "    os.replace(tmp, path)", "tests/test_durable_writes.py"),
    m("fsync-after-rename", "lmgan/atomic.py", "    fsync_path(tmp)\n    os.replace(tmp, path)",
      "    os.replace(tmp, path)\n    fsync_path(path)", "tests/test_durable_writes.py"),
    m("disk-full-not-named", "lmgan/atomic.py", "raise disk_full_error(path, code) from e", "raise",
      "tests/test_disk_full.py", "-m", "not slow"),
    m("trial-disk-full-unnamed", "lmgan/sweep/trainable.py",
      "    if isinstance(e, OSError) and atomic.disk_full(e):\n        return os_error_line(e)[:500]\n", "",
      "tests/test_disk_full.py", "-k", "sweep_trial", slow=True),
    # AV-Align as its authors' 2025-02 av_align.py computes it.
    m("av-align-tiny-peaks", "lmgan/metrics/sync.py", " & (mid >= FLOW_PEAK_MIN)", "",
      "tests/test_sync.py", "-k", "peak or published"),
    m("av-align-peak-reused", "lmgan/metrics/sync.py", "            if free[j] and v - 1 / fps",
      "            if v - 1 / fps", "tests/test_sync.py", "-k", "peak or published"),
]


def scratch_copy(dest: Path) -> Path:
    """The working tree as git sees it (tracked and untracked, not ignored) under dest."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for rel in filter(None, files):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def run_one(mut: Mutation, root: Path, env: dict, timeout: float) -> tuple[str, str]:
    """(caught | survived | stale | broken, detail) for one mutation applied to `root`."""
    target = root / mut.path
    original = target.read_text()
    text = original
    for old, new in mut.edits:
        if text.count(old) != 1:
            return "stale", f"{mut.path}: {old[:60]!r} occurs {text.count(old)} times, not once"
        text = text.replace(old, new)
    target.write_text(text)
    try:
        p = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                            "-o", "addopts=-rf", *mut.tests], cwd=root, env=env,
                           capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "broken", f"timed out after {timeout:.0f} s"
    finally:
        target.write_text(original)
    failed = re.findall(r"^FAILED (\S+)", p.stdout, re.M)
    if p.returncode == 1:
        return "caught", failed[0] if failed else "a test failed"
    if p.returncode == 0:
        return "survived", "every test passed"
    tail = (p.stdout + p.stderr).strip().splitlines()[-1:]
    return "broken", f"pytest exit {p.returncode}: {tail[0] if tail else ''}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*", help="mutations to run (default: all)")
    ap.add_argument("--fast", action="store_true", help="skip mutations whose tests are slow")
    ap.add_argument("--list", action="store_true", help="list the mutations and exit")
    ap.add_argument("--timeout", type=float, default=1200, help="seconds per mutation")
    args = ap.parse_args(argv)
    known = {mu.name: mu for mu in MUTATIONS}
    unknown = [n for n in args.names if n not in known]
    if unknown:
        ap.error(f"unknown mutation {unknown[0]!r} (see --list)")
    chosen = [known[n] for n in args.names] or [mu for mu in MUTATIONS if not (args.fast and mu.slow)]
    if args.list:
        for mu in chosen:
            print(f"{mu.name:<30} {mu.path:<28} {' '.join(mu.tests)}{'  (slow)' if mu.slow else ''}")
        return 0

    with tempfile.TemporaryDirectory(prefix="lmgan-mutants-") as tmp:
        root = scratch_copy(Path(tmp) / "repo")
        env = {**os.environ, "PYTHONPATH": str(root) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        where = subprocess.run([sys.executable, "-c", "import lmgan; print(lmgan.__file__)"], cwd=root,
                               env=env, capture_output=True, text=True).stdout.strip()
        if not where.startswith(str(root)):
            print(f"mutants: the scratch copy's lmgan is not the one imported ({where})", file=sys.stderr)
            return 2
        results = []
        for i, mu in enumerate(chosen, 1):
            t0 = time.time()
            print(f"[{i}/{len(chosen)}] {mu.name} ... ", end="", flush=True)
            verdict, detail = run_one(mu, root, env, args.timeout)
            print(f"{verdict} in {time.time() - t0:.0f} s: {detail}", flush=True)
            results.append((mu, verdict))
    bad = [(mu.name, v) for mu, v in results if v != "caught"]
    print(f"\n{len(results) - len(bad)} of {len(results)} mutations caught"
          + (": " + ", ".join(f"{n} {v}" for n, v in bad) if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
