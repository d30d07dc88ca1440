"""`lmgan eval`: the paper's evaluation protocols for a trained checkpoint.

Table 1: the held-out 20 % is generated from its own sound, window after window with carried
state; frame metrics are mean ± std over windows; set metrics (FVD, FID, FDD) are one distance
per generation, and with `repeats` > 1 mean ± std over that many noise seeds.

Table 2: robustness to new sound. Clips of 1–5 s are cut at random from the sound files of a
folder (FSD50K in the paper), each rendered from zero states, and the FID of all generated
frames against all real frames of the source video is reported.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from lmgan.data.dataset import VideoData, load_cached, load_video_data
from lmgan.data.features import SoundFeatures
from lmgan.data.media import read_audio
from lmgan.device import pick_device
from lmgan.errors import LmganError
from lmgan.metrics import REGISTRY
from lmgan.metrics.evaluator import Evaluator, heldout_pass, load_stats, save_stats
from lmgan.render import model_from_checkpoint
from lmgan.training import checkpoint
from lmgan.pixels import to_unit_float

SOUND_SUFFIXES = {".wav", ".mp3", ".flac", ".ogg", ".opus", ".m4a", ".aac", ".mp4", ".webm", ".mkv", ".mov"}


def load_checkpoint_data(ck: dict, ckpt_path, video: str | None, cfg, progress: bool) -> VideoData:
    """The checkpoint's video: the given file, else the cached decode, else its recorded source."""
    if video:
        data = load_video_data(video, cfg, progress=progress)
        if data.key != ck["data"]["key"]:
            print(f"note: {video} is not the video this model was trained on", file=sys.stderr)
        return data
    data = load_cached(ck["data"]["key"], cfg)
    if data is not None:
        return data
    source = ck["data"]["source"]
    if not Path(source).is_file():
        raise LmganError(f"{ckpt_path}: its video {source} is neither cached nor on disk; pass --video PATH")
    return load_video_data(source, cfg, progress=progress)


def table1(model, cfg, data: VideoData, device, metrics: list[str], seed: int = 0, repeats: int = 1,
           weight_paths: dict | None = None) -> dict:
    """{metric: mean, metric_std: std, ...} on the held-out part."""
    evaluator = Evaluator(metrics, device, stats_key=data.heldout_key(cfg.seq_len, cfg.eval_windows),
                          weight_paths=weight_paths, fps=cfg.fps, sample_rate=cfg.sample_rate)
    runs = [heldout_pass(model, data, cfg, device, evaluator, seed=seed + r) for r in range(repeats)]
    out = {}
    for name in metrics:
        if REGISTRY[name].kind == "frame" and repeats == 1:
            out[name], out[name + "_std"] = runs[0][name], runs[0][name + "_std"]
        else:
            v = np.array([r[name] for r in runs])
            out[name], out[name + "_std"] = float(v.mean()), float(v.std())
    for extra in sorted(set(runs[0]) - set(out) - {n + "_std" for n in metrics}):
        out[extra] = float(np.mean([r[extra] for r in runs]))      # av_align_real, sensitivity_silence
    out["windows"] = len(data.heldout_starts(cfg.seq_len, cfg.eval_windows))
    out["repeats"] = repeats
    return out


def sound_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise LmganError(f"{folder}: not a folder of sound files")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in SOUND_SUFFIXES and p.is_file())
    if not files:
        raise LmganError(f"{folder}: no sound files ({', '.join(sorted(SOUND_SUFFIXES))})")
    return files


@torch.no_grad()
def table2(model, cfg, data: VideoData, device, audio_dir: Path, clips: int = 500, seed: int = 0,
           weight_paths: dict | None = None, progress: bool = True) -> dict:
    """FID of frames generated from random 1–5 s clips of the sounds in audio_dir vs real frames."""
    files = sound_files(Path(audio_dir))
    inception = REGISTRY["fid"].build(device, weight_paths or {})
    rng = np.random.default_rng(seed)
    feats = SoundFeatures(cfg)
    decoded: dict[Path, np.ndarray] = {}
    fake_features, skipped = [], 0
    torch.manual_seed(seed)
    for _ in tqdm(range(clips), desc="out-of-distribution clips", disable=not progress):
        path = files[rng.integers(len(files))]
        if path not in decoded:
            try:
                decoded[path] = read_audio(path, cfg.sample_rate)
            except LmganError:
                decoded[path] = np.zeros(0, np.float32)
        wave = decoded[path]
        seconds = rng.uniform(1.0, 5.0)
        n = int(round(seconds * cfg.sample_rate))
        if len(wave) < cfg.sample_rate:          # shorter than 1 s, or undecodable
            skipped += 1
            continue
        n = min(n, len(wave))
        start = int(rng.integers(0, len(wave) - n + 1))
        frames_n = max(1, int(round(n / cfg.sample_rate * cfg.fps)))
        f = feats(wave[start:start + n], 0, frames_n).to(device)
        state = model.initial_state(1, device)
        for t in range(0, frames_n, cfg.seq_len):
            fake, state = model.generate(f[t:t + cfg.seq_len][None], state)
            fake_features.append(inception(fake))
    if not fake_features:
        raise LmganError(f"{audio_dir}: no decodable sound of at least 1 s")
    from lmgan.metrics.frechet import frechet_distance, gaussian
    key = f"{data.key}-all"
    real = load_stats(key, "fid")
    if real is None:
        real_feats = [inception(to_unit_float(data.frames[s:s + 64].to(device))[None])
                      for s in range(0, data.n_frames, 64)]
        real = gaussian(np.concatenate(real_feats))
        save_stats(key, "fid", *real)
    fake = np.concatenate(fake_features)
    return {"fid_ood": frechet_distance(*gaussian(fake), *real), "clips": clips - skipped,
            "frames": len(fake), "skipped": skipped}


def evaluate_checkpoint(ckpt_path, video=None, metrics=("ssim", "psnr"), device="auto", seed=0, repeats=1,
                        ood_audio=None, ood_clips=500, weight_paths=None, progress=True) -> dict:
    dev = pick_device(device)
    if ood_audio:
        sound_files(Path(ood_audio))          # fail on a bad folder before any work
    ck = checkpoint.load(ckpt_path)
    model, cfg = model_from_checkpoint(ck, ckpt_path, dev)
    data = load_checkpoint_data(ck, ckpt_path, video, cfg, progress)
    del ck
    result = {"checkpoint": str(ckpt_path), "video": data.source,
              "table1": table1(model, cfg, data, dev, list(metrics), seed, repeats, weight_paths)}
    if ood_audio:
        result["table2"] = table2(model, cfg, data, dev, Path(ood_audio), ood_clips, seed, weight_paths, progress)
    return result
