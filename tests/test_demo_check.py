"""The demo check reads from pixels what the demo clip draws from its sound.

A real clip is written and decoded with PyAV; the readers must recover the drawing's own
parameters (lmgan/data/demo.py), and the figures must tell the real frames from frames that keep
the content but lose the timing, the colour or the bar.
"""

import json

import numpy as np
import pytest

from lmgan import demo_check as dc
from lmgan.data import demo

FPS, SR, SIZE, SECONDS = 20.0, 16000, 64, 12.0


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    from lmgan.data.media import read_video
    path = tmp_path_factory.mktemp("demo-check") / "demo12s.mp4"
    demo.make_demo_video(path, seconds=SECONDS, seed=0)
    return read_video(path, fps=FPS, size=SIZE, sample_rate=SR)


def drawn(n: int):
    """The clip's drawing parameters (seed 0) at the decoded frames' times: hue, x, bar height."""
    rng = np.random.default_rng(0)
    _, pitch, drums, hats = demo._synth(SECONDS, 44100, rng)
    glide, _, hat_env, _ = demo._frame_features(pitch, drums, hats, 44100, 25, int(SECONDS * 25))
    src = np.minimum(np.floor(np.arange(n) * 25 / FPS).astype(int), len(glide) - 1)
    return 0.8 * glide[src], 0.25 + 0.45 * glide[src], 0.9 * hat_env[src]


def test_the_readers_recover_what_the_clip_drew(clip):
    frames = clip.frames
    hue, x, bar = drawn(len(frames))
    area, read_hue, read_x, _ = dc.read_disc(frames)
    assert area.min() > 200                                 # the disc is always on screen
    assert np.percentile(dc.hue_distance(read_hue, hue), 95) < 0.01
    assert np.corrcoef(read_x, x)[0, 1] > 0.99
    assert np.corrcoef(dc.read_bar(frames), bar)[0, 1] > 0.99


def test_the_real_frames_pass_every_target(clip):
    fig = dc.figures(clip.frames, clip.frames)
    assert all(fig.passed().values())
    assert fig.disc_in_colour == 1.0 and fig.bar_r == pytest.approx(1.0) and fig.motion_corr == pytest.approx(1.0)
    assert sum(n for _, n in fig.hue_bands.values()) == len(clip.frames)


def test_frames_that_lose_the_timing_the_colour_or_the_bar_fail(clip):
    real = clip.frames
    shuffled = dc.figures(real[np.random.default_rng(0).permutation(len(real))], real)
    assert shuffled.disc_in_colour < 0.5 and shuffled.bar_r < 0.3 and shuffled.motion_corr < 0.3

    from matplotlib.colors import hsv_to_rgb, rgb_to_hsv
    hsv = rgb_to_hsv(real / 255.0)
    hsv[..., 0] = (hsv[..., 0] + 0.15) % 1.0               # every colour off by 1.7 notes
    recoloured = dc.figures((hsv_to_rgb(hsv) * 255).round().astype(np.uint8), real)
    assert recoloured.disc_in_colour < 0.1 and recoloured.disc_place_r > 0.99

    no_bar = real.copy()
    a = int(round(dc.BAR_STRIP[0] * SIZE)) - 3
    no_bar[:, :, a:a + 8] = no_bar[:, :, a - 8:a]          # the strip painted with what is left of it
    fig = dc.figures(no_bar, real)
    assert fig.bar_r < 0.3 and not fig.passed()["bar_r"] and fig.passed()["disc_in_colour"]


def test_a_pale_first_frame_is_seen(clip):
    real = clip.frames
    pale = real.copy()
    pale[0] = (0.5 * pale[0] + 100).astype(np.uint8)
    assert not dc.figures(pale, real).passed()["first_frame"]


def test_the_command_reads_a_run(tiny_run, tmp_path, capsys):
    rc = dc.main([str(tiny_run), "--json", "--plot", str(tmp_path / "check.png")])
    out = json.loads(capsys.readouterr().out)
    assert rc == 1                                        # 20 iterations draw nothing yet
    assert out["iteration"] == 20 and out["frames"] == 16 and set(out["passed"]) >= {"bar_r", "first_frame"}
    assert (tmp_path / "check.png").stat().st_size > 0


def test_the_command_refuses_what_is_not_a_run(tmp_path, capsys):
    assert dc.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("python -m lmgan.demo_check: error:") and "\n" not in err
