"""Does a demo model draw what the demo's sound decides? Figures read from pixels alone.

`python -m lmgan.demo_check RUN` generates the held-out 20 % of the synthetic demo clip
(lmgan/data/demo.py) with a run's model, as its evaluations do, and reads from the generated
and the real frames what the clip draws from its sound:

- the disc: its pixels are the bright saturated ones (HSV S and V above DISC_MIN; the
  background's saturation is 0.5 and its value at most 0.5, the bar's saturation 0.4); its
  hue is their circular mean, its place their centroid. A generated frame draws the disc *in
  its colour* when its disc covers at least AREA_SHARE of the real disc's pixels and its hue is
  within HUE_TOL of the real one (neighbouring notes are 0.089 apart). The share is also given
  per hue band of the real disc, so a model that draws only some colours is seen;
- the hi-hat bar: the rows of the bar's column strip whose colour is warm (R above B and
  G above B, as the bar's (1, .9, .6) is and no disc that can reach the strip is), over the
  frame's height; its correlation with the real bar's height over held-out time;
- `motion_corr` (lmgan.metrics.sync), and whether the first frame, generated from zero
  recurrent states, is as close to its real frame as the rest are.

The clip is this project's own, so these are a check of the demo, not product metrics. The exit
status is 1 when a target (TARGETS) is missed, so it can gate a script.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

DISC_MIN = 0.55            # HSV saturation and value a disc pixel exceeds
AREA_SHARE = 0.4           # of the real disc's pixels a generated disc must cover
HUE_TOL = 0.05             # circular hue distance (hue in [0, 1)) counted as the same colour
BAR_STRIP = (0.87, 0.93)   # the bar's column strip, as fractions of the frame's width
WARM = 25                  # grey levels R and G exceed B by in a bar row (the bar's darkest:
                           # (102, 92, 61)); the background and the discs that reach the strip
                           # have B >= R or B >= G
MIN_BAND_FRAMES = 10       # a hue band with fewer held-out frames gets no share of its own

# The disc's hue is 0.8 × pitch (lmgan/data/demo.py): ten notes from red (0) to magenta (0.8).
HUE_BANDS = (("red", 0.0, 0.13), ("yellow", 0.13, 0.22), ("green", 0.22, 0.40),
             ("cyan", 0.40, 0.58), ("blue", 0.58, 0.67), ("purple", 0.67, 1.0))

TARGETS = {"disc_in_colour": 0.9, "hue_band_min": 0.8, "bar_r": 0.6, "motion_corr": 0.5}


@dataclass
class DemoFigures:
    """What one held-out generation draws, against the real frames."""
    frames: int
    disc_in_colour: float                 # share of the frames with a real disc that draw it in its colour
    hue_bands: dict = field(default_factory=dict)   # band → [share in colour, frames]
    disc_place_r: float = 0.0             # correlation of the disc's place (x − y of its centroid: it
                                          # moves on that diagonal) with the real one's, where both show one
    bar_r: float = 0.0                    # correlation of the bar's height, generated vs real
    motion_corr: float = 0.0
    first_frame_l1: float = 0.0           # mean |generated − real| of frame 0, grey levels
    rest_l1_p90: float = 0.0              # the 90th percentile of the same over the other frames

    @property
    def hue_band_min(self) -> float:
        shares = [s for s, n in self.hue_bands.values() if n >= MIN_BAND_FRAMES]
        return min(shares) if shares else 0.0

    @property
    def first_frame_ok(self) -> bool:
        return self.first_frame_l1 <= self.rest_l1_p90

    def passed(self) -> dict[str, bool]:
        """Each target (TARGETS, and the first frame) → met."""
        out = {k: getattr(self, k) >= v for k, v in TARGETS.items()}
        out["first_frame"] = self.first_frame_ok
        return out

    def to_dict(self) -> dict:
        return {**asdict(self), "hue_band_min": self.hue_band_min, "first_frame_ok": self.first_frame_ok,
                "passed": self.passed()}


# ----------------------------------------------------------------------------- reading pixels
def _hsv(frames: np.ndarray) -> np.ndarray:
    from matplotlib.colors import rgb_to_hsv
    return rgb_to_hsv(frames.astype(np.float32) / 255.0)


def read_disc(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """uint8 [T, S, S, 3] → per frame (area in pixels, hue in [0, 1) or nan, x, y in [0, 1] or nan)."""
    hsv = _hsv(frames)
    disc = (hsv[..., 1] > DISC_MIN) & (hsv[..., 2] > DISC_MIN)
    area = disc.sum((1, 2)).astype(np.float64)
    angle = 2 * np.pi * hsv[..., 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = (np.cos(angle) * disc).sum((1, 2)) / area
        sin = (np.sin(angle) * disc).sum((1, 2)) / area
        hue = (np.arctan2(sin, cos) / (2 * np.pi)) % 1.0
        s = frames.shape[1]
        grid = (np.arange(s) + 0.5) / s
        x = (disc * grid[None, None, :]).sum((1, 2)) / area
        y = (disc * grid[None, :, None]).sum((1, 2)) / area
    return area, hue, x, y


def read_bar(frames: np.ndarray) -> np.ndarray:
    """uint8 [T, S, S, 3] → the bar's height per frame, as a fraction of the frame's height."""
    s = frames.shape[2]
    a, b = int(round(BAR_STRIP[0] * s)), max(int(round(BAR_STRIP[1] * s)), int(round(BAR_STRIP[0] * s)) + 1)
    strip = frames[:, :, a:b].astype(np.float32).mean(2)          # [T, S, 3]: each row's colour
    warm = (strip[..., 0] - strip[..., 2] > WARM) & (strip[..., 1] - strip[..., 2] > WARM / 2)
    return warm.mean(1)


def hue_distance(a, b) -> np.ndarray:
    d = np.abs(np.asarray(a) - np.asarray(b)) % 1.0
    return np.minimum(d, 1.0 - d)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or a[ok].std() < 1e-9 or b[ok].std() < 1e-9:
        return 0.0
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def band_of(hue: float) -> str:
    for name, lo, hi in HUE_BANDS:
        if lo <= hue < hi:
            return name
    return HUE_BANDS[0][0]       # hues just below 1 are red again


def figures(fake: np.ndarray, real: np.ndarray) -> DemoFigures:
    """The figures of generated frames against real ones, both uint8 [T, S, S, 3] in time order."""
    from lmgan.metrics.sync import motion_corr
    from lmgan.pixels import to_unit_float

    if fake.shape != real.shape or fake.ndim != 4 or len(fake) < 2:
        raise ValueError(f"fake and real must be equal [T>=2, S, S, 3] arrays, got {fake.shape} and {real.shape}")
    f_area, f_hue, f_x, f_y = read_disc(fake)
    r_area, r_hue, r_x, r_y = read_disc(real)
    has_disc = r_area >= 20
    good = has_disc & (f_area >= AREA_SHARE * r_area) & (hue_distance(f_hue, r_hue) <= HUE_TOL)   # no disc: nan, False
    bands = {}
    names = np.array([band_of(h) if ok else "" for h, ok in zip(r_hue, has_disc)])
    for name, *_ in HUE_BANDS:
        sel = names == name
        if sel.any():
            bands[name] = [float(good[sel].mean()), int(sel.sum())]
    l1 = np.abs(fake.astype(np.float32) - real.astype(np.float32)).mean((1, 2, 3))
    as_float = [to_unit_float(torch.from_numpy(np.ascontiguousarray(x))) for x in (fake, real)]
    return DemoFigures(
        frames=len(fake),
        disc_in_colour=float(good[has_disc].mean()) if has_disc.any() else 0.0,
        hue_bands=bands,
        disc_place_r=_corr(f_x - f_y, r_x - r_y),     # along the diagonal it moves on; where both show one
        bar_r=_corr(read_bar(fake), read_bar(real)),
        motion_corr=motion_corr(*as_float),
        first_frame_l1=float(l1[0]),
        rest_l1_p90=float(np.percentile(l1[1:], 90)),
    )


# ----------------------------------------------------------------------------- a run's held-out part
@torch.no_grad()
def heldout_frames(model, data, cfg, device) -> tuple[np.ndarray, np.ndarray]:
    """The held-out part generated as the run's own evaluations generate it (noise seed
    cfg.seed + 1, carried state from zero), and the real one: uint8 [T, S, S, 3] each."""
    from lmgan.metrics.evaluator import Evaluator, heldout_pass
    from lmgan.pixels import to_uint8

    fake, real = [], []
    heldout_pass(model, data, cfg, device, Evaluator([], device), seed=cfg.seed + 1,
                 on_window=lambda s, f, r: (fake.append(to_uint8(f)), real.append(to_uint8(r))))
    return np.concatenate(fake), np.concatenate(real)


def check_run(path: str | Path, device: str = "auto", video: str | None = None,
              picture: str | Path | None = None) -> tuple[DemoFigures, int]:
    """Figures of a run folder's latest checkpoint (or a checkpoint file), and its iteration;
    with `picture`, also the PNG of plot() there."""
    from lmgan.device import pick_device
    from lmgan.evaluate import load_checkpoint_data
    from lmgan.render import model_from_checkpoint
    from lmgan.training import checkpoint

    dev = pick_device(device)
    ck = checkpoint.load(path)
    model, cfg = model_from_checkpoint(ck, path, dev)
    data = load_checkpoint_data(ck, path, video, cfg, progress=False)
    fake, real = heldout_frames(model, data, cfg, dev)
    fig = figures(fake, real)
    if picture:
        plot(picture, fake, real, cfg.fps, fig, title=f"{Path(path).name}, iteration {ck['iteration']}")
    return fig, int(ck["iteration"])


def plot(path: str | Path, fake: np.ndarray, real: np.ndarray, fps: float, fig_: DemoFigures, title: str = "") -> None:
    """The held-out part as a person checks it: frames (generated above real), the per-frame
    motion of both, the disc's hue and the bar's height read from each, against time."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lmgan.pixels import to_unit_float
    from lmgan.training.artifacts import motion_trace, sample_grid, save_figure

    t = np.arange(len(real)) / fps
    (f_area, f_hue, *_), (r_area, r_hue, *_) = read_disc(fake), read_disc(real)
    found = np.isfinite(f_hue) & (f_area >= AREA_SHARE * r_area)

    def motion(x):
        return motion_trace(to_unit_float(torch.from_numpy(np.ascontiguousarray(x))))

    fig, axes = plt.subplots(4, 1, figsize=(10, 10.5), gridspec_kw={"height_ratios": [1.7, 1, 1, 1]})
    axes[0].imshow(sample_grid(fake, real, columns=12))
    axes[0].set_axis_off()
    axes[0].set_title("held-out frames, generated above real: spread over the part, then consecutive", fontsize=10)
    axes[1].plot(t[1:], motion(real), lw=1.2, label="real")
    axes[1].plot(t[1:], motion(fake), lw=1.2, label="generated")
    axes[1].set(ylabel="grey levels / frame", title=f"per-frame motion; motion_corr {fig_.motion_corr:.2f}")
    axes[2].plot(t, r_hue, lw=1.2, label="real")
    axes[2].plot(t[found], f_hue[found], ".", ms=3, color="C1", label="generated (a disc drawn)")
    axes[2].set(ylabel="hue", ylim=(-0.05, 1.0),
                title=f"the disc's hue; in its colour in {100 * fig_.disc_in_colour:.0f} % of frames "
                      f"(worst hue band {100 * fig_.hue_band_min:.0f} %)")
    axes[3].plot(t, read_bar(real), lw=1.2, label="real")
    axes[3].plot(t, read_bar(fake), lw=1.2, label="generated")
    axes[3].set(xlabel="held-out time (s)", ylabel="height / frame",
                title=f"the hi-hat bar's height; r {fig_.bar_r:.2f}")
    for ax in axes[1:]:
        ax.legend(fontsize=8, loc="upper right")
    save_figure(fig, Path(path), title)


