"""`lmgan` command line: arguments → a validated config → the library. Errors are one line, exit 2."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from lmgan.arguments import OneLineParser
from lmgan.errors import LmganError, os_error_line, run_command
from lmgan.runs import find_run_path, runs_root

DESCRIPTION = """\
lmgan trains the Listen and Move sound-to-video GAN on one video and searches its
hyperparameters: `lmgan sweep` runs Optuna + ASHA trials through Ray Tune, each an MLflow run;
`lmgan report` compares them; `lmgan render` makes video from any sound with a trained model.
Runs, sweeps and the MLflow store live under one runs folder ($LMGAN_RUNS, else the
repository's runs/ inside the checkout, else ./runs)."""


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _no_traversal(path: str | None, flag: str) -> None:
    """Output paths are taken as written, but never through '..': a path pasted from a shared
    script or config cannot climb out of the folder it names."""
    if path is not None and ".." in Path(path).parts:
        raise LmganError(f"{flag} {path}: must not contain '..'")


def _train(args) -> int:
    from lmgan.atomic import disk_full
    from lmgan.config import config_notes, parse_sets
    from lmgan.data.videos import DEMO, resolve
    from lmgan.training import checkpoint
    from lmgan.training.run import new_run, resume_run

    _no_traversal(args.out, "--out")
    _no_traversal(args.resume, "--resume")
    if args.resume:
        if args.video or args.preset or args.config:
            raise LmganError("--resume takes the video and config from the run; only --set may change iters and intervals")
        trainer = resume_run(find_run_path(args.resume), parse_sets(args.set), progress=not args.quiet)
    else:
        video = resolve(args.video or DEMO)
        cfg = video.config(args.preset, args.config, args.set)
        out = Path(args.out) if args.out else runs_root() / f"{video.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        trainer = new_run(video.path, cfg, out, progress=not args.quiet)
    if trainer.data.cached:
        print(f"data: cache hit {trainer.data.key} ({trainer.data.n_frames} frames)", file=sys.stderr)
    for note in config_notes(trainer.cfg):
        print(note, file=sys.stderr)
    # Ctrl-C and a scheduler's SIGTERM save a checkpoint and exit 130; SIGINT explicitly too,
    # since Python installs no handler where it was ignored at start-up (a job started with &).
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _interrupt)
    try:
        summary = trainer.run(progress=not args.quiet)
    except KeyboardInterrupt:
        print(f"interrupted at iteration {trainer.iteration}; checkpoint saved. "
              f"Continue with: lmgan train --resume {trainer.run_dir}", file=sys.stderr)
        return 130
    except OSError as e:
        if not disk_full(e):
            raise
        # One line: what could not be written, what is kept, how to go on once there is space.
        kept = checkpoint.latest(checkpoint.ckpt_dir(trainer.run_dir))
        then = (f"checkpoint {kept.name} is kept; make space, then: lmgan train --resume {trainer.run_dir}"
                if kept else "no checkpoint was written yet")
        raise LmganError(f"{os_error_line(e)} ({then})") from None
    ev = summary["last_eval"]
    ssim = f"{ev['ssim']:.3f} ± {ev['ssim_std']:.3f}" if "ssim" in ev else "n/a"
    print(f"done: {summary['iterations']} iterations at {summary['it_per_s']:.2f} it/s; "
          f"held-out SSIM {ssim}; samples in {summary['samples']}; checkpoint {summary['checkpoint']}")
    return 0


def _render(args) -> int:
    from lmgan.render import render

    _no_traversal(args.out, "--out")
    out = Path(args.out)
    if out.is_dir():
        raise LmganError(f"{out}: is a directory; --out needs a file name such as out.mp4")
    info = render(find_run_path(args.checkpoint), args.audio, out, device=args.device, seed=args.seed,
                  progress=not args.quiet)
    print(f"wrote {info['out']}: {info['frames']} frames, {info['seconds']:.2f} s of sound")
    return 0


def _demo_video(args) -> int:
    from lmgan.data.demo import make_demo_video

    if args.seconds <= 0:
        raise LmganError(f"--seconds {args.seconds:g}: must be positive")
    make_demo_video(Path(args.out), seconds=args.seconds, seed=args.seed)
    print(f"wrote {args.out}: {args.seconds:g} s synthetic demo clip")
    return 0