def report(fig: DemoFigures) -> list[str]:
    """The figures as lines, each target with its threshold and whether it is met."""
    ok = fig.passed()
    mark = {True: "ok", False: "MISSED"}
    lines = [f"  disc in its colour  {100 * fig.disc_in_colour:5.1f} %   target >= 90 %     {mark[ok['disc_in_colour']]}"]
    for name, (share, n) in fig.hue_bands.items():
        note = "" if n >= MIN_BAND_FRAMES else "  (too few frames to judge)"
        lines.append(f"    {name:<8}          {100 * share:5.1f} %   of {n:3d} frames{note}")
    lines += [
        f"    every hue band    {100 * fig.hue_band_min:5.1f} %   target >= 80 %     {mark[ok['hue_band_min']]}",
        f"  disc place r        {fig.disc_place_r:6.3f}",
        f"  bar height r        {fig.bar_r:6.3f}    target >= 0.6      {mark[ok['bar_r']]}",
        f"  motion_corr         {fig.motion_corr:6.3f}    target >= 0.5      {mark[ok['motion_corr']]}",
        f"  first frame L1      {fig.first_frame_l1:6.2f}    the rest's 90th percentile {fig.rest_l1_p90:.2f}"
        f"   {mark[ok['first_frame']]}",
    ]
    return lines


def main(argv=None) -> int:
    from lmgan.errors import run_command

    p = argparse.ArgumentParser(prog="python -m lmgan.demo_check",
                                description="Read the demo's disc, colours and bar from a run's held-out frames.")
    p.add_argument("run", help="a run folder (its latest checkpoint) or a checkpoint file of a demo run")
    p.add_argument("--video", default=None, help="the demo clip, when the run's is neither cached nor on disk")
    p.add_argument("--device", default="auto")
    p.add_argument("--plot", metavar="PNG", default=None,
                   help="also draw the held-out frames, motion, disc hue and bar height against time here")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = p.parse_args(argv)

    def run() -> int:
        fig, iteration = check_run(args.run, args.device, args.video, args.plot)
        if args.json:
            print(json.dumps({"run": str(args.run), "iteration": iteration, **fig.to_dict()}))
        else:
            print(f"demo check of {args.run} (iteration {iteration}), {fig.frames} held-out frames:")
            print("\n".join(report(fig)))
        return 0 if all(fig.passed().values()) else 1

    return run_command("python -m lmgan.demo_check", run)


if __name__ == "__main__":
    sys.exit(main())