def _eval(args) -> int:
    import json

    from lmgan.data.videos import resolve
    from lmgan.evaluate import evaluate_checkpoint
    from lmgan.metrics import REGISTRY, lookup

    metrics = [m for m in args.metrics.split(",") if m]
    lookup(metrics, "--metrics")
    if args.repeats < 1 or args.ood_clips < 1:
        raise LmganError("--repeats and --ood-clips must be at least 1")
    paths = {}
    for item in args.weights:
        name, sep, path = item.partition("=")
        if not sep:
            raise LmganError(f"--weights {item!r}: expected NAME=PATH")
        paths[name] = path
    video = str(resolve(args.video, quiet=True).path) if args.video else None
    result = evaluate_checkpoint(find_run_path(args.checkpoint), video, metrics, args.device, args.seed, args.repeats,
                                 args.ood_audio, args.ood_clips, paths, progress=not args.quiet)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    t1 = result["table1"]
    print(f"{result['checkpoint']}: held-out {t1['windows']} windows of {result['video']}"
          + (f", {t1['repeats']} noise seeds" if t1["repeats"] > 1 else ""))
    for name in metrics:
        arrow = "↑" if REGISTRY[name].higher_is_better else "↓"
        print(f"  {name:<11} {arrow} {t1[name]:10.4f} ± {t1[name + '_std']:.4f}")
        for extra, label in (("_real", "the real video's own"), ("_silence", "from silence")):
            if name + extra in t1:
                print(f"  {'':<11}   {t1[name + extra]:10.4f}   ({label})")
    if "table2" in result:
        t2 = result["table2"]
        print(f"  fid (out-of-distribution sound, {t2['clips']} clips, {t2['frames']} frames) ↓ {t2['fid_ood']:.2f}")
    return 0


def _weights(args) -> int:
    from lmgan import weights

    if args.fetch:
        failed = []

        def report(e: LmganError) -> None:
            failed.append(e)
            print(f"lmgan: error: {e}", file=sys.stderr)

        paths = weights.fetch_all(progress=not args.quiet, on_error=report)
        for path in paths:
            print(f"present  {path}")
        return 2 if failed else 0
    rows = weights.status()
    table = [("name", "status", "path (or where to put it)", "env var")]
    table += [(r["name"], "present" if r["path"] else "missing", str(r["path"] or r["search"][-1]), r["env"])
              for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    for row, r in zip(table, [None, *rows]):
        print("  ".join(f"{c:<{w}}" for c, w in zip(row, widths)) + "  " + row[3])
        if r and (r["problem"] or not r["path"]):
            print(" " * (widths[0] + 2) + (f"problem: {r['problem']}" if r["problem"] else f"from {r['url']}"))
    if any(not r["path"] for r in rows):
        print("missing files: `lmgan weights --fetch` downloads them into the cache (LMGAN_CACHE=DIR on a "
              "shared disk for a cluster), or set the variable to a copy")
    return 0


def _fetch(args) -> int:
    from lmgan.data.fetch import fetch_main
    return fetch_main(args.names, force=args.force)


def _report(args) -> int:
    from lmgan.sweep.report import report_main
    return report_main(args)


def _sweep(args) -> int:
    from lmgan.sweep.driver import run
    return run(args)


def build_parser() -> argparse.ArgumentParser:
    from lmgan.config import presets
    from lmgan.data.videos import demo_entry, names_for_help
    from lmgan.metrics import REGISTRY

    from lmgan.sweep.arguments import DESCRIPTION as SWEEP, add_sweep_arguments

    p = OneLineParser(prog="lmgan", description=DESCRIPTION)
    sub = p.add_subparsers(dest="command", required=True, parser_class=OneLineParser, metavar="COMMAND")
    videos = names_for_help()
    try:
        demo_preset = demo_entry()["preset"]
    except LmganError:          # a broken registry is reported when a name is resolved
        demo_preset = "demo"

    s = sub.add_parser("sweep", help="search hyperparameters: Optuna + ASHA trials on Ray Tune, tracked in MLflow",
                       description=SWEEP + " The same as python sweeps/search.py.")
    add_sweep_arguments(s)
    s.set_defaults(func=_sweep)

    t = sub.add_parser("train", help="train on one video (or resume a run)")
    t.add_argument("--video", help=f"a named video ({videos}) or a video file (default: demo, the "
                   "synthetic clip)")
    t.add_argument("--out", help="run folder (default: <runs>/<video>-<time>, <runs> as in lmgan --help)")
    t.add_argument("--preset", help=f"named preset of overrides ({', '.join(presets())}; default: the "
                   f"named video's, the demo's: {demo_preset}; else none: the paper's model at 128²)")
    t.add_argument("--config", help="YAML file of config overrides (default: none)")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config key; repeatable (default: none)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint "
                   "(default: none, a new run)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=_train)

    r = sub.add_parser("render", help="render video from any sound with a trained model")
    r.add_argument("--checkpoint", required=True, help="checkpoint file or run folder (latest checkpoint)")
    r.add_argument("--audio", required=True, help="any sound PyAV reads (wav, mp3, flac, ogg, a video's sound)")
    r.add_argument("--out", required=True, help="output .mp4")
    r.add_argument("--device", default="auto", help="torch device: auto (the GPU if there is one), cpu, cuda, cuda:N")
    r.add_argument("--seed", type=int, default=0, help="seed of the motion and image noise")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=_render)

    d = sub.add_parser("demo-video", help="write the deterministic synthetic audiovisual demo clip")
    d.add_argument("out", help="output .mp4")
    d.add_argument("--seconds", type=float, default=60.0, help="length of the clip")
    d.add_argument("--seed", type=int, default=0, help="seed of the clip's melody and rhythm")
    d.set_defaults(func=_demo_video)

    e = sub.add_parser("eval", help="Table 1 metrics on the held-out 20 %%; Table 2 FID on new sound")
    e.add_argument("--checkpoint", required=True, help="checkpoint file or run folder")
    e.add_argument("--video", help=f"a named video ({videos}) or a video file (default: the run's own, "
                   "cached or at its recorded path)")
    e.add_argument("--metrics", default="ssim,psnr", help=f"comma-separated, of: {', '.join(REGISTRY)}")
    e.add_argument("--repeats", type=int, default=1, help="noise seeds to average over (mean ± std)")
    e.add_argument("--ood-audio", metavar="DIR", help="folder of sound files: also report Table 2's FID "
                   "(default: none, Table 1 only)")
    e.add_argument("--ood-clips", type=int, default=500, help="random 1-5 s clips cut from --ood-audio")
    e.add_argument("--weights", action="append", default=[], metavar="NAME=PATH",
                   help="explicit weight file, e.g. i3d=/models/i3d_torchscript.pt; repeatable (default: "
                   "none, each looked up as `lmgan weights` lists)")
    e.add_argument("--device", default="auto", help="torch device: auto (the GPU if there is one), cpu, cuda, cuda:N")
    e.add_argument("--seed", type=int, default=0, help="seed of the motion and image noise")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.add_argument("--quiet", action="store_true", help="no progress bar")
    e.set_defaults(func=_eval)

    w = sub.add_parser("weights", help="list the pretrained weight files (VGG16, AlexNet, I3D, Inception)")
    w.add_argument("--fetch", action="store_true",
                   help="download every missing file into $LMGAN_CACHE/weights (a sweep's driver "
                   "does this itself for what its trials need, and ships the files to them)")
    w.add_argument("--quiet", action="store_true", help="no progress bars")
    w.set_defaults(func=_weights)

    f = sub.add_parser("fetch", help="download named source videos (sweeps/videos.yaml) into the data folder")
    f.add_argument("names", nargs="+", metavar="NAME", help=videos)
    f.add_argument("--force", action="store_true", help="download again even if the file is there")
    f.set_defaults(func=_fetch)

    rp = sub.add_parser("report", help="HTML report of a sweep from MLflow: table, importances, best video")
    rp.add_argument("--experiment", required=True, help="experiment (lmgan-quintet) or video name (quintet)")
    rp.add_argument("--sweep", help="sweep name (default: the latest sweep of the experiment)")
    rp.add_argument("--out", help="HTML file to write (default: <runs>/reports/<sweep>/report.html)")
    rp.add_argument("--runs-dir", help="the runs folder whose MLflow store to read (default: $LMGAN_RUNS, "
                    "else the repository's runs/ inside the checkout, else ./runs)")
    rp.add_argument("--tracking-uri", help="MLflow tracking URI (default: sqlite:///<runs-dir>/mlflow.db, "
                    "a SQLite store)")
    rp.set_defaults(func=_report)
    return p


def main(argv: list[str] | None = None) -> int:
    def body() -> int:
        args = build_parser().parse_args(argv)
        return args.func(args)
    return run_command("lmgan", body)


if __name__ == "__main__":
    sys.exit(main())
